#include "winograd.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernel_library.h"

namespace edgecv {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

constexpr int64_t kChunk = 64;      // channels transformed together (vectorised inner loops)
constexpr int64_t kMinTiles2 = 16;  // F(2x2, 3x3): at least a 7x7 map

// Generic x86-64 code would leave the transforms at SSE2 width: clones for AVX2/FMA and
// AVX-512, picked at load time by the CPU (ifunc). (EDGECV_NO_CLONES: one version, for
// timing one ISA's code on a CPU that has more, as bench/winograd_layers.cc does.)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(EDGECV_NO_CLONES)
#define EDGECV_CLONES \
  __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define EDGECV_CLONES
#endif

// B^T d B for one 6x6 input tile, channels [0, nc) of a chunk: d[i][j] points at row i,
// column j of the tile (nullptr: padding, zeros); v[i * 6 + j] receives the transform.
EDGECV_CLONES
void InputTransform(const float* const* d, float* const* v, int64_t nc) {
  alignas(64) float t[6][6][kChunk];
  alignas(64) float z[kChunk] = {};
  for (int j = 0; j < 6; ++j) {  // columns: t[.][j] = B^T d[.][j]
    const float* d0 = d[0 * 6 + j] ? d[0 * 6 + j] : z;
    const float* d1 = d[1 * 6 + j] ? d[1 * 6 + j] : z;
    const float* d2 = d[2 * 6 + j] ? d[2 * 6 + j] : z;
    const float* d3 = d[3 * 6 + j] ? d[3 * 6 + j] : z;
    const float* d4 = d[4 * 6 + j] ? d[4 * 6 + j] : z;
    const float* d5 = d[5 * 6 + j] ? d[5 * 6 + j] : z;
    for (int64_t c = 0; c < nc; ++c) {
      const float a1 = d1[c], a2 = d2[c], a3 = d3[c], a4 = d4[c];
      t[0][j][c] = 4.f * d0[c] - 5.f * a2 + a4;
      t[1][j][c] = -4.f * (a1 + a2) + a3 + a4;
      t[2][j][c] = 4.f * (a1 - a2) - a3 + a4;
      t[3][j][c] = 2.f * (a3 - a1) - a2 + a4;
      t[4][j][c] = 2.f * (a1 - a3) - a2 + a4;
      t[5][j][c] = 4.f * a1 - 5.f * a3 + d5[c];
    }
  }
  for (int i = 0; i < 6; ++i) {  // rows: v[i][.] = t[i][.] B
    float* v0 = v[i * 6 + 0];
    float* v1 = v[i * 6 + 1];
    float* v2 = v[i * 6 + 2];
    float* v3 = v[i * 6 + 3];
    float* v4 = v[i * 6 + 4];
    float* v5 = v[i * 6 + 5];
    const float *r0 = t[i][0], *r1 = t[i][1], *r2 = t[i][2], *r3 = t[i][3], *r4 = t[i][4],
                *r5 = t[i][5];
    for (int64_t c = 0; c < nc; ++c) {
      const float a1 = r1[c], a2 = r2[c], a3 = r3[c], a4 = r4[c];
      v0[c] = 4.f * r0[c] - 5.f * a2 + a4;
      v1[c] = -4.f * (a1 + a2) + a3 + a4;
      v2[c] = 4.f * (a1 - a2) - a3 + a4;
      v3[c] = 2.f * (a3 - a1) - a2 + a4;
      v4[c] = 2.f * (a1 - a3) - a2 + a4;
      v5[c] = 4.f * a1 - 5.f * a3 + r5[c];
    }
  }
}

// One output pixel's channels: residual before (order 1) or after (2) the activation.
inline void Finish(const float* o, float* out, const float* r, int64_t nc, int64_t order,
                   int64_t act, float alpha, float beta) {
  if (order == 0 && act == kernel::kNone) {
    std::memcpy(out, o, static_cast<size_t>(nc) * sizeof(float));
  } else if (order == 0 && act == kernel::kRelu && alpha == 0.f) {
    for (int64_t c = 0; c < nc; ++c) out[c] = std::max(o[c], 0.f);
  } else {
    for (int64_t c = 0; c < nc; ++c)
      out[c] = kernel::ActivateResidual(o[c], r != nullptr ? r[c] : 0.f, order, act, alpha, beta);
  }
}

// A^T m A for one tile, output channels [0, nc) of a chunk (m[i * 6 + j]: element (i, j) of
// the 6x6 product); then bias, residual and activation, written to the 4x4 output pixels
// y[i * 4 + j] (nullptr: outside the output). res likewise (nullptr: no residual).
EDGECV_CLONES
void OutputTransform(const float* const* m, const float* bias, float* const* y,
                     const float* const* res, int64_t nc, int64_t order, int64_t act, float alpha,
                     float beta) {
  alignas(64) float t[4][6][kChunk];
  for (int j = 0; j < 6; ++j) {  // columns: t[.][j] = A^T m[.][j]
    const float *m0 = m[0 * 6 + j], *m1 = m[1 * 6 + j], *m2 = m[2 * 6 + j], *m3 = m[3 * 6 + j],
                *m4 = m[4 * 6 + j], *m5 = m[5 * 6 + j];
    for (int64_t c = 0; c < nc; ++c) {
      const float p12 = m1[c] + m2[c], d12 = m1[c] - m2[c], p34 = m3[c] + m4[c],
                  d34 = m3[c] - m4[c];
      t[0][j][c] = m0[c] + p12 + p34;
      t[1][j][c] = d12 + 2.f * d34;
      t[2][j][c] = p12 + 4.f * p34;
      t[3][j][c] = d12 + 8.f * d34 + m5[c];
    }
  }
  for (int i = 0; i < 4; ++i) {  // rows: out[i][.] = t[i][.] A
    const float *r0 = t[i][0], *r1 = t[i][1], *r2 = t[i][2], *r3 = t[i][3], *r4 = t[i][4],
                *r5 = t[i][5];
    alignas(64) float o[4][kChunk];
    for (int64_t c = 0; c < nc; ++c) {
      const float p12 = r1[c] + r2[c], d12 = r1[c] - r2[c], p34 = r3[c] + r4[c],
                  d34 = r3[c] - r4[c];
      o[0][c] = r0[c] + p12 + p34 + bias[c];
      o[1][c] = d12 + 2.f * d34 + bias[c];
      o[2][c] = p12 + 4.f * p34 + bias[c];
      o[3][c] = d12 + 8.f * d34 + r5[c] + bias[c];
    }
    for (int j = 0; j < 4; ++j)
      if (y[i * 4 + j] != nullptr)
        Finish(o[j], y[i * 4 + j], res != nullptr ? res[i * 4 + j] : nullptr, nc, order, act, alpha,
               beta);
  }
}

// F(2x2, 3x3): B^T d B for a 4x4 input tile (as InputTransform).
EDGECV_CLONES
void InputTransform2(const float* const* d, float* const* v, int64_t nc) {
  alignas(64) float t[4][4][kChunk];
  alignas(64) float z[kChunk] = {};
  for (int j = 0; j < 4; ++j) {  // columns: t[.][j] = B^T d[.][j]
    const float* d0 = d[0 * 4 + j] ? d[0 * 4 + j] : z;
    const float* d1 = d[1 * 4 + j] ? d[1 * 4 + j] : z;
    const float* d2 = d[2 * 4 + j] ? d[2 * 4 + j] : z;
    const float* d3 = d[3 * 4 + j] ? d[3 * 4 + j] : z;
    for (int64_t c = 0; c < nc; ++c) {
      t[0][j][c] = d0[c] - d2[c];
      t[1][j][c] = d1[c] + d2[c];
      t[2][j][c] = d2[c] - d1[c];
      t[3][j][c] = d1[c] - d3[c];
    }
  }
  for (int i = 0; i < 4; ++i) {  // rows: v[i][.] = t[i][.] B
    float *v0 = v[i * 4 + 0], *v1 = v[i * 4 + 1], *v2 = v[i * 4 + 2], *v3 = v[i * 4 + 3];
    const float *r0 = t[i][0], *r1 = t[i][1], *r2 = t[i][2], *r3 = t[i][3];
    for (int64_t c = 0; c < nc; ++c) {
      v0[c] = r0[c] - r2[c];
      v1[c] = r1[c] + r2[c];
      v2[c] = r2[c] - r1[c];
      v3[c] = r1[c] - r3[c];
    }
  }
}

// F(2x2, 3x3): A^T m A for a 4x4 product (as OutputTransform; y, res: 2x2 pixels).
EDGECV_CLONES
void OutputTransform2(const float* const* m, const float* bias, float* const* y,
                      const float* const* res, int64_t nc, int64_t order, int64_t act, float alpha,
                      float beta) {
  alignas(64) float t[2][4][kChunk];
  for (int j = 0; j < 4; ++j) {
    const float *m0 = m[0 * 4 + j], *m1 = m[1 * 4 + j], *m2 = m[2 * 4 + j], *m3 = m[3 * 4 + j];
    for (int64_t c = 0; c < nc; ++c) {
      t[0][j][c] = m0[c] + m1[c] + m2[c];
      t[1][j][c] = m1[c] - m2[c] - m3[c];
    }
  }
  for (int i = 0; i < 2; ++i) {
    const float *r0 = t[i][0], *r1 = t[i][1], *r2 = t[i][2], *r3 = t[i][3];
    alignas(64) float o[2][kChunk];
    for (int64_t c = 0; c < nc; ++c) {
      o[0][c] = r0[c] + r1[c] + r2[c] + bias[c];
      o[1][c] = r1[c] - r2[c] - r3[c] + bias[c];
    }
    for (int j = 0; j < 2; ++j)
      if (y[i * 2 + j] != nullptr)
        Finish(o[j], y[i * 2 + j], res != nullptr ? res[i * 2 + j] : nullptr, nc, order, act, alpha,
               beta);
  }
}

// Per-thread scratch (a layer may run in several threads at once).
float* ThreadBuffer(int slot, size_t count) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& b = buffers[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}

}  // namespace

int WinogradConv::Tile(int64_t in_c, int64_t out_c, int64_t oh, int64_t ow) {
  // Measured against oneDNN 2.6's direct AVX2 kernel (bench/winograd_layers.cc): 2-3.3x
  // faster on ResNet/Darknet/SSD layers from 14x14 (16 tiles) up; slower where few tiles
  // meet large transformed weights (36 x in x out floats, read once per call): 512 -> 512 at
  // 7x7 (4 tiles) 0.63x, 512 -> 1024 at 13x13 (16 tiles) 0.85-1.0x.
  if (in_c < 16 || out_c < 16) return 0;
  const int64_t tiles4 = ((oh + 3) / 4) * ((ow + 3) / 4);
  if (tiles4 >= 64 || (tiles4 >= 16 && in_c * out_c <= 256 * 512)) return 4;
  // F(2x2, 3x3) there: 16 instead of 36 transformed weights per pair, 4x the tiles to share
  // each one
  const int64_t tiles2 = ((oh + 1) / 2) * ((ow + 1) / 2);
  return tiles2 >= kMinTiles2 ? 2 : 0;
}

WinogradConv::WinogradConv(int tile, const float* weights, const float* bias, int64_t out_c,
                           int64_t in_c, int64_t n, int64_t h, int64_t w, int64_t pad_t,
                           int64_t pad_l, int64_t pad_b, int64_t pad_r, dnnl::engine& engine)
    : tile_(tile),
      out_c_(out_c),
      in_c_(in_c),
      n_(n),
      h_(h),
      w_(w),
      pad_t_(pad_t),
      pad_l_(pad_l),
      oh_(h + pad_t + pad_b - 2),
      ow_(w + pad_l + pad_r - 2),
      bias_(bias, bias + out_c) {
  if (tile != 4 && tile != 2) throw std::invalid_argument("Winograd tile must be 4 or 2");
  const int a = tile + 2;  // input tile side
  const int64_t points = a * a;
  tiles_h_ = (oh_ + tile - 1) / tile;
  tiles_w_ = (ow_ + tile - 1) / tile;
  tiles_ = n_ * tiles_h_ * tiles_w_;
  // U = G g G^T per (output, input) channel pair, laid out points x in_c x out_c
  static const double G4[6][3] = {{1. / 4, 0, 0},
                                  {-1. / 6, -1. / 6, -1. / 6},
                                  {-1. / 6, 1. / 6, -1. / 6},
                                  {1. / 24, 1. / 12, 1. / 6},
                                  {1. / 24, -1. / 12, 1. / 6},
                                  {0, 0, 1}};
  static const double G2[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  const auto G = [&](int i, int k) { return tile == 4 ? G4[i][k] : G2[i][k]; };
  std::vector<float> u(static_cast<size_t>(points * in_c * out_c));
  for (int64_t o = 0; o < out_c; ++o) {
    for (int64_t c = 0; c < in_c; ++c) {
      const float* g = weights + (o * in_c + c) * 9;
      double gg[6][3];
      for (int i = 0; i < a; ++i)
        for (int k = 0; k < 3; ++k)
          gg[i][k] = G(i, 0) * g[0 * 3 + k] + G(i, 1) * g[1 * 3 + k] + G(i, 2) * g[2 * 3 + k];
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j)
          u[((i * a + j) * in_c + c) * out_c + o] =
              static_cast<float>(gg[i][0] * G(j, 0) + gg[i][1] * G(j, 1) + gg[i][2] * G(j, 2));
    }
  }
  v_desc_ = memory::desc({points, tiles_, in_c}, dt::f32, tag::abc);
  m_desc_ = memory::desc({points, tiles_, out_c}, dt::f32, tag::abc);
  const memory::desc u_any({points, in_c, out_c}, dt::f32, tag::any);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(v_desc_, u_any, m_desc_), engine);
  matmul_ = dnnl::matmul(pd);
  memory plain({{points, in_c, out_c}, dt::f32, tag::abc}, engine, u.data());
  u_ = memory(pd.weights_desc(), engine);
  dnnl::stream stream(engine);
  dnnl::reorder(plain, u_).execute(stream, plain, u_);
  stream.wait();
}

void WinogradConv::Run(const float* x, float* y, const float* residual, int64_t residual_order,
                       int64_t act, float alpha, float beta, dnnl::stream& stream) const {
  const int tile = tile_, a = tile + 2, points = a * a;
  float* v = ThreadBuffer(0, static_cast<size_t>(points * tiles_ * in_c_));
  float* m = ThreadBuffer(1, static_cast<size_t>(points * tiles_ * out_c_));
  const int64_t tiles = tiles_, per_image = tiles_h_ * tiles_w_;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t in = t / per_image, ty = (t % per_image) / tiles_w_, tx = t % tiles_w_;
    const int64_t y0 = ty * tile - pad_t_, x0 = tx * tile - pad_l_;
    for (int64_t c0 = 0; c0 < in_c_; c0 += kChunk) {
      const float* d[36];
      float* out[36];
      for (int i = 0; i < a; ++i) {
        for (int j = 0; j < a; ++j) {
          const int64_t yy = y0 + i, xx = x0 + j;
          d[i * a + j] = yy >= 0 && yy < h_ && xx >= 0 && xx < w_
                             ? x + ((in * h_ + yy) * w_ + xx) * in_c_ + c0
                             : nullptr;
          out[i * a + j] = v + ((i * a + j) * tiles + t) * in_c_ + c0;
        }
      }
      (tile == 4 ? InputTransform : InputTransform2)(d, out, std::min(kChunk, in_c_ - c0));
    }
  }
  // (36 single-threaded sgemm calls spread over the threads measured the same as this)
  matmul_.execute(stream, {{DNNL_ARG_SRC, memory(v_desc_, u_.get_engine(), v)},
                           {DNNL_ARG_WEIGHTS, u_},
                           {DNNL_ARG_DST, memory(m_desc_, u_.get_engine(), m)}});
  stream.wait();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t in = t / per_image, ty = (t % per_image) / tiles_w_, tx = t % tiles_w_;
    for (int64_t k0 = 0; k0 < out_c_; k0 += kChunk) {
      const float* mm[36];
      float* out[16];
      const float* res[16];
      for (int e = 0; e < points; ++e) mm[e] = m + (e * tiles + t) * out_c_ + k0;
      for (int i = 0; i < tile; ++i) {
        for (int j = 0; j < tile; ++j) {
          const int64_t oy = ty * tile + i, ox = tx * tile + j;
          const bool inside = oy < oh_ && ox < ow_;
          const int64_t at = ((in * oh_ + oy) * ow_ + ox) * out_c_ + k0;
          out[i * tile + j] = inside ? y + at : nullptr;
          res[i * tile + j] = inside && residual != nullptr ? residual + at : nullptr;
        }
      }
      (tile == 4 ? OutputTransform : OutputTransform2)(
          mm, bias_.data() + k0, out, residual != nullptr ? res : nullptr,
          std::min(kChunk, out_c_ - k0), residual_order, act, alpha, beta);
    }
  }
}

}  // namespace edgecv
