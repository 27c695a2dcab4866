#include "edgecv/roi_align.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "edgecv/error.h"

namespace edgecv {

namespace {

// One bilinear sample of MXNet's ROIAlign: four plane offsets and their weights (all zero for
// a sample more than one cell outside the map), the same for every channel.
struct Sample {
  int64_t at[4] = {0, 0, 0, 0};
  float weight[4] = {0, 0, 0, 0};
};

Sample BilinearSample(int64_t height, int64_t width, float y, float x) {
  Sample s;  // (written so that a NaN position is outside too)
  if (!(y >= -1.0f && y <= static_cast<float>(height) && x >= -1.0f &&
        x <= static_cast<float>(width)))
    return s;
  y = std::max(y, 0.0f);
  x = std::max(x, 0.0f);
  int64_t y0 = static_cast<int64_t>(y), x0 = static_cast<int64_t>(x), y1, x1;
  if (y0 >= height - 1) {
    y0 = y1 = height - 1;
    y = static_cast<float>(y0);
  } else {
    y1 = y0 + 1;
  }
  if (x0 >= width - 1) {
    x0 = x1 = width - 1;
    x = static_cast<float>(x0);
  } else {
    x1 = x0 + 1;
  }
  const float ly = y - static_cast<float>(y0), lx = x - static_cast<float>(x0);
  const float hy = 1.0f - ly, hx = 1.0f - lx;
  s.at[0] = y0 * width + x0;
  s.at[1] = y0 * width + x1;
  s.at[2] = y1 * width + x0;
  s.at[3] = y1 * width + x1;
  s.weight[0] = hy * hx;
  s.weight[1] = hy * lx;
  s.weight[2] = ly * hx;
  s.weight[3] = ly * lx;
  return s;
}

// The sample table of one RoI is bins x samples per bin entries (14 x 14 x 2 x 2 = 784 for
// GluonCV's settings); a bound keeps a hostile RoI or spatial scale from asking for gigabytes.
constexpr int64_t kMaxSamplesPerRoi = int64_t{1} << 20;

}  // namespace

Tensor RoiAlign(const Tensor& features, const std::vector<Detection>& rois,
                const RoiAlignSettings& s, int64_t rows) {
  if (features.shape.size() != 4 || features.shape[0] != 1 || features.shape[2] < 1 ||
      features.shape[3] < 1 ||
      features.data.size() != static_cast<size_t>(Tensor::NumElements(features.shape)))
    ThrowInvalidInput("roi_align: features have shape " + ShapeString(features.shape) +
                      ", expected (1, C, H, W)");
  if (rows < static_cast<int64_t>(rois.size()))
    ThrowInvalidInput("roi_align: " + std::to_string(rois.size()) + " RoIs do not fit " +
                      std::to_string(rows) + " rows");
  if (s.pooled_height < 1 || s.pooled_width < 1 || !(s.spatial_scale > 0))
    ThrowInvalidInput("roi_align: pooled sizes and spatial_scale must be positive");
  const int64_t c = features.shape[1], h = features.shape[2], w = features.shape[3];
  const int64_t ph = s.pooled_height, pw = s.pooled_width, bins = ph * pw;
  Tensor out{{rows, c, ph, pw}, std::vector<float>(static_cast<size_t>(rows * c * bins), 0.0f)};
  const float shift = s.aligned ? 0.5f : 0.0f;
  for (size_t r = 0; r < rois.size(); ++r) {
    const Detection& roi = rois[r];
    if (!std::isfinite(roi.x1) || !std::isfinite(roi.y1) || !std::isfinite(roi.x2) ||
        !std::isfinite(roi.y2))
      ThrowInvalidInput("roi_align: a RoI is not finite");
    const float x0 = roi.x1 * s.spatial_scale - shift, y0 = roi.y1 * s.spatial_scale - shift;
    float rw = roi.x2 * s.spatial_scale - shift - x0, rh = roi.y2 * s.spatial_scale - shift - y0;
    if (!s.aligned) {
      rw = std::max(rw, 1.0f);
      rh = std::max(rh, 1.0f);
    }
    const float bw = rw / static_cast<float>(pw), bh = rh / static_cast<float>(ph);
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(bw) || !std::isfinite(bh))
      ThrowInvalidInput("roi_align: a RoI is not finite at the features' scale");
    // adaptive sampling: ceil(bin size) samples per side, bounded (a RoI of 1e9 pixels
    // would otherwise ask for that many)
    const float sh = s.sample_ratio > 0 ? static_cast<float>(s.sample_ratio) : std::ceil(bh);
    const float sw = s.sample_ratio > 0 ? static_cast<float>(s.sample_ratio) : std::ceil(bw);
    if (!(sh <= 1024.0f && sw <= 1024.0f))
      ThrowInvalidInput("roi_align: a RoI too large for adaptive sampling (" + std::to_string(sh) +
                        " x " + std::to_string(sw) + " samples per bin)");
    const int gh = static_cast<int>(sh), gw = static_cast<int>(sw);
    if (bins * gh * gw > kMaxSamplesPerRoi)
      ThrowInvalidInput("roi_align: " + std::to_string(bins * gh * gw) +
                        " samples for one RoI (at most " + std::to_string(kMaxSamplesPerRoi) + ")");
    const float count = static_cast<float>(std::max(gh * gw, 1));
    // the samples' positions and weights once per RoI (bin-major), then every channel
    std::vector<Sample> samples;
    samples.reserve(static_cast<size_t>(bins * gh * gw));
    for (int64_t i = 0; i < ph; ++i)
      for (int64_t j = 0; j < pw; ++j)
        for (int iy = 0; iy < gh; ++iy) {
          const float y = y0 + static_cast<float>(i) * bh +
                          (static_cast<float>(iy) + 0.5f) * bh / static_cast<float>(gh);
          for (int ix = 0; ix < gw; ++ix) {
            const float x = x0 + static_cast<float>(j) * bw +
                            (static_cast<float>(ix) + 0.5f) * bw / static_cast<float>(gw);
            samples.push_back(BilinearSample(h, w, y, x));
          }
        }
    const size_t per_bin = static_cast<size_t>(gh * gw);
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* plane = features.data.data() + ch * h * w;
      float* dst = out.data.data() + (static_cast<int64_t>(r) * c + ch) * bins;
      const Sample* sample = samples.data();
      for (int64_t b = 0; b < bins; ++b) {
        float sum = 0.0f;
        for (size_t k = 0; k < per_bin; ++k, ++sample)
          sum +=
              sample->weight[0] * plane[sample->at[0]] + sample->weight[1] * plane[sample->at[1]] +
              sample->weight[2] * plane[sample->at[2]] + sample->weight[3] * plane[sample->at[3]];
        dst[b] = sum / count;
      }
    }
  }
  return out;
}

}  // namespace edgecv
