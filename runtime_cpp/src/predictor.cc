#include "edgecv/predictor.h"

#include "edgecv/error.h"

namespace edgecv {

Predictor::Predictor(Manifest manifest) : manifest_(std::move(manifest)) {
  const json::Value& doc = manifest_.doc;
  try {
    preprocess_ = Preprocessor(doc.At("preprocess"), manifest_.inputs[0].shape);
    for (const json::Value& op : doc.At("postprocess").AsArray()) {
      const std::string& name = op.At("op").AsString();
      if (name == "softmax") {
        softmax_ = true;
      } else if (name == "topk") {
        default_top_k_ = static_cast<int>(op.At("k").AsInt());
      } else {
        ThrowInvalidArtifact("postprocess op '" + name + "' is not supported by this runtime");
      }
    }
  } catch (const Error& e) {
    ThrowInvalidArtifact(manifest_.Path("manifest.json") + ": " + e.what());
  }
  if (manifest_.task != "classification")
    ThrowInvalidArtifact("task '" + manifest_.task + "' is not supported by this runtime");
  if (manifest_.inputs[0].dtype != "float32")
    ThrowInvalidArtifact("input dtype '" + manifest_.inputs[0].dtype + "' is not supported");
  engine_ = std::make_unique<Engine>(manifest_.Path(manifest_.library), manifest_.entry,
                                     manifest_.Path(manifest_.weights), manifest_.params);
}

std::unique_ptr<Predictor> Predictor::Open(const std::string& artifact_dir) {
  return std::unique_ptr<Predictor>(new Predictor(Manifest::Load(artifact_dir)));
}

Result Predictor::Run(const ImageView& image, int top_k) const {
  return RunTensor(preprocess_.Run(image), top_k);
}

Result Predictor::RunTensor(const Tensor& input, int top_k) const {
  if (input.shape != manifest_.inputs[0].shape)
    ThrowInvalidInput("input shape " + ShapeString(input.shape) + " does not match the model's " +
                      ShapeString(manifest_.inputs[0].shape));
  Result r;
  r.outputs = engine_->Run(input);
  if (r.outputs.empty()) throw Error(ErrorKind::kRuntime, "the network returned no output");
  const Tensor& logits = r.outputs[0];
  std::vector<float> scores(logits.data.begin(), logits.data.end());
  r.probabilities = softmax_ ? Softmax(scores) : scores;
  r.classifications = TopK(r.probabilities, top_k < 0 ? default_top_k_ : top_k, manifest_.classes);
  return r;
}

}  // namespace edgecv
