// Fuzz harness: the manifest reader. The input is a manifest.json. It goes through
//   1. the JSON reader, every accessor on every value it holds;
//   2. Manifest::Load, from a directory holding it (with the self-digest the runtime checks
//      appended, so that the fuzzer need not forge SHA-256) and two small files it may list;
//   3. the preprocessing and postprocessing plans, as Predictor's constructor parses them
//      (everything of opening an artifact but the engine), then the plan's decoder on outputs
//      of the shapes the manifest declares.
// Anything but edgecv::Error of the expected kind, a sanitizer report or a broken invariant
// is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "edgecv/centernet.h"
#include "edgecv/detection.h"
#include "edgecv/error.h"
#include "edgecv/json.h"
#include "edgecv/manifest.h"
#include "edgecv/postprocess_plan.h"
#include "edgecv/preprocess.h"
#include "edgecv/sha256.h"
#include "fuzz_input.h"

namespace {

using edgecv::Error;
using edgecv::ErrorKind;
namespace json = edgecv::json;

constexpr char kDigestMarker[] = ",\n  \"manifest_sha256\": \"";

void Walk(const json::Value& v, int depth) {
  FUZZ_ASSERT(depth <= 66);  // the reader refuses deeper nesting
  switch (v.type()) {
    case json::Value::Type::kNull:
      break;
    case json::Value::Type::kBool:
      v.AsBool();
      break;
    case json::Value::Type::kNumber:
      try {
        v.AsInt();
      } catch (const Error& e) {
        FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
      }
      break;
    case json::Value::Type::kString:
      v.AsString();
      break;
    case json::Value::Type::kArray:
      for (const json::Value& e : v.AsArray()) Walk(e, depth + 1);
      for (auto read : {+[](const json::Value& a) { json::AsShape(a); },
                        +[](const json::Value& a) { json::AsFloats(a); }}) {
        try {
          read(v);
        } catch (const Error& e) {
          FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
        }
      }
      break;
    case json::Value::Type::kObject:
      for (const auto& [key, member] : v.AsObject()) {
        FUZZ_ASSERT(v.Find(key) == &member);
        Walk(member, depth + 1);
      }
      break;
  }
  if (v.type() != json::Value::Type::kObject) {
    try {
      v.At("name");
      FUZZ_ASSERT(!"At() on a non-object returned");
    } catch (const Error& e) {
      FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
    }
  }
}

// The artifact directory: two files a manifest may list (seeds name them with their digests).
// Never freed: the exit handler that removes it runs after static destructors would.
const std::string& Directory() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto* path = new std::string(std::string(tmp && *tmp ? tmp : "/tmp") + "/edgecv-fuzz-XXXXXX");
    if (mkdtemp(path->data()) == nullptr) std::abort();
    std::ofstream(*path + "/model.so") << "not a library";
    std::ofstream(*path + "/weights.bin");
    return path;
  }();
  static const bool cleanup =
      std::atexit([] {
        for (const char* f : {"/manifest.json", "/model.so", "/weights.bin"})
          std::remove((*dir + f).c_str());
        rmdir(dir->c_str());
      }) == 0;
  (void)cleanup;
  return *dir;
}

void Load(std::string_view text) {
  std::string body(text);
  while (!body.empty() && (body.back() == '\n' || body.back() == ' ')) body.pop_back();
  if (!body.empty() && body.back() == '}') {
    body.pop_back();
    while (!body.empty() && (body.back() == '\n' || body.back() == ' ')) body.pop_back();
    const std::string digest = edgecv::Sha256Hex(body.data(), body.size());
    body += kDigestMarker + digest + "\"\n}\n";
  }
  std::ofstream(Directory() + "/manifest.json", std::ios::binary | std::ios::trunc) << body;
  try {
    const edgecv::Manifest m = edgecv::Manifest::Load(Directory());
    FUZZ_ASSERT(m.inputs.size() == 1);
    FUZZ_ASSERT(m.sha256.count(m.library) && m.sha256.count(m.weights));
  } catch (const Error& e) {
    FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
  }
}

edgecv::TensorSpec Spec(const json::Value& v) {
  return {v.At("name").AsString(), json::AsShape(v.At("shape")), v.At("dtype").AsString()};
}

// A tensor of `shape` (at most 64K values) with values that vary, or none.
bool Fill(const std::vector<int64_t>& shape, edgecv::Tensor* t) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 16) / d)) return false;
    n *= d;
  }
  t->shape = shape;
  t->data.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t->data[i] = static_cast<float>((i * 7919) % 101) / 100.0f;
  return true;
}

void Decode(const edgecv::PostprocessPlan& plan, const std::vector<edgecv::TensorSpec>& outputs) {
  using Decoder = edgecv::PostprocessPlan::Decoder;
  std::vector<edgecv::Tensor> t(outputs.size());
  for (int i : plan.decoder_outputs)
    if (!Fill(outputs[i].shape, &t[i])) return;
  std::vector<edgecv::Detection> dets;
  const float threshold = plan.nms.score_threshold;
  if (plan.decoder == Decoder::kYolo3) {
    std::vector<const edgecv::Tensor*> heads;
    for (int i : plan.decoder_outputs) heads.push_back(&t[i]);
    dets = edgecv::DecodeYolo3(heads, plan.yolo3, threshold);
  } else if (plan.decoder == Decoder::kSsd) {
    dets = edgecv::DecodeSsd(t[plan.decoder_outputs[0]], t[plan.decoder_outputs[1]], plan.ssd,
                             threshold);
  } else if (plan.decoder == Decoder::kCenterNet) {
    const std::vector<int>& o = plan.decoder_outputs;
    dets = edgecv::DecodeCenterNet(t[o[0]], t[o[1]], t[o[2]], plan.centernet, threshold);
  }
  if (!(plan.nms.iou_threshold <= 1.0f)) return;  // Predictor refuses such a plan at run time
  edgecv::Nms(std::move(dets), plan.nms);
}

void Plans(const json::Value& doc) {
  std::vector<edgecv::TensorSpec> inputs, outputs;
  std::string task;
  try {
    task = doc.At("model").At("task").AsString();
    for (const auto& v : doc.At("inputs").AsArray()) inputs.push_back(Spec(v));
    for (const auto& v : doc.At("outputs").AsArray()) outputs.push_back(Spec(v));
  } catch (const Error&) {
    return;  // Manifest::Load refuses these
  }
  if (inputs.size() != 1) return;
  edgecv::DataFiles files;
  files.listed = [&doc](const std::string& file) {
    const json::Value* sha = doc.Find("sha256");
    return sha != nullptr && sha->is_object() && sha->Find(file) != nullptr;
  };
  files.read_floats = [](const std::string& file, size_t count) {
    if (count > (size_t{1} << 16)) edgecv::ThrowInvalidArtifact(file + " is too short");
    return std::vector<float>(count, 16.0f);
  };
  edgecv::PostprocessPlan plan;
  try {
    const edgecv::Preprocessor pre(doc.At("preprocess"), inputs[0].shape);
    FUZZ_ASSERT(pre.width() > 0 && pre.height() > 0);
    plan = edgecv::ParsePostprocess(task, doc.At("postprocess"), pre, outputs, files);
  } catch (const Error& e) {
    FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
    return;
  }
  for (int i : plan.decoder_outputs) FUZZ_ASSERT(i >= 0 && static_cast<size_t>(i) < outputs.size());
  FUZZ_ASSERT(plan.dense_output < static_cast<int>(outputs.size()));
  try {
    Decode(plan, outputs);
  } catch (const Error& e) {
    FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidInput);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json::Value doc;
  try {
    doc = json::Value::Parse(text);
  } catch (const Error& e) {
    FUZZ_ASSERT(e.kind() == ErrorKind::kInvalidArtifact);
  }
  Walk(doc, 0);
  Load(text);
  if (doc.is_object()) Plans(doc);
  return 0;
}
