// What the XNNPACK kernel files (kernels_xnnpack.cc: float, xnnpack_int8.cc: int8) share:
// XNNPACK's initialisation with its thread pool, its status as edgecv's errors, the
// operators' owner.
#pragma once

#include <pthreadpool.h>
#include <xnnpack.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

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

// Drops the int8 layers (xnnpack_int8.cc); ClearCache calls it.
void ClearInt8Cache();

}  // namespace xnnpack
}  // namespace kernel
}  // namespace edgecv
