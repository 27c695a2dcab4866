// Per-layer timing of edgecv's Winograd (F(4x4, 3x3), F(2x2, 3x3), and the one Tile() picks:
// "winograd_ms") against oneDNN's direct convolution
// (NHWC, fp32, batch 1) on the 3x3 stride-1 layer shapes of the goal models. Prints JSON.
// Built and run by bench/winograd_layers.sh, which can pin the ISA: oneDNN through
// ONEDNN_MAX_CPU_ISA, the transforms by compiling them for that ISA only.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "../runtime_cpp/src/winograd.h"

using dnnl::memory;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  const char* where;
  int64_t c, k, h, w;
};

template <typename F>
double BestMs(F f, int repeat) {
  f();
  double best = 1e30;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main() {
  const Shape shapes[] = {
      {"resnet50 56x56", 64, 64, 56, 56},    {"resnet50 28x28", 128, 128, 28, 28},
      {"resnet50 14x14", 256, 256, 14, 14},  {"resnet50 7x7", 512, 512, 7, 7},
      {"darknet 208x208", 32, 64, 208, 208}, {"darknet 104x104", 64, 128, 104, 104},
      {"darknet 52x52", 128, 256, 52, 52},   {"darknet 26x26", 256, 512, 26, 26},
      {"darknet 13x13", 512, 1024, 13, 13},  {"ssd512 64x64", 256, 256, 64, 64},
  };
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::printf("{\"threads\": %d, \"onednn_isa\": %d, \"layers\": [\n", omp_get_max_threads(),
              static_cast<int>(dnnl::get_effective_cpu_isa()));
  bool first = true;
  for (const Shape& s : shapes) {
    std::vector<float> x(s.h * s.w * s.c), wt(s.k * s.c * 9), b(s.k), y(s.h * s.w * s.k);
    for (float& v : x) v = u(rng);
    for (float& v : wt) v = u(rng) * 0.1f;
    // oneDNN direct, NHWC in and out, weights in its preferred layout
    const memory::desc src({1, s.c, s.h, s.w}, memory::data_type::f32, memory::format_tag::nhwc);
    const memory::desc dst({1, s.k, s.h, s.w}, memory::data_type::f32, memory::format_tag::nhwc);
    const memory::desc wany({s.k, s.c, 3, 3}, memory::data_type::f32, memory::format_tag::any);
    const memory::desc bd({s.k}, memory::data_type::f32, memory::format_tag::x);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, src, wany, bd, dst,
                                      {1, 1}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc pd(d, engine);
    memory wplain({{s.k, s.c, 3, 3}, memory::data_type::f32, memory::format_tag::oihw}, engine,
                  wt.data());
    memory wpacked(pd.weights_desc(), engine);
    dnnl::reorder(wplain, wpacked).execute(stream, wplain, wpacked);
    dnnl::convolution_forward direct(pd);
    memory xm(src, engine, x.data()), ym(dst, engine, y.data()), bm(bd, engine, b.data());
    const double direct_ms = BestMs(
        [&] {
          direct.execute(stream, {{DNNL_ARG_SRC, xm},
                                  {DNNL_ARG_WEIGHTS, wpacked},
                                  {DNNL_ARG_BIAS, bm},
                                  {DNNL_ARG_DST, ym}});
          stream.wait();
        },
        10);
    std::vector<float> y2(y.size());
    const int tile = std::max(2, edgecv::WinogradConv::Tile(s.c, s.k, s.h, s.w));
    edgecv::WinogradConv wino4(4, wt.data(), b.data(), s.k, s.c, 1, s.h, s.w, 1, 1, 1, 1, engine);
    const double wino4_ms =
        BestMs([&] { wino4.Run(x.data(), y2.data(), nullptr, 0, 0, 0.f, 0.f, stream); }, 10);
    edgecv::WinogradConv wino2(2, wt.data(), b.data(), s.k, s.c, 1, s.h, s.w, 1, 1, 1, 1, engine);
    const double wino2_ms =
        BestMs([&] { wino2.Run(x.data(), y2.data(), nullptr, 0, 0, 0.f, 0.f, stream); }, 10);
    edgecv::WinogradConv wino(tile, wt.data(), b.data(), s.k, s.c, 1, s.h, s.w, 1, 1, 1, 1, engine);
    const double wino_ms =
        BestMs([&] { wino.Run(x.data(), y2.data(), nullptr, 0, 0, 0.f, 0.f, stream); }, 10);
    double err = 0, scale = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      err = std::max<double>(err, std::abs(y[i] - y2[i]));
      scale = std::max<double>(scale, std::abs(y[i]));
    }
    const double gflop = 2.0 * s.h * s.w * s.c * s.k * 9 / 1e9;
    std::printf(
        "%s  {\"layer\": \"%s\", \"in\": %lld, \"out\": %lld, \"h\": %lld, \"w\": %lld, "
        "\"direct_ms\": %.3f, "
        "\"direct_impl\": \"%s\", \"winograd_ms\": %.3f, \"speedup\": %.2f, \"direct_gflops\": "
        "%.1f, "
        "\"winograd_equiv_gflops\": %.1f, \"max_rel_diff\": %.2e, \"tile\": %d, \"f4_ms\": %.3f, "
        "\"f2_ms\": %.3f}",
        first ? "" : ",\n", s.where, (long long)s.c, (long long)s.k, (long long)s.h, (long long)s.w,
        direct_ms, pd.impl_info_str(), wino_ms, direct_ms / wino_ms, gflop / direct_ms * 1e3,
        gflop / wino_ms * 1e3, err / scale, edgecv::WinogradConv::Tile(s.c, s.k, s.h, s.w),
        wino4_ms, wino2_ms);
    first = false;
  }
  std::printf("\n]}\n");
  return 0;
}
