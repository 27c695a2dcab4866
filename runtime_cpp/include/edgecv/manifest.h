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
  std::string device;                  // "cpu" or "cuda"
  std::string host_triple;             // the CPU the library is built for, e.g. aarch64-linux-gnu
  std::vector<std::string> gpu_archs;  // cuda: architectures with machine code, e.g. {"sm_87"}
  std::string gpu_ptx;  // cuda: the architecture of its PTX (newer GPUs JIT it), or ""
  std::string precision;
  std::string library;  // file names, relative to `directory`
  std::string weights;
  std::string entry;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::vector<ParamSpec> params;
  std::vector<std::string> classes;
  std::vector<std::string> kernels;  // kernel libraries the library calls, e.g. {"dnnl"}
  std::vector<std::string>
      cpu_features;  // CPU features its machine code needs, e.g. {"avx2", "fma"}
  std::map<std::string, std::string> sha256;  // file name -> hex digest
  json::Value doc;                            // the whole document, for ops and reports

  // Reads <dir>/manifest.json, checks its own digest and schema, and the digest of every
  // listed file. Throws Error(kInvalidArtifact) saying what is wrong.
  static Manifest Load(const std::string& dir);

  std::string Path(const std::string& file) const { return directory + "/" + file; }
};

// Which GPU code of an artifact runs on a GPU of compute capability major.minor: the cubin
// (one of `cubins`, "sm_XY") for the newest architecture the GPU runs (same major version,
// minor at most the GPU's; an "a"-suffixed one only on exactly its GPU), else "compute_XY"
// when the artifact's PTX (`ptx` = "sm_XY") is not newer than the GPU (the driver compiles
// it), else "" (nothing in the artifact runs there). Throws kInvalidArtifact on a name that
// is not sm_XY.
std::string CudaCodeFor(int major, int minor, const std::vector<std::string>& cubins,
                        const std::string& ptx);

// "sm_75, sm_86 + PTX sm_90": the GPU code of an artifact, for messages.
std::string DescribeGpuCode(const std::vector<std::string>& cubins, const std::string& ptx);

}  // namespace edgecv
