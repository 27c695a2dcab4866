#include "edgecv/preprocess.h"

#include <cmath>
#include <limits>

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
  CHECK(geom.scale_x == 0.5f && geom.offset_x == -6.0f &&
        geom.offset_y == -1.0f);  // 40x20 -> 20x10, crop 8x8
  CHECK(geo.width == 8 && geo.height == 8 && geo.order == ColorOrder::kRGB);
  Tensor t = pre.Run(Gradient(40, 20).view());
  CHECK((t.shape == std::vector<int64_t>{1, 3, 8, 8}));
  // channel 0 is red (constant 100 in the BGR source) after the color swap
  CHECK(std::fabs(t.data[0] - (100 - 10) / 2.0f) < 1e-6f);
  CHECK(std::fabs(t.data[64 + 5] - (geo.pixels[5 * 3 + 1] - 20) / 4.0f) < 1e-6f);

  // gray is replicated, alpha dropped: the same input as the 3-channel image
  Image color = Gradient(40, 20);
  Image gray{40, 20, 1, ColorOrder::kBGR, {}}, gray3 = color, bgra{40, 20, 4, ColorOrder::kBGR, {}};
  for (size_t i = 0; i < color.pixels.size(); i += 3) {
    gray.pixels.push_back(color.pixels[i + 1]);
    for (int k = 0; k < 3; ++k) gray3.pixels[i + k] = color.pixels[i + 1];
    bgra.pixels.insert(bgra.pixels.end(),
                       {color.pixels[i], color.pixels[i + 1], color.pixels[i + 2], 9});
  }
  Image expanded = ToColor(gray.view());
  CHECK(expanded.channels == 3 && expanded.pixels == gray3.pixels);
  CHECK(ToColor(bgra.view()).pixels == color.pixels);
  CHECK(pre.Run(gray.view()).data == pre.Run(gray3.view()).data);
  CHECK(pre.Run(bgra.view()).data == pre.Run(color.view()).data);
  ImageView padded = color.view();  // rows 4 bytes apart more than width * channels
  std::vector<uint8_t> rows;
  for (int y = 0; y < 20; ++y) {
    rows.insert(rows.end(), color.pixels.begin() + y * 120, color.pixels.begin() + (y + 1) * 120);
    rows.insert(rows.end(), 4, 0);
  }
  padded.data = rows.data();
  padded.stride = 124;
  CHECK(ToColor(padded).pixels == color.pixels);
  for (const char* geometry_op :
       {R"({"op": "letterbox", "size": [16, 16], "pad_value": [1, 2, 3]})",
        R"({"op": "person_crop", "size": [16, 16], "scale": 1.25})"}) {
    json::Value ops2 = json::Value::Parse(std::string("[") + geometry_op + R"(,
      {"op": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1], "color": "RGB", "layout": "NCHW"}])");
    Preprocessor other(ops2, {1, 3, 16, 16});
    CHECK(other.Run(gray.view()).data == other.Run(gray3.view()).data);
    CHECK(other.Run(bgra.view()).data == other.Run(color.view()).data);
  }
  Image two{32, 32, 2, ColorOrder::kRGB, std::vector<uint8_t>(32 * 32 * 2, 7)};
  EXPECT_THROW(ErrorKind::kInvalidInput, "2 channels", pre.Run(two.view()));
  Image tiny{1, 1, 3, ColorOrder::kRGB, {1, 2, 3}};
  EXPECT_THROW(ErrorKind::kInvalidInput, "1x1 pixels", pre.Run(tiny.view()));
  EXPECT_THROW(ErrorKind::kInvalidInput, "empty", pre.Run(ImageView{}));
  EXPECT_THROW(ErrorKind::kInvalidInput, "larger than the image", CenterCrop(g.view(), 18, 2));

  json::Value bad = json::Value::Parse(R"([{"op": "sharpen"}])");
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "'sharpen' is not supported",
               Preprocessor(bad, {1, 3, 8, 8}));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "(N, 3, H, W)", Preprocessor(ops, {1, 8, 8}));

  // what fuzz_preprocess found: sizes that made the runtime allocate gigabytes, a std that
  // normalises pixels to infinity, a person_crop scale of infinity
  const auto with = [](const std::string& geometry_op, const std::string& normalize = "") {
    return json::Value::Parse("[" + geometry_op + R"(, {"op": "normalize", "mean": [0, 0, 0], )" +
                              (normalize.empty() ? R"("std": [1, 1, 1])" : normalize) +
                              R"(, "color": "RGB", "layout": "NCHW"}])");
  };
  const std::string resize = R"({"op": "resize", "size": [8, 8]})";
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "1..8192 pixels a side",
               Preprocessor(with(R"({"op": "resize", "size": [8, 100000]})"), {1, 3, 8, 100000}));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "1..8192 pixels a side",
               Preprocessor(with(resize), {1, 3, 0, 8}));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "resize_short size must be in 1..8192",
               Preprocessor(with(R"({"op": "resize_short", "size": 4294967304,
                                     "interpolation": "linear"},
                                    {"op": "center_crop", "size": [8, 8]})"),
                            {1, 3, 8, 8}));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "std must be positive",
               Preprocessor(with(resize, R"("std": [1, 1e-40, 1])"), {1, 3, 8, 8}));
  EXPECT_THROW(
      ErrorKind::kInvalidArtifact, "mean must be",
      Preprocessor(with(resize, R"("std": [1, 1, 1], "mean": [1e30, 0, 0])"), {1, 3, 8, 8}));
  EXPECT_THROW(
      ErrorKind::kInvalidArtifact, "pad_value must be in 0..255, not 300",
      Preprocessor(with(R"({"op": "letterbox", "size": [8, 8], "pad_value": [300, 0, 0]})"),
                   {1, 3, 8, 8}));
  for (const char* scale : {"1e300", "1e-40", "0"})
    EXPECT_THROW(
        ErrorKind::kInvalidArtifact, "person_crop scale must be in [0.01, 100]",
        Preprocessor(
            with(std::string(R"({"op": "person_crop", "size": [8, 8], "scale": )") + scale + "}"),
            {1, 3, 8, 8}));
  const Preprocessor short_side(with(R"({"op": "resize_short", "size": 4096,
                                         "interpolation": "linear"},
                                        {"op": "center_crop", "size": [8, 8]})"),
                                {1, 3, 8, 8});
  const Image strip{8, 200, 1, ColorOrder::kRGB, std::vector<uint8_t>(8 * 200, 5)};
  EXPECT_THROW(ErrorKind::kInvalidInput, "more than the runtime resizes to",
               short_side.Run(strip.view()));
  CHECK(TapAt(std::numeric_limits<double>::quiet_NaN(), 4).i0 == 0);
  CHECK(TapAt(1e300, 4).i0 == 3 && TapAt(-1e300, 4).i0 == 0);
  return Finish("test_preprocess");
}
