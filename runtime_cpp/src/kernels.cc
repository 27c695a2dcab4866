#include "edgecv/kernels.h"

#include <mutex>

#include "edgecv/error.h"
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

std::vector<KernelLayer> KernelLayers(bool reset) {
#ifdef EDGECV_WITH_DNNL
  return DnnlLayers(reset);
#else
  (void)reset;
  return {};
#endif
}

void StartObserving(const std::map<int64_t, double>& ranges, int bins) {
#ifdef EDGECV_WITH_DNNL
  DnnlStartObserving(ranges, bins);
#else
  (void)ranges;
  (void)bins;
  ThrowInvalidInput("calibration observes the kernel library's layers; this runtime was built without one (oneDNN)");
#endif
}

std::map<int64_t, ObservedInput> StopObserving() {
#ifdef EDGECV_WITH_DNNL
  return DnnlStopObserving();
#else
  return {};
#endif
}

void ClearKernelCache() {
#ifdef EDGECV_WITH_DNNL
  ClearDnnlCache();
#endif
}

}  // namespace edgecv
