#include "edgecv/sha256.h"

#include <cstdio>
#include <string>

#include "check.h"

int main() {
  // FIPS 180-4 examples
  CHECK(edgecv::Sha256Hex("", 0) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(edgecv::Sha256Hex("abc", 3) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(edgecv::Sha256Hex(two_blocks.data(), two_blocks.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // streaming in uneven pieces gives the same digest as one call
  std::string million(1000000, 'a');
  edgecv::Sha256 h;
  for (size_t i = 0; i < million.size(); i += 997)
    h.Update(million.data() + i, std::min<size_t>(997, million.size() - i));
  CHECK(h.HexDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  const char* path = "sha256_test_file.bin";
  std::FILE* f = std::fopen(path, "wb");
  std::fwrite("abc", 1, 3, f);
  std::fclose(f);
  CHECK(edgecv::Sha256File(path) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::remove(path);
  EXPECT_THROW(edgecv::ErrorKind::kInvalidArtifact, "cannot read",
               edgecv::Sha256File("/nonexistent/file"));
  return Finish("test_sha256");
}
