#include "edgecv/postprocess.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "edgecv/error.h"

namespace edgecv {

std::vector<float> Softmax(const std::vector<float>& logits) {
  if (logits.empty()) return {};
  float peak = *std::max_element(logits.begin(), logits.end());
  std::vector<float> out(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    out[i] = std::exp(logits[i] - peak);
    sum += out[i];
  }
  for (float& v : out) v = static_cast<float>(v / sum);
  return out;
}

std::vector<Classification> TopK(const std::vector<float>& scores, int k,
                                 const std::vector<std::string>& labels) {
  if (k < 0) ThrowInvalidInput("top-k must be >= 0, got " + std::to_string(k));
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t n = std::min(order.size(), static_cast<size_t>(k));
  std::partial_sort(
      order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
      [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  std::vector<Classification> out;
  for (size_t i = 0; i < n; ++i) {
    int c = order[i];
    out.push_back(
        {c, scores[c], c < static_cast<int>(labels.size()) ? labels[c] : std::to_string(c)});
  }
  return out;
}

}  // namespace edgecv
