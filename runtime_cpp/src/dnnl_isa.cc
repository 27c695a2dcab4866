// The CPU as the oneDNN kernels see it: the instruction set oneDNN runs with, and whether its
// int8 kernels multiply exactly (VNNI) or the weights are requantised to 7 bits (dnnl_int8.h).
#include <atomic>
#include <string>

#include "dnnl_layer.h"

namespace edgecv {
namespace kernel {
namespace onednn {

bool VnniInt8() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & static_cast<unsigned>(dnnl_cpu_isa_avx512_core_vnni)) ==
             dnnl_cpu_isa_avx512_core_vnni ||
         (isa & static_cast<unsigned>(dnnl_cpu_isa_avx2_vnni)) == dnnl_cpu_isa_avx2_vnni;
}

namespace {
std::atomic<int> forced_weight_bits{0};  // SetInt8WeightBits; 0: the CPU decides
}  // namespace

int WeightBits() {
  const int forced = forced_weight_bits.load();
  return forced != 0 ? forced : VnniInt8() ? 8 : 7;
}

std::string Isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

int Int8WeightBits() { return WeightBits(); }

void SetInt8WeightBits(int bits) {
  if (bits != 0 && bits != 7 && bits != 8)
    ThrowInvalidInput("int8 weight bits must be 7, 8 or 0 (the CPU's choice)");
  if (bits == 8 && !VnniInt8())
    ThrowInvalidInput("8-bit int8 weights need VNNI, which oneDNN does not have here (" + Isa() +
                      "): pair sums would saturate");
  if (forced_weight_bits.exchange(bits) != bits) Layers().Clear();
}

void ClearCache() { Layers().Clear(); }

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
