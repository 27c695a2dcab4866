// Network output → results. Classification: softmax and top-k with class names.
#pragma once

#include <string>
#include <vector>

#include "edgecv/image.h"

namespace edgecv {

struct Classification {
  int index = 0;
  float score = 0.0f;
  std::string label;
};

// Numerically stable softmax over a 1-D score vector.
std::vector<float> Softmax(const std::vector<float>& logits);

// The k highest scores, best first; ties keep the lower class index first.
std::vector<Classification> TopK(const std::vector<float>& scores, int k,
                                 const std::vector<std::string>& labels);

}  // namespace edgecv
