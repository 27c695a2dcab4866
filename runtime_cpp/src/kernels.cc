#include "edgecv/kernels.h"

#include <mutex>

#include "kernels_internal.h"

namespace edgecv {

const std::vector<std::string>& KernelLibraries() {
  static const std::vector<std::string> libraries{
#ifdef EDGECV_WITH_DNNL
      "dnnl",
#endif
  };
  return libraries;
}

void RegisterKernels() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef EDGECV_WITH_DNNL
    RegisterDnnlKernels();
#endif
  });
}

std::map<std::string, KernelStat> KernelStats(bool reset) {
#ifdef EDGECV_WITH_DNNL
  return DnnlStats(reset);
#else
  (void)reset;
  return {};
#endif
}

void ClearKernelCache() {
#ifdef EDGECV_WITH_DNNL
  ClearDnnlCache();
#endif
}

}  // namespace edgecv
