// The postprocess op table: each task's ops configure the plan; ops of another task, unknown
// ops, outputs that do not fit and missing decoders are refused with the message naming them.
#include "edgecv/postprocess_plan.h"

#include <string>
#include <vector>

#include "check.h"

using namespace edgecv;

namespace {

const json::Value kStretch = json::Value::Parse(R"([{"op": "resize", "size": [64, 64]},
        {"op": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1], "color": "RGB",
         "layout": "NCHW"}])");
const json::Value kPersonCrop =
    json::Value::Parse(R"([{"op": "person_crop", "size": [64, 48], "scale": 1.25},
        {"op": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1], "color": "RGB",
         "layout": "NCHW"}])");

DataFiles NoFiles() {
  DataFiles f;
  f.listed = [](const std::string&) { return false; };
  f.read_floats = [](const std::string&, size_t) -> std::vector<float> { return {}; };
  return f;
}

PostprocessPlan Parse(const std::string& task, const std::string& ops,
                      const std::vector<TensorSpec>& outputs, const DataFiles& files = NoFiles(),
                      const json::Value& pre = kStretch) {
  const Preprocessor p(pre, task == "pose" ? std::vector<int64_t>{1, 3, 64, 48}
                                           : std::vector<int64_t>{1, 3, 64, 64});
  return ParsePostprocess(task, json::Value::Parse(ops), p, outputs, files);
}

}  // namespace

int main() {
  const auto kArtifact = ErrorKind::kInvalidArtifact;
  const std::vector<TensorSpec> logits{{"logits", {1, 10}, "float32"}};
  PostprocessPlan c =
      Parse("classification", R"([{"op": "softmax"}, {"op": "topk", "k": 3}])", logits);
  CHECK(c.softmax && c.default_top_k == 3 && c.decoder == PostprocessPlan::Decoder::kNone);
  CHECK(!Parse("classification", "[]", logits).softmax);

  // YOLOv3: one output per stride, its shape from anchors, classes and stride
  const std::string yolo = R"([{"op": "yolo3_decode", "outputs": ["s8", "s16"], "strides": [8, 16],
      "anchors": [[10, 13, 16, 30], [30, 61, 62, 45]], "num_classes": 3},
      {"op": "nms", "iou_threshold": 0.5, "score_threshold": 0.1, "topk": 50,
       "max_detections": 20, "class_agnostic": true}])";
  const std::vector<TensorSpec> heads{{"s8", {1, 16, 8, 8}, "float32"},
                                      {"s16", {1, 16, 4, 4}, "float32"}};
  PostprocessPlan d = Parse("detection", yolo, heads);
  CHECK(d.decoder == PostprocessPlan::Decoder::kYolo3);
  CHECK((d.decoder_outputs == std::vector<int>{0, 1}));
  CHECK(d.nms.max_detections == 20 && d.nms.class_agnostic && d.nms.topk == 50);
  EXPECT_THROW(kArtifact, "output 's16' has shape (1, 16, 5, 4), inconsistent",
               Parse("detection", yolo,
                     {{"s8", {1, 16, 8, 8}, "float32"}, {"s16", {1, 16, 5, 4}, "float32"}}));
  EXPECT_THROW(kArtifact, "unknown output 's16'",
               Parse("detection", yolo, {{"s8", {1, 16, 8, 8}, "float32"}}));

  // SSD: priors from the artifact's listed files, N x 4 of them
  const std::string ssd = R"([{"op": "ssd_decode", "class_output": "cls", "box_output": "box",
      "priors": "priors.bin", "num_classes": 2, "variances": [0.1, 0.1, 0.2, 0.2]}])";
  const std::vector<TensorSpec> ssd_out{{"cls", {1, 5, 3}, "float32"},
                                        {"box", {1, 5, 4}, "float32"}};
  DataFiles priors;
  size_t asked = 0;
  priors.listed = [](const std::string& f) { return f == "priors.bin"; };
  priors.read_floats = [&](const std::string&, size_t n) {
    asked = n;
    return std::vector<float>(n, 0.5f);
  };
  PostprocessPlan s = Parse("detection", ssd, ssd_out, priors);
  CHECK(s.decoder == PostprocessPlan::Decoder::kSsd && asked == 20 && s.ssd.priors.size() == 20);
  EXPECT_THROW(kArtifact, "priors file is not listed", Parse("detection", ssd, ssd_out));
  // num_classes out of range (fuzz_manifest: -1 made an empty softmax read past its row,
  // 2^31 - 1 overflowed 5 + C and C + 1)
  for (const char* classes : {"-1", "0", "2147483647"}) {
    const auto with = [&](std::string ops, const std::string& was) {
      return ops.replace(ops.find(was), was.size(), std::string("\"num_classes\": ") + classes);
    };
    EXPECT_THROW(kArtifact, "ssd_decode: num_classes must be in 1..65536",
                 Parse("detection", with(ssd, "\"num_classes\": 2"), ssd_out, priors));
    const std::string bad = with(yolo, "\"num_classes\": 3");
    EXPECT_THROW(kArtifact, "yolo3_decode: num_classes must be in 1..65536",
                 Parse("detection", bad, {{"s8", {1, 16, 8, 8}, "float32"}}));
  }

  // segmentation and pose: a dense output of the op's channel count
  const std::string seg = R"([{"op": "segment", "output": "scores", "num_classes": 21}])";
  CHECK(Parse("segmentation", seg, {{"scores", {1, 21, 64, 64}, "float32"}}).dense_output == 0);
  EXPECT_THROW(kArtifact, "segment: output 'scores' has shape (1, 20, 64, 64), expected (1, 21",
               Parse("segmentation", seg, {{"scores", {1, 20, 64, 64}, "float32"}}));
  EXPECT_THROW(kArtifact, "not at the input resolution",
               Parse("segmentation", seg, {{"scores", {1, 21, 32, 32}, "float32"}}));
  const std::string pose = R"([{"op": "heatmap_decode", "output": "heatmaps", "num_joints": 17}])";
  const std::vector<TensorSpec> maps{{"heatmaps", {1, 17, 16, 12}, "float32"}};
  CHECK(Parse("pose", pose, maps, NoFiles(), kPersonCrop).dense_output == 0);
  const json::Value stretch_64x48 =
      json::Value::Parse(R"([{"op": "resize", "size": [64, 48]}, {"op": "normalize",
          "mean": [0, 0, 0], "std": [1, 1, 1], "color": "RGB", "layout": "NCHW"}])");
  EXPECT_THROW(kArtifact, "a pose model needs the person_crop preprocessing",
               Parse("pose", pose, maps, NoFiles(), stretch_64x48));

  // the tables: ops of another task, unknown ops and tasks, a task's missing op
  EXPECT_THROW(kArtifact, "postprocess op 'softmax' is not supported for task 'detection'",
               Parse("detection", R"([{"op": "softmax"}])", heads));
  EXPECT_THROW(kArtifact, "postprocess op 'argmax' is not supported for task 'classification'",
               Parse("classification", R"([{"op": "argmax"}])", logits));
  EXPECT_THROW(kArtifact, "task 'ocr' is not supported", Parse("ocr", "[]", logits));
  EXPECT_THROW(kArtifact, "detection artifact without a decode op",
               Parse("detection", R"([{"op": "nms", "iou_threshold": 0.5, "score_threshold": 0.1,
                   "topk": 5, "max_detections": 5, "class_agnostic": false}])",
                     heads));
  EXPECT_THROW(kArtifact, "segmentation artifact without a segment op",
               Parse("segmentation", "[]", logits));
  EXPECT_THROW(kArtifact, "pose artifact without a heatmap_decode op",
               Parse("pose", "[]", maps, NoFiles(), kPersonCrop));
  CHECK((PostprocessTasks() ==
         std::vector<std::string>{"classification", "detection", "segmentation", "pose"}));
  CHECK((PostprocessOpsFor("detection") ==
         std::vector<std::string>{"yolo3_decode", "ssd_decode", "centernet_decode", "nms"}));
  CHECK(PostprocessOpsFor("ocr").empty());
  return Finish("test_postprocess_plan");
}
