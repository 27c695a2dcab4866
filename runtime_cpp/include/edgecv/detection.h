// Detection post-processing shared by every detector: head decoding (YOLOv3, SSD)
// and non-maximum suppression with GluonCV's box_nms semantics.
#pragma once

#include <string>
#include <vector>

#include "edgecv/image.h"
#include "edgecv/json.h"

namespace edgecv {

struct Detection {
  int class_id = 0;
  float score = 0.0f;
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // corners, pixels
};

struct NmsOptions {
  float iou_threshold = 0.45f;    // suppress a box overlapping a better one by more than this
  float score_threshold = 0.01f;  // candidates must score above this
  int topk = 400;                 // candidates kept (best first) before suppression; <= 0: all
  int max_detections = 100;       // results kept after suppression; <= 0: all
  bool class_agnostic = false;    // false: only boxes of the same class suppress each other
};

// The most classes a detection head may have (a manifest's num_classes beyond it is refused).
constexpr int kMaxClasses = 1 << 16;

float IoU(const Detection& a, const Detection& b);

// Keep the best candidates: score filter, top-k, greedy suppression, best first.
// Ties in score keep the input order (stable). Throws Error(kInvalidInput) on NaN scores.
std::vector<Detection> Nms(std::vector<Detection> candidates, const NmsOptions& options);

// YOLOv3: per output (B=1, A*(5+C), H, W): sigmoid(xy) + cell, * stride; exp(wh) * anchor;
// score of (anchor, class) = sigmoid(objectness) * sigmoid(class). Only scores above
// `score_threshold` are returned.
struct Yolo3Head {
  int num_classes = 0;
  std::vector<int> strides;                 // per output
  std::vector<std::vector<float>> anchors;  // per output: w0, h0, w1, h1, ...
};
Yolo3Head ParseYolo3Head(const json::Value& op);
std::vector<Detection> DecodeYolo3(const std::vector<const Tensor*>& outputs, const Yolo3Head& head,
                                   float score_threshold);

// SSD: class logits (1, N, C+1) with background first, box offsets (1, N, 4), priors (N, 4)
// as centre-size; softmax over classes, offsets scaled by `variances`.
struct SsdHead {
  int num_classes = 0;
  std::vector<float> variances;  // 4 values
  std::vector<float> priors;     // N * 4: cx, cy, w, h in input pixels
};
std::vector<Detection> DecodeSsd(const Tensor& class_logits, const Tensor& box_offsets,
                                 const SsdHead& head, float score_threshold);

}  // namespace edgecv
