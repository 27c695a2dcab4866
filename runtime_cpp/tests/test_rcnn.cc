#include "edgecv/rcnn.h"

#include <cmath>
#include <limits>

#include "check.h"

using namespace edgecv;

namespace {
bool Near(float a, float b, float tol = 1e-4f) { return std::fabs(a - b) <= tol; }

RpnSettings OneAnchor(float min_size) {
  RpnSettings s;
  s.scales = {1.0f};
  s.ratios = {1.0f};
  s.min_size = min_size;
  s.pre_nms = 100;
  s.post_nms = 10;
  return s;
}
}  // namespace

int main() {
  // anchors: GluonCV's cell (stride 16, base 16, scales 8, 16, 32, ratios 0.5, 1, 2) starts
  // with (-84, -40, 99, 55): width round(sqrt(512)) = 23, height round(11.5) = 12 (half to
  // even), scaled by 8 around the centre 7.5
  RpnSettings preset;
  preset.scales = {8, 16, 32};
  std::vector<float> anchors = RpnAnchors(preset, 2, 3);
  CHECK(anchors.size() == 2 * 3 * 9 * 4);
  CHECK(anchors[0] == -84 && anchors[1] == -40 && anchors[2] == 99 && anchors[3] == 55);
  // the square of scale 8: 128 wide around 7.5; cell (row 1, column 2) shifts by (32, 16)
  CHECK(anchors[3 * 4] == -56 && anchors[3 * 4 + 2] == 71);
  const size_t cell12 = (1 * 3 + 2) * 9 * 4;
  CHECK(anchors[cell12] == -84 + 32 && anchors[cell12 + 1] == -40 + 16);

  // proposals on a 2x2 map with one 16x16 anchor per cell, image 32x32
  Tensor scores{{1, 1, 2, 2}, {0.9f, 0.8f, 0.7f, 0.0f}};
  Tensor offsets{{1, 4, 2, 2}, std::vector<float>(16, 0.0f)};
  auto props = RpnProposals(scores, offsets, OneAnchor(1.0f), 32, 32);
  CHECK(props.size() == 3);  // the cell scoring 0 is not a proposal (GluonCV: score > 0)
  CHECK(props[0].score == 0.9f && props[0].x1 == 0.0f && props[0].x2 == 15.0f);
  // decode: the first anchor (0, 0, 15, 15) moved right by half its width, twice as wide
  offsets.data[0] = 0.5f;
  offsets.data[2 * 4] = std::log(2.0f);
  props = RpnProposals(scores, offsets, OneAnchor(1.0f), 100, 100);
  CHECK(Near(props[0].x1, 7.5f - 15.0f + 7.5f) && Near(props[0].x2, 7.5f + 15.0f + 7.5f));
  // clipped to the image, then too small: the min size counts x2 - x1 + 1
  props = RpnProposals(scores, offsets, OneAnchor(1.0f), 20, 20);
  CHECK(Near(props[0].x2, 20.0f) && props[0].x1 >= 0.0f);
  // image 14 high: the first row's boxes are 15 high, the second row's 1
  CHECK(RpnProposals(scores, offsets, OneAnchor(16.0f), 100, 14).empty());
  CHECK(RpnProposals(scores, offsets, OneAnchor(15.0f), 100, 14).size() == 2);
  // NMS: two identical boxes keep the better; post_nms caps
  Tensor same{{1, 4, 1, 2}, std::vector<float>(8, 0.0f)};
  same.data[0] = 16.0f / 15.0f;  // the first cell's anchor moved onto the second's
  props = RpnProposals(Tensor{{1, 1, 1, 2}, {0.3f, 0.6f}}, same, OneAnchor(1.0f), 64, 64);
  CHECK(props.size() == 1 && props[0].score == 0.6f);
  RpnSettings one = OneAnchor(1.0f);
  one.post_nms = 1;
  CHECK(RpnProposals(scores, Tensor{{1, 4, 2, 2}, std::vector<float>(16, 0.0f)}, one, 32, 32)
            .size() == 1);
  // bad input
  EXPECT_THROW(ErrorKind::kInvalidInput, "scores have shape",
               RpnProposals(Tensor{{1, 2, 2, 2}, std::vector<float>(8)}, offsets, one, 32, 32));
  EXPECT_THROW(ErrorKind::kInvalidInput, "offsets have shape",
               RpnProposals(scores, Tensor{{1, 4, 2, 1}, std::vector<float>(8)}, one, 32, 32));
  Tensor nan = scores;
  nan.data[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(ErrorKind::kInvalidInput, "NaN", RpnProposals(nan, offsets, one, 32, 32));
  Tensor short_scores{{1, 1, 2, 2}, {0.1f}};  // a C++ caller's tensor shorter than its shape
  EXPECT_THROW(ErrorKind::kInvalidInput, "scores hold 1 values",
               RpnProposals(short_scores, offsets, one, 32, 32));

  // stage 2: two classes, two RoIs plus a padding row
  RcnnHead head;
  head.num_classes = 2;
  Tensor probs{{3, 3}, {0.2f, 0.5f, 0.3f, 0.9f, 0.05f, 0.05f, 0.0f, 0.0f, 1.0f}};
  Tensor deltas{{3, 8}, std::vector<float>(24, 0.0f)};
  deltas.data[4] = 1.0f;  // RoI 0, class 1: dx = 1 * 0.1 of the width
  std::vector<Detection> rois{{0, 1.0f, 0, 0, 10, 20}, {0, 1.0f, 5, 5, 15, 15}};
  auto dets = DecodeRcnn(probs, deltas, rois, head, 0.1f);
  CHECK(dets.size() == 2);  // class 0 of RoI 0 (0.5), class 1 of RoI 0 (0.3); row 2 ignored
  CHECK(dets[0].class_id == 0 && dets[0].score == 0.5f && dets[0].x2 == 10.0f);
  CHECK(dets[1].class_id == 1 && Near(dets[1].x1, 1.0f) && Near(dets[1].x2, 11.0f));
  CHECK(DecodeRcnn(probs, deltas, rois, head, 0.01f).size() == 4);
  head.topk = 1;  // per class
  CHECK(DecodeRcnn(probs, deltas, rois, head, 0.01f).size() == 2);
  EXPECT_THROW(ErrorKind::kInvalidInput, "class probabilities have shape",
               DecodeRcnn(Tensor{{3, 2}, std::vector<float>(6)}, deltas, rois, head, 0.1f));
  EXPECT_THROW(ErrorKind::kInvalidInput, "box offsets have shape",
               DecodeRcnn(probs, Tensor{{3, 4}, std::vector<float>(12)}, rois, head, 0.1f));
  Tensor inf = deltas;
  inf.data[2] = 1e30f;
  EXPECT_THROW(ErrorKind::kInvalidInput, "not finite", DecodeRcnn(probs, inf, rois, head, 0.1f));
  EXPECT_THROW(ErrorKind::kInvalidInput, "box offsets hold 3 values",
               DecodeRcnn(probs, Tensor{{3, 8}, {0, 0, 0}}, rois, head, 0.1f));

  // the two stages joined: 3 proposals through a stage 2 of batch 2 (two runs, the second
  // padded), one class scoring 0.5 with zero offsets: the proposals come back as detections
  RcnnPlan plan;
  plan.rpn = OneAnchor(1.0f);
  plan.roi = {2, 2, 1.0f / 16, 2, false};
  plan.head.num_classes = 1;
  const std::vector<Tensor> stage1{Tensor{{1, 1, 2, 2}, {1, 2, 3, 4}}, scores,
                                   Tensor{{1, 4, 2, 2}, std::vector<float>(16, 0.0f)}};
  int runs = 0;
  bool padded = false;
  RcnnStage2 stage2 = [&](const Tensor& pooled) {
    ++runs;
    CHECK(pooled.shape == (std::vector<int64_t>{2, 1, 2, 2}));
    padded = pooled.data[4] == 0.0f && pooled.data[7] == 0.0f;
    return std::vector<Tensor>{Tensor{{2, 2}, {0.5f, 0.5f, 0.5f, 0.5f}},
                               Tensor{{2, 4}, std::vector<float>(8, 0.0f)}};
  };
  NmsOptions nms;
  nms.iou_threshold = 0.5f;
  dets = DetectTwoStage(stage1, 32, 32, 2, stage2, plan, nms);
  CHECK(runs == 2 && padded && dets.size() == 3);
  CHECK(dets[0].class_id == 0 && dets[0].score == 0.5f && dets[0].x2 == 15.0f);
  // no proposal: no stage-2 run
  runs = 0;
  const std::vector<Tensor> empty{stage1[0], Tensor{{1, 1, 2, 2}, std::vector<float>(4, 0.0f)},
                                  stage1[2]};
  CHECK(DetectTwoStage(empty, 32, 32, 2, stage2, plan, nms).empty() && runs == 0);
  // graphs that disagree
  plan.head.num_classes = 2;
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "stage 2 must return",
               DetectTwoStage(stage1, 32, 32, 2, stage2, plan, nms));
  plan.head.num_classes = 1;
  const std::vector<Tensor> mismatched{Tensor{{1, 1, 3, 2}, std::vector<float>(6)}, scores,
                                       stage1[2]};
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "not maps of the same size",
               DetectTwoStage(mismatched, 32, 32, 2, stage2, plan, nms));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "expected 3",
               DetectTwoStage({stage1[0]}, 32, 32, 2, stage2, plan, nms));
  RcnnStage2 nan_head = [&](const Tensor&) {
    return std::vector<Tensor>{
        Tensor{{2, 2}, {0.5f, std::numeric_limits<float>::quiet_NaN(), 0.5f, 0.5f}},
        Tensor{{2, 4}, std::vector<float>(8, 0.0f)}};
  };
  EXPECT_THROW(ErrorKind::kInvalidInput, "NaN",
               DetectTwoStage(stage1, 32, 32, 2, nan_head, plan, nms));

  // the manifest ops
  const RpnSettings parsed = ParseRpnSettings(json::Value::Parse(
      R"({"stride": 16, "base_size": 16, "scales": [2, 4], "ratios": [1], "pre_nms": 6000,
          "post_nms": 300, "nms_threshold": 0.7, "min_size": 16, "box_clip": -1})"));
  CHECK(parsed.anchors_per_cell() == 2 && parsed.post_nms == 300);
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "post_nms must be in",
               ParseRpnSettings(json::Value::Parse(
                   R"({"stride": 16, "base_size": 16, "scales": [2], "ratios": [1],
                       "pre_nms": 10, "post_nms": 0, "nms_threshold": 0.7, "min_size": 1,
                       "box_clip": -1})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "whole number",
               ParseRoiAlign(json::Value::Parse(
                   R"({"pooled_height": 14.5, "pooled_width": 14, "spatial_scale": 0.0625,
                       "sample_ratio": 2, "aligned": false})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "spatial_scale",
               ParseRoiAlign(json::Value::Parse(
                   R"({"pooled_height": 14, "pooled_width": 14, "spatial_scale": 1000,
                       "sample_ratio": 2, "aligned": false})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "stds",
               ParseRcnnHead(json::Value::Parse(
                   R"({"num_classes": 20, "stds": [0.1], "box_clip": -1, "topk": 400})")));
  return Finish("test_rcnn");
}
