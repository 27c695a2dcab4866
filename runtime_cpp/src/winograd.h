// Winograd F(4x4, 3x3) and F(2x2, 3x3) for float 3x3 stride-1 convolutions in NHWC, for CPUs where
// oneDNN has no Winograd kernel (oneDNN 2.6 has them for AVX-512 only): edgecv's own input and
// output transforms around oneDNN's batched matrix multiplication (36 GEMMs of tiles x
// input channels by input x output channels; 16 for F(2x2)), with bias, residual add and
// activation applied in the output transform. 4x (F(2x2): 2.25x) fewer multiplications than a
// direct convolution; on AVX2
// oneDNN's direct 3x3 kernels reach ~55% of the machine's SGEMM peak (see
// shared notes/BENCHMARKS.md), its matmul ~95%.
//
// Transform matrices: Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"
// (2016), F(4x4, 3x3) with interpolation points 0, +-1, +-2 and infinity.
#pragma once

#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

namespace edgecv {

class WinogradConv {
 public:
  // tile: 4 for F(4x4, 3x3), 2 for F(2x2, 3x3); weights OIHW (out_c x in_c x 3 x 3), bias
  // out_c; the input is n x h x w x in_c (NHWC) with the given pads, the output n x oh x ow x
  // out_c.
  WinogradConv(int tile, const float* weights, const float* bias, int64_t out_c, int64_t in_c,
               int64_t n, int64_t h, int64_t w, int64_t pad_t, int64_t pad_l, int64_t pad_b,
               int64_t pad_r, dnnl::engine& engine);

  // residual (nullptr: none) is added before (order 1) or after (order 2) the activation
  // (kernel_abi.h's act codes, alpha/beta its parameters). Safe to call from several
  // threads at once (scratch is per thread).
  void Run(const float* x, float* y, const float* residual, int64_t residual_order, int64_t act,
           float alpha, float beta, dnnl::stream& stream) const;

  int64_t Tiles() const { return tiles_; }

  // The output tile expected to beat oneDNN's direct kernel on a layer of this shape: 4, 2,
  // or 0 (none: run it direct).
  static int Tile(int64_t in_c, int64_t out_c, int64_t oh, int64_t ow);

 private:
  int tile_;
  int64_t out_c_, in_c_, n_, h_, w_, pad_t_, pad_l_, oh_, ow_, tiles_h_, tiles_w_, tiles_;
  dnnl::matmul matmul_;
  dnnl::memory::desc v_desc_, m_desc_;
  dnnl::memory u_;  // transformed weights, 36 x in_c x out_c in the matmul's layout
  std::vector<float> bias_;
};

}  // namespace edgecv
