// oneDNN kernels called from compiled graphs (edgecv/compile/offload.py writes the calls):
//   edgecv.dnnl.conv2d(x, w, bias, [residual,] settings, out)   NHWC activations
//   edgecv.dnnl.dense(x, w, bias, settings, out)                 x [M, K], w [N, K]
// Weights and bias are graph constants already folded with batch norm at compile time.
// The settings (a shape of int64) carry the layer's attributes and a content key computed
// from weights, bias and attributes: primitives and weights reordered to oneDNN's preferred
// layout are cached under that key (and the input shape), so the same weights are packed
// once per process, whichever VM or address they come from.
#include <dlpack/dlpack.h>
#include <omp.h>
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>

#include "kernels_internal.h"

namespace edgecv {
namespace {

namespace ffi = tvm::ffi;
using dnnl::memory;
using dims = memory::dims;

constexpr int64_t kSettingsVersion = 1;
enum Activation : int64_t { kNone = 0, kRelu = 1, kClip = 2 };

float FloatBits(int64_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// oneDNN (Debian's build) runs on OpenMP. Other libraries in the process may have lowered
// the calling thread's OpenMP thread count (importing MXNet sets it to 1), so each call
// sets it: EDGECV_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this process may use.
int Threads() {
  static const int threads = [] {
    for (const char* var : {"EDGECV_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char* v = std::getenv(var);
      if (v != nullptr && std::atoi(v) > 0) return std::atoi(v);
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return omp_get_num_procs();
  }();
  return threads;
}

void UseThreads() {
  if (omp_get_max_threads() != Threads()) omp_set_num_threads(Threads());
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

const DLTensor* CheckTensor(const ffi::AnyView& arg, const char* what, int ndim) {
  const DLTensor* t = arg.cast<DLTensor*>();
  if (t->device.device_type != kDLCPU) TVM_FFI_THROW(ValueError) << "edgecv.dnnl: " << what << " is not in CPU memory";
  if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1)
    TVM_FFI_THROW(TypeError) << "edgecv.dnnl: " << what << " is not float32";
  if (t->ndim != ndim) TVM_FFI_THROW(ValueError) << "edgecv.dnnl: " << what << " has " << t->ndim << " dims, expected " << ndim;
  if (t->strides != nullptr) {  // compact row-major only
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (t->shape[i] != 1 && t->strides[i] != expect)
        TVM_FFI_THROW(ValueError) << "edgecv.dnnl: " << what << " is not a compact tensor";
      expect *= t->shape[i];
    }
  }
  return t;
}

void* Data(const DLTensor* t) { return static_cast<char*>(t->data) + t->byte_offset; }
dims Dims(const DLTensor* t) { return dims(t->shape, t->shape + t->ndim); }

// residual_order: 1 = add the residual, then activate; 2 = activate, then add.
// *residual_index: the position of the residual add among the post-ops.
dnnl::post_ops PostOps(int64_t act, float alpha, float beta, const memory::desc* residual, int64_t residual_order,
                       int* residual_index = nullptr) {
  dnnl::post_ops ops;
  const auto add = [&] {
    if (residual == nullptr) return;
    if (residual_index != nullptr) *residual_index = ops.len();
    ops.append_binary(dnnl::algorithm::binary_add, *residual);
  };
  if (residual_order != 2) add();
  if (act == kRelu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, alpha, 0.f);
  else if (act == kClip) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, alpha, beta);
  else if (act != kNone) TVM_FFI_THROW(ValueError) << "edgecv.dnnl: unknown activation " << act;
  if (residual_order == 2) add();
  return ops;
}

// One layer, ready to run: its primitive and its weights in the primitive's layout.
struct Layer {
  dnnl::primitive primitive;
  memory::desc src, dst, residual;
  int residual_index = 0;  // position of the residual add among the post-ops
  // set when the caller's tensors are in another layout than the primitive's (reordered)
  std::optional<memory::desc> user_src, user_dst;
  memory weights, bias;
};

using Key = std::tuple<int64_t, std::vector<int64_t>>;  // content key, input shape

class Cache {
 public:
  template <typename Make>
  std::shared_ptr<const Layer> Get(const Key& key, Make make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = layers_.find(key);
      if (it != layers_.end()) return it->second;
    }
    std::shared_ptr<const Layer> layer = make();  // outside the lock: packing takes a while
    std::lock_guard<std::mutex> lock(mutex_);
    return layers_.emplace(key, std::move(layer)).first->second;
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

// Reorders user weights (plain layout `tag`) into the layout the primitive chose.
memory Pack(const memory::desc& wanted, const dims& shape, memory::format_tag tag, void* data,
            dnnl::stream& stream) {
  memory user({shape, memory::data_type::f32, tag}, Engine(), data);
  memory packed(wanted, Engine());
  dnnl::reorder(user, packed).execute(stream, user, packed);
  return packed;
}

memory CopyBias(const DLTensor* b, dnnl::stream& stream) {
  memory user({Dims(b), memory::data_type::f32, memory::format_tag::x}, Engine(), Data(b));
  memory own({Dims(b), memory::data_type::f32, memory::format_tag::x}, Engine());
  dnnl::reorder(user, own).execute(stream, user, own);
  return own;
}

void Run(const Layer& layer, dnnl::stream& stream, void* src, void* dst, void* residual) {
  // user layouts the primitive does not take directly go through a reorder
  memory user_src(layer.user_src ? *layer.user_src : layer.src, Engine(), src);
  memory user_dst(layer.user_dst ? *layer.user_dst : layer.dst, Engine(), dst);
  memory src_mem = user_src, dst_mem = user_dst;
  if (layer.user_src) {
    src_mem = memory(layer.src, Engine());
    dnnl::reorder(user_src, src_mem).execute(stream, user_src, src_mem);
  }
  if (layer.user_dst) dst_mem = memory(layer.dst, Engine());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, layer.weights}, {DNNL_ARG_BIAS, layer.bias}, {DNNL_ARG_DST, dst_mem}};
  if (residual != nullptr)
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(layer.residual_index) | DNNL_ARG_SRC_1, memory(layer.residual, Engine(), residual));
  layer.primitive.execute(stream, args);
  if (layer.user_dst) dnnl::reorder(dst_mem, user_dst).execute(stream, dst_mem, user_dst);
  stream.wait();
}

void Conv2d(ffi::PackedArgs args, ffi::Any* /*ret*/) {
  if (args.size() != 5 && args.size() != 6)
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl.conv2d: expected 5 or 6 arguments, got " << args.size();
  const bool has_residual = args.size() == 6;
  const ffi::Shape s = args[args.size() - 2].cast<ffi::Shape>();
  if (s.size() != 17 || s[0] != kSettingsVersion)
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl.conv2d: settings of another edgecv version (recompile the artifact)";
  if ((s[13] != 0) != has_residual || s[13] < 0 || s[13] > 2) TVM_FFI_THROW(ValueError) << "edgecv.dnnl.conv2d: residual argument mismatch";
  UseThreads();
  const DLTensor* x = CheckTensor(args[0], "input", 4);
  const DLTensor* w = CheckTensor(args[1], "weights", 5);
  const DLTensor* b = CheckTensor(args[2], "bias", 1);
  const DLTensor* res = has_residual ? CheckTensor(args[3], "residual", 4) : nullptr;
  const DLTensor* y = CheckTensor(args[args.size() - 1], "output", 4);
  // layouts of input and output: 0 NHWC (between offloaded layers), 1 NCHW (graph input/output)
  const bool src_nchw = s[14] == 1, dst_nchw = s[15] == 1;
  const auto nchw = [](const DLTensor* t, bool is_nchw) {
    return is_nchw ? Dims(t) : dims{t->shape[0], t->shape[3], t->shape[1], t->shape[2]};
  };
  const dims xd = nchw(x, src_nchw), yd = nchw(y, dst_nchw);
  const int64_t groups = s[9], out_c = w->shape[0] * w->shape[1];
  if (groups != w->shape[0] || xd[1] != groups * w->shape[2] || yd[1] != out_c || b->shape[0] != out_c ||
      xd[0] != yd[0] || (res != nullptr && Dims(res) != Dims(y)))
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl.conv2d: tensor shapes do not agree with the layer";
  const dims strides{s[1], s[2]}, pad_l{s[3], s[4]}, pad_r{s[5], s[6]}, dilation{s[7] - 1, s[8] - 1};
  const float alpha = FloatBits(s[11]), beta = FloatBits(s[12]);
  dnnl::stream stream(Engine());
  const Key key{s[16], Dims(x)};
  auto layer = TheCache().Get(key, [&] {
    auto l = std::make_shared<Layer>();
    using tag = memory::format_tag;
    l->src = memory::desc(xd, memory::data_type::f32, src_nchw ? tag::nchw : tag::nhwc);
    l->dst = memory::desc(yd, memory::data_type::f32, dst_nchw ? tag::nchw : tag::nhwc);
    const bool grouped = groups > 1;
    const dims wd = grouped ? dims{groups, w->shape[1], w->shape[2], w->shape[3], w->shape[4]}
                            : dims{w->shape[1], w->shape[2], w->shape[3], w->shape[4]};
    const memory::desc wany(wd, memory::data_type::f32, memory::format_tag::any);
    const memory::desc bd({out_c}, memory::data_type::f32, memory::format_tag::x);
    if (res != nullptr) l->residual = l->dst;
    dnnl::primitive_attr attr;
    attr.set_post_ops(PostOps(s[10], alpha, beta, res != nullptr ? &l->residual : nullptr, s[13], &l->residual_index));
    const auto describe = [&] {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        l->src, wany, bd, l->dst, strides, dilation, pad_l, pad_r);
      return dnnl::convolution_forward::primitive_desc(d, attr, Engine());
    };
    dnnl::convolution_forward::primitive_desc pd = describe();
    if ((src_nchw || dst_nchw) && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
      // no fast kernel for mixed layouts (NCHW in, NHWC out): NHWC with reorders around it
      if (src_nchw) l->user_src = l->src;
      if (dst_nchw) l->user_dst = l->dst;
      l->src = memory::desc(xd, memory::data_type::f32, tag::nhwc);
      l->dst = memory::desc(yd, memory::data_type::f32, tag::nhwc);
      pd = describe();
    }
    l->primitive = dnnl::convolution_forward(pd);
    l->weights = Pack(pd.weights_desc(), wd, grouped ? memory::format_tag::goihw : memory::format_tag::oihw,
                      Data(w), stream);
    l->bias = CopyBias(b, stream);
    stream.wait();
    return std::shared_ptr<const Layer>(std::move(l));
  });
  Run(*layer, stream, Data(x), Data(y), res != nullptr ? Data(res) : nullptr);
}

void Dense(ffi::PackedArgs args, ffi::Any* /*ret*/) {
  if (args.size() != 5) TVM_FFI_THROW(ValueError) << "edgecv.dnnl.dense: expected 5 arguments, got " << args.size();
  const ffi::Shape s = args[3].cast<ffi::Shape>();
  if (s.size() != 5 || s[0] != kSettingsVersion)
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl.dense: settings of another edgecv version (recompile the artifact)";
  UseThreads();
  const DLTensor* x = CheckTensor(args[0], "input", 2);
  const DLTensor* w = CheckTensor(args[1], "weights", 2);
  const DLTensor* b = CheckTensor(args[2], "bias", 1);
  const DLTensor* y = CheckTensor(args[4], "output", 2);
  if (x->shape[1] != w->shape[1] || y->shape[1] != w->shape[0] || b->shape[0] != w->shape[0] ||
      y->shape[0] != x->shape[0])
    TVM_FFI_THROW(ValueError) << "edgecv.dnnl.dense: tensor shapes do not agree with the layer";
  dnnl::stream stream(Engine());
  auto layer = TheCache().Get(Key{s[4], Dims(x)}, [&] {
    auto l = std::make_shared<Layer>();
    l->src = memory::desc(Dims(x), memory::data_type::f32, memory::format_tag::nc);
    l->dst = memory::desc(Dims(y), memory::data_type::f32, memory::format_tag::nc);
    const memory::desc wany(Dims(w), memory::data_type::f32, memory::format_tag::any);
    const memory::desc bd(Dims(b), memory::data_type::f32, memory::format_tag::x);
    dnnl::primitive_attr attr;
    attr.set_post_ops(PostOps(s[1], FloatBits(s[2]), FloatBits(s[3]), nullptr, 0));
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, l->src, wany, bd, l->dst);
    dnnl::inner_product_forward::primitive_desc pd(d, attr, Engine());
    l->primitive = dnnl::inner_product_forward(pd);
    l->weights = Pack(pd.weights_desc(), Dims(w), memory::format_tag::oi, Data(w), stream);
    l->bias = CopyBias(b, stream);
    stream.wait();
    return std::shared_ptr<const Layer>(std::move(l));
  });
  Run(*layer, stream, Data(x), Data(y), nullptr);
}

std::mutex stats_mutex;
std::map<std::string, KernelStat> stats;

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
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(stats_mutex);
  KernelStat& st = stats[name];
  st.calls += 1;
  st.total_ms += ms;
}

}  // namespace

void RegisterDnnlKernels() {
  for (auto [name, fn] : {std::pair{"edgecv.dnnl.conv2d", &Guarded<Conv2d>}, std::pair{"edgecv.dnnl.dense", &Guarded<Dense>}}) {
    ffi::Function::SetGlobal(
        name, ffi::Function::FromPacked([name = std::string(name), fn](ffi::PackedArgs a, ffi::Any* r) { fn(name.c_str(), a, r); }),
        true);
  }
}

std::map<std::string, KernelStat> DnnlStats(bool reset) {
  std::lock_guard<std::mutex> lock(stats_mutex);
  std::map<std::string, KernelStat> out = stats;
  if (reset) stats.clear();
  return out;
}

void ClearDnnlCache() { TheCache().Clear(); }

}  // namespace edgecv
