// The harnesses without libFuzzer (GCC, or a cross build): runs LLVMFuzzerTestOneInput once
// on each file named, as a libFuzzer binary given files does. ctest replays the seed corpus
// and every crash kept in regressions/ this way, in every build of the tests.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                  std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("%d inputs ran\n", argc - 1);
  return argc > 1 ? 0 : 2;  // no input: the corpus went missing
}
