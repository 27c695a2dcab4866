// CenterNet decode ("Objects as Points"): the network's three maps → detections. The peaks
// of the per-class heatmaps (3x3 max-pool NMS), the best K over all classes and positions,
// each a box of the predicted size around its cell plus the predicted offset.
#pragma once

#include <vector>

#include "edgecv/detection.h"
#include "edgecv/image.h"
#include "edgecv/json.h"

namespace edgecv {

struct CenterNetHead {
  int num_classes = 0;
  int stride = 4;  // input pixels per output cell
  int topk = 100;  // peaks kept (K), best first
};

// The manifest's centernet_decode op (num_classes, stride, topk); Error(kInvalidArtifact) for
// values out of range.
CenterNetHead ParseCenterNetHead(const json::Value& op);

// heatmap (1, C, H, W) after the sigmoid, wh (1, 2, H, W) box width and height and reg
// (1, 2, H, W) centre offsets (x, y), both in output cells. A position is a peak when no
// neighbour in its 3x3 window (inside the map) is higher: neighbours that tie are both peaks.
// The K highest peaks over all classes, ties in score broken by the lower (class, y, x) index,
// of which those scoring above `score_threshold` are returned, best first, as boxes
// ((x + dx) -+ w/2, (y + dy) -+ h/2) * stride in input pixels. Error(kInvalidInput) for other
// shapes, NaN in the heatmap, or a non-finite size or offset at a returned peak.
std::vector<Detection> DecodeCenterNet(const Tensor& heatmap, const Tensor& wh, const Tensor& reg,
                                       const CenterNetHead& head, float score_threshold);

}  // namespace edgecv
