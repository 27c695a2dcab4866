// The artifact's manifest.json: what the runtime needs to run it, verified on load.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "edgecv/engine.h"
#include "edgecv/json.h"

namespace edgecv {

constexpr int kManifestSchemaVersion = 1;

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

struct Manifest {
  std::string directory;
  int schema_version = 0;
  std::string model;
  std::string task;
  std::string target;
  std::string device;       // "cpu" or "cuda"
  std::string host_triple;  // the CPU the library is built for, e.g. aarch64-linux-gnu
  std::string gpu_arch;     // cuda: the architecture of its kernels, e.g. sm_87
  std::string precision;
  std::string library;  // file names, relative to `directory`
  std::string weights;
  std::string entry;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::vector<ParamSpec> params;
  std::vector<std::string> classes;
  std::vector<std::string> kernels;  // kernel libraries the library calls, e.g. {"dnnl"}
  std::vector<std::string> cpu_features;  // CPU features its machine code needs, e.g. {"avx2", "fma"}
  std::map<std::string, std::string> sha256;  // file name -> hex digest
  json::Value doc;                            // the whole document, for ops and reports

  // Reads <dir>/manifest.json, checks its own digest and schema, and the digest of every
  // listed file. Throws Error(kInvalidArtifact) saying what is wrong.
  static Manifest Load(const std::string& dir);

  std::string Path(const std::string& file) const { return directory + "/" + file; }
};

}  // namespace edgecv
