// What the oneDNN kernel bodies (dnnl_*.cc) share: the engine and thread count, a layer as
// oneDNN runs it (primitive, weights in its layout, reorders at its edges) and the cache of
// them, packing and running, the checks of the tensors a layer is called with, and oneDNN's
// errors as edgecv's. Declarations of the parts in their own files: calibration
// (dnnl_observer.cc), Winograd (dnnl_winograd.cc), the CPU's instruction set (dnnl_isa.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <vector>

#include "edgecv/error.h"
#include "kernel_functions.h"
#include "kernel_library.h"
#include "kernel_view.h"
#include "layer_cache.h"
#include "winograd.h"

namespace edgecv {
namespace kernel {
namespace onednn {

using dnnl::memory;
using dims = memory::dims;  // a vector of int64_t, as Dims() returns

// oneDNN (Debian's build) runs on OpenMP. Other libraries in the process may have lowered
// the calling thread's OpenMP thread count (importing MXNet sets it to 1), so each call
// sets it.
void UseThreads();

dnnl::engine& Engine();

// residual_order: 1 = add the residual, then activate; 2 = activate, then add.
// *residual_index: the position of the residual add among the post-ops.
dnnl::post_ops PostOps(int64_t act, float alpha, float beta, const memory::desc* residual,
                       int64_t residual_order, int* residual_index = nullptr);

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

LayerCache<const Layer>& Layers();

// The layer log's entry for a layer oneDNN built with implementation `impl`.
void Describe(const Layer& l, const std::string& impl, KernelLayer* log);

// The layer cached under (content key, x), else the one make(&impl) builds (impl: the name
// of oneDNN's implementation, for the layer log).
template <typename Make>
std::shared_ptr<const Layer> CachedLayer(int64_t key, const TensorView* x, const char* kernel,
                                         Make make) {
  return Layers().Get(LayerKey(key, x), kernel, [&](KernelLayer* log) {
    std::string impl;
    std::shared_ptr<const Layer> layer = make(&impl);
    Describe(*layer, impl, log);
    return layer;
  });
}

// Reorders user weights (plain layout `tag`) into the layout the primitive chose.
memory Pack(const memory::desc& wanted, const dims& shape, memory::data_type type,
            memory::format_tag tag, void* data, dnnl::stream& stream);
memory CopyVector(const std::vector<float>& v);
std::vector<float> Floats(const TensorView* t);

// A reorder from the caller's tensor to the primitive's (scale: multiply on the way, for
// quantising float input to int8; 0: none).
dnnl::reorder MakeReorder(const memory::desc& from, const memory::desc& to, float scale);

// Memory of this thread's scratch buffer `slot` (0 or 1), reused across calls.
memory ScratchMemory(const memory::desc& d, int slot);

void Run(const Layer& layer, dnnl::stream& stream, void* src, void* dst, void* residual);

memory::data_type TypeOf(const TensorView* t);

// A 4-d tensor's dims in oneDNN's order (N, C, H, W), from NCHW or NHWC.
dims NchwDims(const TensorView* t, bool is_nchw);

// A tensor of the kind the settings say: 0 float, 1 uint8, 2 int8.
const TensorView* CheckQuantised(const TensorView& t, const char* what, int ndim, int64_t kind);

// The tensors every layer starts with, checked: input, weights (int8 ones followed by their
// per-channel scales), bias.
struct LayerArgs {
  const TensorView *x, *w, *w_scale, *b;
};
LayerArgs CheckLayerArgs(const LayerTensors& t, const char* name, bool int8, int x_ndim, int w_ndim,
                         bool src_signed);

// Runs f, reporting oneDNN's failures (dnnl::error) as edgecv's runtime errors.
template <typename F>
void Guarded(F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw Error(ErrorKind::kRuntime, std::string("oneDNN: ") + e.what());
  }
}

// Calibration (dnnl_observer.cc): while observing, float layers record their input's
// statistics under their content key.
bool Observing();
void Observe(const char* kernel, int64_t key, const TensorView* x);

// Winograd (dnnl_winograd.cc).
bool OwnWinogradAllowed();
std::optional<dnnl::convolution_forward::primitive_desc> WinogradDesc(
    const dims& xd, const dims& yd, const memory::desc& weights, const memory::desc& bias,
    const dims& pad_l, const dims& pad_r);
void RunWinograd(const Layer& l, dnnl::stream& stream, void* src, float* dst,
                 const float* residual);

// The CPU (dnnl_isa.cc): whether oneDNN multiplies uint8 x int8 exactly here (VNNI), and the
// bits of the int8 weights it computes with (see dnnl_int8.h).
bool VnniInt8();
int WeightBits();

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
