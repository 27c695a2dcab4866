// The public entry point: open an artifact directory, run images through
// preprocess → compiled network → postprocess, as the manifest prescribes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "edgecv/dense.h"
#include "edgecv/detection.h"
#include "edgecv/engine.h"
#include "edgecv/image.h"
#include "edgecv/manifest.h"
#include "edgecv/postprocess.h"
#include "edgecv/postprocess_plan.h"
#include "edgecv/preprocess.h"

namespace edgecv {

// Run-time overrides of the manifest's post-processing parameters; negative: keep the manifest's.
struct RunOptions {
  int top_k = -1;                 // classification
  float score_threshold = -1.0f;  // detection
  float iou_threshold = -1.0f;    // detection
  int max_detections = -1;        // detection
  int class_agnostic = -1;        // detection: 0 or 1
};

struct Result {
  std::vector<Tensor> outputs;                  // raw network outputs
  std::vector<float> probabilities;             // classification: softmax of the logits
  std::vector<Classification> classifications;  // classification: top-k, best first
  std::vector<Detection> detections;            // detection: best first
  LabelMap labels;                              // segmentation: per-pixel class
  std::vector<std::vector<Keypoint>> poses;     // pose: per person box, one per joint
  std::vector<PoseCrop> crops;                  // pose: the image region of each person
  // wall-clock milliseconds of each stage of this call (preprocess is 0 for RunTensor)
  double preprocess_ms = 0, inference_ms = 0, postprocess_ms = 0;
};

class Predictor {
 public:
  // Verifies and loads the artifact; throws Error(kInvalidArtifact) on any problem.
  static std::unique_ptr<Predictor> Open(const std::string& artifact_dir);

  // Runs one image. Detection boxes are in the image's pixel coordinates, clipped to it.
  Result Run(const ImageView& image, const RunOptions& options = {}) const;
  // Pose models: one pose per person box (image pixels); no boxes, no poses. Throws
  // Error(kInvalidInput) naming the box for a box without area or outside the image.
  Result RunPose(const ImageView& image, const std::vector<Box>& boxes) const;
  // Runs an already preprocessed input tensor; detection boxes stay in network-input pixels,
  // label maps and keypoints are at network-input resolution.
  Result RunTensor(const Tensor& input, const RunOptions& options = {}) const;

  const Manifest& manifest() const { return manifest_; }
  const Preprocessor& preprocessor() const { return preprocess_; }

 private:
  explicit Predictor(Manifest manifest);
  Result Postprocess(std::vector<Tensor> outputs, const RunOptions& options) const;
  std::vector<Tensor> Infer(const Tensor& input, double* ms) const;

  Manifest manifest_;
  Preprocessor preprocess_;
  std::unique_ptr<Engine> engine_;
  PostprocessPlan post_;  // what the manifest's postprocess ops configure
};

}  // namespace edgecv
