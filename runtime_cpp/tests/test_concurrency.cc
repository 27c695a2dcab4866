// Concurrent runs, for the sanitizer builds (tests/test_sanitizers.py runs it under ASan +
// UBSan and under TSan): what the runtime allows (README: C++) done at once, with every
// result compared with a serial run's, value for value:
//   - several threads calling Run on one Predictor;
//   - several Predictors of each artifact opened, run and closed by threads of their own
//     while the others run: the kernel libraries' layer caches (one per library, shared by
//     every predictor of the process) are looked up and filled concurrently, and read by
//     KernelStats / KernelLayers at the same time.
// Usage: test_concurrency ARTIFACT_DIR... ; with no argument it reads EDGECV_TEST_ARTIFACTS
// (directories separated by ':') and is skipped (exit 77) when that is unset too: ctest
// registers it, the artifacts come from the Python suite, which compiles them.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "edgecv/kernels.h"
#include "edgecv/predictor.h"

using namespace edgecv;

namespace {

constexpr int kThreads = 4;
constexpr int kRuns = 3;

Image TestImage(int width, int height) {
  Image image{width, height, 3, ColorOrder::kRGB, {}};
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < image.pixels.size(); ++i)
    image.pixels[i] = static_cast<uint8_t>((i * 37 + i / 97) % 251);
  return image;
}

// Equal results: raw outputs value for value, and what the task made of them.
bool Same(const Result& a, const Result& b) {
  if (a.outputs.size() != b.outputs.size()) return false;
  for (size_t i = 0; i < a.outputs.size(); ++i)
    if (a.outputs[i].shape != b.outputs[i].shape || a.outputs[i].data != b.outputs[i].data)
      return false;
  if (a.classifications.size() != b.classifications.size() ||
      a.detections.size() != b.detections.size() || a.labels.labels != b.labels.labels)
    return false;
  for (size_t i = 0; i < a.classifications.size(); ++i)
    if (a.classifications[i].index != b.classifications[i].index ||
        a.classifications[i].score != b.classifications[i].score)
      return false;
  for (size_t i = 0; i < a.detections.size(); ++i) {
    const Detection &p = a.detections[i], &q = b.detections[i];
    if (p.class_id != q.class_id || p.score != q.score || p.x1 != q.x1 || p.y1 != q.y1 ||
        p.x2 != q.x2 || p.y2 != q.y2)
      return false;
  }
  return true;
}

std::vector<std::string> Artifacts(int argc, char** argv) {
  std::vector<std::string> dirs(argv + 1, argv + argc);
  if (dirs.empty())
    if (const char* env = std::getenv("EDGECV_TEST_ARTIFACTS")) {
      std::string list = env;
      for (size_t at = 0; at <= list.size();) {
        const size_t end = std::min(list.find(':', at), list.size());
        if (end > at) dirs.push_back(list.substr(at, end - at));
        at = end + 1;
      }
    }
  return dirs;
}

}  // namespace

int Run(int argc, char** argv) {
  const std::vector<std::string> dirs = Artifacts(argc, argv);
  if (dirs.empty()) {
    std::fprintf(stderr, "test_concurrency: no artifact given (EDGECV_TEST_ARTIFACTS): skipped\n");
    return 77;
  }
  const Image image = TestImage(96, 80);
  std::vector<Result> serial;
  for (const std::string& dir : dirs) serial.push_back(Predictor::Open(dir)->Run(image.view()));

  std::atomic<int> mismatches{0}, failures{0};
  auto guarded = [&](auto&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test_concurrency: %s\n", e.what());
      ++failures;
    }
  };

  // several threads on one predictor of each artifact
  for (size_t a = 0; a < dirs.size(); ++a) {
    const std::unique_ptr<Predictor> shared = Predictor::Open(dirs[a]);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&] {
        guarded([&] {
          for (int r = 0; r < kRuns; ++r)
            if (!Same(shared->Run(image.view()), serial[a])) ++mismatches;
        });
      });
    for (std::thread& t : threads) t.join();
  }

  // several predictors at once, each opened, run and closed by its own thread, while another
  // thread reads the kernel libraries' bookkeeping
  std::atomic<bool> done{false};
  std::thread observer([&] {
    guarded([&] {
      while (!done) {
        KernelStats();
        KernelLayers();
        std::this_thread::yield();
      }
    });
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads * static_cast<int>(dirs.size()); ++t)
    threads.emplace_back([&, t] {
      guarded([&] {
        const size_t a = static_cast<size_t>(t) % dirs.size();
        for (int r = 0; r < 2; ++r) {
          const std::unique_ptr<Predictor> own = Predictor::Open(dirs[a]);
          if (!Same(own->Run(image.view()), serial[a])) ++mismatches;
        }
      });
    });
  for (std::thread& t : threads) t.join();
  done = true;
  observer.join();

  CHECK(failures == 0);
  CHECK(mismatches == 0);
  std::printf("test_concurrency: %zu artifact(s), %d threads: %d mismatches, %d failures\n",
              dirs.size(), kThreads, mismatches.load(), failures.load());
  return Finish("test_concurrency");
}

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {  // the serial runs: the artifact does not open or run
    std::fprintf(stderr, "test_concurrency: %s\n", e.what());
    return 1;
  }
}
