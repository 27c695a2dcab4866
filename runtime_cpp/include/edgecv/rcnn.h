// Two-stage detection (Faster R-CNN, GluonCV's presets): the glue between the two compiled
// graphs. Stage 1's RPN outputs → proposals (anchors, box decode, clip, min size, pre-NMS
// top-k, NMS, post-NMS top-k); RoIAlign of the stride-16 features (MXNet's contrib.ROIAlign);
// stage 2's per-RoI outputs → per-class boxes (decode, score cut, per-class top-k), which the
// runtime's Nms (detection.h) then suppresses within each class.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "edgecv/detection.h"
#include "edgecv/image.h"
#include "edgecv/json.h"
#include "edgecv/roi_align.h"

namespace edgecv {

// The manifest's rpn_proposals op.
struct RpnSettings {
  int stride = 16;  // input pixels per feature cell
  // double, as GluonCV computes anchors: a ratio's float rounding can move a half-pixel
  // rounding (0.3f * 15 rounds to 5, 0.3 * 15 to 4)
  double base_size = 16.0;  // anchor side at scale 1
  std::vector<double> scales{2, 4, 8, 16, 32};
  std::vector<double> ratios{0.5, 1.0, 2.0};  // height / width
  int pre_nms = 6000;                         // best proposals kept before NMS; <= 0: all
  int post_nms = 300;                         // proposals kept after NMS (the RoIs, R)
  float nms_threshold = 0.7f;                 // class-agnostic IoU threshold
  float min_size = 16.0f;                     // x2 - x1 + 1 and y2 - y1 + 1 must reach it
  float box_clip = -1.0f;  // log-size offsets capped here before exp; <= 0: no cap
  int anchors_per_cell() const { return static_cast<int>(scales.size() * ratios.size()); }
};
RpnSettings ParseRpnSettings(const json::Value& op);  // Error(kInvalidArtifact) when out of range

// The anchors of a height x width map as corners, (row, column, anchor) order, anchors
// ratio-major: GluonCV's (rounded widths and heights of a stride-wide cell, scaled, the +1
// pixel convention), shifted by (column, row) * stride. height * width * A * 4 floats.
std::vector<float> RpnAnchors(const RpnSettings& s, int64_t height, int64_t width);

// scores (1, A, H, W) objectness after the sigmoid, offsets (1, 4A, H, W) (dx, dy, dw, dh of
// anchor a in channels 4a..4a+3) → at most post_nms proposals, best first (class_id 0): each
// anchor's box decoded (centre moves by d * size, size by exp(d); widths x2 - x1), clipped to
// [0, image_width] x [0, image_height], dropped when smaller than min_size, the pre_nms best
// scoring above 0, then NMS. Error(kInvalidInput) for other shapes or NaN.
std::vector<Detection> RpnProposals(const Tensor& scores, const Tensor& offsets,
                                    const RpnSettings& s, int image_width, int image_height);

// The manifest's roi_align op (roi_align.h); Error(kInvalidArtifact) when out of range.
RoiAlignSettings ParseRoiAlign(const json::Value& op);

// The manifest's rcnn_decode op.
struct RcnnHead {
  int num_classes = 0;
  std::vector<float> stds{0.1f, 0.1f, 0.2f, 0.2f};  // offsets are multiplied by these
  float box_clip = -1.0f;                           // as RpnSettings::box_clip
  int topk = -1;  // per class, the best candidates kept for NMS; <= 0: all
};
RcnnHead ParseRcnnHead(const json::Value& op);

// probs (R, C + 1) class probabilities with background first, offsets (R, 4C), the RoIs the
// first rois.size() <= R rows were run on (the rest are padding: ignored) → per class, each
// RoI's box decoded around it, those scoring above score_threshold, the topk best per class
// (ties: lower RoI first). Error(kInvalidInput) for other shapes, NaN, or non-finite boxes.
std::vector<Detection> DecodeRcnn(const Tensor& probs, const Tensor& offsets,
                                  const std::vector<Detection>& rois, const RcnnHead& head,
                                  float score_threshold);

// The glue of a two-stage artifact between its graphs, as the predictor runs it: stage 1's
// outputs (features (1, C, H, W), RPN scores (1, A, H, W), offsets (1, 4A, H, W)) →
// proposals → RoIAlign in chunks of `batch` RoIs (the stage-2 graph's fixed batch; the last
// chunk zero-padded) → `stage2` on each chunk, which returns (probabilities (batch, K + 1),
// offsets (batch, 4K)) → per-class decode over all RoIs → `nms`. No proposal: no stage-2 run,
// no detection. Error(kInvalidArtifact) when the graphs disagree (map sizes, channel counts,
// stage-2 output shapes), Error(kInvalidInput) for NaN or bad sizes.
struct RcnnPlan {
  RpnSettings rpn;
  RoiAlignSettings roi;
  RcnnHead head;
};
using RcnnStage2 = std::function<std::vector<Tensor>(const Tensor& pooled)>;
std::vector<Detection> DetectTwoStage(const std::vector<Tensor>& stage1, int image_width,
                                      int image_height, int64_t batch, const RcnnStage2& stage2,
                                      const RcnnPlan& plan, const NmsOptions& nms);

}  // namespace edgecv
