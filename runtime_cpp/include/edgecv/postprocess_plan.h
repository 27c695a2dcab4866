// The manifest's postprocess ops, parsed into what a predictor decodes with. One table maps
// each op to the tasks it is valid for and the parser that configures the plan; another maps
// each task to what it requires (detection: a decoder; segmentation and pose: a dense output).
// A new op or task is an entry in those tables (postprocess_plan.cc). No TVM in here: the
// Python bindings check an op list with it before any model is compiled.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "edgecv/centernet.h"
#include "edgecv/detection.h"
#include "edgecv/json.h"
#include "edgecv/manifest.h"
#include "edgecv/preprocess.h"

namespace edgecv {

struct PostprocessPlan {
  enum class Decoder { kNone, kYolo3, kSsd, kCenterNet };
  std::string task;
  // classification
  int default_top_k = 5;
  bool softmax = false;
  // detection
  Decoder decoder = Decoder::kNone;
  std::vector<int> decoder_outputs;  // indices into the network outputs
  Yolo3Head yolo3;
  SsdHead ssd;
  CenterNetHead centernet;
  NmsOptions nms;
  // segmentation / pose: the output holding class scores / heatmaps
  int dense_output = -1;
};

// An artifact's data files (SSD priors), by file name: whether the artifact lists `file`, and
// `count` float32 values of it (throws Error(kInvalidArtifact) for another size).
struct DataFiles {
  std::function<bool(const std::string& file)> listed;
  std::function<std::vector<float>(const std::string& file, size_t count)> read_floats;
};

// The plan for `task` from `ops` (the manifest's "postprocess" array), checked against the
// network's input (`pre`: the artifact's preprocessing) and `outputs`, as a Predictor opening
// the artifact does. Throws Error(kInvalidArtifact) naming the op, task or output at fault.
PostprocessPlan ParsePostprocess(const std::string& task, const json::Value& ops,
                                 const Preprocessor& pre, const std::vector<TensorSpec>& outputs,
                                 const DataFiles& files);

// The tasks this runtime runs, and the postprocess ops valid for `task` (empty: unknown task).
std::vector<std::string> PostprocessTasks();
std::vector<std::string> PostprocessOpsFor(const std::string& task);

}  // namespace edgecv
