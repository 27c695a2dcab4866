// What the kernel-library wrappers (kernels_dnnl.cc, kernels_xnnpack.cc) share: reading the
// layer settings (kernel_abi.h), argument checks, the thread count, the activation, and
// bookkeeping.
#pragma once

#include <dlpack/dlpack.h>
#include <sched.h>

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "edgecv/error.h"
#include "edgecv/kernels.h"
#include "kernel_abi.h"

namespace edgecv {
namespace kernel {

// Threads for the libraries: EDGECV_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this
// process may use.
inline int Threads() {
  static const int threads = [] {
    for (const char* var : {"EDGECV_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char* v = std::getenv(var);
      if (v != nullptr && std::atoi(v) > 0) return std::atoi(v);
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return threads;
}

// A layer's settings (the shape argument of the call) as record T of kernel_abi.h; another
// version or length: a ValueError that says so.
template <typename T>
Keyed<T> ReadSettings(const tvm::ffi::AnyView& arg, const char* kernel) {
  const tvm::ffi::Shape s = arg.cast<tvm::ffi::Shape>();
  try {
    return DecodeSettings<T>(s.data(), s.size(), kernel);
  } catch (const Error& e) {
    TVM_FFI_THROW(ValueError) << e.what();
  }
}

// A conv's residual setting (0 none, 1 add then activate, 2 activate then add) against the
// arguments it was called with.
inline void CheckResidual(int64_t order, bool has_residual, const char* kernel) {
  if ((order != 0) != has_residual || order < 0 || order > 2)
    TVM_FFI_THROW(ValueError) << kernel << ": residual argument mismatch";
}

// A CPU tensor of `ndim` dims, compact row-major, of the given type; else an error naming it.
inline const DLTensor* CheckTensor(const tvm::ffi::AnyView& arg, const char* what, int ndim,
                                   DLDataTypeCode code = kDLFloat, int bits = 32) {
  const DLTensor* t = arg.cast<DLTensor*>();
  if (t->device.device_type != kDLCPU)
    TVM_FFI_THROW(ValueError) << "edgecv kernels: " << what << " is not in CPU memory";
  if (t->dtype.code != code || t->dtype.bits != bits || t->dtype.lanes != 1)
    TVM_FFI_THROW(TypeError) << "edgecv kernels: " << what << " is not "
                             << (code == kDLFloat  ? "float"
                                 : code == kDLUInt ? "uint"
                                                   : "int")
                             << bits;
  if (t->ndim != ndim)
    TVM_FFI_THROW(ValueError) << "edgecv kernels: " << what << " has " << t->ndim
                              << " dims, expected " << ndim;
  if (t->strides != nullptr) {
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (t->shape[i] != 1 && t->strides[i] != expect)
        TVM_FFI_THROW(ValueError) << "edgecv kernels: " << what << " is not a compact tensor";
      expect *= t->shape[i];
    }
  }
  return t;
}

inline void* Data(const DLTensor* t) { return static_cast<char*>(t->data) + t->byte_offset; }
inline std::vector<int64_t> Dims(const DLTensor* t) {
  return std::vector<int64_t>(t->shape, t->shape + t->ndim);
}
inline int64_t Count(const DLTensor* t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i) n *= t->shape[i];
  return n;
}

// The layer's activation as oneDNN defines it: ReLU with slope alpha below 0 (leaky when
// alpha != 0), clip to [alpha, beta].
inline float Activate(float v, int64_t act, float alpha, float beta) {
  if (act == kRelu) return v > 0.f ? v : alpha * v;
  if (act == kClip) return std::min(std::max(v, alpha), beta);
  return v;
}

// The activation with the residual added before it (order 1: ResNet) or after it (order 2:
// Darknet); order 0: no residual.
inline float ActivateResidual(float v, float residual, int64_t order, int64_t act, float alpha,
                              float beta) {
  if (order == 1) v += residual;
  v = Activate(v, act, alpha, beta);
  if (order == 2) v += residual;
  return v;
}

// Bookkeeping shared by the libraries (kernels.cc): time per kernel function, the log of
// layers built.
void AccountCall(const char* kernel, double ms);
void LogLayer(KernelLayer layer);

}  // namespace kernel
}  // namespace edgecv
