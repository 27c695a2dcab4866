#include "edgecv/centernet.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "edgecv/error.h"

namespace edgecv {

namespace {

int64_t InRange(const json::Value& op, const char* field, int64_t low, int64_t high) {
  const int64_t v = op.At(field).AsInt();
  if (v < low || v > high)
    ThrowInvalidArtifact(std::string("centernet_decode: ") + field + " must be in " +
                         std::to_string(low) + ".." + std::to_string(high) + ", not " +
                         std::to_string(v));
  return v;
}

void CheckShape(const Tensor& t, const char* what, int64_t channels, int64_t h, int64_t w) {
  if (t.shape != std::vector<int64_t>{1, channels, h, w} ||
      t.data.size() != static_cast<size_t>(channels * h * w))
    ThrowInvalidInput(std::string("centernet_decode: ") + what + " has shape " +
                      ShapeString(t.shape) + ", expected " + ShapeString({1, channels, h, w}));
}

// Is (y, x) the maximum of its 3x3 window inside the map?
bool IsPeak(const float* map, int64_t h, int64_t w, int64_t y, int64_t x) {
  const float v = map[y * w + x];
  for (int64_t yy = std::max<int64_t>(y - 1, 0); yy <= std::min(y + 1, h - 1); ++yy)
    for (int64_t xx = std::max<int64_t>(x - 1, 0); xx <= std::min(x + 1, w - 1); ++xx)
      if (map[yy * w + xx] > v) return false;
  return true;
}

}  // namespace

CenterNetHead ParseCenterNetHead(const json::Value& op) {
  CenterNetHead h;
  h.num_classes = static_cast<int>(InRange(op, "num_classes", 1, 1 << 16));
  h.stride = static_cast<int>(InRange(op, "stride", 1, 4096));
  h.topk = static_cast<int>(InRange(op, "topk", 1, 1 << 20));
  return h;
}

std::vector<Detection> DecodeCenterNet(const Tensor& heatmap, const Tensor& wh, const Tensor& reg,
                                       const CenterNetHead& head, float score_threshold) {
  if (head.num_classes < 1 || head.stride < 1 || head.topk < 1)
    ThrowInvalidInput("centernet_decode: num_classes, stride and topk must be >= 1");
  if (heatmap.shape.size() != 4)
    ThrowInvalidInput("centernet_decode: heatmap has shape " + ShapeString(heatmap.shape) +
                      ", expected (1, " + std::to_string(head.num_classes) + ", H, W)");
  const int64_t h = heatmap.shape[2], w = heatmap.shape[3], cells = h * w;
  CheckShape(heatmap, "heatmap", head.num_classes, h, w);
  CheckShape(wh, "wh", 2, h, w);
  CheckShape(reg, "reg", 2, h, w);
  for (float v : heatmap.data) {
    if (std::isnan(v)) ThrowInvalidInput("centernet_decode: the heatmap contains NaN");
    if (!(v >= 0.f && v <= 1.f))  // e.g. a model exported with logits (no sigmoid)
      ThrowInvalidInput(
          "centernet_decode: heatmap values must be probabilities in [0, 1] "
          "(after the sigmoid), found " +
          std::to_string(v));
  }
  // The K best peaks above the threshold as (score, index in class-major order): higher score
  // first, then lower index. A heap of at most K holds them (the worst on top), so that memory
  // stays O(K) when a flat or saturated map makes every cell a peak.
  const auto before = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  const size_t topk = static_cast<size_t>(head.topk);
  std::vector<std::pair<float, int64_t>> peaks;
  peaks.reserve(std::min<size_t>(topk, static_cast<size_t>(head.num_classes * cells)));
  for (int64_t c = 0; c < head.num_classes; ++c) {
    const float* map = heatmap.data.data() + c * cells;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const std::pair<float, int64_t> peak{map[y * w + x], c * cells + y * w + x};
        if (!(peak.first > score_threshold) || (peaks.size() == topk && !before(peak, peaks[0])) ||
            !IsPeak(map, h, w, y, x))
          continue;
        if (peaks.size() == topk) {
          std::pop_heap(peaks.begin(), peaks.end(), before);
          peaks.back() = peak;
        } else {
          peaks.push_back(peak);
        }
        std::push_heap(peaks.begin(), peaks.end(), before);
      }
  }
  std::sort_heap(peaks.begin(), peaks.end(), before);
  const size_t k = peaks.size();
  std::vector<Detection> dets;
  dets.reserve(k);
  const float stride = static_cast<float>(head.stride);
  for (size_t i = 0; i < k; ++i) {
    const int64_t cell = peaks[i].second % cells, y = cell / w, x = cell % w;
    const float dx = reg.data[cell], dy = reg.data[cells + cell];
    const float bw = wh.data[cell], bh = wh.data[cells + cell];
    if (!std::isfinite(dx) || !std::isfinite(dy) || !std::isfinite(bw) || !std::isfinite(bh))
      ThrowInvalidInput("centernet_decode: the network produced a non-finite box size or offset");
    const float cx = static_cast<float>(x) + dx, cy = static_cast<float>(y) + dy;
    dets.push_back({static_cast<int>(peaks[i].second / cells), peaks[i].first,
                    (cx - bw / 2) * stride, (cy - bh / 2) * stride, (cx + bw / 2) * stride,
                    (cy + bh / 2) * stride});
  }
  return dets;
}

}  // namespace edgecv
