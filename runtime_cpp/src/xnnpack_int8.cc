// XNNPACK int8 kernels: the ARM targets' calibrated layers, with the arguments, settings and
// semantics of edgecv.dnnl.conv2d_q8 / dense_q8 (dnnl_int8.h):
//   edgecv.xnnpack.conv2d_q8(x, w, w_scale, bias, [residual,] settings, out)   NHWC
//   edgecv.xnnpack.dense_q8(x, w, w_scale, bias, settings, out)   x [M, K], w [N, K]
// int8 weights with a float scale per output channel, the input float (quantised here with
// the settings' scale) or already uint8/int8 at that scale, zero points 0; the output float
// or uint8/int8 at its scale; residual float or quantised. A uint8 tensor may also be stored
// as int8, v - 128 (kind 3, input_as_int8: what XNNPACK int8 graphs hand between layers).
//
// The integer layers run XNNPACK's qc8 convolution (int8 activations, int8 weights with
// per-channel scales, int32 accumulation, requantisation and clamp fused). A dense layer is
// a qc8 1x1 convolution over a 1x1 image with a batch of M: XNNPACK's fully connected
// operator of this version (Feb 2022) takes one weight scale per tensor only, and
// requantising the weights to one scale would lose the per-channel precision calibration
// was judged with. qc8 takes int8 activations only: a uint8 tensor v is handed over as
// v - 128 (zero point -128; the padding XNNPACK adds is then the zero point, i.e. uint8 0),
// and a uint8 output is written at zero point -128 and shifted back. Between XNNPACK layers
// the compiler keeps such tensors as int8 v - 128 (kind 3), so that neither shift is needed.
//
// qc8 writes only quantised int8 and fuses no residual add. A layer that adds a quantised
// residual before its activation (ResNet) and writes a quantised output runs qc8 into an int8
// buffer at a derived scale (MidQuantisation) and then XNNPACK's int8 add, which adds the
// residual, clamps (ReLU/clip) and requantises: integer throughout. Layers that write float,
// add a float residual or add after the activation, use a leaky ReLU, or whose scales qc8
// cannot take (a scale that is not a normal float, input x weight / output scale outside
// [2^-32, 256), a bias too large for the int32 accumulator, add scale ratios outside XNNPACK's
// range) run XNNPACK's float convolution on the values the integer kernel would see: the
// input rounded to its quantisation step, the int8 weights times their scales; the residual
// add, activation and output quantisation then follow in one pass. That is ONNX Runtime's QDQ
// arithmetic to float rounding, at float speed; the layer log names these layers "xnnpack f32
// on int8 values".
#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "edgecv/error.h"
#include "kernel_functions.h"
#include "kernel_library.h"
#include "layer_cache.h"
#include "xnnpack_common.h"

namespace edgecv {
namespace kernel {
namespace xnnpack {
namespace {

// A layer's shape as a convolution (a dense layer: 1x1 over a 1x1 image, batch M).
struct Geometry {
  int64_t n = 1, h = 1, w = 1, out_h = 1, out_w = 1;
  int64_t groups = 1, ig = 1, og = 1, kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool src_nchw = false, dst_nchw = false;
  int64_t in_c() const { return groups * ig; }
  int64_t out_c() const { return groups * og; }
};

// What the settings say of the layer's tensors, checked.
struct Quant {
  float in_scale = 0, out_scale = 0, res_scale = 0;
  bool src_signed = false;
  bool in_as_int8 = false;  // a uint8 input stored as int8, v - 128
  int64_t out_kind = 0, res_kind = 0, residual_order = 0;
  int64_t act = kNone;
  float alpha = 0, beta = 0;
};

struct Q8Layer {
  std::unique_ptr<xnn_operator, OperatorDeleter> op;
  bool integer = false;  // qc8 operator; else the float operator on int8 values (see above)
  // an integer residual layer: qc8 writes `mid` (int8, MidQuantisation), then `add` (qs8, or qu8
  // when the residual and output are uint8) adds the residual, activates and requantises
  std::unique_ptr<xnn_operator, OperatorDeleter> add;
  bool add_unsigned = false;
  Geometry g;
  Quant q;
  std::vector<int8_t> src8;       // the input as qc8 takes it (XNN_EXTRA_BYTES of slack)
  std::vector<int8_t> mid, res8;  // the conv before the add; a uint8 residual as int8
  std::vector<float> srcf, dst;   // float path: input on its quantisation grid, NHWC result
  std::mutex mutex;               // an operator holds the pointers of its last setup
};

LayerCache<Q8Layer>& TheCache() {
  static LayerCache<Q8Layer> cache;
  return cache;
}

float Positive(float scale, const char* what) {
  if (!(scale > 0) || !std::isfinite(scale))
    ThrowInvalidArtifact(std::string("edgecv.xnnpack: ") + what + " must be positive");
  return scale;
}

// Tensor kinds: 0 float, 1 uint8, 2 int8, 3 uint8 stored as int8 (v - 128).
constexpr int64_t kUInt8AsInt8 = 3;

bool OnUInt8Grid(int64_t kind) { return kind == 1 || kind == kUInt8AsInt8; }

void CheckKind(int64_t kind, const char* what) {
  if (kind < 0 || kind > kUInt8AsInt8)
    ThrowInvalidArtifact(std::string("edgecv.xnnpack: unknown ") + what + " kind " +
                         std::to_string(kind));
}

const TensorView* CheckKindTensor(const TensorView& t, const char* what, int ndim, int64_t kind) {
  if (kind == 0) return CheckTensor(t, what, ndim);
  return CheckTensor(t, what, ndim, kind == 1 ? kUInt : kInt, 8);
}

// The input: float, or uint8/int8 as the layer was calibrated (uint8 as int8: as_int8).
const TensorView* CheckInput(const TensorView& x, const char* name, int ndim, bool src_signed,
                             bool as_int8) {
  if (x.dtype.bits != 8) return CheckTensor(x, "input", ndim);
  const bool stored_signed = src_signed || as_int8;
  if ((x.dtype.code == kInt) != stored_signed)
    throw DataTypeError(std::string(name) + ": input is " +
                        (x.dtype.code == kInt ? "int8" : "uint8") +
                        " but the layer was calibrated for " +
                        (src_signed ? "int8"
                         : as_int8  ? "uint8 stored as int8"
                                    : "uint8"));
  return CheckTensor(x, "input", ndim, stored_signed ? kInt : kUInt, 8);
}

const char* TypeName(int64_t kind) {
  return kind == 0 ? "f32" : kind == 1 ? "u8" : kind == 2 ? "s8" : "u8 as s8";
}

// f(begin, end) over blocks of [0, n): inline for small tensors, else over the pool's threads
// (the loops inside run over plain pointers, so that the compiler vectorises them).
template <typename F>
void ForBlocks(int64_t n, F&& f, int64_t block = int64_t{1} << 16) {
  if (n <= block) {
    f(int64_t{0}, n);
    return;
  }
  struct Task {
    F* f;
    static void Tile(void* context, size_t start, size_t count) {
      (*static_cast<Task*>(context)->f)(static_cast<int64_t>(start),
                                        static_cast<int64_t>(start + count));
    }
  } task{&f};
  pthreadpool_parallelize_1d_tile_1d(Pool(), &Task::Tile, &task, static_cast<size_t>(n),
                                     static_cast<size_t>(block), 0);
}

// uint8 <-> int8 at zero point -128 (v - 128 / v + 128: the top bit flipped)
void FlipSign(const void* from, void* to, int64_t n) {
  ForBlocks(n, [&](int64_t begin, int64_t end) {
    const uint8_t* s = static_cast<const uint8_t*>(from) + begin;
    uint8_t* d = static_cast<uint8_t*>(to) + begin;
    const int64_t n = end - begin, words = n / 8;
    for (int64_t i = 0; i < words; ++i) {  // 8 at a time (unvectorised at -O2 otherwise)
      uint64_t v;
      std::memcpy(&v, s + 8 * i, 8);
      v ^= 0x8080808080808080ull;
      std::memcpy(d + 8 * i, &v, 8);
    }
    for (int64_t i = 8 * words; i < n; ++i) d[i] = static_cast<uint8_t>(s[i] ^ 0x80u);
  });
}

// The weights G x O/G x I/G x KH x KW in XNNPACK's order G x O/G x KH x KW x I/G, each
// through `convert(value, output channel)`.
template <typename T, typename Convert>
std::vector<T> Repack(const int8_t* from, const Geometry& g, Convert convert) {
  std::vector<T> out(static_cast<size_t>(g.out_c() * g.ig * g.kh * g.kw));
  for (int64_t o = 0; o < g.out_c(); ++o)
    for (int64_t i = 0; i < g.ig; ++i)
      for (int64_t r = 0; r < g.kh; ++r)
        for (int64_t c = 0; c < g.kw; ++c)
          out[((o * g.kh + r) * g.kw + c) * g.ig + i] =
              convert(from[((o * g.ig + i) * g.kh + r) * g.kw + c], o);
  return out;
}

// The output's int8 clamp [lo, hi] at zero point out_zero (a uint8 output: at -128), with the
// activation folded in; false when it is empty.
bool OutputClamp(const Quant& q, int32_t out_zero, int32_t* lo, int32_t* hi) {
  *lo = -128;
  *hi = 127;
  if (q.act == kRelu) *lo = out_zero;
  if (q.act == kClip) {  // clamping the rounded value = rounding the clamped one
    *lo = std::max(*lo, Saturate(q.alpha / q.out_scale + static_cast<float>(out_zero), -128, 127));
    *hi = std::min(*hi, Saturate(q.beta / q.out_scale + static_cast<float>(out_zero), -128, 127));
  }
  return *lo < *hi;
}

// Where a residual layer's conv result goes before the add (scale, int8 zero point). No
// calibrated scale exists for it (calibration observes layer inputs), so it is derived: the
// output can only be one of [lo, hi] and the residual lies in its own int8 range, so only conv
// values in [out_min - res_max, out_max - res_min] can change the output; beyond it the
// output saturates to the same end whatever the conv's exact value. That interval on 254
// steps, the zero point rounded up, lies inside int8's 256 (so nothing is lost to
// saturation); its step (about out_scale + res_scale for ResNet's uint8 tensors) adds at most
// half a step of rounding, as ONNX Runtime's QDQ graphs do with their Conv -> QuantizeLinear
// -> Add. A step over kMaxMidSteps output steps (a residual far coarser than the output) would
// cost more than that: such layers take the float path.
constexpr double kMaxMidSteps = 3.0;

bool MidQuantisation(const Quant& q, int32_t out_zero, int32_t lo, int32_t hi, float* scale,
                     int32_t* zero) {
  const double out_min = (lo - out_zero) * static_cast<double>(q.out_scale);
  const double out_max = (hi - out_zero) * static_cast<double>(q.out_scale);
  const double res_min = OnUInt8Grid(q.res_kind) ? 0.0 : -128.0 * q.res_scale;
  const double res_max = (OnUInt8Grid(q.res_kind) ? 255.0 : 127.0) * q.res_scale;
  const double c_min = out_min - res_max, c_max = out_max - res_min;
  const double step = (c_max - c_min) / 254.0;
  if (!(step > 0) || step > kMaxMidSteps * q.out_scale) return false;
  const double z = std::ceil(-128.0 - c_min / step);
  if (z < -128.0 || z > 127.0) return false;
  *scale = static_cast<float>(step);
  *zero = static_cast<int32_t>(z);
  return std::isnormal(*scale);
}

// The layer's qc8 operator (and its residual add), or false where they cannot compute it (see
// the top).
bool MakeInteger(Q8Layer& l, const int8_t* w, const std::vector<float>& w_scale,
                 const float* bias) {
  const Geometry& g = l.g;
  const Quant& q = l.q;
  const bool residual = q.residual_order != 0;
  // a residual integer layer: quantised residual added before the activation (ResNet)
  if (q.out_kind == 0 || (q.act == kRelu && q.alpha != 0.f) ||
      (residual && (q.residual_order != 1 || q.res_kind == 0)))
    return false;
  const int32_t in_zero = q.src_signed ? 0 : -128, out_zero = q.out_kind == 2 ? 0 : -128;
  int32_t lo, hi;
  if (!OutputClamp(q, out_zero, &lo, &hi)) return false;
  // what qc8 writes: the output, or the conv before the add
  float conv_scale = q.out_scale;
  int32_t conv_zero = out_zero, conv_lo = lo, conv_hi = hi;
  if (residual) {
    if (!MidQuantisation(q, out_zero, lo, hi, &conv_scale, &conv_zero)) return false;
    conv_lo = -128;
    conv_hi = 127;
  }
  // XNNPACK takes normal floats as scales only (else invalid_parameter). The bias in int32
  // accumulator units must leave room for the products and the zero point XNNPACK folds
  // into it (|x| <= 128, |zero| <= 128, |w| <= 127 per term), else the accumulator could wrap.
  if (!std::isnormal(q.in_scale) || !std::isnormal(q.out_scale) ||
      (residual && !std::isnormal(q.res_scale)))
    return false;
  const double terms = static_cast<double>(g.ig * g.kh * g.kw);
  const double bias_limit = 2147483647.0 - 2.0 * 128.0 * 127.0 * terms;
  std::vector<int32_t> bias32(static_cast<size_t>(g.out_c()));
  for (int64_t c = 0; c < g.out_c(); ++c) {
    if (!std::isnormal(w_scale[c])) return false;
    const double unit = static_cast<double>(q.in_scale) * w_scale[c];
    const double scaled = std::nearbyint(bias[c] / unit);
    if (!(std::abs(scaled) <= bias_limit)) return false;
    bias32[c] = static_cast<int32_t>(scaled);
    const double requant = unit / conv_scale;
    if (!(requant >= std::ldexp(1.0, -32) && requant < 256.0)) return false;
  }
  const std::vector<int8_t> packed = Repack<int8_t>(w, g, [](int8_t v, int64_t) { return v; });
  const auto u = [](int64_t v) { return static_cast<uint32_t>(v); };
  const auto s8 = [](int32_t v) { return static_cast<int8_t>(v); };
  xnn_operator_t op = nullptr;
  xnn_status status = xnn_create_convolution2d_nhwc_qc8(
      u(g.pad_top), u(g.pad_right), u(g.pad_bottom), u(g.pad_left), u(g.kh), u(g.kw), u(g.stride_h),
      u(g.stride_w), u(g.dilation_h), u(g.dilation_w), u(g.groups), static_cast<size_t>(g.ig),
      static_cast<size_t>(g.og), static_cast<size_t>(g.in_c()), static_cast<size_t>(g.out_c()),
      s8(in_zero), q.in_scale, w_scale.data(), packed.data(), bias32.data(), s8(conv_zero),
      conv_scale, s8(conv_lo), s8(conv_hi), 0, &op);
  if (status == xnn_status_unsupported_parameter) return false;
  Check(status, "creating an int8 convolution");
  l.op.reset(op);
  if (!residual) return true;
  xnn_operator_t add = nullptr;
  l.add_unsigned = q.res_kind == 1 && q.out_kind == 1;
  if (l.add_unsigned)  // conv (flipped to uint8) + uint8 residual -> uint8 output
    status = xnn_create_add_nd_qu8(static_cast<uint8_t>(conv_zero + 128), conv_scale, 0,
                                   q.res_scale, 0, q.out_scale, static_cast<uint8_t>(lo + 128),
                                   static_cast<uint8_t>(hi + 128), 0, &add);
  else
    status = xnn_create_add_nd_qs8(s8(conv_zero), conv_scale, s8(q.res_kind == 2 ? 0 : -128),
                                   q.res_scale, s8(out_zero), q.out_scale, s8(lo), s8(hi), 0, &add);
  if (status == xnn_status_unsupported_parameter) {  // scale ratios outside [2^-10, 2^8)
    l.op.reset();
    return false;
  }
  Check(status, "creating an int8 add");
  l.add.reset(add);
  return true;
}

// The float operator on the int8 weights' values (bias float, nothing fused).
xnn_operator_t MakeFloat(const Geometry& g, const int8_t* w, const std::vector<float>& w_scale,
                         const float* bias) {
  const std::vector<float> packed =
      Repack<float>(w, g, [&](int8_t v, int64_t o) { return static_cast<float>(v) * w_scale[o]; });
  const auto u = [](int64_t v) { return static_cast<uint32_t>(v); };
  const float inf = std::numeric_limits<float>::infinity();
  xnn_operator_t op = nullptr;
  Check(xnn_create_convolution2d_nhwc_f32(
            u(g.pad_top), u(g.pad_right), u(g.pad_bottom), u(g.pad_left), u(g.kh), u(g.kw),
            u(g.stride_h), u(g.stride_w), u(g.dilation_h), u(g.dilation_w), u(g.groups),
            static_cast<size_t>(g.ig), static_cast<size_t>(g.og), static_cast<size_t>(g.in_c()),
            static_cast<size_t>(g.out_c()), packed.data(), bias, -inf, inf, 0, &op),
        "creating a convolution");
  return op;
}

// out[i] = value(v[j]) for each of the layer input's `count` elements: i its NHWC index, j its
// index in v (the graph's NCHW input: src_nchw). `value` is copied into each block: a store
// through an int8 pointer may alias anything in memory, and a local copy keeps its scales in
// registers, so that the loops vectorise. An NCHW input is walked in runs of pixels of one
// channel: converted contiguously into a small buffer (vectorised), then stored at the
// channel's stride.
template <typename T, typename F>
void ToNhwc(const Geometry& g, const float* v, T* out, int64_t count, const F& value) {
  if (!g.src_nchw) {
    ForBlocks(count, [&](int64_t begin, int64_t end) {
      F fn = value;
      for (int64_t i = begin; i < end; ++i) out[i] = fn(v[i]);
    });
    return;
  }
  const int64_t c = g.in_c(), hw = g.h * g.w;
  if (c == 0) return;
  constexpr int64_t kRun = 256;
  const int64_t pixels_per_block = std::max<int64_t>(1, (int64_t{1} << 16) / c);
  ForBlocks(
      count / c,
      [&](int64_t begin, int64_t end) {  // pixels
        F fn = value;
        T run[kRun];
        for (int64_t px = begin; px < end;) {  // the block's part in one image, channel by channel
          const int64_t image = px / hw, stop = std::min(end, (image + 1) * hw);
          for (int64_t ci = 0; ci < c; ++ci) {
            const float* from = v + (image * c + ci) * hw - image * hw;
            for (int64_t p0 = px; p0 < stop; p0 += kRun) {
              const int64_t n = std::min(kRun, stop - p0);
              for (int64_t k = 0; k < n; ++k) run[k] = fn(from[p0 + k]);
              T* to = out + p0 * c + ci;
              for (int64_t k = 0; k < n; ++k) to[k * c] = run[k];
            }
          }
          px = stop;
        }
      },
      pixels_per_block);
}

// The input as the operator takes it. x: NHWC (or the graph's NCHW input: src_nchw).
void PrepareInput(Q8Layer& l, const TensorView* x) {
  const Geometry& g = l.g;
  const Quant& q = l.q;
  const int64_t count = Count(x);
  const int32_t lo = q.src_signed ? -128 : 0, hi = q.src_signed ? 127 : 255;
  const int32_t shift = q.src_signed ? 0 : 128;  // uint8 v goes to qc8 as v - 128
  if (x->dtype.bits == 8) {
    const void* data = Data(x);
    if (l.integer) {
      if (q.src_signed || q.in_as_int8) return;  // taken as it is (RunLayer)
      Padded(l.src8, static_cast<size_t>(count));
      FlipSign(data, l.src8.data(), count);
      return;
    }
    Padded(l.srcf, static_cast<size_t>(count));
    float* out = l.srcf.data();
    const float scale = q.in_scale;
    const auto dequantise = [&](auto* from, float zero) {
      ForBlocks(count, [=](int64_t begin, int64_t end) {
        const auto* src = from;
        float* dst = out;
        for (int64_t i = begin; i < end; ++i) dst[i] = (static_cast<float>(src[i]) - zero) * scale;
      });
    };
    if (q.src_signed || q.in_as_int8)
      dequantise(static_cast<const int8_t*>(data), q.in_as_int8 ? -128.f : 0.f);
    else
      dequantise(static_cast<const uint8_t*>(data), 0.f);
    return;
  }
  const float* v = static_cast<const float*>(Data(x));
  const float scale = q.in_scale;
  if (l.integer) {
    Padded(l.src8, static_cast<size_t>(count));
    ToNhwc(g, v, l.src8.data(), count,
           [=](float x) { return static_cast<int8_t>(Saturate(x / scale, lo, hi) - shift); });
  } else {
    Padded(l.srcf, static_cast<size_t>(count));
    ToNhwc(g, v, l.srcf.data(), count,
           [=](float x) { return static_cast<float>(Saturate(x / scale, lo, hi)) * scale; });
  }
}

// The float path's result (l.dst, NHWC) into the output: residual, activation, output
// quantisation (EpilogueLoop). An NCHW output (float; its residual NCHW too) is written at its
// own index.
template <typename Res, typename Out>
void Epilogue(const Q8Layer& l, const Res* r, Out* out, int64_t count) {
  const float* d = l.dst.data();
  const Quant q = l.q;
  const float res_scale = std::is_same_v<Res, float> ? 1.f : q.res_scale;
  if (l.g.dst_nchw) {  // the graph's last layer: float, one pass with the index mapping
    const int64_t c = l.g.out_c(), hw = l.g.out_h * l.g.out_w;
    ForBlocks(count, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t ci = i % c, p = (i / c) % hw, b = i / (c * hw);
        const int64_t j = (b * c + ci) * hw + p;
        const float residual = r != nullptr ? static_cast<float>(r[j]) * res_scale : 0.f;
        const float v = ActivateResidual(d[i], residual, q.residual_order, q.act, q.alpha, q.beta);
        if constexpr (std::is_same_v<Out, float>)
          out[j] = v;
        else  // (the settings check refuses quantised NCHW outputs)
          out[j] =
              static_cast<Out>(Saturate(v / q.out_scale, std::is_same_v<Out, uint8_t> ? 0 : -128,
                                        std::is_same_v<Out, uint8_t> ? 255 : 127));
      }
    });
    return;
  }
  WithOrderAndAct(q.residual_order, q.act, [&](auto order, auto act) {
    ForBlocks(count, [&](int64_t begin, int64_t end) {
      EpilogueLoop<decltype(order)::value, decltype(act)::value>(d, r, out, begin, end, res_scale,
                                                                 q.out_scale, q.alpha, q.beta);
    });
  });
}

// r: the residual's data (nullptr: none) as float, uint8 (kinds 1 and 3: see FloatEpilogue)
// or int8.
template <typename Out>
void EpilogueTo(const Q8Layer& l, const void* r, Out* out, int64_t count) {
  if (r == nullptr) return Epilogue(l, static_cast<const float*>(nullptr), out, count);
  if (l.q.res_kind == 0) return Epilogue(l, static_cast<const float*>(r), out, count);
  if (OnUInt8Grid(l.q.res_kind)) return Epilogue(l, static_cast<const uint8_t*>(r), out, count);
  Epilogue(l, static_cast<const int8_t*>(r), out, count);
}

// The float path's (rare) uint8 tensors stored as int8 are handled as uint8: the residual
// shifted back into a buffer first, the output written as uint8 and shifted in place.
void FloatEpilogue(Q8Layer& l, const TensorView* res, const TensorView* y) {
  void* out = Data(y);
  const int64_t count = Count(y);
  const void* r = res == nullptr ? nullptr : Data(res);
  if (r != nullptr && l.q.res_kind == kUInt8AsInt8) {
    Padded(l.res8, static_cast<size_t>(count));
    FlipSign(r, l.res8.data(), count);
    r = l.res8.data();
  }
  if (l.q.out_kind == 0) return EpilogueTo(l, r, static_cast<float*>(out), count);
  if (OnUInt8Grid(l.q.out_kind)) {
    EpilogueTo(l, r, static_cast<uint8_t*>(out), count);
    if (l.q.out_kind == kUInt8AsInt8) FlipSign(out, out, count);
    return;
  }
  EpilogueTo(l, r, static_cast<int8_t*>(out), count);
}

void Describe(const Q8Layer& l, KernelLayer* log) {
  log->implementation = !l.integer         ? "xnnpack f32 on int8 values"
                        : l.add == nullptr ? "xnnpack qc8"
                        : l.add_unsigned   ? "xnnpack qc8 + qu8 add"
                                           : "xnnpack qc8 + qs8 add";
  log->src_type = l.q.src_signed ? "s8" : l.q.in_as_int8 ? "u8 as s8" : "u8";
  log->weights_type = "s8";
  log->dst_type = TypeName(l.q.out_kind);
  log->residual_type = l.q.residual_order != 0 ? TypeName(l.q.res_kind) : "none";
  log->weight_bits = 8;
}

// An integer residual layer's add: l.mid (the conv) + the residual -> the output y.
void AddResidual(Q8Layer& l, const TensorView* res, int8_t* dst, size_t count) {
  const size_t shape[1] = {count};
  const void* r = Data(res);
  if (l.add_unsigned) {
    FlipSign(l.mid.data(), l.mid.data(), static_cast<int64_t>(count));  // now uint8
    std::vector<uint8_t> copy;
    const uint8_t* r8 = Readable(static_cast<const uint8_t*>(r), count, copy);
    Check(xnn_setup_add_nd_qu8(l.add.get(), 1, shape, 1, shape,
                               reinterpret_cast<const uint8_t*>(l.mid.data()), r8,
                               reinterpret_cast<uint8_t*>(dst), Pool()),
          "setting up an int8 add");
    Check(xnn_run_operator(l.add.get(), Pool()), "running an int8 add");
    return;
  }
  const int8_t* r8 = static_cast<const int8_t*>(r);
  if (l.q.res_kind == 1) {  // uint8 residual as int8 at zero point -128
    Padded(l.res8, count);
    FlipSign(r, l.res8.data(), static_cast<int64_t>(count));
    r8 = l.res8.data();
  } else {
    r8 = Readable(r8, count, l.res8);
  }
  Check(xnn_setup_add_nd_qs8(l.add.get(), 1, shape, 1, shape, l.mid.data(), r8, dst, Pool()),
        "setting up an int8 add");
  Check(xnn_run_operator(l.add.get(), Pool()), "running an int8 add");
  if (l.q.out_kind == 1) FlipSign(dst, dst, static_cast<int64_t>(count));  // zero point -128
}

// One int8 layer: checked, built (cached under its content key and input), run.
void RunLayer(const char* name, int64_t key, const Geometry& g, const Quant& q, const TensorView* x,
              const TensorView* w, const TensorView* w_scale, const TensorView* b,
              const TensorView* res, const TensorView* y) {
  auto layer = TheCache().Get(LayerKey(key, x), name, [&](KernelLayer* log) {
    auto l = std::make_shared<Q8Layer>();
    l->g = g;
    l->q = q;
    const float* ws = static_cast<const float*>(Data(w_scale));
    const std::vector<float> scales(ws, ws + g.out_c());
    for (float s : scales) Positive(s, "weight scales");
    const int8_t* w8 = static_cast<const int8_t*>(Data(w));
    const float* bias = static_cast<const float*>(Data(b));
    Pool();
    l->integer = MakeInteger(*l, w8, scales, bias);
    if (!l->integer) l->op.reset(MakeFloat(g, w8, scales, bias));
    Describe(*l, log);
    return l;
  });
  Q8Layer& l = *layer;
  std::lock_guard<std::mutex> lock(l.mutex);
  PrepareInput(l, x);
  const size_t n = static_cast<size_t>(g.n), h = static_cast<size_t>(g.h),
               wd = static_cast<size_t>(g.w);
  if (l.integer) {
    const int8_t* src =
        x->dtype.bits == 8 && (q.src_signed || q.in_as_int8)
            ? Readable(static_cast<const int8_t*>(Data(x)), static_cast<size_t>(Count(x)), l.src8)
            : l.src8.data();
    int8_t* dst = static_cast<int8_t*>(Data(y));
    const size_t count = static_cast<size_t>(Count(y));
    if (l.add != nullptr) Padded(l.mid, count);
    Check(xnn_setup_convolution2d_nhwc_qc8(l.op.get(), n, h, wd, src,
                                           l.add != nullptr ? l.mid.data() : dst, Pool()),
          "setting up an int8 convolution");
    Check(xnn_run_operator(l.op.get(), Pool()), "running an int8 convolution");
    if (l.add != nullptr) {
      AddResidual(l, res, dst, count);
    } else if (q.out_kind == 1) {
      FlipSign(dst, dst, Count(y));  // written at zero point -128
    }
    return;
  }
  l.dst.resize(static_cast<size_t>(Count(y)));
  Check(xnn_setup_convolution2d_nhwc_f32(l.op.get(), n, h, wd, l.srcf.data(), l.dst.data(), Pool()),
        "setting up a convolution");
  Check(xnn_run_operator(l.op.get(), Pool()), "running a convolution");
  FloatEpilogue(l, res, y);
}

Quant QuantOf(float in_scale, bool src_signed, bool as_int8, int64_t out_kind, float out_scale,
              const ActivationSettings& act) {
  Quant q;
  q.in_scale = Positive(in_scale, "input scale");
  if (src_signed && as_int8)
    ThrowInvalidArtifact("edgecv.xnnpack: an int8 input cannot be a uint8 one stored as int8");
  q.src_signed = src_signed;
  q.in_as_int8 = as_int8;
  CheckKind(out_kind, "output");
  q.out_kind = out_kind;
  q.out_scale = out_kind == 0 ? 1.f : Positive(out_scale, "output scale");
  if (act.kind != kNone && act.kind != kRelu && act.kind != kClip)
    ThrowInvalidArtifact("edgecv.xnnpack: unknown activation " + std::to_string(act.kind));
  q.act = act.kind;
  q.alpha = act.alpha;
  q.beta = act.beta;
  return q;
}

}  // namespace

void Conv2dQ8(const char* name, const Keyed<Conv2dQ8Settings>& settings, const LayerTensors& t) {
  const Conv2dQ8Settings& s = settings.settings;
  const Conv2dSettings& c = s.conv;
  const bool has_residual = t.residual.has_value();
  CheckResidual(c.residual, has_residual, name);
  Quant q =
      QuantOf(s.input_scale, s.input_signed, s.input_as_int8, s.output_kind, s.output_scale, c.act);
  CheckKind(s.residual_kind, "residual");
  if (s.residual_kind != 0 && !has_residual)
    ThrowInvalidInput(std::string(name) + ": a quantised residual but no residual");
  q.res_kind = s.residual_kind;
  q.res_scale = s.residual_kind == 0 ? 0.f : Positive(s.residual_scale, "residual scale");
  q.residual_order = c.residual;
  const TensorView* x = CheckInput(t.x, name, 4, s.input_signed, s.input_as_int8);
  const TensorView* w = CheckTensor(t.w, "weights", 5, kInt, 8);
  const TensorView* ws = CheckTensor(*t.w_scale, "weight scales", 1);
  const TensorView* b = CheckTensor(t.bias, "bias", 1);
  const TensorView* res =
      has_residual ? CheckKindTensor(*t.residual, "residual", 4, s.residual_kind) : nullptr;
  const TensorView* y = CheckKindTensor(t.y, "output", 4, s.output_kind);
  if ((s.output_kind != 0 || s.residual_kind != 0) && c.dst_nchw)
    ThrowInvalidInput(std::string(name) + ": quantised outputs and residuals are NHWC");
  if (x->dtype.bits == 8 && c.src_nchw)
    ThrowInvalidInput(std::string(name) + ": a quantised input is NHWC");
  const auto nhwc = [](const TensorView* v, bool is_nchw) {
    return is_nchw ? std::vector<int64_t>{v->shape[0], v->shape[2], v->shape[3], v->shape[1]}
                   : Dims(v);
  };
  const std::vector<int64_t> xd = nhwc(x, c.src_nchw), yd = nhwc(y, c.dst_nchw);
  Geometry g;
  g.n = xd[0];
  g.h = xd[1];
  g.w = xd[2];
  g.out_h = yd[1];
  g.out_w = yd[2];
  g.groups = c.groups;
  g.og = w->shape[1];
  g.ig = w->shape[2];
  g.kh = w->shape[3];
  g.kw = w->shape[4];
  g.stride_h = c.stride_h;
  g.stride_w = c.stride_w;
  g.dilation_h = c.dilation_h;
  g.dilation_w = c.dilation_w;
  g.pad_top = c.pad_top;
  g.pad_left = c.pad_left;
  g.pad_bottom = c.pad_bottom;
  g.pad_right = c.pad_right;
  g.src_nchw = c.src_nchw;
  g.dst_nchw = c.dst_nchw;
  const auto out_size = [](int64_t in, int64_t k, int64_t st, int64_t d, int64_t p) {
    return st < 1 || d < 1 ? -1 : (in + p - d * (k - 1) - 1) / st + 1;
  };
  if (g.groups != w->shape[0] || xd[3] != g.in_c() || yd[3] != g.out_c() ||
      b->shape[0] != g.out_c() || ws->shape[0] != g.out_c() || xd[0] != yd[0] ||
      g.out_h != out_size(g.h, g.kh, g.stride_h, g.dilation_h, g.pad_top + g.pad_bottom) ||
      g.out_w != out_size(g.w, g.kw, g.stride_w, g.dilation_w, g.pad_left + g.pad_right) ||
      (res != nullptr && Dims(res) != Dims(y)))
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the layer");
  RunLayer(name, settings.key, g, q, x, w, ws, b, res, y);
}

void DenseQ8(const char* name, const Keyed<DenseQ8Settings>& settings, const LayerTensors& t) {
  const DenseQ8Settings& s = settings.settings;
  const Quant q = QuantOf(s.input_scale, s.input_signed, s.input_as_int8, s.output_kind,
                          s.output_scale, s.dense.act);
  const TensorView* x = CheckInput(t.x, name, 2, s.input_signed, s.input_as_int8);
  const TensorView* w = CheckTensor(t.w, "weights", 2, kInt, 8);
  const TensorView* ws = CheckTensor(*t.w_scale, "weight scales", 1);
  const TensorView* b = CheckTensor(t.bias, "bias", 1);
  const TensorView* y = CheckKindTensor(t.y, "output", 2, s.output_kind);
  if (x->shape[1] != w->shape[1] || y->shape[1] != w->shape[0] || b->shape[0] != w->shape[0] ||
      ws->shape[0] != w->shape[0] || y->shape[0] != x->shape[0])
    ThrowInvalidInput(std::string(name) + ": tensor shapes do not agree with the layer");
  Geometry g;  // a 1x1 convolution over M images of 1x1 (per-channel weight scales)
  g.n = x->shape[0];
  g.ig = x->shape[1];
  g.og = w->shape[0];
  RunLayer(name, settings.key, g, q, x, w, ws, b, nullptr, y);
}

void ClearInt8Cache() { TheCache().Clear(); }

}  // namespace xnnpack
}  // namespace kernel
}  // namespace edgecv
