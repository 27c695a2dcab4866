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

std::vector<float> ReadFloats(const std::string& path, size_t count) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) ThrowInvalidArtifact("cannot read " + path);
  // the size first: a manifest's shape must not make us allocate more than the file holds
  const auto bytes = static_cast<unsigned long long>(f.tellg());
  if (count > bytes / sizeof(float) || bytes != count * sizeof(float))
    ThrowInvalidArtifact(path + " does not hold " + std::to_string(count) + " float32 values");
  f.seekg(0);
  std::vector<float> v(count);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (f.gcount() != static_cast<std::streamsize>(count * sizeof(float)) || f.peek() != EOF)
    ThrowInvalidArtifact(path + " does not hold " + std::to_string(count) + " float32 values");
  return v;
}

// The data files the manifest lists (their digests checked by Manifest::Load).
DataFiles ArtifactFiles(const Manifest& m) {
  DataFiles files;
  files.listed = [&m](const std::string& file) { return m.sha256.count(file) > 0; };
  files.read_floats = [&m](const std::string& file, size_t count) {
    return ReadFloats(m.Path(file), count);
  };
  return files;
}

}  // namespace

Predictor::Predictor(Manifest manifest) : manifest_(std::move(manifest)) {
  try {
    preprocess_ = Preprocessor(manifest_.doc.At("preprocess"), manifest_.inputs[0].shape);
    post_ = ParsePostprocess(manifest_.task, manifest_.doc.At("postprocess"), preprocess_,
                             manifest_.outputs, ArtifactFiles(manifest_));
  } catch (const Error& e) {
    ThrowInvalidArtifact(manifest_.Path("manifest.json") + ": " + e.what());
  }
  if (manifest_.inputs[0].dtype != "float32")
    ThrowInvalidArtifact("input dtype '" + manifest_.inputs[0].dtype + "' is not supported");
  engine_ = std::make_unique<Engine>(
      manifest_.Path(manifest_.library), manifest_.entry, manifest_.Path(manifest_.weights),
      manifest_.params, DeviceSpec{manifest_.device, manifest_.gpu_archs, manifest_.gpu_ptx});
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
    r.labels = SegmentLabels(r.outputs[post_.dense_output], g);
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
    r.poses.push_back(DecodeHeatmaps(outputs[post_.dense_output], crop));
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
    r.probabilities = post_.softmax ? Softmax(logits.data) : logits.data;
    r.classifications =
        TopK(r.probabilities, options.top_k < 0 ? post_.default_top_k : options.top_k,
             manifest_.classes);
    return r;
  }
  if (manifest_.task == "segmentation") {
    r.labels = ArgmaxLabels(r.outputs[post_.dense_output]);
    return r;
  }
  if (manifest_.task == "pose") {
    const std::vector<int64_t>& in = manifest_.inputs[0].shape;
    const PoseCrop whole{0.0f, 0.0f, static_cast<float>(in[3]), static_cast<float>(in[2])};
    r.poses.push_back(DecodeHeatmaps(r.outputs[post_.dense_output], whole));
    r.crops.push_back(whole);
    return r;
  }
  NmsOptions nms = post_.nms;
  if (options.score_threshold >= 0) nms.score_threshold = options.score_threshold;
  if (options.iou_threshold >= 0) nms.iou_threshold = options.iou_threshold;
  if (options.max_detections >= 0) nms.max_detections = options.max_detections;
  if (options.class_agnostic >= 0) nms.class_agnostic = options.class_agnostic != 0;
  if (nms.iou_threshold > 1.0f) ThrowInvalidInput("IoU threshold must be within [0, 1]");
  std::vector<Detection> candidates;
  if (post_.decoder == PostprocessPlan::Decoder::kYolo3) {
    std::vector<const Tensor*> heads;
    for (int i : post_.decoder_outputs) heads.push_back(&r.outputs[i]);
    candidates = DecodeYolo3(heads, post_.yolo3, nms.score_threshold);
  } else if (post_.decoder == PostprocessPlan::Decoder::kCenterNet) {
    const std::vector<int>& o = post_.decoder_outputs;
    candidates = DecodeCenterNet(r.outputs[o[0]], r.outputs[o[1]], r.outputs[o[2]], post_.centernet,
                                 nms.score_threshold);
  } else {
    candidates = DecodeSsd(r.outputs[post_.decoder_outputs[0]], r.outputs[post_.decoder_outputs[1]],
                           post_.ssd, nms.score_threshold);
  }
  r.detections = Nms(std::move(candidates), nms);
  return r;
}

}  // namespace edgecv
