#include "dnnl_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>

namespace edgecv {
namespace kernel {
namespace onednn {

namespace {

// A kind (0 float, 1 uint8, 2 int8) and the scale of a quantised tensor (1 for float).
float KindScale(int64_t kind, float settings_scale, const char* what) {
  if (kind < 0 || kind > 2)
    ThrowInvalidArtifact(std::string("edgecv.dnnl: unknown ") + what + " kind " +
                         std::to_string(kind));
  const float scale = kind == 0 ? 1.f : settings_scale;
  if (!(scale > 0) || !std::isfinite(scale))
    ThrowInvalidArtifact(std::string("edgecv.dnnl: ") + what + " scale must be positive");
  return scale;
}

}  // namespace

Quantized Quantization(const TensorView* w, const TensorView* w_scale, const TensorView* b,
                       float in_scale, bool src_signed, int64_t dst_kind, float dst_scale,
                       int64_t res_kind, float res_scale) {
  Quantized q;
  q.in_scale = KindScale(1, in_scale, "input");
  q.src_signed = src_signed;
  q.dst_scale = KindScale(dst_kind, dst_scale, "output");
  q.dst_kind = dst_kind;
  q.res_scale = res_kind == 0 ? 0.f : KindScale(res_kind, res_scale, "residual");
  q.res_kind = res_kind;
  q.weight_bits = WeightBits();
  q.hand_over = q.src_signed && !VnniInt8() ? 2 : 1;  // oneDNN's own halving (int8 input, no VNNI)
  const std::vector<float> ws = Floats(w_scale), bias = Floats(b);
  const int8_t* wq = static_cast<const int8_t*>(Data(w));
  const int64_t per_channel = Count(w) / static_cast<int64_t>(ws.size());
  for (size_t c = 0; c < ws.size(); ++c) {
    int largest = 0;
    for (int64_t i = 0; i < per_channel; ++i)
      largest = std::max(largest, std::abs(int{wq[c * per_channel + i]}));
    q.w_max.push_back(q.weight_bits == 7 && largest > 63 ? largest : 63);
    const float s = q.in_scale * ws[c] * (static_cast<float>(q.w_max[c]) / 63.f) /
                    static_cast<float>(q.hand_over);
    if (!(s > 0) || !std::isfinite(s))
      ThrowInvalidArtifact("edgecv.dnnl: weight scales must be positive");
    q.out_scales.push_back(s / q.unit());
    q.bias.push_back(bias[c] / s);
  }
  return q;
}

std::vector<int8_t> Int8Weights(const TensorView* w, const Quantized& q,
                                const memory::desc& packed) {
  const int8_t* p = static_cast<const int8_t*>(Data(w));
  std::vector<int8_t> out(p, p + Count(w));
  const size_t per_channel = out.size() / q.w_max.size();
  const dnnl_memory_extra_desc_t& extra = packed.data.extra;
  const float adjust =
      (extra.flags & dnnl_memory_extra_flag_scale_adjust) != 0 ? extra.scale_adjust : 1.f;
  if (adjust != 1.f / static_cast<float>(q.hand_over)) {
    std::ostringstream m;
    m << "edgecv.dnnl: oneDNN rescales these int8 weights by " << adjust << ", expected "
      << 1.f / static_cast<float>(q.hand_over) << " (" << Isa() << ")";
    throw Error(ErrorKind::kRuntime, m.str());
  }
  if (q.weight_bits == 8) return out;
  for (size_t i = 0; i < out.size(); ++i) {
    const float w_max = static_cast<float>(q.w_max[i / per_channel]);
    out[i] = static_cast<int8_t>(q.hand_over * std::nearbyint(out[i] * 63.f / w_max));
  }
  return out;
}

dnnl::primitive_attr Attributes(const std::optional<Quantized>& q, int64_t act, float alpha,
                                float beta, const memory::desc* residual, int64_t residual_order,
                                int* residual_index) {
  dnnl::primitive_attr attr;
  if (q) attr.set_output_scales(1 << 1, q->out_scales);
  const float unit = q ? q->unit() : 1.f;
  dnnl::post_ops ops = PostOps(act, act == kClip ? alpha / unit : alpha, beta / unit, residual,
                               residual_order, residual_index);
  if (q && q->res_kind != 0 && q->res_scale != q->dst_scale)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, q->res_scale / q->dst_scale, 0.f);
  attr.set_post_ops(ops);
  return attr;
}

void ReorderSource(Layer& l, const memory::desc& user_src, const std::optional<Quantized>& q) {
  if (l.src == user_src) return;
  l.user_src = user_src;
  l.src_reorder =
      MakeReorder(user_src, l.src,
                  q && user_src.data_type() == memory::data_type::f32 ? 1.f / q->in_scale : 0.f);
}

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
