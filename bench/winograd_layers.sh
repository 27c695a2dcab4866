#!/usr/bin/env bash
# Per-layer timing of edgecv's Winograd F(4x4, 3x3) against oneDNN's direct convolution.
#   bench/winograd_layers.sh [ISA]   ISA: AVX2 (default) | AVX512_CORE | native
# For AVX2 both sides run AVX2 code on any x86 CPU: oneDNN capped with ONEDNN_MAX_CPU_ISA, the
# transforms compiled for Haswell only. Writes bench/results-winograd-<isa>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
isa="${1:-AVX2}"
ffi="$(.venv/bin/python -c 'import os, tvm_ffi; print(os.path.dirname(tvm_ffi.__file__))')"
out="$(mktemp -d)"
flags=(-std=c++17 -O3 -fopenmp -Iruntime_cpp/include -isystem "$ffi/include")
[ "$isa" = AVX2 ] && flags+=(-march=haswell -DEDGECV_NO_CLONES)
g++ "${flags[@]}" runtime_cpp/src/winograd.cc bench/winograd_layers.cc -ldnnl -o "$out/winograd_layers"
env_isa=()
[ "$isa" != native ] && env_isa=(ONEDNN_MAX_CPU_ISA="$isa")
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
json="bench/results-winograd-$(echo "$isa" | tr 'A-Z' 'a-z').json"
env OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "${env_isa[@]}" "$out/winograd_layers" |
  .venv/bin/python -c "import json, sys; d = json.load(sys.stdin); d['cpu'] = sys.argv[1]; d['isa_cap'] = sys.argv[2]; json.dump(d, open(sys.argv[3], 'w'), indent=1); [print(f\"{l['layer']:18} {l['in']:>5}->{l['out']:<5} direct {l['direct_ms']:7.2f} ms ({l['direct_impl']})  winograd {l['winograd_ms']:7.2f} ms  x{l['speedup']:.2f}\") for l in d['layers']]" "$cpu" "$isa" "$json"
echo "wrote $json"
rm -rf "$out"
