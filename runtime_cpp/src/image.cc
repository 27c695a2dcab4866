#include "edgecv/image.h"

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

void CheckColorImage(const ImageView& image) {
  if (image.data == nullptr || image.width <= 0 || image.height <= 0)
    ThrowInvalidInput("image is empty");
  if (image.channels == 1)
    ThrowInvalidInput("image is grayscale (1 channel); a 3-channel color image is required");
  if (image.channels == 4)
    ThrowInvalidInput("image has 4 channels (alpha); drop the alpha channel first");
  if (image.channels != 3)
    ThrowInvalidInput("image has " + std::to_string(image.channels) +
                      " channels; a 3-channel color image is required");
  if (image.width < kMinSide || image.height < kMinSide)
    ThrowInvalidInput("image is " + std::to_string(image.width) + "x" +
                      std::to_string(image.height) + " pixels; at least " +
                      std::to_string(kMinSide) + "x" + std::to_string(kMinSide) +
                      " is required");
  if (image.stride != 0 && image.stride < static_cast<size_t>(image.width) * 3)
    ThrowInvalidInput("image row stride is smaller than width * channels");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace edgecv
