// pybind11 bindings: NumPy in, Python objects out, the GIL released while running.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "edgecv/error.h"
#include "edgecv/predictor.h"
#include "edgecv/sha256.h"

namespace py = pybind11;
using namespace edgecv;

namespace {

ColorOrder ParseOrder(const std::string& s) {
  if (s == "rgb" || s == "RGB") return ColorOrder::kRGB;
  if (s == "bgr" || s == "BGR") return ColorOrder::kBGR;
  ThrowInvalidInput("color order must be 'rgb' or 'bgr', got '" + s + "'");
}

// A view of a NumPy uint8 image (H, W) or (H, W, C); `keep` holds a contiguous copy if needed.
ImageView ToImageView(const py::array& arr, const std::string& order, py::array& keep) {
  if (arr.dtype().kind() != 'u' || arr.itemsize() != 1)
    ThrowInvalidInput("image must be a uint8 array, got dtype " +
                      std::string(py::str(arr.dtype())));
  if (arr.ndim() != 2 && arr.ndim() != 3)
    ThrowInvalidInput("image must have shape (H, W, 3), got " + std::to_string(arr.ndim()) +
                      " dimensions");
  keep = py::array_t<uint8_t, py::array::c_style>::ensure(arr);
  ImageView v;
  v.data = static_cast<const uint8_t*>(keep.data());
  v.height = static_cast<int>(keep.shape(0));
  v.width = static_cast<int>(keep.shape(1));
  v.channels = keep.ndim() == 3 ? static_cast<int>(keep.shape(2)) : 1;
  v.order = ParseOrder(order);
  if (keep.size() == 0) v.data = nullptr;
  return v;
}

py::array_t<float> ToArray(const Tensor& t) {
  py::array_t<float> a(t.shape);
  std::copy(t.data.begin(), t.data.end(), a.mutable_data());
  return a;
}

py::array_t<uint8_t> ToArray(const Image& img) {
  py::array_t<uint8_t> a({img.height, img.width, img.channels});
  std::copy(img.pixels.begin(), img.pixels.end(), a.mutable_data());
  return a;
}

py::dict ToDict(const Result& r) {
  py::list outputs, top;
  for (const Tensor& t : r.outputs) outputs.append(ToArray(t));
  for (const Classification& c : r.classifications) top.append(py::make_tuple(c.index, c.score, c.label));
  py::dict d;
  d["outputs"] = outputs;
  d["probabilities"] = py::array_t<float>(static_cast<py::ssize_t>(r.probabilities.size()),
                                          r.probabilities.data());
  d["top"] = top;
  return d;
}

}  // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "edgecv C++ runtime (preprocess, compiled network, postprocess)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::module_ errors = py::module_::import("edgecv.errors");
      const char* cls = e.kind() == ErrorKind::kInvalidInput      ? "InvalidInputError"
                        : e.kind() == ErrorKind::kInvalidArtifact ? "ArtifactError"
                                                                  : "EdgecvError";
      py::object type = errors.attr(cls);
      PyErr_SetString(type.ptr(), e.what());
    }
  });

  py::class_<Predictor>(m, "Predictor")
      .def(py::init([](const std::string& dir) {
             py::gil_scoped_release release;
             return Predictor::Open(dir);
           }),
           py::arg("artifact_dir"))
      .def(
          "run",
          [](const Predictor& p, const py::array& image, const std::string& order, int top_k) {
            py::array keep;
            ImageView v = ToImageView(image, order, keep);
            Result r;
            {
              py::gil_scoped_release release;
              r = p.Run(v, top_k);
            }
            return ToDict(r);
          },
          py::arg("image"), py::arg("order") = "bgr", py::arg("top_k") = -1)
      .def(
          "run_tensor",
          [](const Predictor& p, py::array_t<float, py::array::c_style | py::array::forcecast> x,
             int top_k) {
            Tensor t;
            t.shape.assign(x.shape(), x.shape() + x.ndim());
            t.data.assign(x.data(), x.data() + x.size());
            Result r;
            {
              py::gil_scoped_release release;
              r = p.RunTensor(t, top_k);
            }
            return ToDict(r);
          },
          py::arg("tensor"), py::arg("top_k") = -1)
      .def(
          "preprocess",
          [](const Predictor& p, const py::array& image, const std::string& order) {
            py::array keep;
            ImageView v = ToImageView(image, order, keep);
            Image geometry = p.preprocessor().Geometry(v);
            Tensor t = p.preprocessor().Run(v);
            return py::make_tuple(ToArray(geometry), ToArray(t));
          },
          py::arg("image"), py::arg("order") = "bgr")
      .def_property_readonly("model", [](const Predictor& p) { return p.manifest().model; })
      .def_property_readonly("task", [](const Predictor& p) { return p.manifest().task; })
      .def_property_readonly("classes", [](const Predictor& p) { return p.manifest().classes; })
      .def_property_readonly("input_shape",
                             [](const Predictor& p) { return p.manifest().inputs[0].shape; });

  m.def(
      "resize_bilinear",
      [](const py::array& image, int width, int height) {
        py::array keep;
        ImageView v = ToImageView(image, "rgb", keep);
        if (v.data == nullptr) ThrowInvalidInput("image is empty");
        return ToArray(ResizeBilinear(v, width, height));
      },
      py::arg("image"), py::arg("width"), py::arg("height"));
  m.def("softmax", &Softmax, py::arg("logits"));
  m.def(
      "topk",
      [](const std::vector<float>& scores, int k, const std::vector<std::string>& labels) {
        py::list out;
        for (const Classification& c : TopK(scores, k, labels))
          out.append(py::make_tuple(c.index, c.score, c.label));
        return out;
      },
      py::arg("scores"), py::arg("k"), py::arg("labels") = std::vector<std::string>{});
  m.def("sha256_file", &Sha256File, py::arg("path"));
}
