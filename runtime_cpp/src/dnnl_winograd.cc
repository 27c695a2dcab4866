// Winograd convolutions inside the oneDNN kernels: which one runs a float 3x3 stride-1 layer
// (oneDNN's, where it has one for this CPU; else edgecv's own, winograd.h; or none: direct),
// and oneDNN's blocked output brought back to NHWC with the activation and residual applied.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "dnnl_layer.h"

namespace edgecv {
namespace kernel {
namespace onednn {

namespace {

// Winograd F(4x4, 3x3) for float 3x3 stride-1 convolutions: measured here 1.7-2.6x faster
// than oneDNN's direct kernel on ResNet/Darknet layer shapes (2.7 -> 1.6 ms for 64 channels at
// 128x128, 2.6 -> 1.0 ms for 512 at 16x16) with a relative error of ~2e-6 against it.
// EDGECV_DNNL_WINOGRAD=0 turns it off (direct convolution everywhere).
bool WinogradAllowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("EDGECV_DNNL_WINOGRAD");
    return v == nullptr || std::string(v) != "0";
  }();
  return allowed;
}

}  // namespace

// edgecv's own F(4x4, 3x3) (winograd.h) for CPUs where oneDNN has no Winograd kernel (oneDNN
// 2.6: all but AVX-512), on the layers where it beats oneDNN's direct kernel.
// EDGECV_DNNL_WINOGRAD=0 turns it off as well.
bool OwnWinogradAllowed() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const bool onednn_has_winograd = (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
  return WinogradAllowed() && !onednn_has_winograd;
}

// The Winograd primitive for a float 3x3 stride-1 convolution (blocked layout, bias, no
// post-ops), where oneDNN has one for this CPU and it is expected to beat the direct kernel.
std::optional<dnnl::convolution_forward::primitive_desc> WinogradDesc(
    const dims& xd, const dims& yd, const memory::desc& weights, const memory::desc& bias,
    const dims& pad_l, const dims& pad_r) {
  if (!WinogradAllowed() || yd[2] * yd[3] < 64)
    return std::nullopt;  // tiny maps: transforms dominate
  using tag = memory::format_tag;
  const memory::desc src(xd, memory::data_type::f32, tag::nChw16c),
      dst(yd, memory::data_type::f32, tag::nChw16c);
  try {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_winograd, src, weights, bias,
                                      dst, dims{1, 1}, pad_l, pad_r);
    dnnl::convolution_forward::primitive_desc pd(d, Engine());
    // F(4x4, 3x3) transforms the weights to 4x their size: on small maps with many weights
    // it is bound by reading them (measured in ResNet-50 at 16x16, 512 -> 512 channels:
    // 3.7 ms per layer against 3.05 direct; 2048 -> 126: 4.1 against 3.3; but 2048 -> 24 at
    // 16x16: 0.85 against 1.66, and 256 -> 256 at 32x32: 1.86 against 2.9)
    if (std::string(pd.impl_info_str()).find("4x3") != std::string::npos && yd[2] * yd[3] < 1024 &&
        xd[1] * yd[1] > 128 * 1024)
      return std::nullopt;
    return pd;
  } catch (const dnnl::error&) {
    return std::nullopt;  // no Winograd kernel for this shape on this CPU
  }
}

// Runs a Winograd layer: NHWC input reordered to the blocked layout, the convolution, then
// one pass that reads the blocked result (16 channels per block), adds the residual before
// or after the activation as the layer says, and writes NHWC.
void RunWinograd(const Layer& l, dnnl::stream& stream, void* src, float* dst,
                 const float* residual) {
  memory user_src(*l.user_src, Engine(), src);
  memory src_mem = ScratchMemory(l.src, 0), dst_mem = ScratchMemory(l.dst, 1);
  l.src_reorder->execute(stream, user_src, src_mem);
  l.primitive.execute(stream, {{DNNL_ARG_SRC, src_mem},
                               {DNNL_ARG_WEIGHTS, l.weights},
                               {DNNL_ARG_BIAS, l.bias},
                               {DNNL_ARG_DST, dst_mem}});
  stream.wait();
  const dims d = l.dst.dims();  // n, c, h, w
  const int64_t n = d[0], c = d[1], h = d[2], w = d[3], blocks = (c + 15) / 16;
  const float* blocked = static_cast<const float*>(dst_mem.get_data_handle());
#pragma omp parallel for collapse(2)
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t ih = 0; ih < h; ++ih) {
      for (int64_t iw = 0; iw < w; ++iw) {
        const int64_t pixel = ((in * h + ih) * w + iw) * c;
        float* out = dst + pixel;
        const float* r = residual != nullptr ? residual + pixel : nullptr;
        for (int64_t cb = 0; cb < blocks; ++cb) {
          const float* from = blocked + (((in * blocks + cb) * h + ih) * w + iw) * 16;
          const int64_t m = std::min<int64_t>(16, c - cb * 16);
          for (int64_t ci = 0; ci < m; ++ci) {
            const float add = r != nullptr ? r[cb * 16 + ci] : 0.f;
            out[cb * 16 + ci] =
                ActivateResidual(from[ci], add, l.residual_order, l.act, l.alpha, l.beta);
          }
        }
      }
    }
  }
}

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
