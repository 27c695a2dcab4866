// edgecv's Winograd F(4x4, 3x3) against a direct convolution computed here in double:
// odd map sizes (partial tiles), every padding, channel counts that fill the 64-channel
// chunks partly, residual before/after the activation, ReLU / leaky ReLU / clip.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../src/winograd.h"
#include "check.h"

using namespace edgecv;

namespace {

struct Case {
  int tile;
  int64_t n, h, w, cin, cout, pt, pl, pb, pr, order, act;
  float alpha, beta;
};

float Act(double v, int64_t act, float alpha, float beta) {
  if (act == 1) return static_cast<float>(v > 0 ? v : v * alpha);  // ReLU, alpha: negative slope
  if (act == 2) return static_cast<float>(std::min<double>(std::max<double>(v, alpha), beta));
  return static_cast<float>(v);
}

double MaxError(const Case& k, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t oh = k.h + k.pt + k.pb - 2, ow = k.w + k.pl + k.pr - 2;
  std::vector<float> x(k.n * k.h * k.w * k.cin), wt(k.cout * k.cin * 9), b(k.cout),
      r(k.n * oh * ow * k.cout);
  for (auto* v : {&x, &wt, &b, &r})
    for (float& e : *v) e = u(rng);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  WinogradConv conv(k.tile, wt.data(), b.data(), k.cout, k.cin, k.n, k.h, k.w, k.pt, k.pl, k.pb,
                    k.pr, engine);
  std::vector<float> y(k.n * oh * ow * k.cout, 12345.f);
  conv.Run(x.data(), y.data(), k.order ? r.data() : nullptr, k.order, k.act, k.alpha, k.beta,
           stream);
  double worst = 0, scale = 0;
  for (int64_t in = 0; in < k.n; ++in)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t o = 0; o < k.cout; ++o) {
          double s = b[o];
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t iy = oy + ky - k.pt, ix = ox + kx - k.pl;
              if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
              for (int64_t c = 0; c < k.cin; ++c)
                s += double(x[((in * k.h + iy) * k.w + ix) * k.cin + c]) *
                     wt[((o * k.cin + c) * 3 + ky) * 3 + kx];
            }
          const int64_t at = ((in * oh + oy) * ow + ox) * k.cout + o;
          if (k.order == 1) s += r[at];
          double v = Act(s, k.act, k.alpha, k.beta);
          if (k.order == 2) v += r[at];
          worst = std::max(worst, std::fabs(v - y[at]));
          scale = std::max(scale, std::fabs(v));
        }
  return worst / std::max(scale, 1e-6);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  std::vector<Case> cases;
  for (int tile : {4, 2}) {
    const Case some[] = {
        {tile, 1, 13, 11, 3, 5, 1, 1, 1, 1, 0, 0, 0.f, 0.f},  // few channels, partial tiles
        {tile, 2, 16, 16, 70, 20, 1, 1, 1, 1, 1, 1, 0.f,
         0.f},  // batch 2, a chunk and a bit; add, ReLU
        {tile, 1, 9, 14, 64, 130, 0, 0, 0, 0, 2, 1, 0.1f, 0.f},  // no padding; leaky ReLU, then add
        {tile, 1, 10, 7, 32, 33, 0, 1, 1, 0, 0, 2, 0.f, 6.f},  // asymmetric padding; ReLU6 as clip
        {tile, 1, 4, 4, 16, 16, 2, 2, 2, 2, 0, 0, 0.f,
         0.f},  // padding wider than the kernel's half
    };
    cases.insert(cases.end(), std::begin(some), std::end(some));
  }
  for (const Case& k : cases) {
    const double e = MaxError(k, rng);
    if (!(e < 2e-5))
      std::fprintf(stderr, "F(%d) case %lldx%lld %lld->%lld: relative error %g\n", k.tile,
                   (long long)k.h, (long long)k.w, (long long)k.cin, (long long)k.cout, e);
    CHECK(e < 2e-5);
  }
  CHECK(WinogradConv::Tile(64, 64, 52, 52) == 4);
  CHECK(WinogradConv::Tile(256, 256, 14, 14) == 4);
  CHECK(WinogradConv::Tile(3, 64, 224, 224) == 0);    // the stem: too few input channels
  CHECK(WinogradConv::Tile(512, 512, 7, 7) == 2);     // F(4x4): 4 tiles for 37 MB of weights
  CHECK(WinogradConv::Tile(512, 1024, 13, 13) == 2);  // F(4x4): 16 tiles for 75 MB
  CHECK(WinogradConv::Tile(512, 512, 4, 4) == 0);     // one F(4x4) tile, four F(2x2) ones
  return g_failures == 0 ? 0 : 1;
}
