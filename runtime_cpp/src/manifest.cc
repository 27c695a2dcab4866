#include "edgecv/manifest.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>
#include <sstream>

#include "edgecv/cpu_features.h"
#include "edgecv/error.h"
#include "edgecv/kernels.h"
#include "edgecv/sha256.h"

namespace edgecv {

namespace {

// The manifest's last member is its own digest: the sha256 of every byte before the
// separator that introduces it. Any changed byte in the file breaks the match.
constexpr char kDigestMarker[] = ",\n  \"manifest_sha256\": \"";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    ThrowInvalidArtifact("no manifest at " + path + " (is this an edgecv artifact directory?)");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void CheckSelfDigest(const std::string& text, const std::string& path) {
  size_t at = text.rfind(kDigestMarker);
  if (at == std::string::npos) ThrowInvalidArtifact(path + " has no manifest_sha256 entry");
  size_t start = at + sizeof(kDigestMarker) - 1;
  std::string recorded = text.substr(start, 64);
  if (recorded != Sha256Hex(text.data(), at))
    ThrowInvalidArtifact(path +
                         " is corrupted or was edited: its content does not match manifest_sha256");
}

// The CPU this runtime was compiled for, as the first part of a target triple.
const char* RuntimeCpu() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__arm__)
  return "arm";
#else
  return "";
#endif
}

// Refuses an artifact whose machine code needs CPU features this CPU lacks (before its
// library is loaded: it would die of an illegal instruction), naming them.
void CheckCpuFeatures(const Manifest& m) {
  std::string lacking, unknown;
  for (const std::string& f : m.cpu_features) {
    const std::optional<bool> has = CpuHas(f);
    if (!has)
      unknown += (unknown.empty() ? "" : ", ") + f;
    else if (!*has)
      lacking += (lacking.empty() ? "" : ", ") + f;
  }
  if (!lacking.empty())
    ThrowInvalidArtifact(
        "artifact is built for target '" + m.target + "', whose code needs CPU features " +
        lacking +
        " that this CPU lacks: compile it for a target this CPU meets (e.g. the portable " +
        std::string(RuntimeCpu()) + ")");
  if (!unknown.empty())
    ThrowInvalidArtifact("artifact is built for target '" + m.target +
                         "', whose code needs CPU features " + unknown +
                         " that this runtime cannot check on " + RuntimeCpu());
}

TensorSpec ParseTensor(const json::Value& v) {
  return {v.At("name").AsString(), json::AsShape(v.At("shape")), v.At("dtype").AsString()};
}

}  // namespace

Manifest Manifest::Load(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  const std::string text = ReadFile(path);
  CheckSelfDigest(text, path);
  Manifest m;
  m.directory = dir;
  try {
    m.doc = json::Value::Parse(text);
    const json::Value& d = m.doc;
    if (d.At("schema").AsString() != "edgecv.artifact")
      ThrowInvalidArtifact("not an edgecv artifact manifest");
    m.schema_version = static_cast<int>(d.At("schema_version").AsInt());
    if (m.schema_version != kManifestSchemaVersion)
      ThrowInvalidArtifact("manifest schema version " + std::to_string(m.schema_version) +
                           " is not supported by this runtime (supports " +
                           std::to_string(kManifestSchemaVersion) + ")");
    m.model = d.At("model").At("name").AsString();
    m.task = d.At("model").At("task").AsString();
    m.target = d.At("target").At("name").AsString();
    m.device = d.At("target").At("device").AsString();
    m.host_triple = d.At("target").At("host_triple").AsString();
    if (m.device == "cuda") {  // "sms" (every cubin) and "ptx"; older artifacts: one "sm"
      const json::Value& t = d.At("target");
      if (const json::Value* sms = t.Find("sms"))
        for (const auto& v : sms->AsArray()) m.gpu_archs.push_back(v.AsString());
      else
        m.gpu_archs.push_back(t.At("sm").AsString());
      if (const json::Value* ptx = t.Find("ptx"); ptx != nullptr && !ptx->is_null())
        m.gpu_ptx = ptx->AsString();
      if (m.gpu_archs.empty() && m.gpu_ptx.empty())
        ThrowInvalidArtifact("a cuda artifact lists no GPU architecture");
      CudaCodeFor(0, 0, m.gpu_archs, m.gpu_ptx);  // refuses a malformed name now
    }
    m.precision = d.At("precision").AsString();
    m.library = d.At("files").At("library").AsString();
    m.weights = d.At("files").At("weights").AsString();
    m.entry = d.At("entry").AsString();
    for (const auto& v : d.At("inputs").AsArray()) m.inputs.push_back(ParseTensor(v));
    for (const auto& v : d.At("outputs").AsArray()) m.outputs.push_back(ParseTensor(v));
    for (const auto& v : d.At("params").AsArray()) {
      ParamSpec p{v.At("name").AsString(), json::AsShape(v.At("shape")), v.At("dtype").AsString(),
                  static_cast<uint64_t>(v.At("offset").AsInt()),
                  static_cast<uint64_t>(v.At("nbytes").AsInt())};
      m.params.push_back(std::move(p));
    }
    for (const auto& v : d.At("classes").AsArray()) m.classes.push_back(v.AsString());
    if (const json::Value* k = d.Find("kernels"))
      for (const auto& v : k->AsArray()) m.kernels.push_back(v.AsString());
    if (const json::Value* f = d.At("target").Find("cpu_features"))
      for (const auto& v : f->AsArray()) m.cpu_features.push_back(v.AsString());
    for (const auto& [file, digest] : d.At("sha256").AsObject()) m.sha256[file] = digest.AsString();
  } catch (const Error& e) {
    ThrowInvalidArtifact(path + ": " + e.what());
  }
#ifdef EDGECV_WITH_CUDA
  const bool device_ok = m.device == "cpu" || m.device == "cuda";
  const char* devices = "cpu and cuda";
#else
  const bool device_ok = m.device == "cpu";
  const char* devices = "cpu only (configure with -DEDGECV_WITH_CUDA=ON for cuda)";
#endif
  if (!device_ok)
    ThrowInvalidArtifact("artifact is for device '" + m.device + "'; this runtime build runs " +
                         devices);
  const std::string cpu = m.host_triple.substr(0, m.host_triple.find('-'));
  if (*RuntimeCpu() != '\0' && cpu != RuntimeCpu())
    ThrowInvalidArtifact("artifact is built for " + m.host_triple + " (target '" + m.target +
                         "'); this runtime runs on " + RuntimeCpu());
  CheckCpuFeatures(m);
  for (const std::string& lib : m.kernels) {
    const auto& have = KernelLibraries();
    if (std::find(have.begin(), have.end(), lib) == have.end())
      ThrowInvalidArtifact("artifact calls " + lib + " kernels (compiled with --kernels " + lib +
                           "); this runtime was built without them: install the library (oneDNN: "
                           "libdnnl-dev) and rebuild, or compile the model with --kernels tvm");
  }
  if (m.inputs.size() != 1) ThrowInvalidArtifact(path + ": exactly one input is supported");
  for (const std::string& file : {m.library, m.weights}) {
    if (file.find('/') != std::string::npos || file.empty() || file[0] == '.')
      ThrowInvalidArtifact(path + ": file name '" + file +
                           "' must be a plain name in the artifact");
    if (!m.sha256.count(file)) ThrowInvalidArtifact(path + ": no sha256 recorded for " + file);
  }
  for (const auto& [file, digest] : m.sha256) {
    if (file.find('/') != std::string::npos)
      ThrowInvalidArtifact(path + ": file name '" + file +
                           "' must be a plain name in the artifact");
    if (Sha256File(m.Path(file)) != digest)
      ThrowInvalidArtifact(m.Path(file) + " is corrupted: its sha256 does not match the manifest");
  }
  return m;
}

namespace {
struct Sm {
  int major = 0, minor = 0;
  bool specific = false;  // "sm_90a": runs on exactly that GPU
};

Sm ParseSm(const std::string& name) {
  const auto bad = [&] {
    ThrowInvalidArtifact("GPU architecture '" + name + "' is not of the form sm_XY");
  };
  if (name.rfind("sm_", 0) != 0) bad();
  std::string digits = name.substr(3);
  Sm sm;
  if (!digits.empty() && std::isalpha(static_cast<unsigned char>(digits.back()))) {
    sm.specific = true;
    digits.pop_back();
  }
  if (digits.size() < 2 || digits.size() > 3 ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }))
    bad();
  sm.major = std::stoi(digits.substr(0, digits.size() - 1));
  sm.minor = digits.back() - '0';
  return sm;
}
}  // namespace

std::string CudaCodeFor(int major, int minor, const std::vector<std::string>& cubins,
                        const std::string& ptx) {
  std::string best;
  int best_minor = -1;
  for (const std::string& name : cubins) {
    const Sm sm = ParseSm(name);
    const bool runs = sm.major == major && (sm.specific ? sm.minor == minor : sm.minor <= minor);
    if (runs && sm.minor > best_minor) best = name, best_minor = sm.minor;
  }
  if (ptx.empty()) return best;
  const Sm p = ParseSm(ptx);
  const bool jit = p.specific ? (p.major == major && p.minor == minor)
                              : (p.major < major || (p.major == major && p.minor <= minor));
  if (best.empty() && jit) return "compute_" + ptx.substr(3);
  return best;
}

std::string DescribeGpuCode(const std::vector<std::string>& cubins, const std::string& ptx) {
  std::string out;
  for (const std::string& sm : cubins) out += (out.empty() ? "" : ", ") + sm;
  if (!ptx.empty()) out += (out.empty() ? "PTX " : " + PTX ") + ptx;
  return out.empty() ? "no GPU code" : out;
}

}  // namespace edgecv
