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
#endif

}  // namespace edgecv
