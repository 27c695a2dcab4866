// Kernel libraries that compiled graphs may call by name (TVM's call_dps_packed): edgecv
// registers them in TVM's function registry before an artifact is loaded, because the VM
// resolves the names when it initialises.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace edgecv {

// The kernel libraries this runtime was built with, e.g. {"dnnl"} (possibly empty).
const std::vector<std::string>& KernelLibraries();

// Registers every kernel function of the libraries above (idempotent, thread-safe).
void RegisterKernels();

// Calls of each kernel function and the time spent in them since the last reset.
struct KernelStat {
  int64_t calls = 0;
  double total_ms = 0;
};
std::map<std::string, KernelStat> KernelStats(bool reset = false);

// Frees cached packed weights and primitives (they are rebuilt on the next call).
void ClearKernelCache();

}  // namespace edgecv
