#include "edgecv/roi_align.h"

#include <cmath>
#include <limits>

#include "check.h"

using namespace edgecv;

namespace {
bool Near(float a, float b, float tol = 1e-4f) { return std::fabs(a - b) <= tol; }
}  // namespace

int main() {
  // RoIAlign on a 1-channel 4x4 ramp f(y, x) = 10 y + x: bilinear is exact inside the map
  Tensor ramp{{1, 1, 4, 4}, std::vector<float>(16)};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) ramp.data[y * 4 + x] = 10.0f * y + x;
  RoiAlignSettings ra{1, 1, 1.0f, 2, false};
  // RoI (0, 0)-(2, 2): samples at 0.5 and 1.5 → mean 10 + 1 = 11
  Tensor pooled = RoiAlign(ramp, {{0, 1.0f, 0, 0, 2, 2}}, ra, 2);
  CHECK(pooled.shape == (std::vector<int64_t>{2, 1, 1, 1}));
  CHECK(Near(pooled.data[0], 11.0f) && pooled.data[1] == 0.0f);  // the padding row is zero
  // aligned: the same RoI shifted by half a cell
  ra.aligned = true;
  CHECK(Near(RoiAlign(ramp, {{0, 1.0f, 0, 0, 2, 2}}, ra, 1).data[0], 5.5f));
  // unaligned, a degenerate RoI is one cell wide: samples at 1.25, 1.75 → 15 + 1.5
  ra.aligned = false;
  CHECK(Near(RoiAlign(ramp, {{0, 1.0f, 1, 1, 1, 1}}, ra, 1).data[0], 16.5f));
  // past the border: within one cell clamped to the edge, further out zero
  CHECK(Near(RoiAlign(ramp, {{0, 1.0f, 3.2f, 3.2f, 4.0f, 4.0f}}, ra, 1).data[0], 33.0f));
  CHECK(Near(RoiAlign(ramp, {{0, 1.0f, 3.5f, 3.5f, 4.5f, 4.5f}}, ra, 1).data[0], 33.0f / 4));
  CHECK(RoiAlign(ramp, {{0, 1.0f, 6, 6, 7, 7}}, ra, 1).data[0] == 0.0f);
  // spatial scale and bins: (0, 0)-(16, 16) at 1/4 covers the map, 2x2 bins
  ra = {2, 2, 0.25f, 1, false};
  pooled = RoiAlign(ramp, {{0, 1.0f, 0, 0, 16, 16}}, ra, 1);
  CHECK(Near(pooled.data[0], 11.0f) && Near(pooled.data[3], 33.0f));
  EXPECT_THROW(ErrorKind::kInvalidInput, "do not fit",
               RoiAlign(ramp, {{0, 1.0f, 0, 0, 1, 1}, {0, 1.0f, 0, 0, 1, 1}}, ra, 1));
  EXPECT_THROW(ErrorKind::kInvalidInput, "features have shape",
               RoiAlign(Tensor{{4, 4}, std::vector<float>(16)}, {}, ra, 0));
  EXPECT_THROW(ErrorKind::kInvalidInput, "not finite",
               RoiAlign(ramp, {{0, 1.0f, 0, 0, std::numeric_limits<float>::infinity(), 1}}, ra, 1));
  // hostile RoIs and maps (review): finite RoIs whose size overflows at the features' scale
  // (a NaN bin position once read at a wild address), a map of no rows, a sample table of
  // gigabytes
  ra = {2, 2, 1.0f, 2, false};
  EXPECT_THROW(ErrorKind::kInvalidInput, "not finite at the features' scale",
               RoiAlign(ramp, {{0, 1.0f, -3e38f, 0, 3e38f, 10}}, ra, 1));
  EXPECT_THROW(ErrorKind::kInvalidInput, "features have shape",
               RoiAlign(Tensor{{1, 1, 0, 4}, {}}, {{0, 1.0f, -16, -16, -8, -8}}, ra, 1));
  ra = {64, 64, 1.0f, 64, false};
  EXPECT_THROW(ErrorKind::kInvalidInput, "samples for one RoI",
               RoiAlign(ramp, {{0, 1.0f, 0, 0, 2, 2}}, ra, 1));
  return Finish("test_roi_align");
}
