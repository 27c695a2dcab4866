// edgecv-classify: the smallest device app. Loads an artifact, reads a binary PPM (P6)
// image, prints the top classes (or, for a detector, the detections), and can save the raw
// network outputs as .npy files. With --list FILE it runs every PPM that FILE lists (one
// path per line) and prints "path<TAB>top-1 index<TAB>score" for each (a detector: one line
// "path<TAB>class<TAB>score<TAB>x1 y1 x2 y2" per detection): an accuracy run on the device,
// with the model loaded once. Build it against the installed package:
//   cmake -S . -B build -DCMAKE_PREFIX_PATH=<edgecv install prefix> && cmake --build build
#include <edgecv/error.h>
#include <edgecv/predictor.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

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
    throw edgecv::Error(edgecv::ErrorKind::kInvalidInput,
                        path + " is not an 8-bit binary PPM (P6)");
  edgecv::Image img{w, h, 3, edgecv::ColorOrder::kRGB, {}};
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  f.read(reinterpret_cast<char*>(img.pixels.data()),
         static_cast<std::streamsize>(img.pixels.size()));
  if (f.gcount() != static_cast<std::streamsize>(img.pixels.size()))
    throw edgecv::Error(edgecv::ErrorKind::kInvalidInput, path + " is truncated");
  return img;
}

// Writes a float32 tensor as a NumPy .npy file (format 1.0, little endian).
void WriteNpy(const std::string& path, const edgecv::Tensor& t) {
  std::string shape;
  for (int64_t d : t.shape) shape += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');  // pad so that the data is 64-byte aligned
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint16_t n = static_cast<uint16_t>(header.size());
  const char len[2] = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8)};
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(len, 2);
  f << header;
  f.write(reinterpret_cast<const char*>(t.data.data()),
          static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  if (!f) throw edgecv::Error(edgecv::ErrorKind::kInvalidInput, "cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string outputs_dir;  // --save-outputs DIR: the raw network outputs as DIR/<name>.npy
  std::string list;         // --list FILE: PPM paths, one per line
  for (const char* flag : {"--save-outputs", "--list"}) {
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i] == flag && i + 1 < args.size()) {
        (args[i] == "--list" ? list : outputs_dir) = args[i + 1];
        args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                   args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
        break;
      }
    }
  }
  if (list.empty() ? (args.size() < 2 || args.size() > 3) : args.size() != 1) {
    std::cerr << "usage: " << argv[0] << " ARTIFACT_DIR IMAGE.ppm [TOP_K] [--save-outputs DIR]\n"
              << "       " << argv[0] << " ARTIFACT_DIR --list FILE\n";
    return 2;
  }
  try {
    auto predictor = edgecv::Predictor::Open(args[0]);
    if (!list.empty()) {
      std::ifstream paths(list);
      if (!paths) throw edgecv::Error(edgecv::ErrorKind::kInvalidInput, "cannot open " + list);
      edgecv::RunOptions options;
      options.top_k = 1;
      for (std::string path; std::getline(paths, path);) {
        if (path.empty()) continue;
        edgecv::Result r = predictor->Run(ReadPpm(path).view(), options);
        if (!r.classifications.empty())
          std::printf("%s\t%d\t%.9g\n", path.c_str(), r.classifications[0].index,
                      r.classifications[0].score);
        for (const auto& d : r.detections)  // detectors: a line per detection, none if none
          std::printf("%s\t%d\t%.9g\t%.3f %.3f %.3f %.3f\n", path.c_str(), d.class_id, d.score,
                      d.x1, d.y1, d.x2, d.y2);
      }
      return 0;
    }
    edgecv::Image image = ReadPpm(args[1]);
    edgecv::RunOptions options;
    options.top_k = args.size() > 2 ? std::stoi(args[2]) : -1;
    edgecv::Result result = predictor->Run(image.view(), options);
    for (const auto& c : result.classifications)
      std::printf("%d\t%.9g\t%s\n", c.index, c.score, c.label.c_str());
    const auto& classes = predictor->manifest().classes;
    for (const auto& d : result.detections)  // detection artifacts: class, score, box, label
      std::printf("%d\t%.9g\t%.3f %.3f %.3f %.3f\t%s\n", d.class_id, d.score, d.x1, d.y1, d.x2,
                  d.y2,
                  d.class_id < static_cast<int>(classes.size()) ? classes[d.class_id].c_str() : "");
    const auto& specs = predictor->manifest().outputs;
    for (size_t i = 0; !outputs_dir.empty() && i < result.outputs.size(); ++i) {
      std::string name = specs[i].name;
      for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') ch = '_';
      WriteNpy(outputs_dir + "/" + name + ".npy", result.outputs[i]);
    }
  } catch (const edgecv::Error& e) {
    std::cerr << "edgecv-classify: " << e.what() << "\n";
    return e.kind() == edgecv::ErrorKind::kInvalidArtifact ? 4 : 3;
  } catch (const std::exception& e) {  // e.g. a TOP_K that is not a number
    std::cerr << "edgecv-classify: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
