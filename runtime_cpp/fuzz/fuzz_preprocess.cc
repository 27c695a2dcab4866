// Fuzz harness: preprocessing parameters and geometry. The input picks a manifest's
// preprocess ops (short-side resize + centre crop, letterbox, stretch or person crop, then
// normalize; sizes, scale, fill, mean/std and colour order, now and then absurd values) and
// an image (size, 1/3/4 channels, padded rows, colour order, pixels), then runs the
// Preprocessor as a Predictor does. Checked: the tensor is (1, 3, H, W) and finite, the
// geometry maps the network input back inside a finite frame; bad parameters are
// kInvalidArtifact, bad images kInvalidInput.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "edgecv/dense.h"
#include "edgecv/error.h"
#include "edgecv/json.h"
#include "edgecv/preprocess.h"
#include "fuzz_input.h"

namespace {

using edgecv::Error;
using edgecv::ErrorKind;

std::string Num(double v) {
  char text[64];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;  // "inf" and "nan" are not JSON: the reader refuses them
}

// A size: mostly small, now and then 0, negative or far too large.
int64_t Size(edgecv::fuzz::Input& in, int64_t small) {
  switch (in.Byte() % 16) {
    case 0:
      return 0;
    case 1:
      return -static_cast<int64_t>(in.U32() % 1000);
    case 2:
      return static_cast<int64_t>(in.U32()) << (in.Byte() % 28);
    default:
      return 1 + in.Int(0, static_cast<int>(small) - 1);
  }
}

std::string Ops(edgecv::fuzz::Input& in, int64_t h, int64_t w, int64_t* short_side) {
  const std::string size = "[" + std::to_string(h) + ", " + std::to_string(w) + "]";
  std::string ops = "[";
  switch (in.Byte() % 4) {
    case 0:
      *short_side = Size(in, 160);
      ops += R"({"op": "resize_short", "size": )" + std::to_string(*short_side) +
             R"(, "interpolation": "linear"}, {"op": "center_crop", "size": )" + size + "}";
      break;
    case 1:
      ops += R"({"op": "letterbox", "size": )" + size + R"(, "pad_value": [)" +
             std::to_string(in.Int(0, 300)) + ", " + std::to_string(in.Int(0, 255)) + ", " +
             std::to_string(in.Int(0, 255)) + "]}";
      break;
    case 2:
      ops += R"({"op": "resize", "size": )" + size + "}";
      break;
    default:
      ops += R"({"op": "person_crop", "size": )" + size + R"(, "scale": )" +
             Num(in.Float(0.0f, 4.0f)) + "}";
      break;
  }
  ops += R"(, {"op": "normalize", "mean": [)";
  for (int k = 0; k < 3; ++k) ops += Num(in.Float(0.0f, 255.0f)) + (k < 2 ? ", " : "], ");
  ops += R"("std": [)";
  for (int k = 0; k < 3; ++k) ops += Num(in.Float(0.01f, 100.0f)) + (k < 2 ? ", " : "], ");
  ops += std::string(R"("color": ")") + (in.Bool() ? "RGB" : "BGR") + R"(", "layout": "NCHW"}])";
  return ops;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgecv::fuzz::Input in(data, size);
  const int64_t h = Size(in, 96), w = Size(in, 96);
  edgecv::Preprocessor pre;
  int64_t short_side = 0;
  try {
    pre =
        edgecv::Preprocessor(edgecv::json::Value::Parse(Ops(in, h, w, &short_side)), {1, 3, h, w});
  } catch (const Error& e) {
    FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
    return 0;
  }
  FUZZ_ASSERT(pre.width() == w && pre.height() == h);
  // sizes the constructor accepts up to 8192 are checked above, run only when small: a
  // 8192x8192 input takes seconds and a gigabyte under ASan, and would make the fuzzer's
  // time and memory limits fire on valid work
  if (h * w > (int64_t{1} << 20) || short_side > 1024) return 0;

  edgecv::ImageView image;
  image.width = in.Int(0, 200);
  image.height = in.Int(0, 200);
  image.channels = in.Int(0, 5);
  const size_t row = static_cast<size_t>(image.width) * image.channels;
  image.stride = in.Bool() ? row + in.Int(0, 7) : 0;
  image.order = in.Bool() ? edgecv::ColorOrder::kBGR : edgecv::ColorOrder::kRGB;
  std::vector<uint8_t> pixels(std::max(image.stride, row) * image.height);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = in.remaining() ? in.Byte() : static_cast<uint8_t>(i * 31);
  image.data = pixels.data();

  edgecv::Geometry g;
  edgecv::Tensor t;
  try {
    t = pre.Run(image, &g);
  } catch (const Error& e) {
    FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidInput);
    return 0;
  }
  FUZZ_ASSERT((t.shape == std::vector<int64_t>{1, 3, h, w}));
  FUZZ_ASSERT(t.data.size() == static_cast<size_t>(3 * h * w));
  for (float v : t.data) FUZZ_ASSERT(std::isfinite(v));
  FUZZ_ASSERT(g.image_width == image.width && g.image_height == image.height);
  FUZZ_ASSERT(std::isfinite(g.scale_x) && g.scale_x > 0 && std::isfinite(g.scale_y) &&
              g.scale_y > 0 && std::isfinite(g.offset_x) && std::isfinite(g.offset_y));
  // the network input's corners map to finite image coordinates
  for (float x : {0.0f, static_cast<float>(w)}) FUZZ_ASSERT(std::isfinite(g.ToImageX(x)));
  for (float y : {0.0f, static_cast<float>(h)}) FUZZ_ASSERT(std::isfinite(g.ToImageY(y)));

  if (pre.person_crop()) {  // a pose model: a person box of the caller's
    const edgecv::Box box{in.Float(-50, 250), in.Float(-50, 250), in.Float(-50, 250),
                          in.Float(-50, 250)};
    try {
      const edgecv::PoseCrop crop = edgecv::PersonCrop(box, pre.width(), pre.height(),
                                                       pre.crop_scale(), image.width, image.height);
      const edgecv::Tensor c = pre.Normalize(pre.TransformCrop(image, crop));
      FUZZ_ASSERT((c.shape == std::vector<int64_t>{1, 3, h, w}));
    } catch (const Error& e) {
      FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidInput);
    }
  }
  return 0;
}
