// Fuzz harness: detection decode + NMS. The input picks a decoder (YOLOv3, SSD, CenterNet),
// its head (classes, anchors, strides, variances, priors, K) and outputs of random shapes,
// matching or not, holding any floats (NaN and infinities too), then NMS options. Checked:
// errors are kInvalidInput; decoded scores lie in [0, 1]; NMS returns best first, no more
// than top-k and max_detections, every score above the threshold, and no two kept boxes that
// may suppress each other overlapping by more than the IoU threshold.
#include <cmath>
#include <cstdint>
#include <vector>

#include "edgecv/centernet.h"
#include "edgecv/detection.h"
#include "edgecv/error.h"
#include "fuzz_input.h"

namespace {

using edgecv::Detection;
using edgecv::Tensor;

// A tensor of `shape` whose values the input gives: `unit` in [0, 1] (a heatmap after its
// sigmoid), else mostly in [-8, 8]; any float now and then either way.
Tensor Make(edgecv::fuzz::Input& in, std::vector<int64_t> shape, bool unit = false) {
  Tensor t;
  t.shape = std::move(shape);
  t.data.resize(static_cast<size_t>(Tensor::NumElements(t.shape)));
  for (float& v : t.data) v = unit ? in.Float(0.0f, 1.0f) : in.Float(-8.0f, 8.0f);
  return t;
}

// A dimension: usually `want`, now and then another small one.
int64_t Dim(edgecv::fuzz::Input& in, int64_t want) {
  return in.Byte() % 8 == 0 ? in.Int(0, 9) : want;
}

std::vector<Detection> Yolo3(edgecv::fuzz::Input& in) {
  edgecv::Yolo3Head head;
  head.num_classes = in.Int(1, 6);
  const int outputs = in.Int(1, 3);
  std::vector<Tensor> t;
  for (int o = 0; o < outputs; ++o) {
    head.strides.push_back(in.Int(1, 64));
    head.anchors.emplace_back(2 * in.Int(1, 3));
    for (float& a : head.anchors.back()) a = in.Float(1.0f, 100.0f);
    const int64_t a = static_cast<int64_t>(head.anchors.back().size() / 2);
    t.push_back(
        Make(in, {Dim(in, 1), Dim(in, a * (5 + head.num_classes)), in.Int(0, 6), in.Int(0, 6)}));
  }
  std::vector<const Tensor*> heads;
  for (const Tensor& x : t) heads.push_back(&x);
  if (in.Byte() % 16 == 0) heads.pop_back();
  return edgecv::DecodeYolo3(heads, head, in.Float(0.0f, 1.0f));
}

std::vector<Detection> Ssd(edgecv::fuzz::Input& in) {
  edgecv::SsdHead head;
  head.num_classes = in.Int(1, 6);
  head.variances = {in.Float(0, 1), in.Float(0, 1), in.Float(0, 1), in.Float(0, 1)};
  const int64_t n = in.Int(0, 40);
  head.priors.resize(static_cast<size_t>(n) * 4);
  for (float& p : head.priors) p = in.Float(0.0f, 300.0f);
  const Tensor cls = Make(in, {Dim(in, 1), Dim(in, n), Dim(in, head.num_classes + 1)});
  const Tensor box = Make(in, {Dim(in, 1), Dim(in, n), Dim(in, 4)});
  return edgecv::DecodeSsd(cls, box, head, in.Float(0.0f, 1.0f));
}

std::vector<Detection> CenterNet(edgecv::fuzz::Input& in) {
  edgecv::CenterNetHead head;
  head.num_classes = in.Int(1, 5);
  head.stride = in.Int(1, 32);
  head.topk = in.Int(1, 60);
  const int64_t h = in.Int(1, 12), w = in.Int(1, 12);
  const Tensor heat = Make(in, {Dim(in, 1), Dim(in, head.num_classes), Dim(in, h), w}, true);
  const Tensor wh = Make(in, {1, Dim(in, 2), h, Dim(in, w)});
  const Tensor reg = Make(in, {1, 2, Dim(in, h), w});
  return edgecv::DecodeCenterNet(heat, wh, reg, head, in.Float(0.0f, 1.0f));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgecv::fuzz::Input in(data, size);
  std::vector<Detection> candidates;
  try {
    switch (in.Byte() % 3) {
      case 0:
        candidates = Yolo3(in);
        break;
      case 1:
        candidates = Ssd(in);
        break;
      default:
        candidates = CenterNet(in);
        break;
    }
  } catch (const edgecv::Error& e) {
    FUZZ_ASSERT(e.kind() == edgecv::ErrorKind::kInvalidInput);
    return 0;
  }
  for (const Detection& d : candidates) FUZZ_ASSERT(d.score >= 0.0f && d.score <= 1.0f);

  edgecv::NmsOptions options;
  options.iou_threshold = in.Float(0.0f, 1.0f);
  options.score_threshold = in.Float(0.0f, 1.0f);
  options.topk = in.Int(-2, 80);
  options.max_detections = in.Int(-2, 80);
  options.class_agnostic = in.Bool();
  std::vector<Detection> kept;
  try {
    kept = edgecv::Nms(candidates, options);
  } catch (const edgecv::Error& e) {
    FUZZ_ASSERT(e.kind() == edgecv::ErrorKind::kInvalidInput);
    return 0;
  }
  FUZZ_ASSERT(kept.size() <= candidates.size());
  if (options.topk > 0) FUZZ_ASSERT(kept.size() <= static_cast<size_t>(options.topk));
  if (options.max_detections > 0)
    FUZZ_ASSERT(kept.size() <= static_cast<size_t>(options.max_detections));
  for (size_t i = 0; i < kept.size(); ++i) {
    FUZZ_ASSERT(kept[i].score > options.score_threshold && kept[i].class_id >= 0);
    if (i > 0) FUZZ_ASSERT(kept[i - 1].score >= kept[i].score);
    for (size_t j = 0; j < i; ++j)
      if (options.class_agnostic || kept[i].class_id == kept[j].class_id)
        FUZZ_ASSERT(!(edgecv::IoU(kept[j], kept[i]) > options.iou_threshold));
  }
  return 0;
}
