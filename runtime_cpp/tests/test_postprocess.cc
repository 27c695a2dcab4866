#include "edgecv/postprocess.h"

#include <cmath>

#include "check.h"

using namespace edgecv;

int main() {
  std::vector<float> p = Softmax({1000.0f, 1000.0f, 999.0f});  // large logits must not overflow
  CHECK(std::fabs(p[0] + p[1] + p[2] - 1.0f) < 1e-6f);
  CHECK(std::fabs(p[0] - p[1]) < 1e-7f);
  CHECK(std::fabs(p[0] / p[2] - std::exp(1.0f)) < 1e-4f);
  CHECK(Softmax({}).empty());

  std::vector<Classification> top = TopK({0.1f, 0.5f, 0.5f, 0.2f}, 3, {"a", "b", "c", "d"});
  CHECK(top.size() == 3);
  CHECK(top[0].index == 1 && top[1].index == 2 && top[2].index == 3);  // tie: lower index first
  CHECK(top[0].label == "b" && top[2].label == "d");
  CHECK(TopK({0.3f, 0.7f}, 10, {}).size() == 2);     // k larger than the class count
  CHECK(TopK({0.3f, 0.7f}, 1, {})[0].label == "1");  // no labels: the index as text
  CHECK(TopK({0.3f}, 0, {}).empty());
  EXPECT_THROW(ErrorKind::kInvalidInput, "top-k must be >= 0", TopK({0.3f}, -2, {}));
  return Finish("test_postprocess");
}
