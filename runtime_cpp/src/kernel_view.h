// The tensors a kernel function is called with, as plain views: no TVM in here. kernels_ffi.cc
// turns the tvm-ffi arguments of a call into these; the kernel bodies (oneDNN, XNNPACK) check
// and read them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edgecv/error.h"

namespace edgecv {
namespace kernel {

// Element type codes, the values DLPack gives them.
enum DTypeCode : uint8_t { kInt = 0, kUInt = 1, kFloat = 2 };

struct DType {
  uint8_t code = kFloat;
  uint8_t bits = 32;
  uint16_t lanes = 1;
};

// A tensor the caller owns, valid for the call.
struct TensorView {
  void* data = nullptr;  // the first element
  const int64_t* shape = nullptr;
  const int64_t* strides = nullptr;  // in elements; nullptr: compact row-major
  int ndim = 0;
  DType dtype;
  bool on_cpu = true;
};

// A tensor of another element type than the kernel takes: bad input, which the tvm-ffi layer
// reports as a TypeError (other kInvalidInput / kInvalidArtifact errors as a ValueError,
// kRuntime ones as a RuntimeError).
class DataTypeError : public Error {
 public:
  explicit DataTypeError(const std::string& message) : Error(ErrorKind::kInvalidInput, message) {}
};

// A CPU tensor of `ndim` dims, compact row-major, of the given type; else an error naming it.
inline const TensorView* CheckTensor(const TensorView& t, const char* what, int ndim,
                                     DTypeCode code = kFloat, int bits = 32) {
  const std::string prefix = std::string("edgecv kernels: ") + what;
  if (!t.on_cpu) ThrowInvalidInput(prefix + " is not in CPU memory");
  if (t.dtype.code != code || t.dtype.bits != bits || t.dtype.lanes != 1)
    throw DataTypeError(prefix + " is not " +
                        (code == kFloat  ? "float"
                         : code == kUInt ? "uint"
                                         : "int") +
                        std::to_string(bits));
  if (t.ndim != ndim)
    ThrowInvalidInput(prefix + " has " + std::to_string(t.ndim) + " dims, expected " +
                      std::to_string(ndim));
  if (t.strides != nullptr) {
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (t.shape[i] != 1 && t.strides[i] != expect)
        ThrowInvalidInput(prefix + " is not a compact tensor");
      expect *= t.shape[i];
    }
  }
  return &t;
}

inline void* Data(const TensorView* t) { return t->data; }
inline std::vector<int64_t> Dims(const TensorView* t) {
  return std::vector<int64_t>(t->shape, t->shape + t->ndim);
}
inline int64_t Count(const TensorView* t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i) n *= t->shape[i];
  return n;
}

// A conv's residual setting (0 none, 1 add then activate, 2 activate then add) against the
// arguments it was called with.
inline void CheckResidual(int64_t order, bool has_residual, const char* kernel) {
  if ((order != 0) != has_residual || order < 0 || order > 2)
    ThrowInvalidInput(std::string(kernel) + ": residual argument mismatch");
}

}  // namespace kernel
}  // namespace edgecv
