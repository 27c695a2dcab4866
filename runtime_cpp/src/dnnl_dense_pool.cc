// oneDNN dense layers (inner products, float and int8: x [M, K], w [N, K]) and max / average
// pooling (NHWC), cached per layer as the convolutions are (dnnl_conv.cc).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dnnl_int8.h"
#include "dnnl_layer.h"

namespace edgecv {
namespace kernel {
namespace onednn {

namespace {

// settings: DenseSettings (float), DenseQ8Settings (int8).
template <bool kInt8, typename Settings>
void InnerProduct(const char* name, const Keyed<Settings>& settings, const LayerTensors& t) {
  const DenseQ8Settings s = AsQ8(settings.settings);  // float layers: every tensor float
  const ActivationSettings& act = s.dense.act;
  UseThreads();
  if (s.input_as_int8)
    ThrowInvalidArtifact(std::string(name) + ": a uint8 input stored as int8 (XNNPACK's only)");
  const LayerArgs a = CheckLayerArgs(t, name, kInt8, 2, 2, s.input_signed);
  const TensorView *x = a.x, *w = a.w, *w_scale = a.w_scale, *b = a.b;
  const TensorView* y = CheckQuantised(t.y, "output", 2, s.output_kind);
  if (x->shape[1] != w->shape[1] || y->shape[1] != w->shape[0] || b->shape[0] != w->shape[0] ||
      (w_scale != nullptr && w_scale->shape[0] != w->shape[0]) || y->shape[0] != x->shape[0])
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the layer");
  const int64_t key = settings.key;
  if (!kInt8 && Observing()) Observe(name, key, x);
  dnnl::stream stream(Engine());
  auto layer = CachedLayer(key, x, name, [&](std::string* impl) {
    auto l = std::make_shared<Layer>();
    using dt = memory::data_type;
    using tag = memory::format_tag;
    std::optional<Quantized> q;
    if (kInt8)
      q = Quantization(w, w_scale, b, s.input_scale, s.input_signed, s.output_kind, s.output_scale);
    const memory::desc user_src(Dims(x), TypeOf(x), tag::nc);
    l->src = memory::desc(Dims(x), q ? (q->src_signed ? dt::s8 : dt::u8) : dt::f32, tag::nc);
    l->dst = memory::desc(Dims(y), TypeOf(y), tag::nc);
    const dt w_type = q ? dt::s8 : dt::f32;
    const memory::desc wany(Dims(w), w_type, tag::any);
    const memory::desc bd(Dims(b), dt::f32, tag::x);
    const dnnl::primitive_attr attr =
        Attributes(q, act.kind, act.alpha, act.beta, nullptr, 0, nullptr);
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, l->src, wany, bd,
                                        l->dst);
    dnnl::inner_product_forward::primitive_desc pd(d, attr, Engine());
    ReorderSource(*l, user_src, q);
    l->primitive = dnnl::inner_product_forward(pd);
    *impl = pd.impl_info_str();
    std::vector<int8_t> w8 = q ? Int8Weights(w, *q, pd.weights_desc()) : std::vector<int8_t>{};
    l->weights = Pack(pd.weights_desc(), Dims(w), w_type, tag::oi, q ? w8.data() : Data(w), stream);
    l->bias = CopyVector(q ? q->bias : Floats(b));
    l->weight_bits = q ? q->weight_bits : 0;
    stream.wait();
    return std::shared_ptr<const Layer>(std::move(l));
  });
  Run(*layer, stream, Data(x), Data(y), nullptr);
}

// settings: Pool2dSettings. NHWC float (or uint8/int8: max pooling of a quantised tensor keeps
// its scale).
void Pool(const char* name, const Keyed<Pool2dSettings>& settings, const TensorView& input,
          const TensorView& output) {
  const Pool2dSettings& s = settings.settings;
  if (s.kind < kMaxPool || s.kind > kAvgExcludePad)
    ThrowInvalidArtifact(std::string(name) + ": unknown pooling kind " + std::to_string(s.kind));
  const int64_t kind = input.dtype.bits == 8 ? (input.dtype.code == kInt ? 2 : 1) : 0;
  if (kind != 0 && s.kind != kMaxPool)
    throw DataTypeError(std::string(name) + ": only max pooling takes a quantised input");
  const TensorView* x = CheckQuantised(input, "input", 4, kind);
  const TensorView* y = CheckQuantised(output, "output", 4, kind);
  const dims xd = NchwDims(x, false), yd = NchwDims(y, false);
  const dims window{s.window_h, s.window_w}, strides{s.stride_h, s.stride_w},
      pad_l{s.pad_top, s.pad_left}, pad_r{s.pad_bottom, s.pad_right};
  bool fits = xd[0] == yd[0] && xd[1] == yd[1];
  for (int i = 0; i < 2; ++i)
    fits = fits && window[i] >= 1 && strides[i] >= 1 && pad_l[i] >= 0 && pad_r[i] >= 0 &&
           (xd[2 + i] + pad_l[i] + pad_r[i] - window[i]) / strides[i] + 1 == yd[2 + i];
  if (!fits)
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the pooling window");
  UseThreads();
  dnnl::stream stream(Engine());
  auto layer = CachedLayer(settings.key, x, name, [&](std::string* impl) {
    using tag = memory::format_tag;
    auto l = std::make_shared<Layer>();
    l->src = memory::desc(xd, TypeOf(x), tag::nhwc);
    l->dst = memory::desc(yd, TypeOf(y), tag::nhwc);
    const auto alg = s.kind == kMaxPool         ? dnnl::algorithm::pooling_max
                     : s.kind == kAvgIncludePad ? dnnl::algorithm::pooling_avg_include_padding
                                                : dnnl::algorithm::pooling_avg_exclude_padding;
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg, l->src, l->dst, strides,
                                  window, pad_l, pad_r);
    dnnl::pooling_forward::primitive_desc pd(d, Engine());
    l->primitive = dnnl::pooling_forward(pd);
    *impl = pd.impl_info_str();
    return std::shared_ptr<const Layer>(std::move(l));
  });
  layer->primitive.execute(stream, {{DNNL_ARG_SRC, memory(layer->src, Engine(), Data(x))},
                                    {DNNL_ARG_DST, memory(layer->dst, Engine(), Data(y))}});
  stream.wait();
}

}  // namespace

void Dense(const char* name, const Keyed<DenseSettings>& settings, const LayerTensors& t) {
  Guarded([&] { InnerProduct<false>(name, settings, t); });
}

void DenseQ8(const char* name, const Keyed<DenseQ8Settings>& settings, const LayerTensors& t) {
  Guarded([&] { InnerProduct<true>(name, settings, t); });
}

void Pool2d(const char* name, const Keyed<Pool2dSettings>& settings, const TensorView& x,
            const TensorView& y) {
  Guarded([&] { Pool(name, settings, x, y); });
}

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
