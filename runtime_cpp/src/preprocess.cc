#include "edgecv/preprocess.h"

#include <algorithm>
#include <cmath>

#include "edgecv/dense.h"
#include "edgecv/error.h"

namespace edgecv {

namespace {

// The largest network input side and short-side resize a manifest may ask for, and the most
// pixels the short-side resize may make of an image (a 1:10000 strip resized to 256 would be
// 2.56M rows): beyond them a manifest or an image would only make the runtime allocate
// gigabytes (fuzz_preprocess found both).
constexpr int64_t kMaxSide = 8192;
constexpr int64_t kMaxResizedPixels = int64_t{1} << 26;

// Taps for each destination coordinate of a resize, with OpenCV's INTER_LINEAR conventions
// (half-pixel centres, clamp at the borders).
std::vector<BilinearTap> Taps(int src, int dst) {
  std::vector<BilinearTap> taps(dst);
  const double scale = static_cast<double>(src) / dst;
  for (int d = 0; d < dst; ++d) taps[d] = TapAt((d + 0.5) * scale - 0.5, src);
  return taps;
}

ColorOrder ParseOrder(const std::string& s) {
  if (s == "RGB") return ColorOrder::kRGB;
  if (s == "BGR") return ColorOrder::kBGR;
  ThrowInvalidArtifact("preprocess: unknown color order '" + s + "'");
}

// Gray and color + alpha become color after the geometry step, on the network-sized image
// rather than on the original (a 3-channel copy of an 8000x6000 photo is 144 MB); resampling
// treats channels independently, so the result is the same as converting first.
Image Colored(Image image) { return image.channels == 3 ? image : ToColor(image.view()); }

}  // namespace

BilinearTap TapAt(double position, int64_t size) {
  // outside the samples (however far) or NaN: the border, before the conversion to an integer,
  // which overflows there (fuzz_dense found a NaN geometry reaching it)
  if (!(position >= 0)) return {0, std::min<int64_t>(1, size - 1), 0.0f};
  if (position >= static_cast<double>(size - 1)) return {size - 1, size - 1, 0.0f};
  int64_t i = static_cast<int64_t>(std::floor(position));
  double w = position - static_cast<double>(i);
  if (i < 0) {
    i = 0;
    w = 0;
  }
  if (i >= size - 1) {
    i = size - 1;
    w = 0;
  }
  return {i, std::min(i + 1, size - 1), static_cast<float>(w)};
}

Image ResizeBilinear(const ImageView& src, int out_width, int out_height) {
  if (out_width <= 0 || out_height <= 0) ThrowInvalidInput("resize to an empty size");
  const int c = src.channels;
  Image out{out_width, out_height, c, src.order, {}};
  out.pixels.resize(static_cast<size_t>(out_width) * out_height * c);
  std::vector<BilinearTap> xs = Taps(src.width, out_width), ys = Taps(src.height, out_height);
  for (int y = 0; y < out_height; ++y) {
    const uint8_t* r0 = src.row(ys[y].i0);
    const uint8_t* r1 = src.row(ys[y].i1);
    float wy = ys[y].w1;
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * out_width * c;
    for (int x = 0; x < out_width; ++x) {
      const BilinearTap& t = xs[x];
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
  if (input_shape[2] < 1 || input_shape[2] > kMaxSide || input_shape[3] < 1 ||
      input_shape[3] > kMaxSide)
    ThrowInvalidArtifact("preprocess: model input " + ShapeString(input_shape) + " must be 1.." +
                         std::to_string(kMaxSide) + " pixels a side");
  input_shape_ = input_shape;
  out_h_ = static_cast<int>(input_shape[2]);
  out_w_ = static_cast<int>(input_shape[3]);
  auto check_size = [&](const json::Value& op) {
    std::vector<int64_t> size = json::AsShape(op.At("size"));  // (H, W)
    if (size.size() != 2 || size[0] != out_h_ || size[1] != out_w_)
      ThrowInvalidArtifact("preprocess: " + op.At("op").AsString() +
                           " size does not match the model input");
    if (op.Find("interpolation") && op.At("interpolation").AsString() != "linear")
      ThrowInvalidArtifact("preprocess: only linear interpolation is supported");
  };
  bool normalized = false, geometry = false;
  for (const json::Value& op : ops.AsArray()) {
    const std::string& name = op.At("op").AsString();
    if (name == "resize_short") {
      const int64_t short_side = op.At("size").AsInt();
      if (short_side < 1 || short_side > kMaxSide)
        ThrowInvalidArtifact("preprocess: resize_short size must be in 1.." +
                             std::to_string(kMaxSide));
      resize_short_ = static_cast<int>(short_side);
      if (op.At("interpolation").AsString() != "linear")
        ThrowInvalidArtifact("preprocess: only linear interpolation is supported");
    } else if (name == "center_crop") {
      check_size(op);
      if (resize_short_ == 0) ThrowInvalidArtifact("preprocess: center_crop needs resize_short");
      mode_ = Mode::kShortCrop;
      geometry = true;
    } else if (name == "letterbox" || name == "resize") {
      check_size(op);
      mode_ = name == "letterbox" ? Mode::kLetterbox : Mode::kStretch;
      if (mode_ == Mode::kLetterbox) {
        std::vector<int64_t> pad = json::AsShape(op.At("pad_value"));
        if (pad.size() != 3) ThrowInvalidArtifact("preprocess: letterbox pad_value needs 3 values");
        for (int k = 0; k < 3; ++k) {
          if (pad[k] > 255)  // (AsShape refuses negative values)
            ThrowInvalidArtifact("preprocess: letterbox pad_value must be in 0..255, not " +
                                 std::to_string(pad[k]));
          pad_[k] = static_cast<uint8_t>(pad[k]);
        }
      }
      geometry = true;
    } else if (name == "person_crop") {
      check_size(op);
      mode_ = Mode::kPersonCrop;
      crop_scale_ = static_cast<float>(op.At("scale").AsNumber());
      // SimpleBaseline's 1.25 give or take: far outside, the crop's geometry is no longer
      // finite (fuzz_preprocess found a denormal scale doing so)
      if (!(crop_scale_ >= 0.01f && crop_scale_ <= 100.0f))
        ThrowInvalidArtifact("preprocess: person_crop scale must be in [0.01, 100], not " +
                             std::to_string(crop_scale_));
      geometry = true;
    } else if (name == "normalize") {
      std::vector<float> mean = json::AsFloats(op.At("mean")), std = json::AsFloats(op.At("std"));
      if (mean.size() != 3 || std.size() != 3)
        ThrowInvalidArtifact("preprocess: normalize needs 3 mean and 3 std values");
      for (int k = 0; k < 3; ++k) {
        // bounded so that no 8-bit pixel normalises to infinity (fuzz_preprocess found a
        // denormal std doing so)
        if (!(std[k] >= 1e-6f && std[k] <= 1e6f))
          ThrowInvalidArtifact("preprocess: std must be positive, in [1e-6, 1e6]");
        if (!(std::fabs(mean[k]) <= 1e6f))
          ThrowInvalidArtifact("preprocess: mean must be in [-1e6, 1e6]");
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
  if (!geometry)
    ThrowInvalidArtifact("preprocess: no center_crop, letterbox, resize or person_crop step");
  if (!normalized) ThrowInvalidArtifact("preprocess: the op list has no 'normalize' step");
}

Image Preprocessor::Transform(const ImageView& image, Geometry* geometry) const {
  CheckImage(image);
  Geometry g;
  g.image_width = image.width;
  g.image_height = image.height;
  Image out;
  if (mode_ == Mode::kPersonCrop) {
    const Box whole{0.0f, 0.0f, static_cast<float>(image.width), static_cast<float>(image.height)};
    const PoseCrop crop = PersonCrop(whole, out_w_, out_h_, crop_scale_, image.width, image.height);
    out = CropResize(image, crop, out_w_, out_h_);
    g.scale_x = out_w_ / crop.width;
    g.scale_y = out_h_ / crop.height;
    g.offset_x = -crop.x0 * g.scale_x;
    g.offset_y = -crop.y0 * g.scale_y;
  } else if (mode_ == Mode::kShortCrop) {
    // keep the aspect ratio; the long side is truncated like MXNet's keep-ratio resize
    int64_t w = image.width, h = image.height;
    if (w < h) {
      h = h * resize_short_ / w;
      w = resize_short_;
    } else {
      w = w * resize_short_ / h;
      h = resize_short_;
    }
    if (w * h > kMaxResizedPixels)
      ThrowInvalidInput("image is " + std::to_string(image.width) + "x" +
                        std::to_string(image.height) + " pixels: resized to a short side of " +
                        std::to_string(resize_short_) + " it would be " + std::to_string(w) + "x" +
                        std::to_string(h) + ", more than the runtime resizes to");
    Image resized = ResizeBilinear(image, static_cast<int>(w), static_cast<int>(h));
    out = CenterCrop(resized.view(), out_w_, out_h_);
    g.scale_x = static_cast<float>(w) / image.width;
    g.scale_y = static_cast<float>(h) / image.height;
    g.offset_x = -static_cast<float>((w - out_w_) / 2);
    g.offset_y = -static_cast<float>((h - out_h_) / 2);
  } else if (mode_ == Mode::kStretch) {
    out = ResizeBilinear(image, out_w_, out_h_);
    g.scale_x = static_cast<float>(out_w_) / image.width;
    g.scale_y = static_cast<float>(out_h_) / image.height;
  } else {
    double s = std::min(static_cast<double>(out_w_) / image.width,
                        static_cast<double>(out_h_) / image.height);
    int w = std::max(1, static_cast<int>(std::lround(image.width * s)));
    int h = std::max(1, static_cast<int>(std::lround(image.height * s)));
    Image resized = Colored(ResizeBilinear(image, w, h));
    int x0 = (out_w_ - w) / 2, y0 = (out_h_ - h) / 2;
    out = Image{out_w_, out_h_, 3, image.order, {}};
    out.pixels.resize(static_cast<size_t>(out_w_) * out_h_ * 3);
    // the fill is given in the model's color order; the canvas is still in the image's
    const bool swap = image.order != order_;
    for (size_t i = 0; i < out.pixels.size(); i += 3)
      for (int k = 0; k < 3; ++k) out.pixels[i + k] = pad_[swap ? 2 - k : k];
    for (int y = 0; y < h; ++y)
      std::copy_n(resized.pixels.data() + static_cast<size_t>(y) * w * 3,
                  static_cast<size_t>(w) * 3,
                  out.pixels.data() + (static_cast<size_t>(y0 + y) * out_w_ + x0) * 3);
    g.scale_x = static_cast<float>(w) / image.width;
    g.scale_y = static_cast<float>(h) / image.height;
    g.offset_x = static_cast<float>(x0);
    g.offset_y = static_cast<float>(y0);
  }
  if (geometry) *geometry = g;
  return ToModelOrder(Colored(std::move(out)));
}

Image Preprocessor::ToModelOrder(Image image) const {
  if (image.order != order_) {
    for (size_t i = 0; i < image.pixels.size(); i += 3)
      std::swap(image.pixels[i], image.pixels[i + 2]);
    image.order = order_;
  }
  return image;
}

Image Preprocessor::TransformCrop(const ImageView& image, const PoseCrop& crop) const {
  if (mode_ != Mode::kPersonCrop) ThrowInvalidInput("this model does not take person boxes");
  return ToModelOrder(Colored(CropResize(image, crop, out_w_, out_h_)));
}

Tensor Preprocessor::Run(const ImageView& image, Geometry* geometry) const {
  return Normalize(Transform(image, geometry));
}

Tensor Preprocessor::Normalize(const Image& img) const {
  if (img.width != out_w_ || img.height != out_h_ || img.channels != 3 || img.order != order_)
    ThrowInvalidInput("normalize: the image is not a transformed model input");
  Tensor t;
  t.shape = {1, 3, out_h_, out_w_};
  const size_t plane = static_cast<size_t>(out_h_) * out_w_;
  t.data.resize(3 * plane);
  float scale[3];
  for (int k = 0; k < 3; ++k) scale[k] = 1.0f / std_[k];
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < 3; ++k)
      t.data[k * plane + i] = (img.pixels[i * 3 + k] - mean_[k]) * scale[k];
  return t;
}

}  // namespace edgecv
