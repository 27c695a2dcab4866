// Image → network input. One implementation for C++ apps and Python (through the bindings).
#pragma once

#include <string>
#include <vector>

#include "edgecv/image.h"
#include "edgecv/json.h"

namespace edgecv {

// One bilinear sample position along an axis of `size` samples: the two indices and the
// weight of the second, clamped at the borders as OpenCV's INTER_LINEAR does.
struct BilinearTap {
  int64_t i0 = 0, i1 = 0;
  float w1 = 0.0f;
};
BilinearTap TapAt(double position, int64_t size);

// Bilinear resize with OpenCV's INTER_LINEAR sampling (pixel centres aligned, edges clamped);
// results are rounded to the nearest integer, so they agree with cv2.resize within one level.
Image ResizeBilinear(const ImageView& src, int out_width, int out_height);

// The region of `src` of size width x height centred as MXNet/GluonCV's center crop does.
Image CenterCrop(const ImageView& src, int width, int height);

struct PoseCrop;  // dense.h

// How network-input pixel coordinates relate to the original image:
// net = original * scale + offset (per axis).
struct Geometry {
  float scale_x = 1.0f, scale_y = 1.0f;
  float offset_x = 0.0f, offset_y = 0.0f;
  int image_width = 0, image_height = 0;  // the original image

  float ToImageX(float x) const { return (x - offset_x) / scale_x; }
  float ToImageY(float y) const { return (y - offset_y) / scale_y; }
};

// The manifest's ordered preprocess ops: one geometry op (resize_short + center_crop,
// letterbox, or resize) then normalize.
class Preprocessor {
 public:
  Preprocessor() = default;
  // `ops` is the manifest's "preprocess" array; `input_shape` the model input (N, C, H, W).
  Preprocessor(const json::Value& ops, const std::vector<int64_t>& input_shape);

  // The 8-bit image just before normalisation, in the model's color order, and its geometry.
  // `image` may be gray, color or color + alpha (1, 3 or 4 channels): see ToColor.
  Image Transform(const ImageView& image, Geometry* geometry = nullptr) const;
  // The network input tensor (1, 3, H, W), float32, from a transformed image.
  Tensor Normalize(const Image& transformed) const;
  // Transform then Normalize.
  Tensor Run(const ImageView& image, Geometry* geometry = nullptr) const;

  // Pose models ("person_crop"): the person box's region of the image resampled to the input
  // (see PersonCrop, CropResize), in the model's color order. Transform() treats the whole
  // image as the person box.
  bool person_crop() const { return mode_ == Mode::kPersonCrop; }
  float crop_scale() const { return crop_scale_; }
  int width() const { return out_w_; }
  int height() const { return out_h_; }
  const std::vector<int64_t>& input_shape() const { return input_shape_; }  // N, C, H, W
  Image TransformCrop(const ImageView& image, const PoseCrop& crop) const;

 private:
  Image ToModelOrder(Image image) const;

  enum class Mode { kShortCrop, kLetterbox, kStretch, kPersonCrop };
  Mode mode_ = Mode::kStretch;
  int resize_short_ = 0;
  float crop_scale_ = 1.25f;
  int out_w_ = 0, out_h_ = 0;
  std::vector<int64_t> input_shape_;
  uint8_t pad_[3] = {0, 0, 0};  // letterbox fill, model color order
  float mean_[3] = {0, 0, 0};
  float std_[3] = {1, 1, 1};
  ColorOrder order_ = ColorOrder::kRGB;
};

}  // namespace edgecv
