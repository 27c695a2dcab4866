// Registration hooks of the kernel libraries compiled into this runtime (see kernels.h).
#pragma once

#include <map>
#include <string>

#include "edgecv/kernels.h"

namespace edgecv {

#ifdef EDGECV_WITH_DNNL
void RegisterDnnlKernels();
void ClearDnnlCache();
std::map<std::string, KernelStat> DnnlStats(bool reset);
std::vector<KernelLayer> DnnlLayers(bool reset);
void DnnlStartObserving(const std::map<int64_t, double>& ranges, int bins);
std::map<int64_t, ObservedInput> DnnlStopObserving();
#endif

}  // namespace edgecv
