#include "edgecv/postprocess_plan.h"

#include <algorithm>

#include "edgecv/error.h"

namespace edgecv {

namespace {

// What an op's parser reads besides the op itself.
struct Context {
  const std::vector<int64_t>& input_shape;  // N, C, H, W
  const std::vector<TensorSpec>& outputs;
  const DataFiles& files;

  int OutputIndex(const std::string& name) const {
    for (size_t i = 0; i < outputs.size(); ++i)
      if (outputs[i].name == name) return static_cast<int>(i);
    ThrowInvalidArtifact("postprocess refers to unknown output '" + name + "'");
  }
};

using OpParser = void (*)(const std::string& name, const json::Value& op, const Context& c,
                          PostprocessPlan* plan);

void Softmax(const std::string&, const json::Value&, const Context&, PostprocessPlan* plan) {
  plan->softmax = true;
}

void TopK(const std::string&, const json::Value& op, const Context&, PostprocessPlan* plan) {
  plan->default_top_k = static_cast<int>(op.At("k").AsInt());
}

void Yolo3Decode(const std::string&, const json::Value& op, const Context& c,
                 PostprocessPlan* plan) {
  plan->decoder = PostprocessPlan::Decoder::kYolo3;
  plan->yolo3 = ParseYolo3Head(op);
  const Yolo3Head& head = plan->yolo3;
  for (const json::Value& o : op.At("outputs").AsArray())
    plan->decoder_outputs.push_back(c.OutputIndex(o.AsString()));
  if (plan->decoder_outputs.size() != head.strides.size())
    ThrowInvalidArtifact("yolo3_decode: one output per stride is required");
  for (size_t i = 0; i < plan->decoder_outputs.size(); ++i) {
    const TensorSpec& out = c.outputs[plan->decoder_outputs[i]];
    const int64_t ch = static_cast<int64_t>(head.anchors[i].size() / 2) * (5 + head.num_classes);
    const std::vector<int64_t>& in = c.input_shape;
    if (out.shape != std::vector<int64_t>{1, ch, in[2] / head.strides[i], in[3] / head.strides[i]})
      ThrowInvalidArtifact("yolo3_decode: output '" + out.name + "' has shape " +
                           ShapeString(out.shape) +
                           ", inconsistent with its anchors, classes and stride");
  }
}

void SsdDecode(const std::string&, const json::Value& op, const Context& c, PostprocessPlan* plan) {
  plan->decoder = PostprocessPlan::Decoder::kSsd;
  const int64_t classes = op.At("num_classes").AsInt();
  if (classes < 1 || classes > kMaxClasses)  // fuzz_manifest: -1 read past an empty softmax
    ThrowInvalidArtifact("ssd_decode: num_classes must be in 1.." + std::to_string(kMaxClasses) +
                         ", not " + std::to_string(classes));
  plan->ssd.num_classes = static_cast<int>(classes);
  plan->ssd.variances = json::AsFloats(op.At("variances"));
  if (plan->ssd.variances.size() != 4) ThrowInvalidArtifact("ssd_decode: 4 variances are required");
  plan->decoder_outputs = {c.OutputIndex(op.At("class_output").AsString()),
                           c.OutputIndex(op.At("box_output").AsString())};
  const std::string& file = op.At("priors").AsString();
  if (!c.files.listed(file)) ThrowInvalidArtifact("ssd_decode: priors file is not listed");
  const std::vector<int64_t>& cls = c.outputs[plan->decoder_outputs[0]].shape;
  if (cls.size() != 3) ThrowInvalidArtifact("ssd_decode: class output must be (1, N, C+1)");
  plan->ssd.priors = c.files.read_floats(file, static_cast<size_t>(cls[1]) * 4);
}

// heatmap (1, C, H/stride, W/stride), wh and reg (1, 2, H/stride, W/stride)
void CenterNetDecode(const std::string&, const json::Value& op, const Context& c,
                     PostprocessPlan* plan) {
  plan->decoder = PostprocessPlan::Decoder::kCenterNet;
  plan->centernet = ParseCenterNetHead(op);
  const CenterNetHead& head = plan->centernet;
  for (const json::Value& o : op.At("outputs").AsArray())
    plan->decoder_outputs.push_back(c.OutputIndex(o.AsString()));
  if (plan->decoder_outputs.size() != 3)
    ThrowInvalidArtifact("centernet_decode: three outputs (heatmap, wh, reg) are required");
  const std::vector<int64_t>& in = c.input_shape;
  if (in[2] % head.stride || in[3] % head.stride)
    ThrowInvalidArtifact("centernet_decode: stride " + std::to_string(head.stride) +
                         " does not divide the input " + ShapeString(in));
  const int64_t channels[3] = {head.num_classes, 2, 2};
  for (size_t i = 0; i < 3; ++i) {
    const TensorSpec& out = c.outputs[plan->decoder_outputs[i]];
    if (out.shape != std::vector<int64_t>{1, channels[i], in[2] / head.stride, in[3] / head.stride})
      ThrowInvalidArtifact("centernet_decode: output '" + out.name + "' has shape " +
                           ShapeString(out.shape) + ", inconsistent with its classes and stride");
  }
}

void Nms(const std::string&, const json::Value& op, const Context&, PostprocessPlan* plan) {
  NmsOptions& nms = plan->nms;
  nms.iou_threshold = static_cast<float>(op.At("iou_threshold").AsNumber());
  nms.score_threshold = static_cast<float>(op.At("score_threshold").AsNumber());
  nms.topk = static_cast<int>(op.At("topk").AsInt());
  nms.max_detections = static_cast<int>(op.At("max_detections").AsInt());
  nms.class_agnostic = op.At("class_agnostic").AsBool();
}

// segment (class scores at the input resolution) and heatmap_decode (joint heatmaps): a dense
// output of `channels_field` channels.
void DenseOutput(const std::string& name, const json::Value& op, const Context& c,
                 PostprocessPlan* plan, const char* channels_field, bool input_resolution) {
  plan->dense_output = c.OutputIndex(op.At("output").AsString());
  const TensorSpec& out = c.outputs[plan->dense_output];
  const std::vector<int64_t>& s = out.shape;
  const std::vector<int64_t>& in = c.input_shape;
  const int64_t channels = op.At(channels_field).AsInt();
  if (s.size() != 4 || s[0] != 1 || s[1] != channels)
    ThrowInvalidArtifact(name + ": output '" + out.name + "' has shape " + ShapeString(s) +
                         ", expected (1, " + std::to_string(channels) + ", H, W)");
  if (input_resolution && (s[2] != in[2] || s[3] != in[3]))
    ThrowInvalidArtifact(name + ": class scores " + ShapeString(s) +
                         " are not at the input resolution");
}

void Segment(const std::string& name, const json::Value& op, const Context& c,
             PostprocessPlan* plan) {
  DenseOutput(name, op, c, plan, "num_classes", true);
}

void HeatmapDecode(const std::string& name, const json::Value& op, const Context& c,
                   PostprocessPlan* plan) {
  DenseOutput(name, op, c, plan, "num_joints", false);
}

// op -> the tasks it is valid for, and its parser
struct OpEntry {
  const char* op;
  std::vector<std::string> tasks;
  OpParser parse;
};

const std::vector<OpEntry>& Ops() {
  static const std::vector<OpEntry> ops{
      {"softmax", {"classification"}, &Softmax},
      {"topk", {"classification"}, &TopK},
      {"yolo3_decode", {"detection"}, &Yolo3Decode},
      {"ssd_decode", {"detection"}, &SsdDecode},
      {"centernet_decode", {"detection"}, &CenterNetDecode},
      {"nms", {"detection"}, &Nms},
      {"segment", {"segmentation"}, &Segment},
      {"heatmap_decode", {"pose"}, &HeatmapDecode},
  };
  return ops;
}

// task -> what its plan must hold once every op is parsed
enum class Needs { kNothing, kDecoder, kDenseOutput };
struct TaskEntry {
  const char* task;
  Needs needs;
  const char* needed_op;  // named in the error when the need is not met
  bool person_crop;       // the network sees one person: the person_crop preprocessing
};

const std::vector<TaskEntry>& Tasks() {
  static const std::vector<TaskEntry> tasks{
      {"classification", Needs::kNothing, "", false},
      {"detection", Needs::kDecoder, "decode", false},
      {"segmentation", Needs::kDenseOutput, "segment", false},
      {"pose", Needs::kDenseOutput, "heatmap_decode", true},
  };
  return tasks;
}

}  // namespace

PostprocessPlan ParsePostprocess(const std::string& task, const json::Value& ops,
                                 const Preprocessor& pre, const std::vector<TensorSpec>& outputs,
                                 const DataFiles& files) {
  const auto t = std::find_if(Tasks().begin(), Tasks().end(),
                              [&](const TaskEntry& e) { return task == e.task; });
  if (t == Tasks().end())
    ThrowInvalidArtifact("task '" + task + "' is not supported by this runtime");
  if (t->person_crop && !pre.person_crop())
    ThrowInvalidArtifact("a " + task + " model needs the person_crop preprocessing");
  PostprocessPlan plan;
  plan.task = task;
  const Context context{pre.input_shape(), outputs, files};
  for (const json::Value& op : ops.AsArray()) {
    const std::string& name = op.At("op").AsString();
    const auto e = std::find_if(Ops().begin(), Ops().end(), [&](const OpEntry& o) {
      return name == o.op && std::count(o.tasks.begin(), o.tasks.end(), task) > 0;
    });
    if (e == Ops().end())
      ThrowInvalidArtifact("postprocess op '" + name + "' is not supported for task '" + task +
                           "'");
    e->parse(name, op, context, &plan);
  }
  if (t->needs == Needs::kDecoder && plan.decoder == PostprocessPlan::Decoder::kNone)
    ThrowInvalidArtifact(task + " artifact without a " + t->needed_op + " op");
  if (t->needs == Needs::kDenseOutput && plan.dense_output < 0)
    ThrowInvalidArtifact(task + " artifact without a " + t->needed_op + " op");
  return plan;
}

std::vector<std::string> PostprocessTasks() {
  std::vector<std::string> out;
  for (const TaskEntry& t : Tasks()) out.push_back(t.task);
  return out;
}

std::vector<std::string> PostprocessOpsFor(const std::string& task) {
  std::vector<std::string> out;
  for (const OpEntry& o : Ops())
    if (std::count(o.tasks.begin(), o.tasks.end(), task) > 0) out.push_back(o.op);
  return out;
}

}  // namespace edgecv
