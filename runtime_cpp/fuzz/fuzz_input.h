// What the fuzz harnesses read their choices from: numbers taken from the front of the
// fuzzer's bytes, zeros once they run out, so that every input is a valid case and a small
// change of the bytes a small change of the case. Not libFuzzer's FuzzedDataProvider: the
// harnesses also build with GCC, without libFuzzer, to replay their corpus in ctest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace edgecv::fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4 && p_ < end_; ++i) v |= static_cast<uint32_t>(*p_++) << (8 * i);
    return v;
  }
  uint8_t Byte() { return p_ < end_ ? *p_++ : 0; }
  bool Bool() { return Byte() & 1; }
  // an integer in [lo, hi]
  int Int(int lo, int hi) {
    const uint32_t span = static_cast<uint32_t>(hi - lo) + 1;
    const uint32_t v = span <= 256 ? Byte() : U32();
    return lo + static_cast<int>(v % span);
  }
  // any float, NaN and infinities included (its raw bits)
  float Raw() {
    const uint32_t bits = U32();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  // mostly ordinary values in [lo, hi], now and then any float (1 byte in 8 picks which)
  float Float(float lo, float hi) {
    if (Byte() % 8 == 7) return Raw();
    return lo + (hi - lo) * static_cast<float>(U32() & 0xffffff) / float(0xffffff);
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* rest() const { return p_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// A harness's own invariant broken: abort, so that libFuzzer keeps the input as a crash.
[[noreturn]] inline void Broken(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
  std::abort();
}
#define FUZZ_ASSERT(cond) ((cond) ? (void)0 : ::edgecv::fuzz::Broken(__FILE__, __LINE__, #cond))

}  // namespace edgecv::fuzz
