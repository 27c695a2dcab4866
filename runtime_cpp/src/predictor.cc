#include "edgecv/predictor.h"

#include <algorithm>
#include <chrono>
#include <fstream>

#include "edgecv/error.h"

namespace edgecv {

namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int OutputIndex(const Manifest& m, const std::string& name) {
  for (size_t i = 0; i < m.outputs.size(); ++i)
    if (m.outputs[i].name == name) return static_cast<int>(i);
  ThrowInvalidArtifact("postprocess refers to unknown output '" + name + "'");
}

std::vector<float> ReadFloats(const std::string& path, size_t count) {
  std::ifstream f(path, std::ios::binary);
  if (!f) ThrowInvalidArtifact("cannot read " + path);
  std::vector<float> v(count);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (f.gcount() != static_cast<std::streamsize>(count * sizeof(float)) || f.peek() != EOF)
    ThrowInvalidArtifact(path + " does not hold " + std::to_string(count) + " float32 values");
  return v;
}

}  // namespace

Predictor::Predictor(Manifest manifest) : manifest_(std::move(manifest)) {
  try {
    preprocess_ = Preprocessor(manifest_.doc.At("preprocess"), manifest_.inputs[0].shape);
    ParsePostprocess();
  } catch (const Error& e) {
    ThrowInvalidArtifact(manifest_.Path("manifest.json") + ": " + e.what());
  }
  if (manifest_.inputs[0].dtype != "float32")
    ThrowInvalidArtifact("input dtype '" + manifest_.inputs[0].dtype + "' is not supported");
  engine_ = std::make_unique<Engine>(
      manifest_.Path(manifest_.library), manifest_.entry, manifest_.Path(manifest_.weights),
      manifest_.params, DeviceSpec{manifest_.device, manifest_.gpu_archs, manifest_.gpu_ptx});
}

void Predictor::ParsePostprocess() {
  const std::string& task = manifest_.task;
  if (task != "classification" && task != "detection" && task != "segmentation" && task != "pose")
    ThrowInvalidArtifact("task '" + task + "' is not supported by this runtime");
  if (task == "pose" && !preprocess_.person_crop())
    ThrowInvalidArtifact("a pose model needs the person_crop preprocessing");
  for (const json::Value& op : manifest_.doc.At("postprocess").AsArray()) {
    const std::string& name = op.At("op").AsString();
    if (name == "softmax" && task == "classification") {
      softmax_ = true;
    } else if (name == "topk" && task == "classification") {
      default_top_k_ = static_cast<int>(op.At("k").AsInt());
    } else if (name == "yolo3_decode" && task == "detection") {
      decoder_ = Decoder::kYolo3;
      yolo3_ = ParseYolo3Head(op);
      for (const json::Value& o : op.At("outputs").AsArray())
        decoder_outputs_.push_back(OutputIndex(manifest_, o.AsString()));
      if (decoder_outputs_.size() != yolo3_.strides.size())
        ThrowInvalidArtifact("yolo3_decode: one output per stride is required");
      for (size_t i = 0; i < decoder_outputs_.size(); ++i) {
        const std::vector<int64_t>& s = manifest_.outputs[decoder_outputs_[i]].shape;
        const int64_t ch =
            static_cast<int64_t>(yolo3_.anchors[i].size() / 2) * (5 + yolo3_.num_classes);
        const std::vector<int64_t>& in = manifest_.inputs[0].shape;
        if (s != std::vector<int64_t>{1, ch, in[2] / yolo3_.strides[i], in[3] / yolo3_.strides[i]})
          ThrowInvalidArtifact("yolo3_decode: output '" +
                               manifest_.outputs[decoder_outputs_[i]].name + "' has shape " +
                               ShapeString(s) +
                               ", inconsistent with its anchors, "
                               "classes and stride");
      }
    } else if (name == "ssd_decode" && task == "detection") {
      decoder_ = Decoder::kSsd;
      ssd_.num_classes = static_cast<int>(op.At("num_classes").AsInt());
      ssd_.variances = json::AsFloats(op.At("variances"));
      if (ssd_.variances.size() != 4) ThrowInvalidArtifact("ssd_decode: 4 variances are required");
      decoder_outputs_ = {OutputIndex(manifest_, op.At("class_output").AsString()),
                          OutputIndex(manifest_, op.At("box_output").AsString())};
      const std::string& file = op.At("priors").AsString();
      if (!manifest_.sha256.count(file))
        ThrowInvalidArtifact("ssd_decode: priors file is not listed");
      const std::vector<int64_t>& cls = manifest_.outputs[decoder_outputs_[0]].shape;
      if (cls.size() != 3) ThrowInvalidArtifact("ssd_decode: class output must be (1, N, C+1)");
      ssd_.priors = ReadFloats(manifest_.Path(file), static_cast<size_t>(cls[1]) * 4);
    } else if ((name == "segment" && task == "segmentation") ||
               (name == "heatmap_decode" && task == "pose")) {
      dense_output_ = OutputIndex(manifest_, op.At("output").AsString());
      const std::vector<int64_t>& s = manifest_.outputs[dense_output_].shape;
      const std::vector<int64_t>& in = manifest_.inputs[0].shape;
      const int64_t channels = op.At(name == "segment" ? "num_classes" : "num_joints").AsInt();
      if (s.size() != 4 || s[0] != 1 || s[1] != channels)
        ThrowInvalidArtifact(name + ": output '" + manifest_.outputs[dense_output_].name +
                             "' has shape " + ShapeString(s) + ", expected (1, " +
                             std::to_string(channels) + ", H, W)");
      if (name == "segment" && (s[2] != in[2] || s[3] != in[3]))
        ThrowInvalidArtifact("segment: class scores " + ShapeString(s) +
                             " are not at the input resolution");
    } else if (name == "nms" && task == "detection") {
      nms_.iou_threshold = static_cast<float>(op.At("iou_threshold").AsNumber());
      nms_.score_threshold = static_cast<float>(op.At("score_threshold").AsNumber());
      nms_.topk = static_cast<int>(op.At("topk").AsInt());
      nms_.max_detections = static_cast<int>(op.At("max_detections").AsInt());
      nms_.class_agnostic = op.At("class_agnostic").AsBool();
    } else {
      ThrowInvalidArtifact("postprocess op '" + name + "' is not supported for task '" + task +
                           "'");
    }
  }
  if (task == "detection" && decoder_ == Decoder::kNone)
    ThrowInvalidArtifact("detection artifact without a decode op");
  if ((task == "segmentation" || task == "pose") && dense_output_ < 0)
    ThrowInvalidArtifact(task + " artifact without a " +
                         (task == "pose" ? "heatmap_decode" : "segment") + " op");
}

std::unique_ptr<Predictor> Predictor::Open(const std::string& artifact_dir) {
  return std::unique_ptr<Predictor>(new Predictor(Manifest::Load(artifact_dir)));
}

Result Predictor::Run(const ImageView& image, const RunOptions& options) const {
  if (manifest_.task == "pose")  // the whole image is the person
    return RunPose(image, {Box{0.0f, 0.0f, static_cast<float>(image.width),
                               static_cast<float>(image.height)}});
  Geometry g;
  const auto t0 = std::chrono::steady_clock::now();
  Tensor input = preprocess_.Run(image, &g);
  const double preprocess_ms = MillisecondsSince(t0);
  if (manifest_.task == "segmentation") {  // labels at the image's size, not the network's
    Result r;
    r.preprocess_ms = preprocess_ms;
    r.outputs = Infer(input, &r.inference_ms);
    const auto t1 = std::chrono::steady_clock::now();
    r.labels = SegmentLabels(r.outputs[dense_output_], g);
    r.postprocess_ms = MillisecondsSince(t1);
    return r;
  }
  Result r = RunTensor(input, options);
  r.preprocess_ms = preprocess_ms;
  for (Detection& d : r.detections) {
    auto cx = [&](float x) {
      return std::clamp(g.ToImageX(x), 0.0f, static_cast<float>(g.image_width));
    };
    auto cy = [&](float y) {
      return std::clamp(g.ToImageY(y), 0.0f, static_cast<float>(g.image_height));
    };
    d.x1 = cx(d.x1);
    d.x2 = cx(d.x2);
    d.y1 = cy(d.y1);
    d.y2 = cy(d.y2);
  }
  return r;
}

std::vector<Tensor> Predictor::Infer(const Tensor& input, double* ms) const {
  if (input.shape != manifest_.inputs[0].shape)
    ThrowInvalidInput("input shape " + ShapeString(input.shape) + " does not match the model's " +
                      ShapeString(manifest_.inputs[0].shape));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Tensor> outputs = engine_->Run(input);
  *ms += MillisecondsSince(t0);
  if (outputs.size() != manifest_.outputs.size())
    throw Error(ErrorKind::kRuntime, "the network returned " + std::to_string(outputs.size()) +
                                         " outputs, the manifest lists " +
                                         std::to_string(manifest_.outputs.size()));
  return outputs;
}

Result Predictor::RunPose(const ImageView& image, const std::vector<Box>& boxes) const {
  if (manifest_.task != "pose")
    ThrowInvalidInput("person boxes are for pose models; this is a " + manifest_.task + " model");
  CheckImage(image);
  Result r;
  const int w = preprocess_.width(), h = preprocess_.height();
  for (size_t i = 0; i < boxes.size(); ++i) {
    PoseCrop crop;
    try {
      crop = PersonCrop(boxes[i], w, h, preprocess_.crop_scale(), image.width, image.height);
    } catch (const Error& e) {
      ThrowInvalidInput("box " + std::to_string(i) + ": " + e.what());
    }
    auto t0 = std::chrono::steady_clock::now();
    Tensor input = preprocess_.Normalize(preprocess_.TransformCrop(image, crop));
    r.preprocess_ms += MillisecondsSince(t0);
    std::vector<Tensor> outputs = Infer(input, &r.inference_ms);
    t0 = std::chrono::steady_clock::now();
    r.poses.push_back(DecodeHeatmaps(outputs[dense_output_], crop));
    r.postprocess_ms += MillisecondsSince(t0);
    r.crops.push_back(crop);
    if (i + 1 == boxes.size()) r.outputs = std::move(outputs);  // the last person's raw outputs
  }
  return r;
}

Result Predictor::RunTensor(const Tensor& input, const RunOptions& options) const {
  double inference_ms = 0;
  std::vector<Tensor> outputs = Infer(input, &inference_ms);
  auto t0 = std::chrono::steady_clock::now();
  Result r = Postprocess(std::move(outputs), options);
  r.postprocess_ms = MillisecondsSince(t0);
  r.inference_ms = inference_ms;
  return r;
}

Result Predictor::Postprocess(std::vector<Tensor> outputs, const RunOptions& options) const {
  Result r;
  r.outputs = std::move(outputs);
  if (manifest_.task == "classification") {
    if (options.top_k < -1) ThrowInvalidInput("top-k must be >= 0");
    const Tensor& logits = r.outputs[0];
    r.probabilities = softmax_ ? Softmax(logits.data) : logits.data;
    r.classifications = TopK(r.probabilities, options.top_k < 0 ? default_top_k_ : options.top_k,
                             manifest_.classes);
    return r;
  }
  if (manifest_.task == "segmentation") {
    r.labels = ArgmaxLabels(r.outputs[dense_output_]);
    return r;
  }
  if (manifest_.task == "pose") {
    const std::vector<int64_t>& in = manifest_.inputs[0].shape;
    const PoseCrop whole{0.0f, 0.0f, static_cast<float>(in[3]), static_cast<float>(in[2])};
    r.poses.push_back(DecodeHeatmaps(r.outputs[dense_output_], whole));
    r.crops.push_back(whole);
    return r;
  }
  NmsOptions nms = nms_;
  if (options.score_threshold >= 0) nms.score_threshold = options.score_threshold;
  if (options.iou_threshold >= 0) nms.iou_threshold = options.iou_threshold;
  if (options.max_detections >= 0) nms.max_detections = options.max_detections;
  if (options.class_agnostic >= 0) nms.class_agnostic = options.class_agnostic != 0;
  if (nms.iou_threshold > 1.0f) ThrowInvalidInput("IoU threshold must be within [0, 1]");
  std::vector<Detection> candidates;
  if (decoder_ == Decoder::kYolo3) {
    std::vector<const Tensor*> heads;
    for (int i : decoder_outputs_) heads.push_back(&r.outputs[i]);
    candidates = DecodeYolo3(heads, yolo3_, nms.score_threshold);
  } else {
    candidates = DecodeSsd(r.outputs[decoder_outputs_[0]], r.outputs[decoder_outputs_[1]], ssd_,
                           nms.score_threshold);
  }
  r.detections = Nms(std::move(candidates), nms);
  return r;
}

}  // namespace edgecv
