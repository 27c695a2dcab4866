// oneDNN kernels called from compiled graphs (edgecv/compile/offload.py writes the calls):
//   edgecv.dnnl.conv2d(x, w, bias, [residual,] settings, out)   NHWC activations
//   edgecv.dnnl.dense(x, w, bias, settings, out)                 x [M, K], w [N, K]
//   edgecv.dnnl.conv2d_transpose(x, w, bias, [residual,] settings, out)   as conv2d, float
//   edgecv.dnnl.pool2d(x, settings, out)                         max / average pooling, NHWC
//   edgecv.dnnl.conv2d_q8 / dense_q8: the same with int8 weights and their per-channel
//     scales after w; the float input is quantised with the scale the settings carry.
//     Input, output and residual may arrive/leave quantised (uint8/int8, scale in settings)
// Weights and bias are graph constants already folded with batch norm at compile time.
// The settings (a shape of int64: the records of kernel_abi.h) carry the layer's attributes
// and a content key computed from weights, bias and attributes: primitives and weights
// reordered to oneDNN's preferred layout are cached under that key (and the input shape),
// so the same weights are packed once per process, whichever VM or address they come from.
#include <dlpack/dlpack.h>
#include <omp.h>

#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "edgecv/error.h"
#include "kernel_common.h"
#include "kernels_internal.h"
#include "winograd.h"

namespace edgecv {

std::string DnnlIsa();

namespace {

namespace ffi = tvm::ffi;
using dnnl::memory;
using dims = memory::dims;

using kernel::ActivateResidual;
using kernel::CheckTensor;
using kernel::Count;
using kernel::Data;
using kernel::Dims;  // memory::dims is a vector of int64_t too
using kernel::kClip;
using kernel::kNone;
using kernel::kRelu;
using kernel::Threads;

// oneDNN (Debian's build) runs on OpenMP. Other libraries in the process may have lowered
// the calling thread's OpenMP thread count (importing MXNet sets it to 1), so each call
// sets it.
void UseThreads() {
  if (omp_get_max_threads() != Threads()) omp_set_num_threads(Threads());
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// residual_order: 1 = add the residual, then activate; 2 = activate, then add.
// *residual_index: the position of the residual add among the post-ops.
dnnl::post_ops PostOps(int64_t act, float alpha, float beta, const memory::desc* residual,
                       int64_t residual_order, int* residual_index = nullptr) {
  dnnl::post_ops ops;
  const auto add = [&] {
    if (residual == nullptr) return;
    if (residual_index != nullptr) *residual_index = ops.len();
    ops.append_binary(dnnl::algorithm::binary_add, *residual);
  };
  if (residual_order != 2) add();
  if (act == kRelu)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, alpha, 0.f);
  else if (act == kClip)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, alpha, beta);
  else if (act != kNone)
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl: unknown activation " << act;
  if (residual_order == 2) add();
  return ops;
}

// One layer, ready to run: its primitive and its weights in the primitive's layout.
struct Layer {
  dnnl::primitive primitive;
  memory::desc src, dst, residual;
  int residual_index = 0;  // position of the residual add among the post-ops
  // set when the caller's tensors differ in layout or type (int8: the float input is
  // quantised on the way in) from what the primitive takes: a reorder converts them
  std::optional<memory::desc> user_src, user_dst;
  std::optional<dnnl::reorder> src_reorder, dst_reorder;
  memory weights, bias;
  // Winograd layers write oneDNN's blocked layout with the bias only; RunWinograd
  // applies the activation and residual add while converting to the caller's NHWC tensor
  bool winograd = false;
  // edgecv's own Winograd (winograd.h), where oneDNN has none for this CPU
  std::shared_ptr<const WinogradConv> own_winograd;
  int64_t act = kNone, residual_order = 0;
  float alpha = 0, beta = 0;
  int weight_bits = 0;  // int8 layers: 8, or 7 (requantised: see Int8Weights); 0 float
};

// A cached layer: its content key (from the settings) and the input it was built for, shape
// and type. The type matters: the same settings are called with a float input in one artifact
// and a quantised one in another (an int8 layer whose producer writes uint8 or float, a max
// pool in a float and an int8 artifact of one model), and the primitive and reorders differ.
using Key = std::tuple<int64_t, std::vector<int64_t>, int>;

Key LayerKey(int64_t key, const DLTensor* x) {
  return Key{key, Dims(x), x->dtype.code * 256 + x->dtype.bits};
}

const char* TypeName(memory::data_type t) {
  switch (t) {
    case memory::data_type::f32:
      return "f32";
    case memory::data_type::s8:
      return "s8";
    case memory::data_type::u8:
      return "u8";
    case memory::data_type::s32:
      return "s32";
    default:
      return "other";
  }
}

class Cache {
 public:
  template <typename Make>
  std::shared_ptr<const Layer> Get(const Key& key, const char* kernel, Make make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = layers_.find(key);
      if (it != layers_.end()) return it->second;
    }
    std::string impl;
    std::shared_ptr<const Layer> layer = make(&impl);  // outside the lock: packing takes a while
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, fresh] = layers_.emplace(key, std::move(layer));
    if (fresh) {
      const Layer& l = *it->second;
      kernel::LogLayer(KernelLayer{kernel, impl, TypeName(l.src.data_type()),
                                   l.weights ? TypeName(l.weights.get_desc().data_type()) : "none",
                                   TypeName(l.dst.data_type()),
                                   l.residual.is_zero() ? "none" : TypeName(l.residual.data_type()),
                                   l.weight_bits});
    }
    return it->second;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    layers_.clear();
  }

 private:
  std::mutex mutex_;
  std::map<Key, std::shared_ptr<const Layer>> layers_;
};

Cache& TheCache() {
  static Cache cache;
  return cache;
}

// Calibration: statistics of the inputs of float layers, while observing.
class Observer {
 public:
  void Start(const std::map<int64_t, double>& ranges, int bins) {
    if (bins < 16 || bins > (1 << 20))
      TVM_FFI_THROW(ValueError) << "edgecv: calibration histogram bins must be in [16, 2^20]";
    std::lock_guard<std::mutex> lock(mutex_);
    ranges_ = ranges;
    bins_ = bins;
    seen_.clear();
    on_ = true;
  }
  std::map<int64_t, ObservedInput> Stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    on_ = false;
    return std::move(seen_);
  }
  bool On() const { return on_; }
  void Observe(const char* kernel, int64_t key, const DLTensor* x) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!on_) return;
    auto [it, fresh] = seen_.try_emplace(key);
    ObservedInput& o = it->second;
    if (fresh) {
      o.kernel = kernel;
      o.order = static_cast<int64_t>(seen_.size()) - 1;
      o.shape = Dims(x);
      o.min = std::numeric_limits<double>::infinity();
      o.max = -std::numeric_limits<double>::infinity();
      auto r = ranges_.find(key);
      if (r != ranges_.end() && r->second > 0) {
        o.range = r->second;
        o.histogram.assign(bins_, 0.0);
      }
    }
    const float* p = static_cast<const float*>(Data(x));
    const int64_t n = Count(x);
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, p[i]);
      hi = std::max(hi, p[i]);
    }
    o.min = std::min<double>(o.min, lo);
    o.max = std::max<double>(o.max, hi);
    o.count += n;
    if (o.range > 0) {
      const double per_bin = bins_ / o.range;
      for (int64_t i = 0; i < n; ++i) {
        const double b = std::fabs(static_cast<double>(p[i])) * per_bin;
        o.histogram[b >= bins_ - 1 ? bins_ - 1 : static_cast<int>(b)] +=
            1;  // NaN counts as the top bin
      }
    }
  }

 private:
  std::mutex mutex_;
  std::atomic<bool> on_{false};
  std::map<int64_t, double> ranges_;
  int bins_ = 2048;
  std::map<int64_t, ObservedInput> seen_;
};

Observer& TheObserver() {
  static Observer observer;
  return observer;
}

// Reorders user weights (plain layout `tag`) into the layout the primitive chose.
memory Pack(const memory::desc& wanted, const dims& shape, memory::data_type type,
            memory::format_tag tag, void* data, dnnl::stream& stream) {
  memory user({shape, type, tag}, Engine(), data);
  memory packed(wanted, Engine());
  dnnl::reorder(user, packed).execute(stream, user, packed);
  return packed;
}

memory CopyVector(const std::vector<float>& v) {
  memory own({{static_cast<int64_t>(v.size())}, memory::data_type::f32, memory::format_tag::x},
             Engine());
  std::memcpy(own.get_data_handle(), v.data(), v.size() * sizeof(float));
  return own;
}

std::vector<float> Floats(const DLTensor* t) {
  const float* p = static_cast<const float*>(Data(t));
  return std::vector<float>(p, p + Count(t));
}

// A reorder from the caller's tensor to the primitive's (scale: multiply on the way, for
// quantising float input to int8; 0: none).
dnnl::reorder MakeReorder(const memory::desc& from, const memory::desc& to, float scale) {
  dnnl::primitive_attr attr;
  if (scale != 0.f) attr.set_output_scales(0, {scale});
  return dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), from, Engine(), to, attr));
}

// Per-thread buffers for the tensors a layer converts on the way in or out: reused across
// calls (allocating them per call costs a fresh mmap and its page faults every time).
class Scratch {
 public:
  void* Get(int slot, size_t bytes) {
    Buffer& b = buffers_[slot];
    if (b.size < bytes) {
      std::free(b.data);
      b.size = (bytes + 63) / 64 * 64;
      b.data = std::aligned_alloc(64, b.size);
      if (b.data == nullptr) {
        b.size = 0;
        throw std::bad_alloc();
      }
    }
    return b.data;
  }
  ~Scratch() {
    for (Buffer& b : buffers_) std::free(b.data);
  }

 private:
  struct Buffer {
    void* data = nullptr;
    size_t size = 0;
  };
  Buffer buffers_[2];
};

memory ScratchMemory(const memory::desc& d, int slot) {
  thread_local Scratch scratch;
  return memory(d, Engine(), scratch.Get(slot, d.get_size()));
}

void Run(const Layer& layer, dnnl::stream& stream, void* src, void* dst, void* residual) {
  memory user_src(layer.user_src ? *layer.user_src : layer.src, Engine(), src);
  memory user_dst(layer.user_dst ? *layer.user_dst : layer.dst, Engine(), dst);
  memory src_mem = user_src, dst_mem = user_dst;
  if (layer.src_reorder) {
    src_mem = ScratchMemory(layer.src, 0);
    layer.src_reorder->execute(stream, user_src, src_mem);
  }
  if (layer.dst_reorder) dst_mem = ScratchMemory(layer.dst, 1);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_mem},
                                       {DNNL_ARG_WEIGHTS, layer.weights},
                                       {DNNL_ARG_BIAS, layer.bias},
                                       {DNNL_ARG_DST, dst_mem}};
  if (residual != nullptr)
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(layer.residual_index) | DNNL_ARG_SRC_1,
                 memory(layer.residual, Engine(), residual));
  layer.primitive.execute(stream, args);
  if (layer.dst_reorder) layer.dst_reorder->execute(stream, dst_mem, user_dst);
  stream.wait();
}

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

// int8 layers: weights arrive as int8 with a float scale per output channel, and the float
// input is quantised with one scale (zero point 0: symmetric int8, or uint8 when the input
// is never negative). oneDNN accumulates in int32, and the output scale
// input_scale * weight_scale[c] / unit brings the result into the post-ops' unit: 1 (float),
// the output's scale (written quantised), or the residual's scale when the residual arrives
// quantised: it is then added as it is (a second uint8/int8 input of a binary post-op), and a
// last linear post-op rescales the sum to the output's unit. (oneDNN's sum post-op instead,
// with the residual copied into the output, picks its faster 1x1 kernel for those layers, but
// measured paired on ResNet-50 the whole model ran no faster: 7.34 against 7.33 ms.)
// The float bias is divided by input_scale * weight_scale[c] so that oneDNN can add it to
// the accumulator.
//
// Without VNNI, oneDNN's int8 kernels multiply with vpmaddubsw, which adds each pair of
// uint8 x int8 products in a saturating 16-bit sum: 2 x 255 x 127 overflows it, silently
// (and for int8 inputs oneDNN halves the weights itself in its weight reorder, flagged by
// scale_adjust = 0.5, rounding weights of +-1 to 0). There each output channel whose largest
// |w| exceeds 63 is requantised to 7 bits, w7 = round(w x 63 / max|w|) (ties to even) at
// weight scale x max|w| / 63, so that pair sums stay within 2 x 255 x 63 = 32130. For int8
// inputs the weights are handed over doubled (2 x w7 at half that scale): oneDNN's halving
// gives w7 back exactly, and it doubles the accumulator again before the bias and output
// scales. The result is exact integer arithmetic on w7.
bool VnniInt8() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & static_cast<unsigned>(dnnl_cpu_isa_avx512_core_vnni)) ==
             dnnl_cpu_isa_avx512_core_vnni ||
         (isa & static_cast<unsigned>(dnnl_cpu_isa_avx2_vnni)) == dnnl_cpu_isa_avx2_vnni;
}

std::atomic<int> forced_weight_bits{0};  // SetInt8WeightBits; 0: the CPU decides

int WeightBits() {
  const int forced = forced_weight_bits.load();
  return forced != 0 ? forced : VnniInt8() ? 8 : 7;
}

struct Quantized {
  float in_scale = 0, dst_scale = 1, res_scale = 0;  // res_scale 0: a float residual (or none)
  int weight_bits = 8;                               // 7: weights requantised (see above)
  std::vector<int> w_max;  // per output channel: w7 = round(w x 63 / w_max) (63: kept as they are)
  int hand_over = 1;       // the weights oneDNN is given: hand_over x w7 (2: it halves them)
  bool src_signed = false;
  int64_t dst_kind = 0, res_kind = 0;  // 0 float, 1 uint8, 2 int8
  std::vector<float> out_scales, bias;
  float unit() const { return res_kind != 0 ? res_scale : dst_scale; }  // of the post-ops
};

// A kind (0 float, 1 uint8, 2 int8) and the scale of a quantised tensor (1 for float).
float KindScale(int64_t kind, float settings_scale, const char* what) {
  if (kind < 0 || kind > 2)
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl: unknown " << what << " kind " << kind;
  const float scale = kind == 0 ? 1.f : settings_scale;
  if (!(scale > 0) || !std::isfinite(scale))
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl: " << what << " scale must be positive";
  return scale;
}

Quantized Quantization(const DLTensor* w, const DLTensor* w_scale, const DLTensor* b,
                       float in_scale, bool src_signed, int64_t dst_kind, float dst_scale,
                       int64_t res_kind = 0, float res_scale = 0) {
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
      TVM_FFI_THROW(ValueError) << "edgecv.dnnl: weight scales must be positive";
    q.out_scales.push_back(s / q.unit());
    q.bias.push_back(bias[c] / s);
  }
  return q;
}

// The int8 weights as oneDNN is to receive them for the primitive that wants `packed`: as
// they are (8 bits), or requantised to 7 bits (see VnniInt8), doubled where oneDNN halves
// them (int8 inputs: it flags `packed` with scale_adjust 0.5).
std::vector<int8_t> Int8Weights(const DLTensor* w, const Quantized& q, const memory::desc& packed) {
  const int8_t* p = static_cast<const int8_t*>(Data(w));
  std::vector<int8_t> out(p, p + Count(w));
  const size_t per_channel = out.size() / q.w_max.size();
  const dnnl_memory_extra_desc_t& extra = packed.data.extra;
  const float adjust =
      (extra.flags & dnnl_memory_extra_flag_scale_adjust) != 0 ? extra.scale_adjust : 1.f;
  if (adjust != 1.f / static_cast<float>(q.hand_over))
    TVM_FFI_THROW(RuntimeError) << "edgecv.dnnl: oneDNN rescales these int8 weights by " << adjust
                                << ", expected " << 1.f / static_cast<float>(q.hand_over) << " ("
                                << DnnlIsa() << ")";
  if (q.weight_bits == 8) return out;
  for (size_t i = 0; i < out.size(); ++i) {
    const float w_max = static_cast<float>(q.w_max[i / per_channel]);
    out[i] = static_cast<int8_t>(q.hand_over * std::nearbyint(out[i] * 63.f / w_max));
  }
  return out;
}

// The input of an int8 layer: float (quantised on the way in) or, when the previous int8
// layer wrote it already quantised with this layer's scale, uint8/int8 taken as is.
const DLTensor* CheckInput(const ffi::AnyView& arg, const char* name, int ndim, bool int8_layer,
                           bool src_signed) {
  const DLTensor* raw = arg.cast<DLTensor*>();
  if (!int8_layer || raw->dtype.bits != 8) return CheckTensor(arg, "input", ndim);
  if ((raw->dtype.code == kDLInt) != src_signed)
    TVM_FFI_THROW(TypeError) << name << ": input is "
                             << (raw->dtype.code == kDLInt ? "int8" : "uint8")
                             << " but the layer was calibrated for "
                             << (src_signed ? "int8" : "uint8");
  return CheckTensor(arg, "input", ndim, src_signed ? kDLInt : kDLUInt, 8);
}

memory::data_type TypeOf(const DLTensor* t) {
  if (t->dtype.bits == 8)
    return t->dtype.code == kDLInt ? memory::data_type::s8 : memory::data_type::u8;
  return memory::data_type::f32;
}

// A 4-d tensor's dims in oneDNN's order (N, C, H, W), from NCHW or NHWC.
dims NchwDims(const DLTensor* t, bool is_nchw) {
  return is_nchw ? Dims(t) : dims{t->shape[0], t->shape[3], t->shape[1], t->shape[2]};
}

// A tensor of the kind the settings say: 0 float, 1 uint8, 2 int8.
const DLTensor* CheckQuantised(const ffi::AnyView& arg, const char* what, int ndim, int64_t kind) {
  if (kind == 0) return CheckTensor(arg, what, ndim);
  return CheckTensor(arg, what, ndim, kind == 2 ? kDLInt : kDLUInt, 8);
}

// The arguments every layer starts with: input, weights (int8 ones followed by their
// per-channel scales), bias.
struct LayerArgs {
  const DLTensor *x, *w, *w_scale, *b;
  int next;  // index of the argument after them
};

template <bool kInt8>
LayerArgs ParseLayerArgs(ffi::PackedArgs args, const char* name, int x_ndim, int w_ndim,
                         bool src_signed) {
  LayerArgs a{};
  int i = 0;
  a.x = CheckInput(args[i++], name, x_ndim, kInt8, src_signed);
  a.w = kInt8 ? CheckTensor(args[i++], "weights", w_ndim, kDLInt, 8)
              : CheckTensor(args[i++], "weights", w_ndim);
  a.w_scale = kInt8 ? CheckTensor(args[i++], "weight scales", 1) : nullptr;
  a.b = CheckTensor(args[i++], "bias", 1);
  a.next = i;
  return a;
}

// Output scales (int8 layers) and post-ops. Clip bounds are values of the output: in the
// post-ops' unit (see Quantized).
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

// The caller's input reaches the primitive through a reorder when its layout or type differ
// (a float input of an int8 layer is quantised on the way: multiplied by 1 / input scale).
void ReorderSource(Layer& l, const memory::desc& user_src, const std::optional<Quantized>& q) {
  if (l.src == user_src) return;
  l.user_src = user_src;
  l.src_reorder =
      MakeReorder(user_src, l.src,
                  q && user_src.data_type() == memory::data_type::f32 ? 1.f / q->in_scale : 0.f);
}

// A 4x4, stride-2, pad-1 transposed convolution (NHWC, one group) as four convolutions:
// output pixel (2m + a, 2j + b) only ever sees input rows m - 1 + a .. m + a and columns
// j - 1 + b .. j + b, through kernel taps kh = 3 - a - 2t (t = 0, 1 over those rows) and
// likewise kw. Phase (a, b) is a 2x2 convolution padded on the top (a = 0) or bottom
// (a = 1) and left or right alike, whose output is the sub-grid (a::2, b::2) of the result:
// computed densely (oneDNN has no fast kernel writing a strided grid), then scattered.
void SubpixelDeconv(const DLTensor* x, const DLTensor* w, const DLTensor* b, const DLTensor* y,
                    int64_t key, int64_t act, float alpha, float beta, const char* name,
                    dnnl::stream& stream) {
  using tag = memory::format_tag;
  using dt = memory::data_type;
  const int64_t n = x->shape[0], h = x->shape[1], wd = x->shape[2], cin = x->shape[3],
                cout = y->shape[3];
  const float* weights = static_cast<const float*>(Data(w));  // 1 x O x I x 4 x 4
  std::vector<float> phase_out(static_cast<size_t>(n * h * wd * cout));
  for (int a = 0; a < 2; ++a) {
    for (int bb = 0; bb < 2; ++bb) {
      const int phase = 2 * a + bb;
      const Key k = LayerKey((key ^ (int64_t{phase + 1} << 56)) & ((int64_t{1} << 62) - 1), x);
      auto layer = TheCache().Get(k, name, [&](std::string* impl) {
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

// settings: kernel::Conv2dSettings (float), kernel::Conv2dQ8Settings (int8).
// kTransposed: a transposed convolution (float only), weights G x O/G x I/G x KH x KW as for
// a convolution (oneDNN's deconvolution takes them so, unflipped); the bottom/right pads are
// those of the convolution it transposes less the output padding.
template <bool kInt8, bool kTransposed = false>
void Conv2d(ffi::PackedArgs args, ffi::Any* /*ret*/) {
  static_assert(!(kInt8 && kTransposed), "no int8 transposed convolution");
  constexpr int kFixed = kInt8 ? 6 : 5;  // arguments without the residual
  using Settings = std::conditional_t<kInt8, kernel::Conv2dQ8Settings, kernel::Conv2dSettings>;
  const char* name = kInt8         ? "edgecv.dnnl.conv2d_q8"
                     : kTransposed ? "edgecv.dnnl.conv2d_transpose"
                                   : "edgecv.dnnl.conv2d";
  if (args.size() != kFixed && args.size() != kFixed + 1)
    TVM_FFI_THROW(ValueError) << name << ": expected " << kFixed << " or " << kFixed + 1
                              << " arguments, got " << args.size();
  const bool has_residual = args.size() == kFixed + 1;
  const kernel::Keyed<Settings> settings =
      kernel::ReadSettings<Settings>(args[args.size() - 2], name);
  const kernel::Conv2dQ8Settings s =
      kernel::AsQ8(settings.settings);  // float layers: every tensor float
  const kernel::Conv2dSettings& c = s.conv;
  kernel::CheckResidual(c.residual, has_residual, name);
  UseThreads();
  const LayerArgs a = ParseLayerArgs<kInt8>(args, name, 4, 5, s.input_signed);
  const DLTensor *x = a.x, *w = a.w, *w_scale = a.w_scale, *b = a.b;
  if (s.residual_kind != 0 && !has_residual)
    TVM_FFI_THROW(ValueError) << name << ": a quantised residual but no residual";
  const DLTensor* res =
      has_residual ? CheckQuantised(args[a.next], "residual", 4, s.residual_kind) : nullptr;
  const DLTensor* y = CheckQuantised(args[args.size() - 1], "output", 4, s.output_kind);
  if ((s.output_kind != 0 || s.residual_kind != 0) && c.dst_nchw)
    TVM_FFI_THROW(ValueError) << name << ": quantised outputs and residuals are NHWC";
  const int64_t key = settings.key;
  if (!kInt8 && !kTransposed && TheObserver().On()) TheObserver().Observe(name, key, x);
  // layouts of input and output: NHWC (between offloaded layers), NCHW (graph input/output)
  const bool src_nchw = c.src_nchw, dst_nchw = c.dst_nchw;
  const dims xd = NchwDims(x, src_nchw), yd = NchwDims(y, dst_nchw);
  const int64_t groups = c.groups, out_c = w->shape[0] * w->shape[1];
  if (groups != w->shape[0] || xd[1] != groups * w->shape[2] || yd[1] != out_c ||
      b->shape[0] != out_c || (w_scale != nullptr && w_scale->shape[0] != out_c) ||
      xd[0] != yd[0] || (res != nullptr && Dims(res) != Dims(y)))
    TVM_FFI_THROW(ValueError) << name << ": tensor shapes do not agree with the layer";
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
  auto layer = TheCache().Get(LayerKey(key, x), name, [&](std::string* impl) {
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

// settings: kernel::DenseSettings (float), kernel::DenseQ8Settings (int8).
template <bool kInt8>
void Dense(ffi::PackedArgs args, ffi::Any* /*ret*/) {
  constexpr int kArgs = kInt8 ? 6 : 5;
  using Settings = std::conditional_t<kInt8, kernel::DenseQ8Settings, kernel::DenseSettings>;
  const char* name = kInt8 ? "edgecv.dnnl.dense_q8" : "edgecv.dnnl.dense";
  if (args.size() != kArgs)
    TVM_FFI_THROW(ValueError) << name << ": expected " << kArgs << " arguments, got "
                              << args.size();
  const kernel::Keyed<Settings> settings = kernel::ReadSettings<Settings>(args[kArgs - 2], name);
  const kernel::DenseQ8Settings s =
      kernel::AsQ8(settings.settings);  // float layers: every tensor float
  const kernel::ActivationSettings& act = s.dense.act;
  UseThreads();
  const LayerArgs a = ParseLayerArgs<kInt8>(args, name, 2, 2, s.input_signed);
  const DLTensor *x = a.x, *w = a.w, *w_scale = a.w_scale, *b = a.b;
  const DLTensor* y = CheckQuantised(args[kArgs - 1], "output", 2, s.output_kind);
  if (x->shape[1] != w->shape[1] || y->shape[1] != w->shape[0] || b->shape[0] != w->shape[0] ||
      (w_scale != nullptr && w_scale->shape[0] != w->shape[0]) || y->shape[0] != x->shape[0])
    TVM_FFI_THROW(ValueError) << name << ": tensor shapes do not agree with the layer";
  const int64_t key = settings.key;
  if (!kInt8 && TheObserver().On()) TheObserver().Observe(name, key, x);
  dnnl::stream stream(Engine());
  auto layer = TheCache().Get(LayerKey(key, x), name, [&](std::string* impl) {
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

// settings: kernel::Pool2dSettings. NHWC float (or uint8/int8: max pooling of a quantised
// tensor keeps its scale).
void Pool2d(ffi::PackedArgs args, ffi::Any* /*ret*/) {
  const char* name = "edgecv.dnnl.pool2d";
  if (args.size() != 3)
    TVM_FFI_THROW(ValueError) << name << ": expected 3 arguments, got " << args.size();
  const kernel::Keyed<kernel::Pool2dSettings> settings =
      kernel::ReadSettings<kernel::Pool2dSettings>(args[1], name);
  const kernel::Pool2dSettings& s = settings.settings;
  if (s.kind < kernel::kMaxPool || s.kind > kernel::kAvgExcludePad)
    TVM_FFI_THROW(ValueError) << name << ": unknown pooling kind " << s.kind;
  const DLTensor* raw = args[0].cast<DLTensor*>();
  const int64_t kind = raw->dtype.bits == 8 ? (raw->dtype.code == kDLInt ? 2 : 1) : 0;
  if (kind != 0 && s.kind != kernel::kMaxPool)
    TVM_FFI_THROW(TypeError) << name << ": only max pooling takes a quantised input";
  const DLTensor* x = CheckQuantised(args[0], "input", 4, kind);
  const DLTensor* y = CheckQuantised(args[2], "output", 4, kind);
  const dims xd = NchwDims(x, false), yd = NchwDims(y, false);
  const dims window{s.window_h, s.window_w}, strides{s.stride_h, s.stride_w},
      pad_l{s.pad_top, s.pad_left}, pad_r{s.pad_bottom, s.pad_right};
  bool fits = xd[0] == yd[0] && xd[1] == yd[1];
  for (int i = 0; i < 2; ++i)
    fits = fits && window[i] >= 1 && strides[i] >= 1 && pad_l[i] >= 0 && pad_r[i] >= 0 &&
           (xd[2 + i] + pad_l[i] + pad_r[i] - window[i]) / strides[i] + 1 == yd[2 + i];
  if (!fits)
    TVM_FFI_THROW(ValueError) << name << ": tensor shapes do not agree with the pooling window";
  UseThreads();
  dnnl::stream stream(Engine());
  auto layer = TheCache().Get(LayerKey(settings.key, x), name, [&](std::string* impl) {
    using tag = memory::format_tag;
    auto l = std::make_shared<Layer>();
    l->src = memory::desc(xd, TypeOf(x), tag::nhwc);
    l->dst = memory::desc(yd, TypeOf(y), tag::nhwc);
    const auto alg = s.kind == kernel::kMaxPool ? dnnl::algorithm::pooling_max
                     : s.kind == kernel::kAvgIncludePad
                         ? dnnl::algorithm::pooling_avg_include_padding
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

// oneDNN reports failures as dnnl::error; TVM's VM wants ffi errors. Time is accounted
// per kernel, so that a benchmark can tell library time from TVM-generated code.
template <void (*F)(ffi::PackedArgs, ffi::Any*)>
void Guarded(const char* name, ffi::PackedArgs args, ffi::Any* ret) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    F(args, ret);
  } catch (const dnnl::error& e) {
    TVM_FFI_THROW(RuntimeError) << "oneDNN: " << e.what();
  }
  kernel::AccountCall(
      name,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

void RegisterDnnlKernels() {
  for (auto [name, fn] : {std::pair{"edgecv.dnnl.conv2d", &Guarded<Conv2d<false>>},
                          std::pair{"edgecv.dnnl.dense", &Guarded<Dense<false>>},
                          std::pair{"edgecv.dnnl.conv2d_transpose", &Guarded<Conv2d<false, true>>},
                          std::pair{"edgecv.dnnl.conv2d_q8", &Guarded<Conv2d<true>>},
                          std::pair{"edgecv.dnnl.dense_q8", &Guarded<Dense<true>>},
                          std::pair{"edgecv.dnnl.pool2d", &Guarded<Pool2d>}}) {
    ffi::Function::SetGlobal(
        name,
        ffi::Function::FromPacked([name = std::string(name), fn](ffi::PackedArgs a, ffi::Any* r) {
          fn(name.c_str(), a, r);
        }),
        true);
  }
}

void ClearDnnlCache() { TheCache().Clear(); }

void DnnlStartObserving(const std::map<int64_t, double>& ranges, int bins) {
  TheObserver().Start(ranges, bins);
}

std::map<int64_t, ObservedInput> DnnlStopObserving() { return TheObserver().Stop(); }

std::string DnnlIsa() {
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

int DnnlInt8WeightBits() { return WeightBits(); }

void DnnlSetInt8WeightBits(int bits) {
  if (bits != 0 && bits != 7 && bits != 8)
    ThrowInvalidInput("int8 weight bits must be 7, 8 or 0 (the CPU's choice)");
  if (bits == 8 && !VnniInt8())
    ThrowInvalidInput("8-bit int8 weights need VNNI, which oneDNN does not have here (" +
                      DnnlIsa() + "): pair sums would saturate");
  if (forced_weight_bits.exchange(bits) != bits) TheCache().Clear();
}

}  // namespace edgecv
