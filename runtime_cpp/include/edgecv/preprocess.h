// Image → network input. One implementation for C++ apps and Python (through the bindings).
#pragma once

#include <string>
#include <vector>

#include "edgecv/image.h"
#include "edgecv/json.h"

namespace edgecv {

// Bilinear resize with OpenCV's INTER_LINEAR sampling (pixel centres aligned, edges clamped);
// results are rounded to the nearest integer, so they agree with cv2.resize within one level.
Image ResizeBilinear(const ImageView& src, int out_width, int out_height);

// The region of `src` of size width x height centred as MXNet/GluonCV's center crop does.
Image CenterCrop(const ImageView& src, int width, int height);

// Classification-style preprocessing, read from the manifest's ordered op list.
class Preprocessor {
 public:
  Preprocessor() = default;
  // `ops` is the manifest's "preprocess" array; `input_shape` the model input (N, C, H, W).
  Preprocessor(const json::Value& ops, const std::vector<int64_t>& input_shape);

  // The 8-bit image just before normalisation (resized and cropped), in the model's color order.
  Image Geometry(const ImageView& image) const;
  // The network input tensor (1, 3, H, W), float32.
  Tensor Run(const ImageView& image) const;

  int resize_short() const { return resize_short_; }

 private:
  int resize_short_ = 0;  // 0: no resize step
  int crop_w_ = 0, crop_h_ = 0;
  float mean_[3] = {0, 0, 0};
  float std_[3] = {1, 1, 1};
  ColorOrder order_ = ColorOrder::kRGB;
};

}  // namespace edgecv
