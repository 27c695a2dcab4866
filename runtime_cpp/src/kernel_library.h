// What every kernel library behind the kernel functions shares (oneDNN, XNNPACK, edgecv's
// Winograd): the thread count, the activation and residual add as the settings define them
// (kernel_abi.h), and the bookkeeping of calls and layers (kernels.cc). No TVM in here.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>

#include "edgecv/kernels.h"
#include "kernel_abi.h"

namespace edgecv {
namespace kernel {

// Threads for the libraries: EDGECV_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this
// process may use.
inline int Threads() {
  static const int threads = [] {
    for (const char* var : {"EDGECV_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char* v = std::getenv(var);
      if (v != nullptr && std::atoi(v) > 0) return std::atoi(v);
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return threads;
}

// The layer's activation as oneDNN defines it: ReLU with slope alpha below 0 (leaky when
// alpha != 0), clip to [alpha, beta].
inline float Activate(float v, int64_t act, float alpha, float beta) {
  if (act == kRelu) return v > 0.f ? v : alpha * v;
  if (act == kClip) return std::min(std::max(v, alpha), beta);
  return v;
}

// The activation with the residual added before it (order 1: ResNet) or after it (order 2:
// Darknet); order 0: no residual.
inline float ActivateResidual(float v, float residual, int64_t order, int64_t act, float alpha,
                              float beta) {
  if (order == 1) v += residual;
  v = Activate(v, act, alpha, beta);
  if (order == 2) v += residual;
  return v;
}

// Bookkeeping shared by the libraries (kernels.cc): time per kernel function, the log of
// layers built.
void AccountCall(const char* kernel, double ms);
void LogLayer(KernelLayer layer);

}  // namespace kernel
}  // namespace edgecv
