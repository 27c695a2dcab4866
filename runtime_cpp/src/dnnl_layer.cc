#include "dnnl_layer.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <unordered_map>

namespace edgecv {
namespace kernel {
namespace onednn {

namespace {

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

// The input of an int8 layer: float (quantised on the way in) or, when the previous int8
// layer wrote it already quantised with this layer's scale, uint8/int8 taken as is.
const TensorView* CheckInput(const TensorView& x, const char* name, int ndim, bool int8_layer,
                             bool src_signed) {
  if (!int8_layer || x.dtype.bits != 8) return CheckTensor(x, "input", ndim);
  if ((x.dtype.code == kInt) != src_signed)
    throw DataTypeError(std::string(name) + ": input is " +
                        (x.dtype.code == kInt ? "int8" : "uint8") +
                        " but the layer was calibrated for " + (src_signed ? "int8" : "uint8"));
  return CheckTensor(x, "input", ndim, src_signed ? kInt : kUInt, 8);
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

}  // namespace

void UseThreads() {
  if (omp_get_max_threads() != Threads()) omp_set_num_threads(Threads());
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::post_ops PostOps(int64_t act, float alpha, float beta, const memory::desc* residual,
                       int64_t residual_order, int* residual_index) {
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
    ThrowInvalidArtifact("edgecv.dnnl: unknown activation " + std::to_string(act));
  if (residual_order == 2) add();
  return ops;
}

LayerCache<const Layer>& Layers() {
  static LayerCache<const Layer> cache;
  return cache;
}

void Describe(const Layer& l, const std::string& impl, KernelLayer* log) {
  log->implementation = impl;
  log->src_type = TypeName(l.src.data_type());
  log->weights_type = l.weights ? TypeName(l.weights.get_desc().data_type()) : "none";
  log->dst_type = TypeName(l.dst.data_type());
  log->residual_type = l.residual.is_zero() ? "none" : TypeName(l.residual.data_type());
  log->weight_bits = l.weight_bits;
}

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

std::vector<float> Floats(const TensorView* t) {
  const float* p = static_cast<const float*>(Data(t));
  return std::vector<float>(p, p + Count(t));
}

dnnl::reorder MakeReorder(const memory::desc& from, const memory::desc& to, float scale) {
  dnnl::primitive_attr attr;
  if (scale != 0.f) attr.set_output_scales(0, {scale});
  return dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), from, Engine(), to, attr));
}

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

memory::data_type TypeOf(const TensorView* t) {
  if (t->dtype.bits == 8)
    return t->dtype.code == kInt ? memory::data_type::s8 : memory::data_type::u8;
  return memory::data_type::f32;
}

dims NchwDims(const TensorView* t, bool is_nchw) {
  return is_nchw ? Dims(t) : dims{t->shape[0], t->shape[3], t->shape[1], t->shape[2]};
}

const TensorView* CheckQuantised(const TensorView& t, const char* what, int ndim, int64_t kind) {
  if (kind < 0 || kind > 2)  // 3 (uint8 stored as int8) is XNNPACK's only
    ThrowInvalidArtifact(std::string("edgecv.dnnl: unknown ") + what + " kind " +
                         std::to_string(kind));
  if (kind == 0) return CheckTensor(t, what, ndim);
  return CheckTensor(t, what, ndim, kind == 2 ? kInt : kUInt, 8);
}

LayerArgs CheckLayerArgs(const LayerTensors& t, const char* name, bool int8, int x_ndim, int w_ndim,
                         bool src_signed) {
  LayerArgs a{};
  a.x = CheckInput(t.x, name, x_ndim, int8, src_signed);
  a.w = int8 ? CheckTensor(t.w, "weights", w_ndim, kInt, 8) : CheckTensor(t.w, "weights", w_ndim);
  a.w_scale = int8 ? CheckTensor(*t.w_scale, "weight scales", 1) : nullptr;
  a.b = CheckTensor(t.bias, "bias", 1);
  return a;
}

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
