// The kernel functions as TVM sees them: the one place (with engine_tvm.cc) that knows tvm-ffi.
// Each registered function unpacks its packed arguments into views (kernel_view.h), decodes
// its settings (kernel_abi.h), calls the library's body (kernel_functions.h), accounts the time,
// and reports the body's edgecv::Error as the TVM error kind the VM and Python expect:
// DataTypeError as TypeError, kRuntime as RuntimeError, the others as ValueError.
//   edgecv.<lib>.conv2d(x, w, bias, [residual,] settings, out)   NHWC activations
//   edgecv.<lib>.conv2d_transpose(x, w, bias, [residual,] settings, out)
//   edgecv.<lib>.dense(x, w, bias, settings, out)                 x [M, K], w [N, K]
//   edgecv.<lib>.conv2d_q8 / dense_q8: the same with the int8 weights' scales after w
//   edgecv.dnnl.pool2d(x, settings, out)                          NHWC
#include <dlpack/dlpack.h>

#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <chrono>
#include <mutex>
#include <string>
#include <utility>

#include "edgecv/error.h"
#include "edgecv/kernels.h"
#include "kernel_functions.h"
#include "kernel_library.h"

namespace edgecv {
namespace {

namespace ffi = tvm::ffi;
using kernel::Keyed;
using kernel::LayerTensors;
using kernel::TensorView;

static_assert(int{kernel::kInt} == int{kDLInt} && int{kernel::kUInt} == int{kDLUInt} &&
                  int{kernel::kFloat} == int{kDLFloat},
              "kernel_view.h's type codes are DLPack's");

TensorView View(const ffi::AnyView& arg) {
  const DLTensor* t = arg.cast<DLTensor*>();
  TensorView v;
  v.data = static_cast<char*>(t->data) + t->byte_offset;
  v.shape = t->shape;
  v.strides = t->strides;
  v.ndim = t->ndim;
  v.dtype = {t->dtype.code, t->dtype.bits, t->dtype.lanes};
  v.on_cpu = t->device.device_type == kDLCPU;
  return v;
}

// A layer's settings (the shape argument of the call) as record T.
template <typename T>
Keyed<T> Settings(const ffi::AnyView& arg, const char* kernel) {
  const ffi::Shape s = arg.cast<ffi::Shape>();
  return kernel::DecodeSettings<T>(s.data(), s.size(), kernel);
}

void CheckArgCount(const char* name, const ffi::PackedArgs& args, int fixed, bool optional_one) {
  if (args.size() == fixed || (optional_one && args.size() == fixed + 1)) return;
  if (optional_one)
    TVM_FFI_THROW(ValueError) << name << ": expected " << fixed << " or " << fixed + 1
                              << " arguments, got " << args.size();
  TVM_FFI_THROW(ValueError) << name << ": expected " << fixed << " arguments, got " << args.size();
}

// Runs one call's body: timed per kernel function (so that a benchmark can tell library time
// from TVM-generated code), edgecv errors reported as TVM errors.
template <typename Body>
void Call(const char* name, Body&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    body();
  } catch (const kernel::DataTypeError& e) {
    TVM_FFI_THROW(TypeError) << e.what();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kRuntime) TVM_FFI_THROW(RuntimeError) << e.what();
    TVM_FFI_THROW(ValueError) << e.what();
  }
  kernel::AccountCall(
      name,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

enum class Weights { kFloat, kInt8 };      // int8: the weights' scales follow them
enum class Residual { kNone, kOptional };  // conv layers may add a residual

// call: void(ffi::PackedArgs, ffi::Any*)
template <typename PackedCall>
void Register(const char* name, PackedCall call) {
  ffi::Function::SetGlobal(name, ffi::Function::FromPacked(std::move(call)), true);
}

// conv2d / conv2d_transpose / dense (float or int8): (x, w, [w_scale,] bias, [residual,]
// settings, out)
template <typename S>
void RegisterLayer(const char* name,
                   void (*body)(const char*, const Keyed<S>&, const LayerTensors&), Weights weights,
                   Residual residual) {
  Register(name, [name, body, weights, residual](ffi::PackedArgs args, ffi::Any* /*ret*/) {
    Call(name, [&] {
      const int fixed = weights == Weights::kInt8 ? 6 : 5;  // without a residual
      CheckArgCount(name, args, fixed, residual == Residual::kOptional);
      const Keyed<S> settings = Settings<S>(args[args.size() - 2], name);
      LayerTensors t;
      int i = 0;
      t.x = View(args[i++]);
      t.w = View(args[i++]);
      if (weights == Weights::kInt8) t.w_scale = View(args[i++]);
      t.bias = View(args[i++]);
      if (args.size() == fixed + 1) t.residual = View(args[i++]);
      t.y = View(args[args.size() - 1]);
      body(name, settings, t);
    });
  });
}

// pool2d: (x, settings, out)
void RegisterPool(const char* name, void (*body)(const char*, const Keyed<kernel::Pool2dSettings>&,
                                                 const TensorView&, const TensorView&)) {
  Register(name, [name, body](ffi::PackedArgs args, ffi::Any* /*ret*/) {
    Call(name, [&] {
      CheckArgCount(name, args, 3, false);
      const auto settings = Settings<kernel::Pool2dSettings>(args[1], name);
      body(name, settings, View(args[0]), View(args[2]));
    });
  });
}

}  // namespace

void RegisterKernels() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef EDGECV_WITH_DNNL
    namespace onednn = kernel::onednn;
    RegisterLayer("edgecv.dnnl.conv2d", &onednn::Conv2d, Weights::kFloat, Residual::kOptional);
    RegisterLayer("edgecv.dnnl.dense", &onednn::Dense, Weights::kFloat, Residual::kNone);
    RegisterLayer("edgecv.dnnl.conv2d_transpose", &onednn::Conv2dTranspose, Weights::kFloat,
                  Residual::kOptional);
    RegisterLayer("edgecv.dnnl.conv2d_q8", &onednn::Conv2dQ8, Weights::kInt8, Residual::kOptional);
    RegisterLayer("edgecv.dnnl.dense_q8", &onednn::DenseQ8, Weights::kInt8, Residual::kNone);
    RegisterPool("edgecv.dnnl.pool2d", &onednn::Pool2d);
#endif
#ifdef EDGECV_WITH_XNNPACK
    namespace xnnpack = kernel::xnnpack;
    RegisterLayer("edgecv.xnnpack.conv2d", &xnnpack::Conv2d, Weights::kFloat, Residual::kOptional);
    RegisterLayer("edgecv.xnnpack.conv2d_transpose", &xnnpack::Conv2dTranspose, Weights::kFloat,
                  Residual::kOptional);
    RegisterLayer("edgecv.xnnpack.dense", &xnnpack::Dense, Weights::kFloat, Residual::kNone);
    RegisterLayer("edgecv.xnnpack.conv2d_q8", &xnnpack::Conv2dQ8, Weights::kInt8,
                  Residual::kOptional);
    RegisterLayer("edgecv.xnnpack.dense_q8", &xnnpack::DenseQ8, Weights::kInt8, Residual::kNone);
#endif
  });
}

}  // namespace edgecv
