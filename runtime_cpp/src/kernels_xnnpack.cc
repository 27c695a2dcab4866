// XNNPACK kernels called from compiled graphs: the ARM targets' convolutions and dense
// layers (edgecv/compile/offload.py writes the calls, with the settings of the oneDNN ones;
// kernels_ffi.cc registers them):
//   edgecv.xnnpack.conv2d(x, w, bias, [residual,] settings, out)   NHWC activations
//   edgecv.xnnpack.dense(x, w, bias, settings, out)                 x [M, K], w [N, K]
//   edgecv.xnnpack.conv2d_transpose(x, w, bias, [residual,] settings, out)   as conv2d
// float32 (int8: xnnpack_int8.cc). XNNPACK fuses a clamp (ReLU, ReLU6) into its operators; a leaky
// ReLU or a residual add is applied in one pass over the output after it. Operators (weights packed
// by XNNPACK) are cached under the layer's content key and input shape, as for oneDNN.
#include <pthreadpool.h>
#include <xnnpack.h>

#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgecv/error.h"
#include "kernel_functions.h"
#include "kernel_library.h"
#include "layer_cache.h"
#include "xnnpack_common.h"

namespace edgecv {
namespace kernel {
namespace xnnpack {

void Check(xnn_status status, const char* what) {
  if (status != xnn_status_success)
    throw Error(ErrorKind::kRuntime, std::string("XNNPACK: ") + what + " failed (status " +
                                         std::to_string(status) + ")");
}

pthreadpool_t Pool() {
  static struct Holder {
    Holder() {
      Check(xnn_initialize(nullptr), "initialisation (is this CPU supported?)");
      pool = pthreadpool_create(static_cast<size_t>(Threads()));
    }
    pthreadpool_t pool;
  } holder;
  return holder.pool;
}

namespace {

// One layer: the XNNPACK operator (its packed weights inside) and what runs after it.
struct Layer {
  std::unique_ptr<xnn_operator, OperatorDeleter> op;
  bool after = false;  // activation / residual applied by Epilogue
  int64_t act = kNone, residual_order = 0;
  float alpha = 0, beta = 0;
  std::mutex mutex;  // an operator holds the pointers of its last setup: one call at a time
};

LayerCache<Layer>& TheCache() {
  static LayerCache<Layer> cache;
  return cache;
}

// The layer log's entry: XNNPACK computes in float32.
void Describe(const Layer& l, KernelLayer* log) {
  log->implementation = "xnnpack";
  log->src_type = log->weights_type = log->dst_type = "f32";
  log->residual_type = l.residual_order != 0 ? "f32" : "none";
}

// The clamp XNNPACK fuses: ReLU (slope 0) and clip; anything else runs after the operator.
bool Fusable(int64_t act, float alpha, bool residual) {
  return !residual && (act == kNone || act == kClip || alpha == 0.f);
}

void Bounds(const Layer& l, float* lo, float* hi) {
  *lo = -std::numeric_limits<float>::infinity();
  *hi = std::numeric_limits<float>::infinity();
  if (l.after) return;
  if (l.act == kRelu) *lo = 0.f;
  if (l.act == kClip) {
    *lo = l.alpha;
    *hi = l.beta;
  }
}

struct EpilogueTask {
  const Layer* layer;
  float* y;
  const float* residual;
};

void EpilogueTile(void* context, size_t start, size_t count) {
  const EpilogueTask& t = *static_cast<const EpilogueTask*>(context);
  const Layer& l = *t.layer;
  const int64_t begin = static_cast<int64_t>(start), end = begin + static_cast<int64_t>(count);
  const int64_t order = t.residual != nullptr ? l.residual_order : 0;
  WithOrderAndAct(order, l.act, [&](auto o, auto act) {  // in place
    EpilogueLoop<decltype(o)::value, decltype(act)::value>(t.y, t.residual, t.y, begin, end, 1.f,
                                                           1.f, l.alpha, l.beta);
  });
}

// the activation XNNPACK could not fuse and the residual add, over the pool's threads
void Epilogue(const Layer& l, float* y, const float* residual, int64_t n) {
  if (!l.after) return;
  EpilogueTask task{&l, y, residual};
  pthreadpool_parallelize_1d_tile_1d(Pool(), EpilogueTile, &task, static_cast<size_t>(n), 16384, 0);
}

// NCHW <-> NHWC for the graph's input and output layers
void ToNhwc(const float* x, float* y, int64_t n, int64_t c, int64_t hw) {
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t p = 0; p < hw; ++p) y[(b * hw + p) * c + ci] = x[(b * c + ci) * hw + p];
}
void ToNchw(const float* x, float* y, int64_t n, int64_t c, int64_t hw) {
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t ci = 0; ci < c; ++ci) y[(b * c + ci) * hw + p] = x[(b * hw + p) * c + ci];
}

// settings: Conv2dSettings, as edgecv.dnnl.conv2d's (float). Weights: G x O/G x I/G x
// KH x KW.
// kTransposed: a transposed convolution (weights as for a convolution, unflipped; the
// bottom/right pads are those of the convolution it transposes less the output padding, so
// XNNPACK's output adjustment stays 0).
template <bool kTransposed>
void Convolve(const char* name, const Keyed<Conv2dSettings>& settings, const LayerTensors& t) {
  const Conv2dSettings& s = settings.settings;
  const bool has_residual = t.residual.has_value();
  CheckResidual(s.residual, has_residual, name);
  const TensorView* x = CheckTensor(t.x, "input", 4);
  const TensorView* w = CheckTensor(t.w, "weights", 5);
  const TensorView* b = CheckTensor(t.bias, "bias", 1);
  const TensorView* res = has_residual ? CheckTensor(*t.residual, "residual", 4) : nullptr;
  const TensorView* y = CheckTensor(t.y, "output", 4);
  const bool src_nchw = s.src_nchw, dst_nchw = s.dst_nchw;
  // dims as N, H, W, C whatever the layout
  const auto nhwc = [](const TensorView* v, bool is_nchw) {
    return is_nchw ? std::vector<int64_t>{v->shape[0], v->shape[2], v->shape[3], v->shape[1]}
                   : Dims(v);
  };
  const std::vector<int64_t> xd = nhwc(x, src_nchw), yd = nhwc(y, dst_nchw);
  const int64_t groups = s.groups, og = w->shape[1], ig = w->shape[2], kh = w->shape[3],
                kw = w->shape[4];
  if (groups != w->shape[0] || xd[3] != groups * ig || yd[3] != groups * og ||
      b->shape[0] != groups * og || xd[0] != yd[0] || (res != nullptr && Dims(res) != Dims(y)))
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the layer");
  auto layer = TheCache().Get(LayerKey(settings.key, x), name, [&](KernelLayer* log) {
    auto l = std::make_shared<Layer>();
    l->act = s.act.kind;
    l->alpha = s.act.alpha;
    l->beta = s.act.beta;
    l->residual_order = s.residual;
    l->after = !Fusable(l->act, l->alpha, res != nullptr);
    // XNNPACK's kernel layout: G x O/G x KH x KW x I/G
    const float* from = static_cast<const float*>(Data(w));
    std::vector<float> packed(static_cast<size_t>(Count(w)));
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t o = 0; o < og; ++o)
        for (int64_t i = 0; i < ig; ++i)
          for (int64_t r = 0; r < kh; ++r)
            for (int64_t c = 0; c < kw; ++c)
              packed[(((g * og + o) * kh + r) * kw + c) * ig + i] =
                  from[(((g * og + o) * ig + i) * kh + r) * kw + c];
    float lo, hi;
    Bounds(*l, &lo, &hi);
    xnn_operator_t op = nullptr;
    Pool();
    const auto u = [](int64_t v) { return static_cast<uint32_t>(v); };
    const auto make =
        kTransposed ? xnn_create_deconvolution2d_nhwc_f32 : xnn_create_convolution2d_nhwc_f32;
    Check(make(u(s.pad_top), u(s.pad_right), u(s.pad_bottom), u(s.pad_left), u(kh), u(kw),
               u(s.stride_h), u(s.stride_w), u(s.dilation_h), u(s.dilation_w), u(groups),
               static_cast<size_t>(ig), static_cast<size_t>(og), static_cast<size_t>(groups * ig),
               static_cast<size_t>(groups * og), packed.data(), static_cast<const float*>(Data(b)),
               lo, hi, 0, &op),
          kTransposed ? "creating a transposed convolution" : "creating a convolution");
    l->op.reset(op);  // XNNPACK copied and packed the weights
    Describe(*l, log);
    return l;
  });
  // NCHW graph input / output: converted here (the first and last layers only)
  std::vector<float> src_buf, dst_buf;
  const float* src = static_cast<const float*>(Data(x));
  if (src_nchw) {
    Padded(src_buf, static_cast<size_t>(Count(x)));
    ToNhwc(src, src_buf.data(), xd[0], xd[3], xd[1] * xd[2]);
    src = src_buf.data();
  } else {
    src = Readable(src, static_cast<size_t>(Count(x)), src_buf);
  }
  float* dst = static_cast<float*>(Data(y));
  if (dst_nchw) {
    dst_buf.resize(static_cast<size_t>(Count(y)));
    dst = dst_buf.data();
  }
  std::lock_guard<std::mutex> lock(layer->mutex);
  if constexpr (kTransposed)
    Check(xnn_setup_deconvolution2d_nhwc_f32(layer->op.get(), static_cast<size_t>(xd[0]),
                                             static_cast<size_t>(xd[1]), static_cast<size_t>(xd[2]),
                                             0, 0, src, dst, Pool()),
          "setting up a transposed convolution");
  else
    Check(xnn_setup_convolution2d_nhwc_f32(layer->op.get(), static_cast<size_t>(xd[0]),
                                           static_cast<size_t>(xd[1]), static_cast<size_t>(xd[2]),
                                           src, dst, Pool()),
          "setting up a convolution");
  Check(xnn_run_operator(layer->op.get(), Pool()), "running a convolution");
  if (dst_nchw) {
    // the residual of an NCHW output is NCHW too: convert the result first
    ToNchw(dst, static_cast<float*>(Data(y)), yd[0], yd[3], yd[1] * yd[2]);
    dst = static_cast<float*>(Data(y));
  }
  Epilogue(*layer, dst, res != nullptr ? static_cast<const float*>(Data(res)) : nullptr, Count(y));
}

}  // namespace

void Conv2d(const char* name, const Keyed<Conv2dSettings>& settings, const LayerTensors& t) {
  Convolve<false>(name, settings, t);
}

void Conv2dTranspose(const char* name, const Keyed<Conv2dSettings>& settings,
                     const LayerTensors& t) {
  Convolve<true>(name, settings, t);
}

// settings: DenseSettings.
void Dense(const char* name, const Keyed<DenseSettings>& settings, const LayerTensors& t) {
  const TensorView* x = CheckTensor(t.x, "input", 2);
  const TensorView* w = CheckTensor(t.w, "weights", 2);
  const TensorView* b = CheckTensor(t.bias, "bias", 1);
  const TensorView* y = CheckTensor(t.y, "output", 2);
  if (x->shape[1] != w->shape[1] || y->shape[1] != w->shape[0] || b->shape[0] != w->shape[0] ||
      y->shape[0] != x->shape[0])
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the layer");
  auto layer = TheCache().Get(LayerKey(settings.key, x), name, [&](KernelLayer* log) {
    auto l = std::make_shared<Layer>();
    const ActivationSettings& act = settings.settings.act;
    l->act = act.kind;
    l->alpha = act.alpha;
    l->beta = act.beta;
    l->after = !Fusable(l->act, l->alpha, false);
    float lo, hi;
    Bounds(*l, &lo, &hi);
    xnn_operator_t op = nullptr;
    Pool();
    const size_t k = static_cast<size_t>(w->shape[1]), n = static_cast<size_t>(w->shape[0]);
    Check(xnn_create_fully_connected_nc_f32(k, n, k, n, static_cast<const float*>(Data(w)),
                                            static_cast<const float*>(Data(b)), lo, hi, 0, &op),
          "creating a fully connected layer");
    l->op.reset(op);
    Describe(*l, log);
    return l;
  });
  std::vector<float> copy;
  const float* src =
      Readable(static_cast<const float*>(Data(x)), static_cast<size_t>(Count(x)), copy);
  std::lock_guard<std::mutex> lock(layer->mutex);
  Check(xnn_setup_fully_connected_nc_f32(layer->op.get(), static_cast<size_t>(x->shape[0]), src,
                                         static_cast<float*>(Data(y)), Pool()),
        "setting up a fully connected layer");
  Check(xnn_run_operator(layer->op.get(), Pool()), "running a fully connected layer");
  Epilogue(*layer, static_cast<float*>(Data(y)), nullptr, Count(y));
}

void ClearCache() {
  TheCache().Clear();
  ClearInt8Cache();
}

}  // namespace xnnpack
}  // namespace kernel
}  // namespace edgecv
