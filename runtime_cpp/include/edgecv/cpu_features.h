// The CPU features an artifact's machine code needs, checked before its library is loaded: a
// library built for AVX-512 (or the Arm dot product) on a CPU without it would die of SIGILL
// at its first instruction, not fail with a message.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace edgecv {

// Whether this CPU has `feature`, named as Linux's /proc/cpuinfo names it ("avx2", "fma",
// "avx512f", "avx512_vnni", "asimddp", "fphp", ...); nullopt for a name this runtime cannot
// check on this architecture.
std::optional<bool> CpuHas(const std::string& feature);

// The features this runtime can check on this architecture.
const std::vector<std::string>& CheckableCpuFeatures();

}  // namespace edgecv
