// Which kernel libraries this build has: the core's manifest check reads it, without linking
// them (CMake defines EDGECV_WITH_<LIBRARY> on this file for each one the runtime is built with).
#include "edgecv/kernels.h"

namespace edgecv {

const std::vector<std::string>& KernelLibraries() {
  static const std::vector<std::string> libraries{
#ifdef EDGECV_WITH_DNNL
      "dnnl",
#endif
#ifdef EDGECV_WITH_XNNPACK
      "xnnpack",
#endif
  };
  return libraries;
}

}  // namespace edgecv
