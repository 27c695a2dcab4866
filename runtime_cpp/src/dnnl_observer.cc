// Calibration: while observing, every float conv2d/dense call records statistics of its
// input (min/max, and histograms of |x| on a second pass) under the layer's content key, the
// key its int8 version is compiled from (kernels.h: StartObserving / StopObserving).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include "dnnl_layer.h"

namespace edgecv {
namespace kernel {
namespace onednn {

namespace {

// Calibration: statistics of the inputs of float layers, while observing.
class Observer {
 public:
  void Start(const std::map<int64_t, double>& ranges, int bins) {
    if (bins < 16 || bins > (1 << 20))
      ThrowInvalidInput("edgecv: calibration histogram bins must be in [16, 2^20]");
    std::lock_guard<std::mutex> lock(mutex_);
    ranges_ = ranges;
    bins_ = bins;
    seen_.clear();
    on_ = true;
  }
  std::map<int64_t, ObservedInput> Stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    on_ = false;
    return std::move(seen_);
  }
  bool On() const { return on_; }
  void Observe(const char* kernel, int64_t key, const TensorView* x) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!on_) return;
    auto [it, fresh] = seen_.try_emplace(key);
    ObservedInput& o = it->second;
    if (fresh) {
      o.kernel = kernel;
      o.order = static_cast<int64_t>(seen_.size()) - 1;
      o.shape = Dims(x);
      o.min = std::numeric_limits<double>::infinity();
      o.max = -std::numeric_limits<double>::infinity();
      auto r = ranges_.find(key);
      if (r != ranges_.end() && r->second > 0) {
        o.range = r->second;
        o.histogram.assign(bins_, 0.0);
      }
    }
    const float* p = static_cast<const float*>(Data(x));
    const int64_t n = Count(x);
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, p[i]);
      hi = std::max(hi, p[i]);
    }
    o.min = std::min<double>(o.min, lo);
    o.max = std::max<double>(o.max, hi);
    o.count += n;
    if (o.range > 0) {
      const double per_bin = bins_ / o.range;
      for (int64_t i = 0; i < n; ++i) {
        const double b = std::fabs(static_cast<double>(p[i])) * per_bin;
        o.histogram[b >= bins_ - 1 ? bins_ - 1 : static_cast<int>(b)] +=
            1;  // NaN counts as the top bin
      }
    }
  }

 private:
  std::mutex mutex_;
  std::atomic<bool> on_{false};
  std::map<int64_t, double> ranges_;
  int bins_ = 2048;
  std::map<int64_t, ObservedInput> seen_;
};

Observer& TheObserver() {
  static Observer observer;
  return observer;
}

}  // namespace

bool Observing() { return TheObserver().On(); }

void Observe(const char* kernel, int64_t key, const TensorView* x) {
  TheObserver().Observe(kernel, key, x);
}

void StartObserving(const std::map<int64_t, double>& ranges, int bins) {
  TheObserver().Start(ranges, bins);
}

std::map<int64_t, ObservedInput> StopObserving() { return TheObserver().Stop(); }

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
