#include "edgecv/detection.h"

#include <cmath>
#include <limits>
#include <random>

#include "check.h"

using namespace edgecv;

namespace {
Detection Box(int c, float s, float x1, float y1, float x2, float y2) {
  return {c, s, x1, y1, x2, y2};
}
NmsOptions Opts(float iou = 0.5f, bool agnostic = false) {
  NmsOptions o;
  o.iou_threshold = iou;
  o.score_threshold = 0.0f;
  o.topk = -1;
  o.max_detections = -1;
  o.class_agnostic = agnostic;
  return o;
}
}  // namespace

int main() {
  CHECK(Nms({}, Opts()).empty());

  // identical boxes: only the best survives
  std::vector<Detection> same(5, Box(0, 0.5f, 10, 10, 20, 20));
  same[3].score = 0.9f;
  auto kept = Nms(same, Opts());
  CHECK(kept.size() == 1 && kept[0].score == 0.9f);

  // ties in score keep the input order
  kept = Nms({Box(0, 0.7f, 0, 0, 10, 10), Box(1, 0.7f, 0, 0, 10, 10), Box(2, 0.7f, 50, 50, 60, 60)},
             Opts());
  CHECK(kept.size() == 3 && kept[0].class_id == 0 && kept[1].class_id == 1 &&
        kept[2].class_id == 2);

  // class-aware keeps overlapping boxes of other classes; class-agnostic does not
  std::vector<Detection> two = {Box(0, 0.9f, 0, 0, 10, 10), Box(1, 0.8f, 1, 1, 10, 10)};
  CHECK(Nms(two, Opts()).size() == 2);
  CHECK(Nms(two, Opts(0.5f, true)).size() == 1);

  // touching boxes (shared edge) do not overlap; zero-area boxes overlap nothing
  kept = Nms({Box(0, 0.9f, 0, 0, 10, 10), Box(0, 0.8f, 10, 0, 20, 10), Box(0, 0.7f, 5, 5, 5, 5)},
             Opts(0.0f));
  CHECK(kept.size() == 3);
  CHECK(IoU(Box(0, 1, 5, 5, 5, 5), Box(0, 1, 5, 5, 5, 5)) == 0.0f);
  CHECK(std::fabs(IoU(Box(0, 1, 0, 0, 10, 10), Box(0, 1, 5, 0, 15, 10)) - 50.0f / 150.0f) < 1e-6f);

  // boxes outside the image border are handled like any other
  kept = Nms({Box(0, 0.9f, -20, -20, 5, 5), Box(0, 0.8f, -19, -19, 5, 5)}, Opts());
  CHECK(kept.size() == 1);

  // score threshold, negative class ids (background), top-k before and max after
  NmsOptions o = Opts();
  o.score_threshold = 0.5f;
  kept = Nms({Box(0, 0.4f, 0, 0, 1, 1), Box(-1, 0.9f, 5, 5, 6, 6), Box(0, 0.6f, 9, 9, 10, 10)}, o);
  CHECK(kept.size() == 1 && kept[0].score == 0.6f);
  std::vector<Detection> many;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0, 1000);
  for (int i = 0; i < 5000; ++i) {
    float x = u(rng), y = u(rng);
    many.push_back(Box(i % 7, u(rng) / 1000, x, y, x + 30, y + 30));
  }
  o = Opts(0.45f);
  o.topk = 400;
  o.max_detections = 100;
  kept = Nms(many, o);
  CHECK(kept.size() == 100);
  for (size_t i = 1; i < kept.size(); ++i) CHECK(kept[i - 1].score >= kept[i].score);
  for (size_t i = 0; i < kept.size(); ++i)
    for (size_t j = i + 1; j < kept.size(); ++j)
      if (kept[i].class_id == kept[j].class_id) CHECK(IoU(kept[i], kept[j]) <= 0.45f);

  float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(ErrorKind::kInvalidInput, "NaN", Nms({Box(0, nan, 0, 0, 1, 1)}, Opts()));

  // YOLOv3 decode: one 1x1 cell, one anchor, one class; all logits 0 -> sigmoid 0.5
  Yolo3Head head;
  head.num_classes = 1;
  head.strides = {32};
  head.anchors = {{10.0f, 20.0f}};
  Tensor t{{1, 6, 1, 1}, {0, 0, 0, 0, 0, 0}};
  auto dets = DecodeYolo3({&t}, head, 0.01f);
  CHECK(dets.size() == 1 && std::fabs(dets[0].score - 0.25f) < 1e-6f);
  CHECK(std::fabs(dets[0].x1 - (16 - 5)) < 1e-5f && std::fabs(dets[0].y2 - (16 + 10)) < 1e-5f);
  Tensor wrong{{1, 7, 1, 1}, std::vector<float>(7, 0.0f)};
  EXPECT_THROW(ErrorKind::kInvalidInput, "expected (1, 6, H, W)",
               DecodeYolo3({&wrong}, head, 0.01f));
  t.data[4] = nan;
  EXPECT_THROW(ErrorKind::kInvalidInput, "NaN", DecodeYolo3({&t}, head, 0.01f));

  // SSD decode: zero offsets give the prior itself; softmax over background + 1 class
  SsdHead ssd{1, {0.1f, 0.1f, 0.2f, 0.2f}, {50, 50, 20, 40}};
  Tensor cls{{1, 1, 2}, {0.0f, std::log(3.0f)}}, box{{1, 1, 4}, {0, 0, 0, 0}};
  dets = DecodeSsd(cls, box, ssd, 0.01f);
  CHECK(dets.size() == 1 && std::fabs(dets[0].score - 0.75f) < 1e-6f);
  CHECK(dets[0].x1 == 40 && dets[0].y1 == 30 && dets[0].x2 == 60 && dets[0].y2 == 70);
  Tensor bad{{1, 2, 2}, {0, 0, 0, 0}};
  EXPECT_THROW(ErrorKind::kInvalidInput, "class output has shape", DecodeSsd(bad, box, ssd, 0.01f));
  SsdHead none = ssd;  // no classes: each prior's softmax would be empty
  none.num_classes = 0;
  EXPECT_THROW(ErrorKind::kInvalidInput, "num_classes must be in 1..65536",
               DecodeSsd(Tensor{{1, 1, 1}, {0.0f}}, box, none, 0.01f));
  return Finish("test_detection");
}
