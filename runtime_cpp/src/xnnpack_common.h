// What the XNNPACK kernel files (kernels_xnnpack.cc: float, xnnpack_int8.cc: int8) share:
// XNNPACK's initialisation with its thread pool, its status as edgecv's errors, the
// operators' owner.
#pragma once

#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernel_abi.h"

namespace edgecv {
namespace kernel {
namespace xnnpack {

// Throws a runtime error naming `what` unless XNNPACK succeeded.
void Check(xnn_status status, const char* what);

// The thread pool every XNNPACK operator runs on (XNNPACK initialised on first use).
pthreadpool_t Pool();

struct OperatorDeleter {
  void operator()(xnn_operator* op) const { xnn_delete_operator(op); }
};

// XNNPACK may read up to XNN_EXTRA_BYTES past an input's last element. The buffers edgecv's
// kernels fill themselves are allocated with that slack (Padded). Any other tensor (the VM's
// pooled blocks, constants, a caller's array) is read in place unless it ends within
// XNN_EXTRA_BYTES of a page boundary: reading on to the end of the page it ends in cannot
// fault, whatever its allocator; only a tensor ending right at a page's end is copied first.
constexpr uintptr_t kPage = 4096;

inline bool EndsNearPage(const void* data, size_t bytes) {
  const uintptr_t tail = (reinterpret_cast<uintptr_t>(data) + bytes) % kPage;
  return tail == 0 || tail > kPage - XNN_EXTRA_BYTES;
}

// `count` elements with XNN_EXTRA_BYTES readable after them.
template <typename T>
void Padded(std::vector<T>& buffer, size_t count) {
  buffer.resize(count + (XNN_EXTRA_BYTES + sizeof(T) - 1) / sizeof(T));
}

// A graph tensor's data as XNNPACK may read it: in place, or copied into `copy` with slack.
template <typename T>
const T* Readable(const T* data, size_t count, std::vector<T>& copy) {
  if (!EndsNearPage(data, count * sizeof(T))) return data;
  Padded(copy, count);
  std::memcpy(copy.data(), data, count * sizeof(T));
  return copy.data();
}

// v rounded half to even and clamped to [lo, hi] (|lo|, |hi| < 2^22; NaN: lo). Adding and
// subtracting 1.5 * 2^23 rounds in the FPU's default mode (ties to even, as ONNX Runtime and
// oneDNN round); unlike std::nearbyint, a libm call on baseline x86-64, it vectorises. (It
// needs IEEE arithmetic as compiled here: -ffast-math would fold the two additions away.)
inline int32_t Saturate(float v, int32_t lo, int32_t hi) {
  const float c = std::min(static_cast<float>(hi), std::max(static_cast<float>(lo), v));
  return static_cast<int32_t>((c + 12582912.f) - 12582912.f);
}

// y[i] = the activation of dst[i] with the residual (times res_scale) added before it (Order
// 1: ResNet) or after it (Order 2: Darknet), then stored as Out (uint8/int8: divided by
// out_step, rounded, saturated). One loop per order, activation and types, settings in
// arguments, so that it vectorises: a store through an int8 pointer may alias anything in
// memory (settings read through a pointer would be reloaded every element), and GCC does not
// if-convert float compares under -ftrapping-math (the XNNPACK kernel files are built with
// -fno-trapping-math; edgecv never reads FP exception flags). dst may be y (in place).
template <int64_t Order, int64_t Act, typename Res, typename Out>
inline void EpilogueLoop(const float* dst, const Res* res, Out* y, int64_t begin, int64_t end,
                         float res_scale, float out_step, float alpha, float beta) {
  for (int64_t i = begin; i < end; ++i) {
    float v = dst[i];
    if constexpr (Order == 1) v += static_cast<float>(res[i]) * res_scale;
    if constexpr (Act == kRelu) {     // Activate's, with alpha * v computed unconditionally:
      const float leaky = alpha * v;  // GCC does not if-convert a float multiply (it could trap)
      v = v > 0.f ? v : leaky;
    } else if constexpr (Act == kClip) {
      v = std::min(std::max(v, alpha), beta);
    }
    if constexpr (Order == 2) v += static_cast<float>(res[i]) * res_scale;
    if constexpr (std::is_same_v<Out, float>)
      y[i] = v;
    else if constexpr (std::is_same_v<Out, uint8_t>)
      y[i] = static_cast<uint8_t>(Saturate(v / out_step, 0, 255));
    else
      y[i] = static_cast<int8_t>(Saturate(v / out_step, -128, 127));
  }
}

// f(order, act) with the residual order (0, 1, 2) and activation (kNone, kRelu, kClip) as
// std::integral_constant: the run-time settings picking EpilogueLoop's instantiation.
template <typename F>
void WithOrderAndAct(int64_t order, int64_t act, F&& f) {
  const auto with_act = [&](auto o) {
    if (act == kRelu) return f(o, std::integral_constant<int64_t, kRelu>{});
    if (act == kClip) return f(o, std::integral_constant<int64_t, kClip>{});
    f(o, std::integral_constant<int64_t, kNone>{});
  };
  if (order == 1) return with_act(std::integral_constant<int64_t, 1>{});
  if (order == 2) return with_act(std::integral_constant<int64_t, 2>{});
  with_act(std::integral_constant<int64_t, 0>{});
}

// Drops the int8 layers (xnnpack_int8.cc); ClearCache calls it.
void ClearInt8Cache();

}  // namespace xnnpack
}  // namespace kernel
}  // namespace edgecv
