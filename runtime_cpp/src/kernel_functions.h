// The kernel functions compiled graphs call by name (edgecv/compile/offload.py writes the
// calls), as plain functions: tensors as views (kernel_view.h), settings as decoded records
// (kernel_abi.h), errors as edgecv::Error. kernels_ffi.cc unpacks a call's tvm-ffi arguments
// into these and registers them under their names, which it passes in (for messages and the
// layer log). Defined only for the libraries the runtime is built with (EDGECV_WITH_DNNL,
// EDGECV_WITH_XNNPACK).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "edgecv/kernels.h"
#include "kernel_abi.h"
#include "kernel_view.h"

namespace edgecv {
namespace kernel {

// The tensors of a conv2d / conv2d_transpose / dense call, in the order compiled graphs pass
// them: (x, w, [w_scale,] bias, [residual,] settings, out); w_scale: the per-output-channel
// scales of int8 weights.
struct LayerTensors {
  TensorView x, w;
  std::optional<TensorView> w_scale;
  TensorView bias;
  std::optional<TensorView> residual;
  TensorView y;
};

// oneDNN (kernels in dnnl_*.cc): edgecv.dnnl.*
namespace onednn {
void Conv2d(const char* name, const Keyed<Conv2dSettings>& settings, const LayerTensors& t);
void Conv2dTranspose(const char* name, const Keyed<Conv2dSettings>& settings,
                     const LayerTensors& t);
void Conv2dQ8(const char* name, const Keyed<Conv2dQ8Settings>& settings, const LayerTensors& t);
void Dense(const char* name, const Keyed<DenseSettings>& settings, const LayerTensors& t);
void DenseQ8(const char* name, const Keyed<DenseQ8Settings>& settings, const LayerTensors& t);
void Pool2d(const char* name, const Keyed<Pool2dSettings>& settings, const TensorView& x,
            const TensorView& y);

// What kernels.h exposes of oneDNN.
void ClearCache();
void StartObserving(const std::map<int64_t, double>& ranges, int bins);
std::map<int64_t, ObservedInput> StopObserving();
std::string Isa();
int Int8WeightBits();
void SetInt8WeightBits(int bits);
}  // namespace onednn

// XNNPACK (kernels_xnnpack.cc: float; xnnpack_int8.cc: int8): edgecv.xnnpack.*
namespace xnnpack {
void Conv2d(const char* name, const Keyed<Conv2dSettings>& settings, const LayerTensors& t);
void Conv2dTranspose(const char* name, const Keyed<Conv2dSettings>& settings,
                     const LayerTensors& t);
void Conv2dQ8(const char* name, const Keyed<Conv2dQ8Settings>& settings, const LayerTensors& t);
void Dense(const char* name, const Keyed<DenseSettings>& settings, const LayerTensors& t);
void DenseQ8(const char* name, const Keyed<DenseQ8Settings>& settings, const LayerTensors& t);
void ClearCache();
}  // namespace xnnpack

}  // namespace kernel
}  // namespace edgecv
