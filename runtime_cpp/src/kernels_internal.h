// Registration hooks of the kernel libraries compiled into this runtime (see kernels.h).
#pragma once

#include <map>
#include <string>

#include "edgecv/kernels.h"

namespace edgecv {

#ifdef EDGECV_WITH_DNNL
void RegisterDnnlKernels();
void ClearDnnlCache();
void DnnlStartObserving(const std::map<int64_t, double>& ranges, int bins);
std::map<int64_t, ObservedInput> DnnlStopObserving();
std::string DnnlIsa();
int DnnlInt8WeightBits();
void DnnlSetInt8WeightBits(int bits);
#endif
#ifdef EDGECV_WITH_XNNPACK
void RegisterXnnpackKernels();
void ClearXnnpackCache();
#endif

}  // namespace edgecv
