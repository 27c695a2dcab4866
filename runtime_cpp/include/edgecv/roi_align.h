// RoIAlign (He et al. 2017) with MXNet contrib.ROIAlign's rules, the way GluonCV's R-CNNs call
// it: pooled features of boxes on a feature map, for the second stage of a two-stage detector.
#pragma once

#include <cstdint>
#include <vector>

#include "edgecv/detection.h"
#include "edgecv/image.h"

namespace edgecv {

// MXNet's contrib.ROIAlign (position_sensitive off).
struct RoiAlignSettings {
  int pooled_height = 14, pooled_width = 14;
  float spatial_scale = 1.0f / 16;
  int sample_ratio = 2;  // samples per bin side; <= 0: ceil(bin size) (adaptive)
  bool aligned = false;  // true: pixel centres at +0.5 (RoI shifted by -0.5 cell)
};

// features (1, C, H, W), the RoIs' boxes (x1..y2 of each Detection, input pixels) → (rows, C,
// pooled_height, pooled_width), rows >= rois.size(): the rows past the RoIs are zero (the
// padding of a fixed-size stage-2 batch). Each bin averages sample_ratio^2 bilinear samples
// at its sub-cell centres; a sample more than one cell outside the map is 0, one within a
// cell is clamped to the border. Without `aligned` a RoI is at least one cell wide and high.
Tensor RoiAlign(const Tensor& features, const std::vector<Detection>& rois,
                const RoiAlignSettings& s, int64_t rows);

}  // namespace edgecv
