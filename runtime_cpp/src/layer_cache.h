// The cache every kernel library keeps its built layers in (oneDNN primitives with their
// reordered weights, XNNPACK operators with their packed ones): keyed by the layer's content
// key from its settings and the input it was built for, shape and type. The type matters: the
// same settings are called with a float input in one artifact and a quantised one in another
// (an int8 layer whose producer writes uint8 or float, a max pool in a float and an int8
// artifact of one model), and what is built for them differs.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include "edgecv/kernels.h"
#include "kernel_library.h"
#include "kernel_view.h"

namespace edgecv {
namespace kernel {

struct LayerKey {
  int64_t content = 0;  // the settings' key
  std::vector<int64_t> input_shape;
  int input_type = 0;  // code * 256 + bits

  LayerKey(int64_t content_key, const TensorView* x)
      : content(content_key),
        input_shape(Dims(x)),
        input_type(x->dtype.code * 256 + x->dtype.bits) {}
  bool operator<(const LayerKey& o) const {
    return std::tie(content, input_shape, input_type) <
           std::tie(o.content, o.input_shape, o.input_type);
  }
};

// Layer: what a library builds per layer (const for the libraries whose layers are immutable
// once built).
template <typename Layer>
class LayerCache {
 public:
  // The layer cached under `key`, else the one make(&log) builds, then logged (kernels.h's
  // KernelLayers) with `log` (its kernel field preset to `kernel`). make runs outside the
  // lock, as packing weights takes a while: two threads that build one layer at once keep the
  // first stored.
  template <typename Make>
  std::shared_ptr<Layer> Get(const LayerKey& key, const char* kernel, Make make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = layers_.find(key);
      if (it != layers_.end()) return it->second;
    }
    KernelLayer log;
    log.kernel = kernel;
    std::shared_ptr<Layer> layer = make(&log);
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, fresh] = layers_.emplace(key, std::move(layer));
    if (fresh) LogLayer(std::move(log));
    return it->second;
  }

  void Clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    layers_.clear();
  }

 private:
  std::mutex mutex_;
  std::map<LayerKey, std::shared_ptr<Layer>> layers_;
};

}  // namespace kernel
}  // namespace edgecv
