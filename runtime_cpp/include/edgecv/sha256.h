// SHA-256 (FIPS 180-4), used to verify every file an artifact's manifest lists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace edgecv {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  std::string HexDigest();  // finalises; the object must not be updated afterwards

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string Sha256Hex(const void* data, size_t size);
std::string Sha256File(const std::string& path);  // throws Error(kInvalidArtifact) if unreadable

}  // namespace edgecv
