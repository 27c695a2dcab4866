// The public entry point: open an artifact directory, run images through
// preprocess → compiled network → postprocess, as the manifest prescribes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "edgecv/engine.h"
#include "edgecv/image.h"
#include "edgecv/manifest.h"
#include "edgecv/postprocess.h"
#include "edgecv/preprocess.h"

namespace edgecv {

struct Result {
  std::vector<Tensor> outputs;                   // raw network outputs
  std::vector<float> probabilities;              // classification: softmax of the logits
  std::vector<Classification> classifications;  // classification: top-k, best first
};

class Predictor {
 public:
  // Verifies and loads the artifact; throws Error(kInvalidArtifact) on any problem.
  static std::unique_ptr<Predictor> Open(const std::string& artifact_dir);

  // Runs one image; `top_k` < 0 uses the manifest's default.
  Result Run(const ImageView& image, int top_k = -1) const;
  // Runs an already preprocessed input tensor (shape must match the manifest).
  Result RunTensor(const Tensor& input, int top_k = -1) const;

  const Manifest& manifest() const { return manifest_; }
  const Preprocessor& preprocessor() const { return preprocess_; }

 private:
  Predictor(Manifest manifest);
  Manifest manifest_;
  Preprocessor preprocess_;
  std::unique_ptr<Engine> engine_;
  int default_top_k_ = 5;
  bool softmax_ = false;
};

}  // namespace edgecv
