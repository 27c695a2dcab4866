// Dense-prediction post-processing shared by every segmentation and pose model: label
// maps from per-pixel class scores, keypoints from heatmaps, and the person crop that
// feeds a pose network.
#pragma once

#include <cstdint>
#include <vector>

#include "edgecv/image.h"
#include "edgecv/preprocess.h"

namespace edgecv {

// ------------------------------------------------------------------ segmentation

constexpr int32_t kUnseenLabel = 255;  // an image pixel the network input did not cover

struct LabelMap {
  int width = 0, height = 0;
  std::vector<int32_t> labels;  // row-major, height * width
};

// Per-pixel argmax of class scores (1, C, H, W) at network-input resolution; ties go to the
// lower class index. Throws Error(kInvalidInput) on a wrong shape or NaN scores.
LabelMap ArgmaxLabels(const Tensor& scores);

// The label map at the original image's size: the class scores are resized (bilinear at
// each image pixel's centre mapped through `g`, OpenCV INTER_LINEAR conventions, clamped at
// the borders), then the argmax is taken. Resizing the scores rather than the labels keeps
// boundaries smooth and is what resizing the logits before argmax gives in NumPy/OpenCV.
// Image pixels outside the network input (a centre crop) get kUnseenLabel.
LabelMap SegmentLabels(const Tensor& scores, const Geometry& g);

// A colour image (RGB) of a label map: the Pascal VOC palette (the bits of the label spread
// over the high bits of R, G and B); kUnseenLabel gets VOC's "void" colour (224, 224, 192).
Image Colorize(const LabelMap& labels);

// ------------------------------------------------------------------ pose

struct Box {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // corners, image pixels
};

// The image region a person box maps onto the pose network input: the box's centre kept,
// the box widened or heightened to the input's aspect ratio, then enlarged by `scale`
// (1.25 in SimpleBaseline/GluonCV). Throws Error(kInvalidInput) for a non-finite box, one
// without area, or one that does not overlap the image.
struct PoseCrop {
  float x0 = 0, y0 = 0, width = 0, height = 0;
};
PoseCrop PersonCrop(const Box& box, int input_width, int input_height, float scale, int image_width,
                    int image_height);

// The crop resampled to out_width x out_height (bilinear; outside the image reads 0):
// network pixel (u, v) samples image point (x0 + u * width / out_width, y0 + v * height /
// out_height), the affine map of SimpleBaseline's crop.
Image CropResize(const ImageView& image, const PoseCrop& crop, int out_width, int out_height);

struct Keypoint {
  float x = 0, y = 0;  // image pixels
  float score = 0;     // the heatmap's peak value
};

// Heatmaps (1, K, H, W) → K keypoints: the peak of each heatmap (first maximum), moved a
// quarter pixel toward the higher neighbour along x and along y when the peak lies at
// 1 < px < W-1 and 1 < py < H-1 (SimpleBaseline's rule, as GluonCV applies it), then mapped
// back through the crop: x = x0 + hx * crop.width / W. The score is the peak value.
// Throws Error(kInvalidInput) on a wrong shape or NaN values.
std::vector<Keypoint> DecodeHeatmaps(const Tensor& heatmaps, const PoseCrop& crop);

}  // namespace edgecv
