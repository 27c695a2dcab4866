#include "edgecv/detection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "edgecv/error.h"

namespace edgecv {

namespace {
inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float Area(const Detection& d) {
  return std::max(0.0f, d.x2 - d.x1) * std::max(0.0f, d.y2 - d.y1);
}
}  // namespace

float IoU(const Detection& a, const Detection& b) {
  float w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  float h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (w <= 0 || h <= 0) return 0.0f;
  float inter = w * h;
  float uni = Area(a) + Area(b) - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

std::vector<Detection> Nms(std::vector<Detection> candidates, const NmsOptions& options) {
  for (const Detection& d : candidates)
    if (std::isnan(d.score) || std::isnan(d.x1) || std::isnan(d.y1) || std::isnan(d.x2) ||
        std::isnan(d.y2))
      ThrowInvalidInput("detection candidates contain NaN (scores or boxes)");
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [&](const Detection& d) {
                                    return !(d.score > options.score_threshold) || d.class_id < 0;
                                  }),
                   candidates.end());
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  if (options.topk > 0 && candidates.size() > static_cast<size_t>(options.topk))
    candidates.resize(static_cast<size_t>(options.topk));
  std::vector<Detection> kept;
  std::vector<bool> removed(candidates.size(), false);
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (removed[i]) continue;
    kept.push_back(candidates[i]);
    if (options.max_detections > 0 && kept.size() >= static_cast<size_t>(options.max_detections))
      break;
    for (size_t j = i + 1; j < candidates.size(); ++j) {
      if (removed[j]) continue;
      if (!options.class_agnostic && candidates[j].class_id != candidates[i].class_id) continue;
      if (IoU(candidates[i], candidates[j]) > options.iou_threshold) removed[j] = true;
    }
  }
  return kept;
}

Yolo3Head ParseYolo3Head(const json::Value& op) {
  Yolo3Head h;
  // bounded before it becomes an int: 5 + classes must not overflow (fuzz_manifest)
  const int64_t classes = op.At("num_classes").AsInt();
  if (classes < 1 || classes > kMaxClasses)
    ThrowInvalidArtifact("yolo3_decode: num_classes must be in 1.." + std::to_string(kMaxClasses) +
                         ", not " + std::to_string(classes));
  h.num_classes = static_cast<int>(classes);
  for (const json::Value& s : op.At("strides").AsArray()) {
    // a stride divides the input size (postprocess_plan.cc): 0 would be a division by zero
    if (s.AsInt() <= 0 || s.AsInt() > 4096)
      ThrowInvalidArtifact("yolo3_decode: a stride must be in 1..4096, not " +
                           std::to_string(s.AsInt()));
    h.strides.push_back(static_cast<int>(s.AsInt()));
  }
  for (const json::Value& a : op.At("anchors").AsArray()) h.anchors.push_back(json::AsFloats(a));
  if (h.num_classes <= 0 || h.strides.empty() || h.strides.size() != h.anchors.size())
    ThrowInvalidArtifact("yolo3_decode: num_classes, strides and anchors are inconsistent");
  for (const auto& a : h.anchors)
    if (a.empty() || a.size() % 2)
      ThrowInvalidArtifact("yolo3_decode: anchors must be (w, h) pairs");
  return h;
}

std::vector<Detection> DecodeYolo3(const std::vector<const Tensor*>& outputs, const Yolo3Head& head,
                                   float score_threshold) {
  if (head.num_classes < 1 || head.num_classes > kMaxClasses ||
      head.anchors.size() != head.strides.size())
    ThrowInvalidInput("yolo3_decode: num_classes, strides and anchors are inconsistent");
  if (outputs.size() != head.strides.size())
    ThrowInvalidInput("yolo3_decode: expected " + std::to_string(head.strides.size()) +
                      " outputs, got " + std::to_string(outputs.size()));
  const int c = head.num_classes;
  std::vector<Detection> dets;
  for (size_t o = 0; o < outputs.size(); ++o) {
    const Tensor& t = *outputs[o];
    const int a = static_cast<int>(head.anchors[o].size() / 2);
    if (t.shape.size() != 4 || t.shape[0] != 1 || t.shape[1] != a * (5 + c))
      ThrowInvalidInput("yolo3_decode: output " + std::to_string(o) + " has shape " +
                        ShapeString(t.shape) + ", expected (1, " + std::to_string(a * (5 + c)) +
                        ", H, W)");
    const int64_t hgt = t.shape[2], wid = t.shape[3], plane = hgt * wid;
    const float stride = static_cast<float>(head.strides[o]);
    for (int64_t y = 0; y < hgt; ++y)
      for (int64_t x = 0; x < wid; ++x)
        for (int k = 0; k < a; ++k) {
          const float* p = t.data.data() + static_cast<int64_t>(k) * (5 + c) * plane + y * wid + x;
          auto at = [&](int ch) { return p[ch * plane]; };
          const float objectness = Sigmoid(at(4));
          if (std::isnan(objectness)) ThrowInvalidInput("yolo3_decode: the network produced NaN");
          if (!(objectness > score_threshold))
            continue;  // score = objectness * class <= objectness
          const float cx = (Sigmoid(at(0)) + static_cast<float>(x)) * stride;
          const float cy = (Sigmoid(at(1)) + static_cast<float>(y)) * stride;
          const float w = std::exp(at(2)) * head.anchors[o][2 * k];
          const float h = std::exp(at(3)) * head.anchors[o][2 * k + 1];
          for (int cls = 0; cls < c; ++cls) {
            const float score = Sigmoid(at(5 + cls)) * objectness;
            if (std::isnan(score)) ThrowInvalidInput("yolo3_decode: the network produced NaN");
            if (score > score_threshold)
              dets.push_back({cls, score, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2});
          }
        }
  }
  return dets;
}

std::vector<Detection> DecodeSsd(const Tensor& class_logits, const Tensor& box_offsets,
                                 const SsdHead& head, float score_threshold) {
  // no classes would leave every prior's softmax empty (fuzz_manifest: a read past the end)
  if (head.num_classes < 1 || head.num_classes > kMaxClasses || head.variances.size() != 4)
    ThrowInvalidInput("ssd_decode: num_classes must be in 1.." + std::to_string(kMaxClasses) +
                      " with 4 variances");
  const int64_t n = static_cast<int64_t>(head.priors.size() / 4);
  const int c1 = head.num_classes + 1;
  if (class_logits.shape != std::vector<int64_t>{1, n, c1})
    ThrowInvalidInput("ssd_decode: class output has shape " + ShapeString(class_logits.shape) +
                      ", expected (1, " + std::to_string(n) + ", " + std::to_string(c1) + ")");
  if (box_offsets.shape != std::vector<int64_t>{1, n, 4})
    ThrowInvalidInput("ssd_decode: box output has shape " + ShapeString(box_offsets.shape) +
                      ", expected (1, " + std::to_string(n) + ", 4)");
  const std::vector<float>& v = head.variances;
  std::vector<Detection> dets;
  std::vector<float> prob(c1);
  for (int64_t i = 0; i < n; ++i) {
    const float* logit = class_logits.data.data() + i * c1;
    float peak = *std::max_element(logit, logit + c1);
    float sum = 0.0f;
    for (int k = 0; k < c1; ++k) sum += (prob[k] = std::exp(logit[k] - peak));
    if (std::isnan(sum)) ThrowInvalidInput("ssd_decode: the network produced NaN");
    const float* off = box_offsets.data.data() + i * 4;
    const float* prior = head.priors.data() + i * 4;
    const float cx = off[0] * v[0] * prior[2] + prior[0];
    const float cy = off[1] * v[1] * prior[3] + prior[1];
    const float hw = std::exp(off[2] * v[2]) * prior[2] / 2;
    const float hh = std::exp(off[3] * v[3]) * prior[3] / 2;
    for (int k = 1; k < c1; ++k) {
      const float score = prob[k] / sum;
      if (score > score_threshold)
        dets.push_back({k - 1, score, cx - hw, cy - hh, cx + hw, cy + hh});
    }
  }
  return dets;
}

}  // namespace edgecv
