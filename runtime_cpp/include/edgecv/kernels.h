// Kernel libraries that compiled graphs may call by name (TVM's call_dps_packed): edgecv
// registers them in TVM's function registry before an artifact is loaded, because the VM
// resolves the names when it initialises.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace edgecv {

// The kernel libraries this runtime was built with, e.g. {"dnnl"} (possibly empty).
const std::vector<std::string>& KernelLibraries();

// Registers every kernel function of the libraries above (idempotent, thread-safe).
void RegisterKernels();

// Calls of each kernel function and the time spent in them since the last reset.
struct KernelStat {
  int64_t calls = 0;
  double total_ms = 0;
};
std::map<std::string, KernelStat> KernelStats(bool reset = false);

// Frees cached packed weights and primitives (they are rebuilt on the next call).
void ClearKernelCache();

// One layer as the kernel library built it: what it computes with (for int8 artifacts,
// proof that the integer primitives run, not a float fallback).
struct KernelLayer {
  std::string kernel;                            // e.g. "edgecv.dnnl.conv2d_q8"
  std::string implementation;                    // the library's name for the kernel it chose
  std::string src_type, weights_type, dst_type;  // "f32", "u8", "s8"
  std::string residual_type;                     // as above, or "none"
  int weight_bits =
      0;  // int8 layers: bits of the weights computed with (8, or 7: see Int8WeightBits); 0 float
};
// Layers built since the last reset, the newest 512 at most (a log: clearing the kernel
// cache does not reset it).
std::vector<KernelLayer> KernelLayers(bool reset = false);

// The instruction set the x86 kernel library (oneDNN) runs with on this CPU, e.g. "avx2",
// "avx512_core_vnni"; empty in a runtime built without oneDNN.
std::string KernelIsa();

// Bits of the int8 weights the oneDNN int8 kernels compute with on this CPU: 8 where it
// multiplies uint8 x int8 into int32 exactly (VNNI), 7 elsewhere. Without VNNI (AVX2, AVX-512
// before Cascade Lake) oneDNN sums pairs of uint8 x int8 products in 16 bits, which saturate
// once |weight| > 64; so the runtime requantises each layer's weights to [-63, 63] at twice
// their scale (round(w / 2), ties to even) before oneDNN sees them. 0 without oneDNN.
int Int8WeightBits();

// Makes the oneDNN int8 kernels of this process compute with `bits`-bit weights: 7 (as on a
// CPU without VNNI: exact integer arithmetic on any CPU, so that a VNNI machine can measure
// what one without computes), 8 (only where the CPU has VNNI), or 0 (this CPU's choice).
// Clears the kernel cache. Refuses 8 without VNNI and anything else.
void SetInt8WeightBits(int bits);

// Calibration: while observing, every float conv2d/dense call records statistics of its
// input, keyed by the layer's content key (the key its int8 version is compiled from).
struct ObservedInput {
  std::string kernel;
  int64_t order = 0;           // first-seen order of the layer in the graph
  std::vector<int64_t> shape;  // input shape as the kernel saw it
  double min = 0, max = 0;
  int64_t count = 0;              // values seen
  double range = 0;               // histogram covers |x| in [0, range]; 0: no histogram
  std::vector<double> histogram;  // counts of |x| (values above range land in the last bin)
};
// ranges: layers that get a histogram of |x| over [0, range] with `bins` bins (a second
// pass, once the first pass has found the ranges); the others record min/max only.
void StartObserving(const std::map<int64_t, double>& ranges = {}, int bins = 2048);
std::map<int64_t, ObservedInput> StopObserving();

}  // namespace edgecv
