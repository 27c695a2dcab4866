#include "edgecv/rcnn.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "edgecv/error.h"

namespace edgecv {

namespace {

double Number(const json::Value& op, const char* op_name, const char* field, double low,
              double high) {
  const double v = op.At(field).AsNumber();
  if (!(v >= low && v <= high))
    ThrowInvalidArtifact(std::string(op_name) + ": " + field + " must be in " +
                         std::to_string(low) + ".." + std::to_string(high) + ", not " +
                         std::to_string(v));
  return v;
}

// A tensor's values fill its shape (a C++ caller's Tensor may not).
void CheckFilled(const Tensor& t, const std::string& what) {
  if (t.data.size() != static_cast<size_t>(Tensor::NumElements(t.shape)))
    ThrowInvalidInput(what + " hold " + std::to_string(t.data.size()) + " values for shape " +
                      ShapeString(t.shape));
}

int Whole(const json::Value& op, const char* op_name, const char* field, int low, int high) {
  const double v = Number(op, op_name, field, low, high);
  if (v != std::floor(v))
    ThrowInvalidArtifact(std::string(op_name) + ": " + field + " must be a whole number, not " +
                         std::to_string(v));
  return static_cast<int>(v);
}

// A box from offsets (dx, dy, dw, dh), already multiplied by the stds, around a corner box:
// MXNet's box_decode (format "corner": width x2 - x1, centre x1 + width / 2).
void DecodeBox(const float* a, float dx, float dy, float dw, float dh, float clip, float* out) {
  const float w = a[2] - a[0], h = a[3] - a[1];
  const float cx = dx * w + (a[0] + w * 0.5f), cy = dy * h + (a[1] + h * 0.5f);
  if (clip > 0) {
    dw = std::min(dw, clip);
    dh = std::min(dh, clip);
  }
  const float hw = std::exp(dw) * w * 0.5f, hh = std::exp(dh) * h * 0.5f;
  out[0] = cx - hw;
  out[1] = cy - hh;
  out[2] = cx + hw;
  out[3] = cy + hh;
}

}  // namespace

RpnSettings ParseRpnSettings(const json::Value& op) {
  const char* name = "rpn_proposals";
  RpnSettings s;
  s.stride = Whole(op, name, "stride", 1, 4096);
  s.base_size = Number(op, name, "base_size", 1e-3, 1e5);
  for (auto [field, list] : {std::pair{"scales", &s.scales}, std::pair{"ratios", &s.ratios}}) {
    list->clear();
    for (const json::Value& v : op.At(field).AsArray()) list->push_back(v.AsNumber());
    if (list->empty()) ThrowInvalidArtifact("rpn_proposals: scales and ratios must not be empty");
    for (double v : *list)
      if (!(v > 0.0 && v < 1e5))
        ThrowInvalidArtifact("rpn_proposals: scales and ratios must be positive, not " +
                             std::to_string(v));
  }
  s.pre_nms = Whole(op, name, "pre_nms", -1, 1 << 24);
  s.post_nms = Whole(op, name, "post_nms", 1, 1 << 20);
  s.nms_threshold = static_cast<float>(Number(op, name, "nms_threshold", 0.0, 1.0));
  s.min_size = static_cast<float>(Number(op, name, "min_size", 0.0, 1e5));
  s.box_clip = static_cast<float>(Number(op, name, "box_clip", -1.0, 1e3));
  return s;
}

std::vector<float> RpnAnchors(const RpnSettings& s, int64_t height, int64_t width) {
  // one cell's anchors, ratio-major; np.round's half-to-even is nearbyint's default mode
  const double stride = s.stride, centre = (stride - 1) / 2;
  std::vector<double> cell;
  for (double ratio : s.ratios) {
    const double w = std::nearbyint(std::sqrt(stride * stride / ratio));
    const double h = std::nearbyint(w * ratio);
    for (double scale : s.scales) {
      const double f = scale * s.base_size / stride;
      const double hw = (w * f - 1) / 2, hh = (h * f - 1) / 2;
      cell.insert(cell.end(), {centre - hw, centre - hh, centre + hw, centre + hh});
    }
  }
  std::vector<float> out;
  out.reserve(static_cast<size_t>(height * width) * cell.size());
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (size_t i = 0; i < cell.size(); ++i)
        out.push_back(
            static_cast<float>(cell[i] + static_cast<double>((i % 2 ? y : x) * s.stride)));
  return out;
}

std::vector<Detection> RpnProposals(const Tensor& scores, const Tensor& offsets,
                                    const RpnSettings& s, int image_width, int image_height) {
  const int64_t a = s.anchors_per_cell();
  if (scores.shape.size() != 4 || scores.shape[0] != 1 || scores.shape[1] != a)
    ThrowInvalidInput("rpn_proposals: scores have shape " + ShapeString(scores.shape) +
                      ", expected (1, " + std::to_string(a) + ", H, W)");
  const int64_t h = scores.shape[2], w = scores.shape[3], cells = h * w;
  if (offsets.shape != std::vector<int64_t>{1, 4 * a, h, w})
    ThrowInvalidInput("rpn_proposals: offsets have shape " + ShapeString(offsets.shape) +
                      ", expected " + ShapeString({1, 4 * a, h, w}));
  if (image_width < 1 || image_height < 1)
    ThrowInvalidInput("rpn_proposals: the image size must be positive");
  CheckFilled(scores, "rpn_proposals: scores");
  CheckFilled(offsets, "rpn_proposals: offsets");
  const std::vector<float> anchors = RpnAnchors(s, h, w);
  const float bound[4] = {static_cast<float>(image_width), static_cast<float>(image_height),
                          static_cast<float>(image_width), static_cast<float>(image_height)};
  std::vector<Detection> candidates;
  candidates.reserve(static_cast<size_t>(cells * a));
  for (int64_t cell = 0; cell < cells; ++cell)
    for (int64_t k = 0; k < a; ++k) {
      const float score = scores.data[k * cells + cell];
      if (std::isnan(score)) ThrowInvalidInput("rpn_proposals: the scores contain NaN");
      const float* d = offsets.data.data() + 4 * k * cells + cell;
      float box[4];
      DecodeBox(anchors.data() + (cell * a + k) * 4, d[0], d[cells], d[2 * cells], d[3 * cells],
                s.box_clip, box);
      for (int i = 0; i < 4; ++i) {
        if (std::isnan(box[i])) ThrowInvalidInput("rpn_proposals: the offsets contain NaN");
        box[i] = std::min(std::max(box[i], 0.0f), bound[i]);
      }
      if (box[2] - box[0] + 1 < s.min_size || box[3] - box[1] + 1 < s.min_size) continue;
      candidates.push_back({0, score, box[0], box[1], box[2], box[3]});
    }
  NmsOptions o;
  o.iou_threshold = s.nms_threshold;
  o.score_threshold = 0.0f;
  o.topk = s.pre_nms;
  o.max_detections = s.pre_nms > 0 ? std::min(s.post_nms, s.pre_nms) : s.post_nms;
  o.class_agnostic = true;
  return Nms(std::move(candidates), o);
}

RoiAlignSettings ParseRoiAlign(const json::Value& op) {
  const char* name = "roi_align";
  RoiAlignSettings s;
  s.pooled_height = Whole(op, name, "pooled_height", 1, 1024);
  s.pooled_width = Whole(op, name, "pooled_width", 1, 1024);
  s.spatial_scale = static_cast<float>(Number(op, name, "spatial_scale", 1e-6, 1.0));
  s.sample_ratio = Whole(op, name, "sample_ratio", 0, 64);
  s.aligned = op.At("aligned").AsBool();
  return s;
}

RcnnHead ParseRcnnHead(const json::Value& op) {
  const char* name = "rcnn_decode";
  RcnnHead head;
  head.num_classes = Whole(op, name, "num_classes", 1, 1 << 16);
  head.stds = json::AsFloats(op.At("stds"));
  if (head.stds.size() != 4) ThrowInvalidArtifact("rcnn_decode: stds must hold 4 values");
  for (float v : head.stds)
    if (!(v > 0.0f && v < 1e3f)) ThrowInvalidArtifact("rcnn_decode: stds must be positive");
  head.box_clip = static_cast<float>(Number(op, name, "box_clip", -1.0, 1e3));
  head.topk = Whole(op, name, "topk", -1, 1 << 20);
  return head;
}

std::vector<Detection> DecodeRcnn(const Tensor& probs, const Tensor& offsets,
                                  const std::vector<Detection>& rois, const RcnnHead& head,
                                  float score_threshold) {
  const int64_t c = head.num_classes;
  if (c < 1 || head.stds.size() != 4)
    ThrowInvalidInput("rcnn_decode: num_classes must be >= 1 and stds hold 4 values");
  if (probs.shape.size() != 2 || probs.shape[1] != c + 1)
    ThrowInvalidInput("rcnn_decode: class probabilities have shape " + ShapeString(probs.shape) +
                      ", expected (R, " + std::to_string(c + 1) + ")");
  const int64_t r = probs.shape[0];
  if (offsets.shape != std::vector<int64_t>{r, 4 * c})
    ThrowInvalidInput("rcnn_decode: box offsets have shape " + ShapeString(offsets.shape) +
                      ", expected " + ShapeString({r, 4 * c}));
  if (static_cast<int64_t>(rois.size()) > r)
    ThrowInvalidInput("rcnn_decode: " + std::to_string(rois.size()) + " RoIs for " +
                      std::to_string(r) + " rows");
  CheckFilled(probs, "rcnn_decode: class probabilities");
  CheckFilled(offsets, "rcnn_decode: box offsets");
  const std::vector<float>& sd = head.stds;
  std::vector<Detection> out;
  std::vector<Detection> cls;
  for (int64_t k = 0; k < c; ++k) {
    cls.clear();
    for (size_t i = 0; i < rois.size(); ++i) {
      const float score = probs.data[static_cast<int64_t>(i) * (c + 1) + k + 1];
      if (std::isnan(score)) ThrowInvalidInput("rcnn_decode: the class scores contain NaN");
      if (!(score > score_threshold)) continue;
      const float* d = offsets.data.data() + static_cast<int64_t>(i) * 4 * c + 4 * k;
      const float anchor[4] = {rois[i].x1, rois[i].y1, rois[i].x2, rois[i].y2};
      float box[4];
      DecodeBox(anchor, d[0] * sd[0], d[1] * sd[1], d[2] * sd[2], d[3] * sd[3], head.box_clip, box);
      for (float v : box)
        if (!std::isfinite(v)) ThrowInvalidInput("rcnn_decode: a decoded box is not finite");
      cls.push_back({static_cast<int>(k), score, box[0], box[1], box[2], box[3]});
    }
    std::stable_sort(cls.begin(), cls.end(),
                     [](const Detection& x, const Detection& y) { return x.score > y.score; });
    if (head.topk > 0 && cls.size() > static_cast<size_t>(head.topk))
      cls.resize(static_cast<size_t>(head.topk));
    out.insert(out.end(), cls.begin(), cls.end());
  }
  return out;
}

std::vector<Detection> DetectTwoStage(const std::vector<Tensor>& stage1, int image_width,
                                      int image_height, int64_t batch, const RcnnStage2& stage2,
                                      const RcnnPlan& plan, const NmsOptions& nms) {
  if (stage1.size() != 3)
    ThrowInvalidArtifact("two-stage detection: stage 1 has " + std::to_string(stage1.size()) +
                         " outputs, expected 3 (features, RPN scores, RPN offsets)");
  if (batch < 1) ThrowInvalidArtifact("two-stage detection: the stage-2 batch must be >= 1");
  const Tensor& features = stage1[0];
  if (features.shape.size() != 4 || stage1[1].shape.size() != 4 ||
      features.shape[2] != stage1[1].shape[2] || features.shape[3] != stage1[1].shape[3])
    ThrowInvalidArtifact("two-stage detection: stage 1's features " + ShapeString(features.shape) +
                         " and RPN scores " + ShapeString(stage1[1].shape) +
                         " are not maps of the same size");
  const std::vector<Detection> rois =
      RpnProposals(stage1[1], stage1[2], plan.rpn, image_width, image_height);
  if (rois.empty()) return {};
  const int64_t n = static_cast<int64_t>(rois.size()), k = plan.head.num_classes;
  // every RoI's stage-2 rows, the chunks' padding left out
  Tensor probs{{n, k + 1}, {}}, offsets{{n, 4 * k}, {}};
  probs.data.reserve(static_cast<size_t>(n * (k + 1)));
  offsets.data.reserve(static_cast<size_t>(n * 4 * k));
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    const std::vector<Detection> chunk(rois.begin() + first, rois.begin() + first + count);
    const std::vector<Tensor> out = stage2(RoiAlign(features, chunk, plan.roi, batch));
    if (out.size() != 2 || out[0].shape != std::vector<int64_t>{batch, k + 1} ||
        out[1].shape != std::vector<int64_t>{batch, 4 * k} ||
        out[0].data.size() != static_cast<size_t>(batch * (k + 1)) ||
        out[1].data.size() != static_cast<size_t>(batch * 4 * k))
      ThrowInvalidArtifact("two-stage detection: stage 2 must return " +
                           ShapeString({batch, k + 1}) + " probabilities and " +
                           ShapeString({batch, 4 * k}) + " box offsets for " + std::to_string(k) +
                           " classes");
    probs.data.insert(probs.data.end(), out[0].data.begin(), out[0].data.begin() + count * (k + 1));
    offsets.data.insert(offsets.data.end(), out[1].data.begin(),
                        out[1].data.begin() + count * 4 * k);
  }
  return Nms(DecodeRcnn(probs, offsets, rois, plan.head, nms.score_threshold), nms);
}

}  // namespace edgecv
