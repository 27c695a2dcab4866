// Errors raised by the edgecv runtime: one exception type with a kind, so that
// bindings and apps can tell bad input from a bad artifact without parsing text.
#pragma once

#include <stdexcept>
#include <string>

namespace edgecv {

enum class ErrorKind {
  kInvalidInput,     // an image, tensor or option the caller passed cannot be used
  kInvalidArtifact,  // artifact missing, corrupted, or not understood by this runtime
  kRuntime,          // the engine failed while running
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void ThrowInvalidInput(const std::string& m) {
  throw Error(ErrorKind::kInvalidInput, m);
}
[[noreturn]] inline void ThrowInvalidArtifact(const std::string& m) {
  throw Error(ErrorKind::kInvalidArtifact, m);
}

}  // namespace edgecv
