#include "edgecv/preprocess.h"

#include <algorithm>
#include <cmath>

#include "edgecv/error.h"

namespace edgecv {

namespace {

// Source index and weight of the right/bottom neighbour for each destination coordinate,
// with OpenCV's INTER_LINEAR conventions (half-pixel centres, clamp at the borders).
struct Tap {
  int i0, i1;
  float w1;
};

std::vector<Tap> Taps(int src, int dst) {
  std::vector<Tap> taps(dst);
  double scale = static_cast<double>(src) / dst;
  for (int d = 0; d < dst; ++d) {
    double f = (d + 0.5) * scale - 0.5;
    int i = static_cast<int>(std::floor(f));
    double w = f - i;
    if (i < 0) {
      i = 0;
      w = 0;
    }
    if (i >= src - 1) {
      i = src - 1;
      w = 0;
    }
    taps[d] = {i, std::min(i + 1, src - 1), static_cast<float>(w)};
  }
  return taps;
}

ColorOrder ParseOrder(const std::string& s) {
  if (s == "RGB") return ColorOrder::kRGB;
  if (s == "BGR") return ColorOrder::kBGR;
  ThrowInvalidArtifact("preprocess: unknown color order '" + s + "'");
}

}  // namespace

Image ResizeBilinear(const ImageView& src, int out_width, int out_height) {
  if (out_width <= 0 || out_height <= 0) ThrowInvalidInput("resize to an empty size");
  const int c = src.channels;
  Image out{out_width, out_height, c, src.order, {}};
  out.pixels.resize(static_cast<size_t>(out_width) * out_height * c);
  std::vector<Tap> xs = Taps(src.width, out_width), ys = Taps(src.height, out_height);
  for (int y = 0; y < out_height; ++y) {
    const uint8_t* r0 = src.row(ys[y].i0);
    const uint8_t* r1 = src.row(ys[y].i1);
    float wy = ys[y].w1;
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * out_width * c;
    for (int x = 0; x < out_width; ++x) {
      const Tap& t = xs[x];
      for (int k = 0; k < c; ++k) {
        float top = r0[t.i0 * c + k] + t.w1 * (r0[t.i1 * c + k] - r0[t.i0 * c + k]);
        float bot = r1[t.i0 * c + k] + t.w1 * (r1[t.i1 * c + k] - r1[t.i0 * c + k]);
        float v = top + wy * (bot - top);
        dst[x * c + k] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

Image CenterCrop(const ImageView& src, int width, int height) {
  if (width > src.width || height > src.height)
    ThrowInvalidInput("center crop " + std::to_string(width) + "x" + std::to_string(height) +
                      " is larger than the image " + std::to_string(src.width) + "x" +
                      std::to_string(src.height));
  const int c = src.channels;
  const int x0 = (src.width - width) / 2, y0 = (src.height - height) / 2;
  Image out{width, height, c, src.order, {}};
  out.pixels.resize(static_cast<size_t>(width) * height * c);
  for (int y = 0; y < height; ++y)
    std::copy_n(src.row(y0 + y) + static_cast<size_t>(x0) * c, static_cast<size_t>(width) * c,
                out.pixels.data() + static_cast<size_t>(y) * width * c);
  return out;
}

Preprocessor::Preprocessor(const json::Value& ops, const std::vector<int64_t>& input_shape) {
  if (input_shape.size() != 4 || input_shape[1] != 3)
    ThrowInvalidArtifact("preprocess: model input must be (N, 3, H, W), got " +
                         ShapeString(input_shape));
  crop_h_ = static_cast<int>(input_shape[2]);
  crop_w_ = static_cast<int>(input_shape[3]);
  bool normalized = false;
  for (const json::Value& op : ops.AsArray()) {
    const std::string& name = op.At("op").AsString();
    if (name == "resize_short") {
      resize_short_ = static_cast<int>(op.At("size").AsInt());
      if (op.At("interpolation").AsString() != "linear")
        ThrowInvalidArtifact("preprocess: only linear interpolation is supported");
    } else if (name == "center_crop") {
      std::vector<int64_t> size = json::AsShape(op.At("size"));  // (H, W)
      if (size.size() != 2 || size[0] != crop_h_ || size[1] != crop_w_)
        ThrowInvalidArtifact("preprocess: center_crop size does not match the model input");
    } else if (name == "normalize") {
      std::vector<float> mean = json::AsFloats(op.At("mean")), std = json::AsFloats(op.At("std"));
      if (mean.size() != 3 || std.size() != 3)
        ThrowInvalidArtifact("preprocess: normalize needs 3 mean and 3 std values");
      for (int k = 0; k < 3; ++k) {
        if (!(std[k] > 0)) ThrowInvalidArtifact("preprocess: std must be positive");
        mean_[k] = mean[k];
        std_[k] = std[k];
      }
      order_ = ParseOrder(op.At("color").AsString());
      if (op.At("layout").AsString() != "NCHW")
        ThrowInvalidArtifact("preprocess: only NCHW layout is supported");
      normalized = true;
    } else {
      ThrowInvalidArtifact("preprocess op '" + name + "' is not supported by this runtime");
    }
  }
  if (!normalized) ThrowInvalidArtifact("preprocess: the op list has no 'normalize' step");
}

Image Preprocessor::Geometry(const ImageView& image) const {
  CheckColorImage(image);
  int w = image.width, h = image.height;
  if (resize_short_ > 0) {
    // keep the aspect ratio; the long side is truncated like MXNet's keep-ratio resize
    if (w < h) {
      h = static_cast<int>(static_cast<int64_t>(h) * resize_short_ / w);
      w = resize_short_;
    } else {
      w = static_cast<int>(static_cast<int64_t>(w) * resize_short_ / h);
      h = resize_short_;
    }
  } else {
    w = crop_w_;
    h = crop_h_;
  }
  Image resized = ResizeBilinear(image, w, h);
  Image cropped = CenterCrop(resized.view(), crop_w_, crop_h_);
  if (cropped.order != order_) {
    for (size_t i = 0; i < cropped.pixels.size(); i += 3)
      std::swap(cropped.pixels[i], cropped.pixels[i + 2]);
    cropped.order = order_;
  }
  return cropped;
}

Tensor Preprocessor::Run(const ImageView& image) const {
  Image img = Geometry(image);
  Tensor t;
  t.shape = {1, 3, crop_h_, crop_w_};
  const size_t plane = static_cast<size_t>(crop_h_) * crop_w_;
  t.data.resize(3 * plane);
  float scale[3];
  for (int k = 0; k < 3; ++k) scale[k] = 1.0f / std_[k];
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < 3; ++k)
      t.data[k * plane + i] = (img.pixels[i * 3 + k] - mean_[k]) * scale[k];
  return t;
}

}  // namespace edgecv
