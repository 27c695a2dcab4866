#include "edgecv/centernet.h"

#include <cmath>
#include <limits>

#include "check.h"

using namespace edgecv;

namespace {
Tensor Maps(int64_t c, int64_t h, int64_t w, float value) {
  return {{1, c, h, w}, std::vector<float>(static_cast<size_t>(c * h * w), value)};
}
CenterNetHead Head(int classes, int topk) { return {classes, 4, topk}; }
}  // namespace

int main() {
  // one class, 4x5 map: peaks at a corner, on a border and a tie of two neighbours
  Tensor heat = Maps(1, 4, 5, 0.0f), wh = Maps(2, 4, 5, 2.0f), reg = Maps(2, 4, 5, 0.25f);
  heat.data[0] = 0.9f;          // (0, 0) corner
  heat.data[4] = 0.3f;          // (0, 4) corner
  heat.data[1 * 5 + 4] = 0.2f;  // (1, 4): below the (0, 4) peak, not a peak
  heat.data[3 * 5 + 2] = 0.6f;  // (3, 2) bottom border
  heat.data[3 * 5 + 3] = 0.6f;  // (3, 3) ties with it: both are peaks
  auto dets = DecodeCenterNet(heat, wh, reg, Head(1, 10), 0.1f);
  CHECK(dets.size() == 4);
  CHECK(dets[0].score == 0.9f && dets[1].score == 0.6f && dets[2].score == 0.6f &&
        dets[3].score == 0.3f);
  // centre (0.25, 0.25) cells, 2x2 cells, stride 4
  CHECK(dets[0].x1 == -3.0f && dets[0].y1 == -3.0f && dets[0].x2 == 5.0f && dets[0].y2 == 5.0f);
  CHECK(dets[1].x1 < dets[2].x1);  // the tie: lower index first
  // k smaller and larger than the number of peaks; the threshold cuts after top-k
  CHECK(DecodeCenterNet(heat, wh, reg, Head(1, 2), 0.1f).size() == 2);
  CHECK(DecodeCenterNet(heat, wh, reg, Head(1, 1000), 0.5f).size() == 3);
  CHECK(DecodeCenterNet(Maps(1, 4, 5, 0.0f), wh, reg, Head(1, 10), 0.1f).empty());
  // classes: the class-major index gives the id, the other class's map does not suppress
  Tensor two = Maps(2, 4, 5, 0.0f);
  two.data[7] = 0.5f;
  two.data[20 + 7] = 0.8f;
  dets = DecodeCenterNet(two, wh, reg, Head(2, 10), 0.1f);
  CHECK(dets.size() == 2 && dets[0].class_id == 1 && dets[1].class_id == 0);

  // bad input
  EXPECT_THROW(ErrorKind::kInvalidInput, "heatmap has shape",
               DecodeCenterNet(heat, wh, reg, Head(3, 10), 0.1f));
  EXPECT_THROW(ErrorKind::kInvalidInput, "wh has shape",
               DecodeCenterNet(heat, Maps(1, 4, 5, 1.0f), reg, Head(1, 10), 0.1f));
  EXPECT_THROW(ErrorKind::kInvalidInput, "reg has shape",
               DecodeCenterNet(heat, wh, Maps(2, 4, 4, 0.0f), Head(1, 10), 0.1f));
  Tensor nan = heat;
  nan.data[19] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(ErrorKind::kInvalidInput, "NaN", DecodeCenterNet(nan, wh, reg, Head(1, 10), 0.1f));
  Tensor inf = wh;
  inf.data[0] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(ErrorKind::kInvalidInput, "non-finite",
               DecodeCenterNet(heat, inf, reg, Head(1, 10), 0.1f));
  EXPECT_THROW(ErrorKind::kInvalidInput, ">= 1", DecodeCenterNet(heat, wh, reg, Head(1, 0), 0.1f));
  EXPECT_THROW(
      ErrorKind::kInvalidArtifact, "stride must be in",
      ParseCenterNetHead(json::Value::Parse(R"({"num_classes": 20, "stride": 0, "topk": 40})")));
  const CenterNetHead parsed =
      ParseCenterNetHead(json::Value::Parse(R"({"num_classes": 20, "stride": 4, "topk": 40})"));
  CHECK(parsed.num_classes == 20 && parsed.stride == 4 && parsed.topk == 40);
  return Finish("test_centernet");
}
