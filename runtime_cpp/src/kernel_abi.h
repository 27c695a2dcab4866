// The settings of the kernel functions compiled graphs call, by name: the records that
// edgecv/compile/kernel_abi.py encodes, with the same field names, and their decoder.
// A call's settings are one int64 array: [version, fields..., key], the fields in the order
// each record's Fields() visits them (a nested record: its fields, in place), floats as their
// IEEE float32 bits, booleans as 0/1; key: a content key the kernels cache packed weights
// under. tests/test_kernel_abi.py encodes each record in Python and decodes it here.
// No TVM in here (the Python bindings decode with it too); kernel_common.h reads a call's
// argument with it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "edgecv/error.h"

namespace edgecv {
namespace kernel {

// The layout's version (VERSION in kernel_abi.py): bumped with any change of a record.
constexpr int64_t kSettingsVersion = 3;

enum Activation : int64_t { kNone = 0, kRelu = 1, kClip = 2 };
// residual: 0 none, 1 add then activate (ResNet), 2 activate then add (Darknet)
// quantised tensors (output_kind, residual_kind): 0 float, 1 uint8, 2 int8, 3 uint8 stored as
// int8, v - 128 (XNNPACK int8 graphs only; input_as_int8: the input so)
enum PoolKind : int64_t { kMaxPool = 0, kAvgIncludePad = 1, kAvgExcludePad = 2 };

// Fields(record, visit) calls visit(name, field) for each field in the layout's order; the
// Self parameter serves const and mutable records alike.
struct ActivationSettings {
  int64_t kind = kNone;
  float alpha = 0, beta = 0;  // ReLU: slope below 0; clip: bounds
  template <typename Self, typename Visit>
  static void Fields(Self& s, Visit&& v) {
    v("kind", s.kind);
    v("alpha", s.alpha);
    v("beta", s.beta);
  }
};

// conv2d and conv2d_transpose (float). Pads: top, left, bottom, right (a transposed conv's
// bottom/right: those of the conv it transposes less its output padding).
struct Conv2dSettings {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  ActivationSettings act;
  int64_t residual = 0;
  bool src_nchw = false, dst_nchw = false;  // reads the graph's NCHW input / writes an NCHW output
  template <typename Self, typename Visit>
  static void Fields(Self& s, Visit&& v) {
    v("stride_h", s.stride_h);
    v("stride_w", s.stride_w);
    v("pad_top", s.pad_top);
    v("pad_left", s.pad_left);
    v("pad_bottom", s.pad_bottom);
    v("pad_right", s.pad_right);
    v("dilation_h", s.dilation_h);
    v("dilation_w", s.dilation_w);
    v("groups", s.groups);
    v("act", s.act);
    v("residual", s.residual);
    v("src_nchw", s.src_nchw);
    v("dst_nchw", s.dst_nchw);
  }
};

// conv2d_q8: the float layer's settings, then its quantisation (scales: one step's value).
struct Conv2dQ8Settings {
  Conv2dSettings conv;
  float input_scale = 0;
  bool input_signed = false;  // int8 input, else uint8
  int64_t output_kind = 0;
  float output_scale = 0;
  int64_t residual_kind = 0;
  float residual_scale = 0;
  bool input_as_int8 = false;  // a uint8 input stored as int8, v - 128
  template <typename Self, typename Visit>
  static void Fields(Self& s, Visit&& v) {
    v("conv", s.conv);
    v("input_scale", s.input_scale);
    v("input_signed", s.input_signed);
    v("output_kind", s.output_kind);
    v("output_scale", s.output_scale);
    v("residual_kind", s.residual_kind);
    v("residual_scale", s.residual_scale);
    v("input_as_int8", s.input_as_int8);
  }
};

struct DenseSettings {
  ActivationSettings act;
  template <typename Self, typename Visit>
  static void Fields(Self& s, Visit&& v) {
    v("act", s.act);
  }
};

// dense_q8: as conv2d_q8, without a residual.
struct DenseQ8Settings {
  DenseSettings dense;
  float input_scale = 0;
  bool input_signed = false;
  int64_t output_kind = 0;
  float output_scale = 0;
  bool input_as_int8 = false;
  template <typename Self, typename Visit>
  static void Fields(Self& s, Visit&& v) {
    v("dense", s.dense);
    v("input_scale", s.input_scale);
    v("input_signed", s.input_signed);
    v("output_kind", s.output_kind);
    v("output_scale", s.output_scale);
    v("input_as_int8", s.input_as_int8);
  }
};

// pool2d: NHWC; the bottom/right pads already extended for ceil mode.
struct Pool2dSettings {
  int64_t kind = kMaxPool;
  int64_t window_h = 1, window_w = 1, stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  template <typename Self, typename Visit>
  static void Fields(Self& s, Visit&& v) {
    v("kind", s.kind);
    v("window_h", s.window_h);
    v("window_w", s.window_w);
    v("stride_h", s.stride_h);
    v("stride_w", s.stride_w);
    v("pad_top", s.pad_top);
    v("pad_left", s.pad_left);
    v("pad_bottom", s.pad_bottom);
    v("pad_right", s.pad_right);
  }
};

// A float layer's settings as its int8 version's, every tensor float: for the kernels that
// serve both.
inline Conv2dQ8Settings AsQ8(const Conv2dSettings& s) {
  Conv2dQ8Settings q;
  q.conv = s;
  return q;
}
inline Conv2dQ8Settings AsQ8(const Conv2dQ8Settings& s) { return s; }
inline DenseQ8Settings AsQ8(const DenseSettings& s) {
  DenseQ8Settings q;
  q.dense = s;
  return q;
}
inline DenseQ8Settings AsQ8(const DenseQ8Settings& s) { return s; }

// settings carry floats as their IEEE bits
inline float FloatBits(int64_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

namespace abi_detail {

struct Counter {
  size_t n = 0;
  void operator()(const char*, const int64_t&) { ++n; }
  void operator()(const char*, const float&) { ++n; }
  void operator()(const char*, const bool&) { ++n; }
  template <typename T>
  void operator()(const char*, const T& nested) {
    T::Fields(nested, *this);
  }
};

struct Reader {
  const int64_t* p;
  void operator()(const char*, int64_t& v) { v = *p++; }
  void operator()(const char*, float& v) { v = FloatBits(*p++); }
  void operator()(const char*, bool& v) { v = *p++ != 0; }
  template <typename T>
  void operator()(const char*, T& nested) {
    T::Fields(nested, *this);
  }
};

}  // namespace abi_detail

// Values in a record's settings array, version and key included.
template <typename T>
size_t SettingsSize() {
  abi_detail::Counter c;
  const T record{};
  T::Fields(record, c);
  return c.n + 2;
}

template <typename T>
struct Keyed {
  T settings;
  int64_t key = 0;
};

// `values` (of `size`) as the settings of `kernel`; refuses another version or length, as an
// artifact this runtime does not understand.
template <typename T>
Keyed<T> DecodeSettings(const int64_t* values, size_t size, const std::string& kernel) {
  if (size == 0) ThrowInvalidArtifact(kernel + ": no settings (recompile the artifact)");
  if (values[0] != kSettingsVersion)
    ThrowInvalidArtifact(kernel + ": settings of version " + std::to_string(values[0]) +
                         ", this runtime reads version " + std::to_string(kSettingsVersion) +
                         " (an artifact of another edgecv version: recompile it)");
  if (size != SettingsSize<T>())
    ThrowInvalidArtifact(kernel + ": " + std::to_string(size) + " settings values, expected " +
                         std::to_string(SettingsSize<T>()) + " in version " +
                         std::to_string(kSettingsVersion) +
                         " (an artifact of another edgecv build: recompile it)");
  Keyed<T> out;
  abi_detail::Reader r{values + 1};
  T::Fields(out.settings, r);
  out.key = values[size - 1];
  return out;
}

// Calls f(T{}) with the record of kernel kind `kind` ("conv2d", "conv2d_q8", ..., as in
// kernel_abi.KINDS); false for an unknown kind.
template <typename F>
bool WithSettingsOf(const std::string& kind, F&& f) {
  if (kind == "conv2d" || kind == "conv2d_transpose")
    f(Conv2dSettings{});
  else if (kind == "conv2d_q8")
    f(Conv2dQ8Settings{});
  else if (kind == "dense")
    f(DenseSettings{});
  else if (kind == "dense_q8")
    f(DenseQ8Settings{});
  else if (kind == "pool2d")
    f(Pool2dSettings{});
  else
    return false;
  return true;
}

}  // namespace kernel
}  // namespace edgecv
