#include "edgecv/preprocess.h"

#include <cmath>

#include "check.h"

using namespace edgecv;

namespace {
Image Gradient(int w, int h) {
  Image img{w, h, 3, ColorOrder::kBGR, {}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.pixels.push_back(static_cast<uint8_t>(x * 255 / (w - 1)));  // B
      img.pixels.push_back(static_cast<uint8_t>(y * 255 / (h - 1)));  // G
      img.pixels.push_back(100);                                      // R
    }
  return img;
}
}  // namespace

int main() {
  // identity resize returns the image unchanged
  Image g = Gradient(17, 9);
  Image same = ResizeBilinear(g.view(), 17, 9);
  CHECK(same.pixels == g.pixels);

  // 2x upscale of a 2-pixel row: OpenCV gives 0, 64, 191, 255 (quarter-pixel taps, clamped ends)
  Image row{2, 1, 1, ColorOrder::kRGB, {0, 255}};
  Image up = ResizeBilinear(row.view(), 4, 1);
  CHECK(up.pixels[0] == 0 && up.pixels[1] == 64 && up.pixels[2] == 191 && up.pixels[3] == 255);

  Image crop = CenterCrop(g.view(), 5, 3);
  CHECK(crop.width == 5 && crop.height == 3);
  CHECK(crop.pixels[0] == g.pixels[(3 * 17 + 6) * 3]);  // x0 = (17-5)/2 = 6, y0 = (9-3)/2 = 3

  json::Value ops = json::Value::Parse(R"([
    {"op": "resize_short", "size": 10, "interpolation": "linear"},
    {"op": "center_crop", "size": [8, 8]},
    {"op": "normalize", "mean": [10, 20, 30], "std": [2, 4, 5], "color": "RGB", "layout": "NCHW"}])");
  Preprocessor pre(ops, {1, 3, 8, 8});
  Geometry geom;
  Image geo = pre.Transform(Gradient(40, 20).view(), &geom);
  CHECK(geom.scale_x == 0.5f && geom.offset_x == -6.0f && geom.offset_y == -1.0f);  // 40x20 -> 20x10, crop 8x8
  CHECK(geo.width == 8 && geo.height == 8 && geo.order == ColorOrder::kRGB);
  Tensor t = pre.Run(Gradient(40, 20).view());
  CHECK((t.shape == std::vector<int64_t>{1, 3, 8, 8}));
  // channel 0 is red (constant 100 in the BGR source) after the color swap
  CHECK(std::fabs(t.data[0] - (100 - 10) / 2.0f) < 1e-6f);
  CHECK(std::fabs(t.data[64 + 5] - (geo.pixels[5 * 3 + 1] - 20) / 4.0f) < 1e-6f);

  Image gray{32, 32, 1, ColorOrder::kRGB, std::vector<uint8_t>(32 * 32, 7)};
  EXPECT_THROW(ErrorKind::kInvalidInput, "grayscale", pre.Run(gray.view()));
  Image rgba{32, 32, 4, ColorOrder::kRGB, std::vector<uint8_t>(32 * 32 * 4, 7)};
  EXPECT_THROW(ErrorKind::kInvalidInput, "4 channels", pre.Run(rgba.view()));
  Image tiny{1, 1, 3, ColorOrder::kRGB, {1, 2, 3}};
  EXPECT_THROW(ErrorKind::kInvalidInput, "1x1 pixels", pre.Run(tiny.view()));
  EXPECT_THROW(ErrorKind::kInvalidInput, "empty", pre.Run(ImageView{}));
  EXPECT_THROW(ErrorKind::kInvalidInput, "larger than the image", CenterCrop(g.view(), 18, 2));

  json::Value bad = json::Value::Parse(R"([{"op": "sharpen"}])");
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "'sharpen' is not supported",
               Preprocessor(bad, {1, 3, 8, 8}));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "(N, 3, H, W)", Preprocessor(ops, {1, 8, 8}));
  return Finish("test_preprocess");
}
