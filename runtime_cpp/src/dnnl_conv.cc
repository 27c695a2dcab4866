// oneDNN convolutions: conv2d (float, int8) and conv2d_transpose (float), NHWC between
// offloaded layers, NCHW at the graph's input and output. Weights and bias are graph constants
// already folded with batch norm at compile time; the settings' content key caches the layer
// (primitive and weights reordered to its layout), so that the same weights are packed once
// per process, whichever VM or address they come from.
#include <cstdint>
#include <cstring>
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

// A 4x4, stride-2, pad-1 transposed convolution (NHWC, one group) as four convolutions:
// output pixel (2m + a, 2j + b) only ever sees input rows m - 1 + a .. m + a and columns
// j - 1 + b .. j + b, through kernel taps kh = 3 - a - 2t (t = 0, 1 over those rows) and
// likewise kw. Phase (a, b) is a 2x2 convolution padded on the top (a = 0) or bottom
// (a = 1) and left or right alike, whose output is the sub-grid (a::2, b::2) of the result:
// computed densely (oneDNN has no fast kernel writing a strided grid), then scattered.
void SubpixelDeconv(const TensorView* x, const TensorView* w, const TensorView* b,
                    const TensorView* y, int64_t key, int64_t act, float alpha, float beta,
                    const char* name, dnnl::stream& stream) {
  using tag = memory::format_tag;
  using dt = memory::data_type;
  const int64_t n = x->shape[0], h = x->shape[1], wd = x->shape[2], cin = x->shape[3],
                cout = y->shape[3];
  const float* weights = static_cast<const float*>(Data(w));  // 1 x O x I x 4 x 4
  std::vector<float> phase_out(static_cast<size_t>(n * h * wd * cout));
  for (int a = 0; a < 2; ++a) {
    for (int bb = 0; bb < 2; ++bb) {
      const int phase = 2 * a + bb;
      const int64_t phase_key = (key ^ (int64_t{phase + 1} << 56)) & ((int64_t{1} << 62) - 1);
      auto layer = CachedLayer(phase_key, x, name, [&](std::string* impl) {
        auto l = std::make_shared<Layer>();
        l->src = memory::desc({n, cin, h, wd}, dt::f32, tag::nhwc);
        l->dst = memory::desc({n, cout, h, wd}, dt::f32, tag::nhwc);
        const memory::desc wany({cout, cin, 2, 2}, dt::f32, tag::any);
        const memory::desc bd({cout}, dt::f32, tag::x);
        dnnl::primitive_attr attr;
        attr.set_post_ops(PostOps(act, alpha, beta, nullptr, 0));
        dnnl::convolution_forward::desc d(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, l->src, wany,
            bd, l->dst, dims{1, 1}, dims{0, 0}, dims{1 - a, 1 - bb}, dims{a, bb});
        dnnl::convolution_forward::primitive_desc pd(d, attr, Engine());
        std::vector<float> taps(static_cast<size_t>(cout * cin * 4));
        for (int64_t o = 0; o < cout; ++o)
          for (int64_t i = 0; i < cin; ++i)
            for (int th = 0; th < 2; ++th)
              for (int tw = 0; tw < 2; ++tw)
                taps[((o * cin + i) * 2 + th) * 2 + tw] =
                    weights[((o * cin + i) * 4 + (3 - a - 2 * th)) * 4 + (3 - bb - 2 * tw)];
        l->primitive = dnnl::convolution_forward(pd);
        *impl = std::string(pd.impl_info_str()) + " (sub-pixel)";
        l->weights =
            Pack(pd.weights_desc(), {cout, cin, 2, 2}, dt::f32, tag::oihw, taps.data(), stream);
        l->bias = CopyVector(Floats(b));
        stream.wait();
        return std::shared_ptr<const Layer>(std::move(l));
      });
      Run(*layer, stream, Data(x), phase_out.data(), nullptr);
      float* out = static_cast<float*>(Data(y));
      const size_t bytes = static_cast<size_t>(cout) * sizeof(float);
#pragma omp parallel for collapse(2)
      for (int64_t in = 0; in < n; ++in)
        for (int64_t m = 0; m < h; ++m)
          for (int64_t j = 0; j < wd; ++j)
            std::memcpy(out + (((in * 2 * h + 2 * m + a) * 2 * wd) + 2 * j + bb) * cout,
                        phase_out.data() + ((in * h + m) * wd + j) * cout, bytes);
    }
  }
}

// settings: Conv2dSettings (float), Conv2dQ8Settings (int8).
// kTransposed: a transposed convolution (float only), weights G x O/G x I/G x KH x KW as for
// a convolution (oneDNN's deconvolution takes them so, unflipped); the bottom/right pads are
// those of the convolution it transposes less the output padding.
template <bool kInt8, bool kTransposed, typename Settings>
void Convolve(const char* name, const Keyed<Settings>& settings, const LayerTensors& t) {
  static_assert(!(kInt8 && kTransposed), "no int8 transposed convolution");
  const bool has_residual = t.residual.has_value();
  const Conv2dQ8Settings s = AsQ8(settings.settings);  // float layers: every tensor float
  const Conv2dSettings& c = s.conv;
  CheckResidual(c.residual, has_residual, name);
  UseThreads();
  if (s.input_as_int8)
    ThrowInvalidArtifact(std::string(name) + ": a uint8 input stored as int8 (XNNPACK's only)");
  const LayerArgs a = CheckLayerArgs(t, name, kInt8, 4, 5, s.input_signed);
  const TensorView *x = a.x, *w = a.w, *w_scale = a.w_scale, *b = a.b;
  if (s.residual_kind != 0 && !has_residual)
    ThrowInvalidInput(std::string(name) + ": a quantised residual but no residual");
  const TensorView* res =
      has_residual ? CheckQuantised(*t.residual, "residual", 4, s.residual_kind) : nullptr;
  const TensorView* y = CheckQuantised(t.y, "output", 4, s.output_kind);
  if ((s.output_kind != 0 || s.residual_kind != 0) && c.dst_nchw)
    ThrowInvalidInput(std::string(name) + ": quantised outputs and residuals are NHWC");
  const int64_t key = settings.key;
  if (!kInt8 && !kTransposed && Observing()) Observe(name, key, x);
  // layouts of input and output: NHWC (between offloaded layers), NCHW (graph input/output)
  const bool src_nchw = c.src_nchw, dst_nchw = c.dst_nchw;
  const dims xd = NchwDims(x, src_nchw), yd = NchwDims(y, dst_nchw);
  const int64_t groups = c.groups, out_c = w->shape[0] * w->shape[1];
  if (groups != w->shape[0] || xd[1] != groups * w->shape[2] || yd[1] != out_c ||
      b->shape[0] != out_c || (w_scale != nullptr && w_scale->shape[0] != out_c) ||
      xd[0] != yd[0] || (res != nullptr && Dims(res) != Dims(y)))
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the layer");
  const dims strides{c.stride_h, c.stride_w}, pad_l{c.pad_top, c.pad_left},
      pad_r{c.pad_bottom, c.pad_right}, dilation{c.dilation_h - 1, c.dilation_w - 1};
  const int64_t act = c.act.kind;
  const float alpha = c.act.alpha, beta = c.act.beta;
  dnnl::stream stream(Engine());
  if constexpr (kTransposed) {
    // the 4x4 stride-2 pad-1 upsampling of SimplePose / GluonCV's heads: as four 2x2
    // convolutions, one per output pixel phase, each writing its phase of the output in place
    // (oneDNN's own transposed convolution ran these at less than half its convolution speed)
    if (groups == 1 && res == nullptr && !src_nchw && !dst_nchw && w->shape[3] == 4 &&
        w->shape[4] == 4 && strides == dims{2, 2} && pad_l == dims{1, 1} && pad_r == dims{1, 1} &&
        dilation == dims{0, 0} && yd[2] == 2 * xd[2] && yd[3] == 2 * xd[3]) {
      SubpixelDeconv(x, w, b, y, key, act, alpha, beta, name, stream);
      return;
    }
  }
  auto layer = CachedLayer(key, x, name, [&](std::string* impl) {
    auto l = std::make_shared<Layer>();
    using tag = memory::format_tag;
    using dt = memory::data_type;
    std::optional<Quantized> q;
    if (kInt8)
      q = Quantization(w, w_scale, b, s.input_scale, s.input_signed, s.output_kind, s.output_scale,
                       s.residual_kind, s.residual_scale);
    const dt src_type = q ? (q->src_signed ? dt::s8 : dt::u8) : dt::f32;
    const dt dst_type = TypeOf(y);
    const memory::desc user_src(xd, TypeOf(x), src_nchw ? tag::nchw : tag::nhwc);
    l->src = memory::desc(xd, src_type, src_nchw ? tag::nchw : tag::nhwc);
    l->dst = memory::desc(yd, dst_type, dst_nchw ? tag::nchw : tag::nhwc);
    const bool grouped = groups > 1;
    const dims wd = grouped ? dims{groups, w->shape[1], w->shape[2], w->shape[3], w->shape[4]}
                            : dims{w->shape[1], w->shape[2], w->shape[3], w->shape[4]};
    const dt w_type = q ? dt::s8 : dt::f32;
    const memory::desc wany(wd, w_type, tag::any);
    const memory::desc bd({out_c}, dt::f32, tag::x);
    if (res != nullptr)
      l->residual = memory::desc(yd, TypeOf(res), dst_nchw ? tag::nchw : tag::nhwc);
    const dnnl::primitive_attr attr =
        Attributes(q, act, alpha, beta, res != nullptr ? &l->residual : nullptr, c.residual,
                   &l->residual_index);
    const auto describe = [&]() -> dnnl::primitive_desc {
      if constexpr (kTransposed) {
        dnnl::deconvolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::deconvolution_direct, l->src, wany, bd,
                                            l->dst, strides, dilation, pad_l, pad_r);
        return dnnl::deconvolution_forward::primitive_desc(d, attr, Engine());
      } else {
        dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                          dnnl::algorithm::convolution_direct, l->src, wany, bd,
                                          l->dst, strides, dilation, pad_l, pad_r);
        return dnnl::convolution_forward::primitive_desc(d, attr, Engine());
      }
    };
    if (!kInt8 && !kTransposed && groups == 1 && !src_nchw && !dst_nchw && w->shape[3] == 3 &&
        w->shape[4] == 3 && strides == dims{1, 1} && dilation == dims{0, 0}) {
      if (auto pd = WinogradDesc(xd, yd, wany, bd, pad_l, pad_r)) {
        l->src = pd->src_desc();
        l->dst = pd->dst_desc();
        l->winograd = true;
        l->act = act;
        l->alpha = alpha;
        l->beta = beta;
        l->residual_order = c.residual;
        ReorderSource(*l, user_src, q);
        l->user_dst = memory::desc(yd, dt::f32, tag::nhwc);
        l->primitive = dnnl::convolution_forward(*pd);
        *impl = std::string(pd->impl_info_str()) + " (winograd)";
        l->weights = Pack(pd->weights_desc(), wd, w_type, tag::oihw, Data(w), stream);
        l->bias = CopyVector(Floats(b));
        stream.wait();
        return std::shared_ptr<const Layer>(std::move(l));
      }
      const int tile = OwnWinogradAllowed() ? WinogradConv::Tile(xd[1], yd[1], yd[2], yd[3]) : 0;
      if (tile != 0) {
        l->own_winograd = std::make_shared<const WinogradConv>(
            tile, static_cast<const float*>(Data(w)), Floats(b).data(), yd[1], xd[1], xd[0], xd[2],
            xd[3], pad_l[0], pad_l[1], pad_r[0], pad_r[1], Engine());
        l->act = act;
        l->alpha = alpha;
        l->beta = beta;
        l->residual_order = c.residual;
        *impl =
            "edgecv F(" + std::to_string(tile) + "x" + std::to_string(tile) + ",3x3) (winograd)";
        return std::shared_ptr<const Layer>(std::move(l));
      }
    }
    dnnl::primitive_desc pd = describe();
    if ((src_nchw || dst_nchw) && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
      // no fast kernel for mixed layouts (NCHW in, NHWC out): NHWC with reorders around it
      if (dst_nchw) l->user_dst = l->dst;
      l->src = memory::desc(xd, src_type, tag::nhwc);
      l->dst = memory::desc(yd, dst_type, tag::nhwc);
      pd = describe();
    }
    if (kTransposed && res == nullptr) {
      // oneDNN's transposed convolutions run faster in its blocked layouts than in NHWC
      // (4x4 stride-2 layers, measured: 29 -> 23 ms): the primitive picks the layout,
      // reorders convert at its edges
      const memory::desc user_dst = l->user_dst ? *l->user_dst : l->dst;
      l->src = memory::desc(xd, src_type, tag::any);
      l->dst = memory::desc(yd, dst_type, tag::any);
      pd = describe();
      l->src = pd.src_desc();
      l->dst = pd.dst_desc();
      if (l->dst != user_dst) l->user_dst = user_dst;
    }
    ReorderSource(*l, user_src, q);
    if (l->user_dst) l->dst_reorder = MakeReorder(l->dst, *l->user_dst, 0.f);
    l->primitive = dnnl::primitive(pd);
    *impl = pd.impl_info_str();
    std::vector<int8_t> w8 = q ? Int8Weights(w, *q, pd.weights_desc()) : std::vector<int8_t>{};
    l->weights = Pack(pd.weights_desc(), wd, w_type, grouped ? tag::goihw : tag::oihw,
                      q ? w8.data() : Data(w), stream);
    l->bias = CopyVector(q ? q->bias : Floats(b));
    l->weight_bits = q ? q->weight_bits : 0;
    stream.wait();
    return std::shared_ptr<const Layer>(std::move(l));
  });
  if (layer->own_winograd)
    layer->own_winograd->Run(static_cast<const float*>(Data(x)), static_cast<float*>(Data(y)),
                             res != nullptr ? static_cast<const float*>(Data(res)) : nullptr,
                             layer->residual_order, layer->act, layer->alpha, layer->beta, stream);
  else if (layer->winograd)
    RunWinograd(*layer, stream, Data(x), static_cast<float*>(Data(y)),
                res != nullptr ? static_cast<const float*>(Data(res)) : nullptr);
  else
    Run(*layer, stream, Data(x), Data(y), res != nullptr ? Data(res) : nullptr);
}

}  // namespace

void Conv2d(const char* name, const Keyed<Conv2dSettings>& settings, const LayerTensors& t) {
  Guarded([&] { Convolve<false, false>(name, settings, t); });
}

void Conv2dTranspose(const char* name, const Keyed<Conv2dSettings>& settings,
                     const LayerTensors& t) {
  Guarded([&] { Convolve<false, true>(name, settings, t); });
}

void Conv2dQ8(const char* name, const Keyed<Conv2dQ8Settings>& settings, const LayerTensors& t) {
  Guarded([&] { Convolve<true, false>(name, settings, t); });
}

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
