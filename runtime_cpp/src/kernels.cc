// edgecv/kernels.h without TVM: the bookkeeping of kernel calls and layers, and what the kernel
// libraries built in expose (RegisterKernels, which needs TVM, is in kernels_ffi.cc;
// KernelLibraries in kernel_libraries.cc, part of the core).
#include "edgecv/kernels.h"

#include <deque>
#include <mutex>

#include "edgecv/error.h"
#include "kernel_functions.h"
#include "kernel_library.h"

namespace edgecv {

namespace {
std::mutex book_mutex;
std::map<std::string, KernelStat> stats;
// The newest layers built, at most kLayerLogSize: a process that opens and closes predictors
// for days rebuilds its layers on every open, and an unbounded log grew it by ~6 KB per open.
constexpr size_t kLayerLogSize = 512;
std::deque<KernelLayer> layers;
}  // namespace

void kernel::AccountCall(const char* kernel, double ms) {
  std::lock_guard<std::mutex> lock(book_mutex);
  KernelStat& st = stats[kernel];
  st.calls += 1;
  st.total_ms += ms;
}

void kernel::LogLayer(KernelLayer layer) {
  std::lock_guard<std::mutex> lock(book_mutex);
  if (layers.size() == kLayerLogSize) layers.pop_front();
  layers.push_back(std::move(layer));
}

std::map<std::string, KernelStat> KernelStats(bool reset) {
  std::lock_guard<std::mutex> lock(book_mutex);
  std::map<std::string, KernelStat> out = stats;
  if (reset) stats.clear();
  return out;
}

std::vector<KernelLayer> KernelLayers(bool reset) {
  std::lock_guard<std::mutex> lock(book_mutex);
  std::vector<KernelLayer> out(layers.begin(), layers.end());
  if (reset) layers.clear();
  return out;
}

void StartObserving(const std::map<int64_t, double>& ranges, int bins) {
#ifdef EDGECV_WITH_DNNL
  kernel::onednn::StartObserving(ranges, bins);
#else
  (void)ranges;
  (void)bins;
  ThrowInvalidInput(
      "calibration observes the kernel library's layers; this runtime was built without one "
      "(oneDNN)");
#endif
}

std::map<int64_t, ObservedInput> StopObserving() {
#ifdef EDGECV_WITH_DNNL
  return kernel::onednn::StopObserving();
#else
  return {};
#endif
}

std::string KernelIsa() {
#ifdef EDGECV_WITH_DNNL
  return kernel::onednn::Isa();
#else
  return "";
#endif
}

int Int8WeightBits() {
#ifdef EDGECV_WITH_DNNL
  return kernel::onednn::Int8WeightBits();
#else
  return 0;
#endif
}

void SetInt8WeightBits(int bits) {
#ifdef EDGECV_WITH_DNNL
  kernel::onednn::SetInt8WeightBits(bits);
#else
  if (bits != 0)
    ThrowInvalidInput(
        "int8 weight bits are a oneDNN setting; this runtime was built without oneDNN");
#endif
}

void ClearKernelCache() {
#ifdef EDGECV_WITH_DNNL
  kernel::onednn::ClearCache();
#endif
#ifdef EDGECV_WITH_XNNPACK
  kernel::xnnpack::ClearCache();
#endif
}

}  // namespace edgecv
