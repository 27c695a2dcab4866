#include "edgecv/dense.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "edgecv/error.h"

namespace edgecv {

namespace {

// (C, H, W) of a (1, C, H, W) tensor; throws on anything else or on NaN.
void CheckPlanes(const Tensor& t, const char* what, int64_t* c, int64_t* h, int64_t* w) {
  if (t.shape.size() != 4 || t.shape[0] != 1 || t.shape[1] < 1 || t.shape[2] < 1 || t.shape[3] < 1)
    ThrowInvalidInput(std::string(what) + " must be (1, C, H, W), got " + ShapeString(t.shape));
  if (static_cast<int64_t>(t.data.size()) != Tensor::NumElements(t.shape))
    ThrowInvalidInput(std::string(what) + ": " + std::to_string(t.data.size()) +
                      " values for shape " + ShapeString(t.shape));
  for (float v : t.data)
    if (std::isnan(v)) ThrowInvalidInput(std::string(what) + " contain NaN");
  *c = t.shape[1];
  *h = t.shape[2];
  *w = t.shape[3];
}

}  // namespace

LabelMap ArgmaxLabels(const Tensor& scores) {
  int64_t c, h, w;
  CheckPlanes(scores, "class scores", &c, &h, &w);
  LabelMap out{static_cast<int>(w), static_cast<int>(h),
               std::vector<int32_t>(static_cast<size_t>(h * w), 0)};
  const size_t plane = static_cast<size_t>(h * w);
  std::vector<float> best(scores.data.begin(),
                          scores.data.begin() + static_cast<std::ptrdiff_t>(plane));
  for (int64_t k = 1; k < c; ++k) {
    const float* s = scores.data.data() + k * plane;
    for (size_t i = 0; i < plane; ++i)
      if (s[i] > best[i]) {
        best[i] = s[i];
        out.labels[i] = static_cast<int32_t>(k);
      }
  }
  return out;
}

LabelMap SegmentLabels(const Tensor& scores, const Geometry& g) {
  int64_t c, h, w;
  CheckPlanes(scores, "class scores", &c, &h, &w);
  if (g.image_width <= 0 || g.image_height <= 0)
    ThrowInvalidInput("segmentation: empty image geometry");
  LabelMap out{
      g.image_width, g.image_height,
      std::vector<int32_t>(static_cast<size_t>(g.image_width) * g.image_height, kUnseenLabel)};
  // image pixel centre (x + 0.5) → network coordinate (x + 0.5) * scale + offset → sample index
  std::vector<BilinearTap> xs(static_cast<size_t>(g.image_width)),
      ys(static_cast<size_t>(g.image_height));
  std::vector<char> x_in(xs.size()), y_in(ys.size());
  for (int x = 0; x < g.image_width; ++x) {
    const double f = (x + 0.5) * g.scale_x + g.offset_x;
    x_in[x] = f >= 0 && f <= static_cast<double>(w);
    xs[x] = TapAt(f - 0.5, w);
  }
  for (int y = 0; y < g.image_height; ++y) {
    const double f = (y + 0.5) * g.scale_y + g.offset_y;
    y_in[y] = f >= 0 && f <= static_cast<double>(h);
    ys[y] = TapAt(f - 0.5, h);
  }
  const size_t plane = static_cast<size_t>(h * w);
  for (int y = 0; y < g.image_height; ++y) {
    if (!y_in[y]) continue;
    const BilinearTap& ty = ys[y];
    for (int x = 0; x < g.image_width; ++x) {
      if (!x_in[x]) continue;
      const BilinearTap& tx = xs[x];
      const size_t i00 = static_cast<size_t>(ty.i0 * w + tx.i0),
                   i01 = static_cast<size_t>(ty.i0 * w + tx.i1);
      const size_t i10 = static_cast<size_t>(ty.i1 * w + tx.i0),
                   i11 = static_cast<size_t>(ty.i1 * w + tx.i1);
      float best = 0;
      int32_t label = 0;
      for (int64_t k = 0; k < c; ++k) {
        const float* s = scores.data.data() + k * plane;
        const float top = s[i00] + tx.w1 * (s[i01] - s[i00]);
        const float bottom = s[i10] + tx.w1 * (s[i11] - s[i10]);
        const float v = top + ty.w1 * (bottom - top);
        if (k == 0 || v > best) {
          best = v;
          label = static_cast<int32_t>(k);
        }
      }
      out.labels[static_cast<size_t>(y) * g.image_width + x] = label;
    }
  }
  return out;
}

Image Colorize(const LabelMap& labels) {
  Image out{labels.width, labels.height, 3, ColorOrder::kRGB, {}};
  out.pixels.resize(labels.labels.size() * 3);
  for (size_t i = 0; i < labels.labels.size(); ++i) {
    int32_t v = labels.labels[i];
    if (v < 0) ThrowInvalidInput("colorize: negative label " + std::to_string(v));
    uint8_t rgb[3] = {0, 0, 0};
    for (int bit = 7; v > 0 && bit >= 0; --bit, v >>= 3)
      for (int k = 0; k < 3; ++k) rgb[k] |= static_cast<uint8_t>(((v >> k) & 1) << bit);
    std::copy_n(rgb, 3, out.pixels.data() + i * 3);
  }
  return out;
}

PoseCrop PersonCrop(const Box& box, int input_width, int input_height, float scale, int image_width,
                    int image_height) {
  const float v[4] = {box.x1, box.y1, box.x2, box.y2};
  for (float f : v)
    if (!std::isfinite(f)) ThrowInvalidInput("person box has a non-finite coordinate");
  char text[96];
  std::snprintf(text, sizeof text, "person box (%g, %g, %g, %g)", box.x1, box.y1, box.x2, box.y2);
  if (!(box.x2 > box.x1 && box.y2 > box.y1)) ThrowInvalidInput(std::string(text) + " has no area");
  if (box.x2 <= 0 || box.y2 <= 0 || box.x1 >= image_width || box.y1 >= image_height)
    ThrowInvalidInput(std::string(text) + " lies outside the " + std::to_string(image_width) + "x" +
                      std::to_string(image_height) + " image");
  if (!(scale > 0)) ThrowInvalidInput("person crop scale must be > 0");
  const float aspect = static_cast<float>(input_width) / static_cast<float>(input_height);
  float w = box.x2 - box.x1, h = box.y2 - box.y1;
  if (w > aspect * h)
    h = w / aspect;
  else
    w = h * aspect;
  w *= scale;
  h *= scale;
  const float cx = 0.5f * (box.x1 + box.x2), cy = 0.5f * (box.y1 + box.y2);
  return {cx - 0.5f * w, cy - 0.5f * h, w, h};
}

Image CropResize(const ImageView& image, const PoseCrop& crop, int out_width, int out_height) {
  CheckImage(image);
  if (out_width <= 0 || out_height <= 0) ThrowInvalidInput("crop to an empty size");
  if (!std::isfinite(crop.x0) || !std::isfinite(crop.y0) || !std::isfinite(crop.width) ||
      !std::isfinite(crop.height))
    ThrowInvalidInput("person crop has a non-finite position or size");
  const int c = image.channels;
  Image out{out_width, out_height, c, image.order, {}};
  out.pixels.assign(static_cast<size_t>(out_width) * out_height * c, 0);
  const double sx = crop.width / out_width, sy = crop.height / out_height;
  for (int v = 0; v < out_height; ++v) {
    // more than a pixel outside the image reads 0 however far: clamped there, a huge crop (a
    // huge box or scale) converts to an integer in range and samples as it would
    const double fy = std::clamp(crop.y0 + v * sy, -2.0, image.height + 1.0);
    const int64_t y0 = static_cast<int64_t>(std::floor(fy));
    const float wy = static_cast<float>(fy - static_cast<double>(y0));
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(v) * out_width * c;
    for (int u = 0; u < out_width; ++u) {
      const double fx = std::clamp(crop.x0 + u * sx, -2.0, image.width + 1.0);
      const int64_t x0 = static_cast<int64_t>(std::floor(fx));
      const float wx = static_cast<float>(fx - static_cast<double>(x0));
      for (int k = 0; k < c; ++k) {
        // outside the image reads 0 (a constant border)
        auto at = [&](int64_t yy, int64_t xx) -> float {
          if (yy < 0 || xx < 0 || yy >= image.height || xx >= image.width) return 0.0f;
          return image.row(static_cast<int>(yy))[xx * c + k];
        };
        const float top = at(y0, x0) + wx * (at(y0, x0 + 1) - at(y0, x0));
        const float bottom = at(y0 + 1, x0) + wx * (at(y0 + 1, x0 + 1) - at(y0 + 1, x0));
        const float value = top + wy * (bottom - top);
        dst[u * c + k] = static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
      }
    }
  }
  return out;
}

std::vector<Keypoint> DecodeHeatmaps(const Tensor& heatmaps, const PoseCrop& crop) {
  int64_t k, h, w;
  CheckPlanes(heatmaps, "heatmaps", &k, &h, &w);
  const size_t plane = static_cast<size_t>(h * w);
  std::vector<Keypoint> out(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    const float* m = heatmaps.data.data() + j * plane;
    const size_t peak = static_cast<size_t>(std::max_element(m, m + plane) - m);
    const int64_t px = static_cast<int64_t>(peak) % w, py = static_cast<int64_t>(peak) / w;
    float x = static_cast<float>(px), y = static_cast<float>(py);
    auto toward = [](float lower, float higher) {
      return higher > lower ? 0.25f : higher < lower ? -0.25f : 0.0f;
    };
    // SimpleBaseline's (and GluonCV's) rule, kept exactly: only strictly inside [2, size-2]
    // on both axes, so its published accuracies carry over
    if (px > 1 && px < w - 1 && py > 1 && py < h - 1) {
      x += toward(m[py * w + px - 1], m[py * w + px + 1]);
      y += toward(m[(py - 1) * w + px], m[(py + 1) * w + px]);
    }
    out[static_cast<size_t>(j)] = {crop.x0 + x * crop.width / static_cast<float>(w),
                                   crop.y0 + y * crop.height / static_cast<float>(h), m[peak]};
  }
  return out;
}

}  // namespace edgecv
