#include "edgecv/image.h"

#include <algorithm>

#include "edgecv/error.h"

namespace edgecv {

namespace {
constexpr int kMinSide = 8;  // smaller images carry too little to classify or detect
}

int64_t Tensor::NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void CheckImage(const ImageView& image) {
  if (image.data == nullptr || image.width <= 0 || image.height <= 0)
    ThrowInvalidInput("image is empty");
  if (image.channels != 1 && image.channels != 3 && image.channels != 4)
    ThrowInvalidInput("image has " + std::to_string(image.channels) +
                      " channels; 1 (gray), 3 (color) or 4 (color + alpha) are accepted");
  if (image.width < kMinSide || image.height < kMinSide)
    ThrowInvalidInput("image is " + std::to_string(image.width) + "x" +
                      std::to_string(image.height) + " pixels; at least " +
                      std::to_string(kMinSide) + "x" + std::to_string(kMinSide) + " is required");
  if (image.stride != 0 && image.stride < static_cast<size_t>(image.width) * image.channels)
    ThrowInvalidInput("image row stride is smaller than width * channels");
}

Image ToColor(const ImageView& image) {
  CheckImage(image);
  const int c = image.channels;
  const size_t w = static_cast<size_t>(image.width);
  Image out{image.width, image.height, 3, image.order, {}};
  out.pixels.resize(w * image.height * 3);
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* src = image.row(y);
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * w * 3;
    if (c == 3) {
      std::copy_n(src, w * 3, dst);
      continue;
    }
    for (size_t x = 0; x < w; ++x, dst += 3) {
      const uint8_t* p = src + x * c;
      dst[0] = p[0];
      dst[1] = c == 1 ? p[0] : p[1];
      dst[2] = c == 1 ? p[0] : p[2];
    }
  }
  return out;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace edgecv
