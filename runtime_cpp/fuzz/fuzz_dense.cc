// Fuzz harness: dense post-processing. Segmentation: class scores of random shapes and
// values to label maps at network resolution and, through a geometry of any scale and
// offset, at an image's; the palette. Pose: a person box (any floats) to its crop of an
// image, the crop resampled, heatmaps decoded to keypoints. Checked: errors are
// kInvalidInput; labels are classes (or kUnseenLabel at the image's size); the crop and the
// label maps have the sizes asked for.
#include <cmath>
#include <cstdint>
#include <vector>

#include "edgecv/dense.h"
#include "edgecv/error.h"
#include "fuzz_input.h"

namespace {

using edgecv::Tensor;

Tensor Scores(edgecv::fuzz::Input& in, int64_t c, int64_t h, int64_t w) {
  Tensor t;
  t.shape = {in.Byte() % 16 ? 1 : in.Int(0, 2), c, h, w};
  t.data.resize(static_cast<size_t>(Tensor::NumElements(t.shape)));
  for (float& v : t.data) v = in.Float(-4.0f, 4.0f);
  return t;
}

void Segmentation(edgecv::fuzz::Input& in) {
  const int64_t c = in.Int(0, 6), h = in.Int(0, 20), w = in.Int(0, 20);
  const Tensor scores = Scores(in, c, h, w);
  edgecv::Geometry g;
  g.image_width = in.Int(-1, 48);
  g.image_height = in.Int(-1, 48);
  g.scale_x = in.Float(0.01f, 4.0f);
  g.scale_y = in.Float(0.01f, 4.0f);
  g.offset_x = in.Float(-30.0f, 30.0f);
  g.offset_y = in.Float(-30.0f, 30.0f);
  const edgecv::LabelMap net = edgecv::ArgmaxLabels(scores);
  FUZZ_ASSERT(net.width == w && net.height == h && net.labels.size() == size_t(h * w));
  for (int32_t l : net.labels) FUZZ_ASSERT(l >= 0 && l < c);
  const edgecv::LabelMap labels = edgecv::SegmentLabels(scores, g);
  FUZZ_ASSERT(labels.width == g.image_width && labels.height == g.image_height);
  FUZZ_ASSERT(labels.labels.size() == size_t(g.image_width) * g.image_height);
  for (int32_t l : labels.labels) FUZZ_ASSERT((l >= 0 && l < c) || l == edgecv::kUnseenLabel);
  const edgecv::Image colors = edgecv::Colorize(labels);
  FUZZ_ASSERT(colors.pixels.size() == labels.labels.size() * 3);
}

void Pose(edgecv::fuzz::Input& in) {
  edgecv::Image image;
  image.width = in.Int(6, 40);
  image.height = in.Int(6, 40);
  image.channels = in.Int(1, 4);
  image.pixels.resize(size_t(image.width) * image.height * image.channels);
  for (uint8_t& p : image.pixels) p = in.Byte();
  const edgecv::Box box{in.Float(-20, 60), in.Float(-20, 60), in.Float(-20, 60), in.Float(-20, 60)};
  const int iw = in.Int(1, 32), ih = in.Int(1, 32);
  const edgecv::PoseCrop crop =
      edgecv::PersonCrop(box, iw, ih, in.Float(0.5f, 2.0f), image.width, image.height);
  const edgecv::Image patch = edgecv::CropResize(image.view(), crop, iw, ih);
  FUZZ_ASSERT(patch.width == iw && patch.height == ih && patch.channels == image.channels);
  const Tensor heat = Scores(in, in.Int(0, 4), in.Int(0, 12), in.Int(0, 12));
  const std::vector<edgecv::Keypoint> joints = edgecv::DecodeHeatmaps(heat, crop);
  FUZZ_ASSERT(static_cast<int64_t>(joints.size()) == heat.shape[1]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgecv::fuzz::Input in(data, size);
  try {
    if (in.Bool())
      Segmentation(in);
    else
      Pose(in);
  } catch (const edgecv::Error& e) {
    FUZZ_ASSERT(e.kind() == edgecv::ErrorKind::kInvalidInput);
  }
  return 0;
}
