// Registration hooks of the kernel libraries compiled into this runtime (see kernels.h).
#pragma once

namespace edgecv {

#ifdef EDGECV_WITH_DNNL
void RegisterDnnlKernels();
void ClearDnnlCache();
#endif

}  // namespace edgecv
