// Images and tensors as the runtime sees them: decode-free 8-bit pixel buffers in,
// dense float tensors between stages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace edgecv {

enum class ColorOrder { kRGB, kBGR };

// A borrowed view of an 8-bit interleaved image (rows may be padded: `stride` bytes apart).
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  size_t stride = 0;  // bytes per row; 0 means width * channels
  ColorOrder order = ColorOrder::kRGB;

  size_t row_bytes() const { return stride ? stride : static_cast<size_t>(width) * channels; }
  const uint8_t* row(int y) const { return data + static_cast<size_t>(y) * row_bytes(); }
};

// An owned, tightly packed 8-bit image.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  ColorOrder order = ColorOrder::kRGB;
  std::vector<uint8_t> pixels;

  ImageView view() const { return {pixels.data(), width, height, channels, 0, order}; }
};

// A dense row-major float32 tensor.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  static int64_t NumElements(const std::vector<int64_t>& shape);
};

// Throws Error(kInvalidInput) unless `image` is usable: non-empty, at least 8x8 pixels, and
// 1 (gray), 3 (color) or 4 (color + alpha) channels.
void CheckImage(const ImageView& image);

// `image` as 3-channel color in its own color order: gray is replicated to the three channels
// and a 4th (alpha) channel is dropped, not composited over a background, as OpenCV's
// imread(IMREAD_COLOR) does for files, so that a file and the array it decodes to give the
// same network input. A 3-channel image is copied as it is.
Image ToColor(const ImageView& image);

std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace edgecv
