// What the XNNPACK kernel files (kernels_xnnpack.cc: float, xnnpack_int8.cc: int8) share:
// XNNPACK's initialisation with its thread pool, its status as edgecv's errors, the
// operators' owner.
#pragma once

#include <pthreadpool.h>
#include <xnnpack.h>

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

// Drops the int8 layers (xnnpack_int8.cc); ClearCache calls it.
void ClearInt8Cache();

}  // namespace xnnpack
}  // namespace kernel
}  // namespace edgecv
