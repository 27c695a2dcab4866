#include "edgecv/cpu_features.h"

#include <utility>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace edgecv {
namespace {

// x86: the compiler's cpuid probe (the names must be literals); aarch64: the kernel's HWCAP
// bits (also what qemu-user reports for the CPU it emulates, unlike /proc/cpuinfo there).
std::vector<std::pair<std::string, bool>> Probe() {
  std::vector<std::pair<std::string, bool>> out;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  out = {
      {"sse4_1", __builtin_cpu_supports("sse4.1") != 0},
      {"avx", __builtin_cpu_supports("avx") != 0},
      {"avx2", __builtin_cpu_supports("avx2") != 0},
      {"fma", __builtin_cpu_supports("fma") != 0},
      {"bmi2", __builtin_cpu_supports("bmi2") != 0},
      {"avx512f", __builtin_cpu_supports("avx512f") != 0},
      {"avx512bw", __builtin_cpu_supports("avx512bw") != 0},
      {"avx512dq", __builtin_cpu_supports("avx512dq") != 0},
      {"avx512vl", __builtin_cpu_supports("avx512vl") != 0},
      {"avx512cd", __builtin_cpu_supports("avx512cd") != 0},
      {"avx512_vnni", __builtin_cpu_supports("avx512vnni") != 0},
  };
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  // bit positions of the arm64 HWCAP word (linux/arch/arm64/include/uapi/asm/hwcap.h)
  out = {
      {"fp", (hw & (1UL << 0)) != 0},       {"asimd", (hw & (1UL << 1)) != 0},
      {"fphp", (hw & (1UL << 9)) != 0},     {"asimdhp", (hw & (1UL << 10)) != 0},
      {"asimddp", (hw & (1UL << 20)) != 0}, {"sve", (hw & (1UL << 22)) != 0},
  };
#endif
  return out;
}

const std::vector<std::pair<std::string, bool>>& Features() {
  static const std::vector<std::pair<std::string, bool>> features = Probe();
  return features;
}

}  // namespace

std::optional<bool> CpuHas(const std::string& feature) {
  for (const auto& [name, has] : Features())
    if (name == feature) return has;
  return std::nullopt;
}

const std::vector<std::string>& CheckableCpuFeatures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& f : Features()) n.push_back(f.first);
    return n;
  }();
  return names;
}

}  // namespace edgecv
