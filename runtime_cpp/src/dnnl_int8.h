// int8 layers in oneDNN: the quantisation the conv2d_q8 / dense_q8 kernels compute with.
//
// Weights arrive as int8 with a float scale per output channel, and the float
// input is quantised with one scale (zero point 0: symmetric int8, or uint8 when the input
// is never negative). oneDNN accumulates in int32, and the output scale
// input_scale * weight_scale[c] / unit brings the result into the post-ops' unit: 1 (float),
// the output's scale (written quantised), or the residual's scale when the residual arrives
// quantised: it is then added as it is (a second uint8/int8 input of a binary post-op), and a
// last linear post-op rescales the sum to the output's unit. (oneDNN's sum post-op instead,
// with the residual copied into the output, picks its faster 1x1 kernel for those layers, but
// measured paired on ResNet-50 the whole model ran no faster: 7.34 against 7.33 ms.)
// The float bias is divided by input_scale * weight_scale[c] so that oneDNN can add it to
// the accumulator.
//
// Without VNNI, oneDNN's int8 kernels multiply with vpmaddubsw, which adds each pair of
// uint8 x int8 products in a saturating 16-bit sum: 2 x 255 x 127 overflows it, silently
// (and for int8 inputs oneDNN halves the weights itself in its weight reorder, flagged by
// scale_adjust = 0.5, rounding weights of +-1 to 0). There each output channel whose largest
// |w| exceeds 63 is requantised to 7 bits, w7 = round(w x 63 / max|w|) (ties to even) at
// weight scale x max|w| / 63, so that pair sums stay within 2 x 255 x 63 = 32130. For int8
// inputs the weights are handed over doubled (2 x w7 at half that scale): oneDNN's halving
// gives w7 back exactly, and it doubles the accumulator again before the bias and output
// scales. The result is exact integer arithmetic on w7.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "dnnl_layer.h"

namespace edgecv {
namespace kernel {
namespace onednn {

struct Quantized {
  float in_scale = 0, dst_scale = 1, res_scale = 0;  // res_scale 0: a float residual (or none)
  int weight_bits = 8;                               // 7: weights requantised (see above)
  std::vector<int> w_max;  // per output channel: w7 = round(w x 63 / w_max) (63: kept as they are)
  int hand_over = 1;       // the weights oneDNN is given: hand_over x w7 (2: it halves them)
  bool src_signed = false;
  int64_t dst_kind = 0, res_kind = 0;  // 0 float, 1 uint8, 2 int8
  std::vector<float> out_scales, bias;
  float unit() const { return res_kind != 0 ? res_scale : dst_scale; }  // of the post-ops
};

// The quantisation of a layer: int8 weights w with their per-channel scales, the float bias
// b, and the settings' input, output and residual kinds and scales.
Quantized Quantization(const TensorView* w, const TensorView* w_scale, const TensorView* b,
                       float in_scale, bool src_signed, int64_t dst_kind, float dst_scale,
                       int64_t res_kind = 0, float res_scale = 0);

// The int8 weights as oneDNN is to receive them for the primitive that wants `packed`: as
// they are (8 bits), or requantised to 7 bits (see above), doubled where oneDNN halves
// them (int8 inputs: it flags `packed` with scale_adjust 0.5).
std::vector<int8_t> Int8Weights(const TensorView* w, const Quantized& q,
                                const memory::desc& packed);

// Output scales (int8 layers) and post-ops. Clip bounds are values of the output: in the
// post-ops' unit (see Quantized).
dnnl::primitive_attr Attributes(const std::optional<Quantized>& q, int64_t act, float alpha,
                                float beta, const memory::desc* residual, int64_t residual_order,
                                int* residual_index);

// The caller's input reaches the primitive through a reorder when its layout or type differ
// (a float input of an int8 layer is quantised on the way: multiplied by 1 / input scale).
void ReorderSource(Layer& l, const memory::desc& user_src, const std::optional<Quantized>& q);

}  // namespace onednn
}  // namespace kernel
}  // namespace edgecv
