// The compiled network: a TVM Relax VM module plus its weights. TVM types stay
// behind this interface, so apps including edgecv headers need no TVM headers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "edgecv/image.h"

namespace edgecv {

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
};

// Where the network runs: "cpu", or "cuda" with the architectures its kernels are compiled
// for ({"sm_75", "sm_86"}) and the architecture of its PTX, if it has any ("sm_90", or "").
struct DeviceSpec {
  std::string type = "cpu";
  std::vector<std::string> archs;
  std::string ptx;
};

class Engine {
 public:
  // Loads `library` (a Relax VM shared library) and the parameters from `weights_path`,
  // placing the parameters on `device`.
  Engine(const std::string& library, const std::string& entry, const std::string& weights_path,
         const std::vector<ParamSpec>& params, const DeviceSpec& device = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs the entry function on one float32 input; returns every output as float32 in host memory.
  std::vector<Tensor> Run(const Tensor& input) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool counted_ = false;  // fully loaded: counts as a live engine
};

}  // namespace edgecv
