// Dense post-processing by hand: label maps, palette, person crop, heatmap decode.
#include "edgecv/dense.h"

#include <cmath>
#include <limits>

#include "check.h"

using namespace edgecv;

namespace {

bool Near(float a, float b, float tol = 1e-4f) { return std::fabs(a - b) <= tol; }

}  // namespace

int main() {
  // argmax over (1, 2, 1, 3): ties go to the lower class
  Tensor scores{{1, 2, 1, 3}, {0.0f, 5.0f, 1.0f, /* class 1 */ 1.0f, 5.0f, 0.5f}};
  LabelMap labels = ArgmaxLabels(scores);
  CHECK(labels.width == 3 && labels.height == 1);
  CHECK(labels.labels == (std::vector<int32_t>{1, 0, 0}));
  scores.data[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(ErrorKind::kInvalidInput, "NaN", ArgmaxLabels(scores));
  EXPECT_THROW(ErrorKind::kInvalidInput, "(1, C, H, W)",
               ArgmaxLabels(Tensor{{2, 3}, std::vector<float>(6)}));

  // a 2x2 map upscaled 2x through the geometry: the image's left half is class 0, right half 1
  Tensor two{{1, 2, 2, 2}, {1, 0, 1, 0, /* class 1 */ 0, 1, 0, 1}};
  Geometry g;
  g.scale_x = g.scale_y = 0.5f;
  g.image_width = g.image_height = 4;
  LabelMap up = SegmentLabels(two, g);
  CHECK(up.labels == (std::vector<int32_t>{0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1}));
  g.offset_x = -1.0f;  // image column 0 falls left of the network input
  CHECK(SegmentLabels(two, g).labels[0] == kUnseenLabel);

  g.scale_x = std::numeric_limits<float>::quiet_NaN();  // nothing of the image is seen
  CHECK(SegmentLabels(two, g).labels == std::vector<int32_t>(16, kUnseenLabel));

  Image colors = Colorize(LabelMap{3, 1, {1, 15, 255}});
  CHECK(colors.pixels == (std::vector<uint8_t>{128, 0, 0, 192, 128, 128, 224, 224, 192}));

  // a tall box: widened to the 3:4 input, then enlarged 1.25x around its centre
  PoseCrop c = PersonCrop({100, 50, 140, 170}, 192, 256, 1.25f, 640, 480);
  CHECK(Near(c.width, 112.5f) && Near(c.height, 150.0f) && Near(c.x0, 63.75f) && Near(c.y0, 35.0f));
  EXPECT_THROW(ErrorKind::kInvalidInput, "no area",
               PersonCrop({10, 10, 10, 20}, 192, 256, 1.25f, 640, 480));
  EXPECT_THROW(ErrorKind::kInvalidInput, "outside",
               PersonCrop({700, 10, 720, 20}, 192, 256, 1.25f, 640, 480));

  // a crop far larger than the image (a huge box or person_crop scale: fuzz_preprocess found
  // the float -> integer conversion of its sample positions overflowing): the image shrinks
  // to a dot, the rest reads 0; a non-finite crop is refused
  const Image gray{16, 16, 1, ColorOrder::kRGB, std::vector<uint8_t>(256, 200)};
  const Image dot = CropResize(gray.view(), PoseCrop{-8.3e25f, -8.3e25f, 1.7e26f, 1.7e26f}, 8, 8);
  CHECK(dot.pixels == std::vector<uint8_t>(64, 0));
  CHECK(CropResize(gray.view(), PoseCrop{-4, -4, 24, 24}, 6, 6).pixels[3 * 6 + 3] == 200);
  EXPECT_THROW(
      ErrorKind::kInvalidInput, "non-finite",
      CropResize(gray.view(), PoseCrop{0, 0, std::numeric_limits<float>::infinity(), 8}, 8, 8));

  // a peak at (3, 2) of a 6x5 heatmap, right and lower neighbours higher: +0.25 on both axes
  Tensor hm{{1, 1, 5, 6}, std::vector<float>(30, 0.0f)};
  hm.data[2 * 6 + 3] = 1.0f;
  hm.data[2 * 6 + 4] = 0.5f;
  hm.data[3 * 6 + 3] = 0.5f;
  std::vector<Keypoint> k = DecodeHeatmaps(hm, PoseCrop{10, 20, 60, 50});
  CHECK(k.size() == 1 && Near(k[0].score, 1.0f));
  CHECK(Near(k[0].x, 10 + 3.25f * 10) && Near(k[0].y, 20 + 2.25f * 10));
  hm.data.assign(30, 0.0f);
  hm.data[1 * 6 + 1] = 1.0f;  // px = py = 1: no offset (SimpleBaseline's rule)
  hm.data[1 * 6 + 2] = 0.5f;
  k = DecodeHeatmaps(hm, PoseCrop{0, 0, 6, 5});
  CHECK(Near(k[0].x, 1.0f) && Near(k[0].y, 1.0f));
  return Finish("test_dense");
}
