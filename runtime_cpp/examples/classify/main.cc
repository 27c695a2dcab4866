// edgecv-classify: the smallest device app. Loads an artifact, reads a binary PPM (P6)
// image, prints the top classes. Build it against the installed package:
//   cmake -S . -B build -DCMAKE_PREFIX_PATH=<edgecv install prefix> && cmake --build build
#include <edgecv/error.h>
#include <edgecv/predictor.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

namespace {

// Reads a binary PPM (P6, maxval 255) as an RGB image.
edgecv::Image ReadPpm(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw edgecv::Error(edgecv::ErrorKind::kInvalidInput, "cannot open " + path);
  std::string magic;
  int w = 0, h = 0, maxval = 0;
  f >> magic;
  auto skip_comments = [&f] {
    f >> std::ws;
    while (f.peek() == '#') {
      std::string line;
      std::getline(f, line);
      f >> std::ws;
    }
  };
  skip_comments();
  f >> w;
  skip_comments();
  f >> h;
  skip_comments();
  f >> maxval;
  f.get();  // the single whitespace byte before the pixels
  if (magic != "P6" || w <= 0 || h <= 0 || maxval != 255)
    throw edgecv::Error(edgecv::ErrorKind::kInvalidInput, path + " is not an 8-bit binary PPM (P6)");
  edgecv::Image img{w, h, 3, edgecv::ColorOrder::kRGB, {}};
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  f.read(reinterpret_cast<char*>(img.pixels.data()), static_cast<std::streamsize>(img.pixels.size()));
  if (f.gcount() != static_cast<std::streamsize>(img.pixels.size()))
    throw edgecv::Error(edgecv::ErrorKind::kInvalidInput, path + " is truncated");
  return img;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " ARTIFACT_DIR IMAGE.ppm [TOP_K]\n";
    return 2;
  }
  try {
    auto predictor = edgecv::Predictor::Open(argv[1]);
    edgecv::Image image = ReadPpm(argv[2]);
    edgecv::RunOptions options;
    options.top_k = argc > 3 ? std::stoi(argv[3]) : -1;
    edgecv::Result result = predictor->Run(image.view(), options);
    for (const auto& c : result.classifications)
      std::printf("%d\t%.9g\t%s\n", c.index, c.score, c.label.c_str());
  } catch (const edgecv::Error& e) {
    std::cerr << "edgecv-classify: " << e.what() << "\n";
    return e.kind() == edgecv::ErrorKind::kInvalidArtifact ? 4 : 3;
  }
  return 0;
}
