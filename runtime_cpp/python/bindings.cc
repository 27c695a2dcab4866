// pybind11 bindings: NumPy in, Python objects out, the GIL released while running.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "edgecv/cpu_features.h"
#include "edgecv/engine.h"
#include "edgecv/error.h"
#include "edgecv/kernels.h"
#include "edgecv/postprocess_plan.h"
#include "edgecv/predictor.h"
#include "edgecv/rcnn.h"
#include "edgecv/sha256.h"
// the kernel settings records (no TVM in them): for the ABI's round-trip test
#include "../src/kernel_abi.h"

namespace py = pybind11;
using namespace edgecv;

namespace {

// A kernel settings record (kernel_abi.h) as a dict of its fields by name, nested records as
// dicts: what edgecv.compile.kernel_abi.as_dict gives for the record it encoded.
struct SettingsDict {
  py::dict out;
  void operator()(const char* name, int64_t v) { out[name] = v; }
  void operator()(const char* name, float v) { out[name] = static_cast<double>(v); }
  void operator()(const char* name, bool v) { out[name] = v; }
  template <typename T>
  void operator()(const char* name, const T& nested) {
    SettingsDict d;
    T::Fields(nested, d);
    out[name] = d.out;
  }
};

ColorOrder ParseOrder(const std::string& s) {
  if (s == "rgb" || s == "RGB") return ColorOrder::kRGB;
  if (s == "bgr" || s == "BGR") return ColorOrder::kBGR;
  ThrowInvalidInput("color order must be 'rgb' or 'bgr', got '" + s + "'");
}

// A view of a NumPy uint8 image (H, W) or (H, W, C); `keep` holds a contiguous copy if needed.
// The preprocessing accepts C = 1, 3 or 4 (CheckImage); the error names the array's shape.
ImageView ToImageView(const py::array& arr, const std::string& order, py::array& keep) {
  const std::string shape =
      ShapeString(std::vector<int64_t>(arr.shape(), arr.shape() + arr.ndim()));
  if (arr.dtype().kind() != 'u' || arr.itemsize() != 1)
    ThrowInvalidInput("image must be a uint8 array, got dtype " +
                      std::string(py::str(arr.dtype())) + " (shape " + shape +
                      "); scale other types to 0..255 and convert to uint8");
  if (arr.ndim() != 2 && arr.ndim() != 3)
    ThrowInvalidInput("image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got " +
                      std::to_string(arr.ndim()) + " dimensions " + shape);
  if (arr.shape(0) > INT32_MAX || arr.shape(1) > INT32_MAX)
    ThrowInvalidInput("image " + shape + " is too large");
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

py::tuple DetectionArrays(const std::vector<Detection>& dets) {
  const auto n = static_cast<py::ssize_t>(dets.size());
  py::array_t<int32_t> ids(n);
  py::array_t<float> scores(n);
  py::array_t<float> boxes({n, static_cast<py::ssize_t>(4)});
  for (py::ssize_t i = 0; i < n; ++i) {
    const Detection& d = dets[static_cast<size_t>(i)];
    ids.mutable_at(i) = d.class_id;
    scores.mutable_at(i) = d.score;
    float* b = boxes.mutable_data(i, 0);
    b[0] = d.x1;
    b[1] = d.y1;
    b[2] = d.x2;
    b[3] = d.y2;
  }
  return py::make_tuple(ids, scores, boxes);
}

py::array_t<int32_t> ToArray(const LabelMap& m) {
  py::array_t<int32_t> a({m.height, m.width});
  std::copy(m.labels.begin(), m.labels.end(), a.mutable_data());
  return a;
}

LabelMap ToLabelMap(const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& a) {
  if (a.ndim() != 2)
    ThrowInvalidInput("labels must be (H, W), got " + std::to_string(a.ndim()) + " dimensions");
  return {static_cast<int>(a.shape(1)), static_cast<int>(a.shape(0)),
          std::vector<int32_t>(a.data(), a.data() + a.size())};
}

Tensor ToTensor(const py::array_t<float, py::array::c_style | py::array::forcecast>& a) {
  Tensor t;
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  t.data.assign(a.data(), a.data() + a.size());
  return t;
}

// Faster R-CNN's glue (rcnn.h), as far as the tests reach it: the settings as keywords.
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

RpnSettings RpnFrom(int stride, double base_size, std::vector<double> scales,
                    std::vector<double> ratios) {
  RpnSettings s;
  s.stride = stride;
  s.base_size = base_size;
  s.scales = std::move(scales);
  s.ratios = std::move(ratios);
  if (s.stride < 1 || s.scales.empty() || s.ratios.empty())
    ThrowInvalidInput("rpn: stride must be >= 1, scales and ratios not empty");
  return s;
}

std::vector<Detection> RoisFrom(const FloatArray& rois) {
  if (rois.ndim() != 2 || rois.shape(1) != 4) ThrowInvalidInput("rois must be (N, 4) corners");
  std::vector<Detection> out(static_cast<size_t>(rois.shape(0)));
  for (py::ssize_t i = 0; i < rois.shape(0); ++i)
    out[static_cast<size_t>(i)] = {
        0, 1.0f, rois.at(i, 0), rois.at(i, 1), rois.at(i, 2), rois.at(i, 3)};
  return out;
}

void AddRcnn(py::module_& m) {
  m.def(
      "rpn_anchors",
      [](int stride, double base_size, std::vector<double> scales, std::vector<double> ratios,
         int64_t height, int64_t width) {
        const RpnSettings s = RpnFrom(stride, base_size, std::move(scales), std::move(ratios));
        if (height < 1 || width < 1) ThrowInvalidInput("rpn_anchors: the map must not be empty");
        return ToArray(
            Tensor{{height * width * s.anchors_per_cell(), 4}, RpnAnchors(s, height, width)});
      },
      py::arg("stride"), py::arg("base_size"), py::arg("scales"), py::arg("ratios"),
      py::arg("height"), py::arg("width"),
      "Anchors (H * W * A, 4) of an H x W map, (row, column, anchor) order");
  m.def(
      "rpn_proposals",
      [](FloatArray scores, FloatArray offsets, int image_width, int image_height, int stride,
         double base_size, std::vector<double> scales, std::vector<double> ratios, int pre_nms,
         int post_nms, float nms_threshold, float min_size, float box_clip) {
        RpnSettings s = RpnFrom(stride, base_size, std::move(scales), std::move(ratios));
        s.pre_nms = pre_nms;
        s.post_nms = post_nms;
        s.nms_threshold = nms_threshold;
        s.min_size = min_size;
        s.box_clip = box_clip;
        return DetectionArrays(
            RpnProposals(ToTensor(scores), ToTensor(offsets), s, image_width, image_height));
      },
      py::arg("scores"), py::arg("offsets"), py::arg("image_width"), py::arg("image_height"),
      py::arg("stride") = 16, py::arg("base_size") = 16.0,
      py::arg("scales") = std::vector<double>{2, 4, 8, 16, 32},
      py::arg("ratios") = std::vector<double>{0.5, 1, 2}, py::arg("pre_nms") = 6000,
      py::arg("post_nms") = 300, py::arg("nms_threshold") = 0.7f, py::arg("min_size") = 16.0f,
      py::arg("box_clip") = -1.0f,
      "RPN maps (1, A, H, W), (1, 4A, H, W) → proposals (ids 0, scores, boxes), best first");
  m.def(
      "roi_align",
      [](FloatArray features, FloatArray rois, std::pair<int, int> pooled_size, float spatial_scale,
         int sample_ratio, bool aligned, int64_t rows) {
        const std::vector<Detection> r = RoisFrom(rois);
        const RoiAlignSettings s{pooled_size.first, pooled_size.second, spatial_scale, sample_ratio,
                                 aligned};
        return ToArray(RoiAlign(ToTensor(features), r, s, rows < 0 ? rois.shape(0) : rows));
      },
      py::arg("features"), py::arg("rois"), py::arg("pooled_size") = std::pair<int, int>{14, 14},
      py::arg("spatial_scale") = 1.0f / 16, py::arg("sample_ratio") = 2, py::arg("aligned") = false,
      py::arg("rows") = -1,
      "features (1, C, H, W), rois (N, 4) → (rows or N, C, ph, pw), MXNet ROIAlign's rules");
  m.def(
      "decode_rcnn",
      [](FloatArray probs, FloatArray offsets, FloatArray rois, int num_classes,
         std::vector<float> stds, float box_clip, int topk, float score_threshold) {
        RcnnHead head;
        head.num_classes = num_classes;
        head.stds = std::move(stds);
        head.box_clip = box_clip;
        head.topk = topk;
        return DetectionArrays(
            DecodeRcnn(ToTensor(probs), ToTensor(offsets), RoisFrom(rois), head, score_threshold));
      },
      py::arg("probs"), py::arg("offsets"), py::arg("rois"), py::arg("num_classes"),
      py::arg("stds") = std::vector<float>{0.1f, 0.1f, 0.2f, 0.2f}, py::arg("box_clip") = -1.0f,
      py::arg("topk") = -1, py::arg("score_threshold") = 0.01f,
      "Stage 2's (R, C + 1) probabilities and (R, 4C) offsets for the RoIs (N <= R, 4) → per-class "
      "candidates (ids, scores, boxes) for the runtime's nms");
  m.def(
      "detect_two_stage",
      [](std::vector<FloatArray> stage1, int image_width, int image_height, int64_t batch,
         py::function stage2, const std::string& ops) {
        // ops: the manifest's postprocess ops (JSON), one each of rpn_proposals, roi_align,
        // rcnn_decode and nms
        const json::Value doc = json::Value::Parse(ops);
        std::map<std::string, const json::Value*> by_name;
        for (const json::Value& op : doc.AsArray()) by_name[op.At("op").AsString()] = &op;
        for (const char* name : {"rpn_proposals", "roi_align", "rcnn_decode", "nms"})
          if (!by_name.count(name)) ThrowInvalidArtifact(std::string("no ") + name + " op");
        const RcnnPlan plan{ParseRpnSettings(*by_name["rpn_proposals"]),
                            ParseRoiAlign(*by_name["roi_align"]),
                            ParseRcnnHead(*by_name["rcnn_decode"])};
        const json::Value& n = *by_name["nms"];
        NmsOptions nms{static_cast<float>(n.At("iou_threshold").AsNumber()),
                       static_cast<float>(n.At("score_threshold").AsNumber()),
                       static_cast<int>(n.At("topk").AsInt()),
                       static_cast<int>(n.At("max_detections").AsInt()),
                       n.At("class_agnostic").AsBool()};
        std::vector<Tensor> outputs;
        for (const FloatArray& a : stage1) outputs.push_back(ToTensor(a));
        const RcnnStage2 run = [&](const Tensor& pooled) {
          std::vector<Tensor> out;
          for (py::handle o : stage2(ToArray(pooled)))
            out.push_back(ToTensor(o.cast<FloatArray>()));
          return out;
        };
        return DetectionArrays(
            DetectTwoStage(outputs, image_width, image_height, batch, run, plan, nms));
      },
      py::arg("stage1"), py::arg("image_width"), py::arg("image_height"), py::arg("batch"),
      py::arg("stage2"), py::arg("ops"),
      "Stage 1's outputs [features, RPN scores, RPN offsets] → proposals → RoIAlign in chunks of "
      "batch → stage2(pooled) → (probabilities, offsets) → decode + NMS: (ids, scores, boxes)");
}

PoseCrop ToCrop(const std::vector<float>& v) {
  if (v.size() != 4) ThrowInvalidInput("a crop is (x0, y0, width, height)");
  return {v[0], v[1], v[2], v[3]};
}

std::vector<Box> ToBoxes(const py::array_t<float, py::array::c_style | py::array::forcecast>& a) {
  if (a.size() == 0) return {};
  if (a.ndim() != 2 || a.shape(1) != 4)
    ThrowInvalidInput("person boxes must be (N, 4) corners, got shape " +
                      ShapeString(std::vector<int64_t>(a.shape(), a.shape() + a.ndim())));
  std::vector<Box> boxes;
  for (py::ssize_t i = 0; i < a.shape(0); ++i)
    boxes.push_back({a.at(i, 0), a.at(i, 1), a.at(i, 2), a.at(i, 3)});
  return boxes;
}

// keypoints (N, K, 2), keypoint scores (N, K), crops (N, 4) as x0, y0, width, height
py::tuple PoseArrays(const std::vector<std::vector<Keypoint>>& poses,
                     const std::vector<PoseCrop>& crops) {
  const auto n = static_cast<py::ssize_t>(poses.size());
  const auto k = static_cast<py::ssize_t>(poses.empty() ? 0 : poses[0].size());
  py::array_t<float> xy({n, k, static_cast<py::ssize_t>(2)}), scores({n, k}),
      boxes({n, static_cast<py::ssize_t>(4)});
  for (py::ssize_t i = 0; i < n; ++i) {
    for (py::ssize_t j = 0; j < k; ++j) {
      const Keypoint& p = poses[static_cast<size_t>(i)][static_cast<size_t>(j)];
      xy.mutable_at(i, j, 0) = p.x;
      xy.mutable_at(i, j, 1) = p.y;
      scores.mutable_at(i, j) = p.score;
    }
    const PoseCrop& c = crops[static_cast<size_t>(i)];
    float* b = boxes.mutable_data(i, 0);
    b[0] = c.x0;
    b[1] = c.y0;
    b[2] = c.width;
    b[3] = c.height;
  }
  return py::make_tuple(xy, scores, boxes);
}

py::dict ToDict(const Result& r) {
  py::list outputs, top;
  for (const Tensor& t : r.outputs) outputs.append(ToArray(t));
  for (const Classification& c : r.classifications)
    top.append(py::make_tuple(c.index, c.score, c.label));
  py::dict d;
  d["outputs"] = outputs;
  d["probabilities"] =
      py::array_t<float>(static_cast<py::ssize_t>(r.probabilities.size()), r.probabilities.data());
  d["top"] = top;
  d["detections"] = DetectionArrays(r.detections);
  if (r.labels.width > 0) d["labels"] = ToArray(r.labels);
  d["poses"] = PoseArrays(r.poses, r.crops);
  py::dict timings;
  timings["preprocess_ms"] = r.preprocess_ms;
  timings["inference_ms"] = r.inference_ms;
  timings["postprocess_ms"] = r.postprocess_ms;
  d["timings"] = timings;
  return d;
}

RunOptions MakeOptions(int top_k, float score_threshold, float iou_threshold, int max_detections,
                       int class_agnostic) {
  RunOptions o;
  o.top_k = top_k;
  o.score_threshold = score_threshold;
  o.iou_threshold = iou_threshold;
  o.max_detections = max_detections;
  o.class_agnostic = class_agnostic;
  return o;
}

// (transformed uint8 image, normalised NCHW tensor, geometry) for the Python side
py::tuple PreprocessTuple(const Preprocessor& pre, const py::array& image,
                          const std::string& order) {
  py::array keep;
  ImageView v = ToImageView(image, order, keep);
  Geometry g;
  Image transformed = pre.Transform(v, &g);
  Tensor t = pre.Normalize(transformed);
  py::dict geometry;
  geometry["scale"] = py::make_tuple(g.scale_x, g.scale_y);
  geometry["offset"] = py::make_tuple(g.offset_x, g.offset_y);
  return py::make_tuple(ToArray(transformed), ToArray(t), geometry);
}

// A postprocess plan as Python sees it: what the manifest's ops configured.
py::dict PlanDict(const PostprocessPlan& p) {
  using D = PostprocessPlan::Decoder;
  py::dict d;
  d["task"] = p.task;
  d["softmax"] = p.softmax;
  d["top_k"] = p.default_top_k;
  d["decoder"] = p.decoder == D::kYolo3       ? "yolo3"
                 : p.decoder == D::kSsd       ? "ssd"
                 : p.decoder == D::kCenterNet ? "centernet"
                                              : "none";
  d["decoder_outputs"] = p.decoder_outputs;
  d["dense_output"] = p.dense_output;
  d["nms"] =
      py::dict(py::arg("iou_threshold") = p.nms.iou_threshold,
               py::arg("score_threshold") = p.nms.score_threshold, py::arg("topk") = p.nms.topk,
               py::arg("max_detections") = p.nms.max_detections,
               py::arg("class_agnostic") = p.nms.class_agnostic);
  d["priors"] = p.ssd.priors.size() / 4;
  return d;
}

}  // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "edgecv C++ runtime (preprocess, compiled network, postprocess)";
  // kernel functions that compiled graphs call by name: registered on import, so that TVM's
  // own Python VM can run such artifacts too
  RegisterKernels();
  m.def("kernel_libraries", &KernelLibraries,
        "Kernel libraries built into this runtime, e.g. ['dnnl']");
  m.def(
      "kernel_stats",
      [](bool reset) {
        py::dict out;
        for (const auto& [name, st] : KernelStats(reset))
          out[py::str(name)] =
              py::dict(py::arg("calls") = st.calls, py::arg("total_ms") = st.total_ms);
        return out;
      },
      py::arg("reset") = false, "Calls of each kernel function and milliseconds spent in them");
  // The compiled network alone (no manifest yet): what `edgecv compile` checks against
  // ONNX Runtime before it writes the artifact. params: (name, shape, dtype, offset, nbytes).
  m.def(
      "run_library",
      [](const std::string& library, const std::string& weights, const py::list& params,
         py::array_t<float, py::array::c_style | py::array::forcecast> input) {
        std::vector<ParamSpec> specs;
        for (const py::handle& h : params) {
          auto t = h.cast<py::tuple>();
          specs.push_back(ParamSpec{t[0].cast<std::string>(), t[1].cast<std::vector<int64_t>>(),
                                    t[2].cast<std::string>(), t[3].cast<uint64_t>(),
                                    t[4].cast<uint64_t>()});
        }
        Tensor x = ToTensor(input);
        std::vector<Tensor> outs;
        {
          py::gil_scoped_release release;
          Engine engine(library, "main", weights, specs);
          outs = engine.Run(x);
        }
        py::list result;
        for (const Tensor& t : outs) result.append(ToArray(t));
        return result;
      },
      py::arg("library"), py::arg("weights"), py::arg("params"), py::arg("input"));
  m.def(
      "decode_kernel_settings",
      [](const std::string& kind, const std::vector<int64_t>& values) {
        py::dict out;
        const bool known = kernel::WithSettingsOf(kind, [&](auto record) {
          using T = decltype(record);
          const kernel::Keyed<T> d = kernel::DecodeSettings<T>(values.data(), values.size(), kind);
          SettingsDict fields;
          T::Fields(d.settings, fields);
          out = fields.out;
          out["key"] = d.key;
        });
        if (!known) ThrowInvalidInput("unknown kernel kind '" + kind + "'");
        return out;
      },
      py::arg("kind"), py::arg("values"),
      "A kernel call's settings array as the runtime's kernels read it: {field: value} (nested "
      "records as "
      "dicts) and its key; ArtifactError for another version or length");
  m.def("clear_kernel_cache", &ClearKernelCache,
        "Free cached packed weights of the kernel libraries");
  m.def(
      "kernel_layers",
      [](bool reset) {
        py::list out;
        for (const KernelLayer& l : KernelLayers(reset))
          out.append(py::dict(py::arg("kernel") = l.kernel,
                              py::arg("implementation") = l.implementation,
                              py::arg("src") = l.src_type, py::arg("weights") = l.weights_type,
                              py::arg("dst") = l.dst_type, py::arg("residual") = l.residual_type,
                              py::arg("weight_bits") = l.weight_bits));
        return out;
      },
      py::arg("reset") = false,
      "Layers the kernel libraries have built since the last reset: the kernel, the library's "
      "implementation and the data types it computes with (input, weights, output, residual; "
      "weight_bits of int8 layers: 8, or 7 on CPUs without VNNI)");
  m.def(
      "cpu_has",
      [](const std::string& feature) -> py::object {
        const std::optional<bool> has = CpuHas(feature);
        return has ? py::cast(*has) : py::none();
      },
      py::arg("feature"),
      "Whether this CPU has a feature named as in /proc/cpuinfo ('avx2', 'avx512_vnni', "
      "'asimddp'); "
      "None if this runtime cannot check it here");
  m.def("checkable_cpu_features", &CheckableCpuFeatures, "The CPU features cpu_has can check here");
  m.def("kernel_isa", &KernelIsa,
        "The instruction set oneDNN runs with on this CPU (e.g. 'avx2'); '' without oneDNN");
  m.def("set_int8_weight_bits", &SetInt8WeightBits, py::arg("bits"),
        "Make the oneDNN int8 kernels compute with 7- or 8-bit weights (8 needs VNNI; 0: this "
        "CPU's choice); "
        "clears the kernel cache");
  m.def("int8_weight_bits", &Int8WeightBits,
        "Bits of the int8 weights the oneDNN kernels compute with here: 8 with VNNI, 7 without "
        "(weights requantised to [-63, 63] at twice their scale, so that 16-bit pair sums cannot "
        "saturate)");
  m.def(
      "start_observing",
      [](const std::map<int64_t, double>& ranges, int bins) { StartObserving(ranges, bins); },
      py::arg("ranges") = std::map<int64_t, double>{}, py::arg("bins") = 2048,
      "Calibration: record statistics of the input of every float kernel-library layer (histograms "
      "of |x| "
      "over [0, range] for the layers in `ranges`, keyed by layer key)");
  m.def(
      "stop_observing",
      [] {
        py::dict out;
        for (const auto& [key, o] : StopObserving()) {
          py::dict d(py::arg("kernel") = o.kernel, py::arg("order") = o.order,
                     py::arg("shape") = o.shape, py::arg("min") = o.min, py::arg("max") = o.max,
                     py::arg("count") = o.count, py::arg("range") = o.range);
          d["histogram"] =
              py::array_t<double>(static_cast<py::ssize_t>(o.histogram.size()), o.histogram.data());
          out[py::int_(key)] = d;
        }
        return out;
      },
      "Stop observing; returns {layer key: statistics}");

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
          [](const Predictor& p, const py::array& image, const std::string& order, int top_k,
             float score_threshold, float iou_threshold, int max_detections, int class_agnostic) {
            py::array keep;
            ImageView v = ToImageView(image, order, keep);
            RunOptions o =
                MakeOptions(top_k, score_threshold, iou_threshold, max_detections, class_agnostic);
            Result r;
            {
              py::gil_scoped_release release;
              r = p.Run(v, o);
            }
            return ToDict(r);
          },
          py::arg("image"), py::arg("order") = "bgr", py::arg("top_k") = -1,
          py::arg("score_threshold") = -1.0f, py::arg("iou_threshold") = -1.0f,
          py::arg("max_detections") = -1, py::arg("class_agnostic") = -1)
      .def(
          "run_pose",
          [](const Predictor& p, const py::array& image,
             py::array_t<float, py::array::c_style | py::array::forcecast> boxes,
             const std::string& order) {
            py::array keep;
            ImageView v = ToImageView(image, order, keep);
            std::vector<Box> b = ToBoxes(boxes);
            Result r;
            {
              py::gil_scoped_release release;
              r = p.RunPose(v, b);
            }
            return ToDict(r);
          },
          py::arg("image"), py::arg("boxes"), py::arg("order") = "bgr")
      .def(
          "run_tensor",
          [](const Predictor& p, py::array_t<float, py::array::c_style | py::array::forcecast> x,
             int top_k, float score_threshold, float iou_threshold, int max_detections,
             int class_agnostic) {
            Tensor t = ToTensor(x);
            RunOptions o =
                MakeOptions(top_k, score_threshold, iou_threshold, max_detections, class_agnostic);
            Result r;
            {
              py::gil_scoped_release release;
              r = p.RunTensor(t, o);
            }
            return ToDict(r);
          },
          py::arg("tensor"), py::arg("top_k") = -1, py::arg("score_threshold") = -1.0f,
          py::arg("iou_threshold") = -1.0f, py::arg("max_detections") = -1,
          py::arg("class_agnostic") = -1)
      .def(
          "preprocess",
          [](const Predictor& p, const py::array& image, const std::string& order) {
            return PreprocessTuple(p.preprocessor(), image, order);
          },
          py::arg("image"), py::arg("order") = "bgr")
      .def_property_readonly("model", [](const Predictor& p) { return p.manifest().model; })
      .def_property_readonly("task", [](const Predictor& p) { return p.manifest().task; })
      .def_property_readonly("classes", [](const Predictor& p) { return p.manifest().classes; })
      .def_property_readonly("input_shape",
                             [](const Predictor& p) { return p.manifest().inputs[0].shape; });

  // The manifest's preprocessing without an artifact (evaluating float models the same way)
  py::class_<Preprocessor>(m, "Preprocessor")
      .def(py::init([](const std::string& ops_json, const std::vector<int64_t>& input_shape) {
             return Preprocessor(json::Value::Parse(ops_json), input_shape);
           }),
           py::arg("ops_json"), py::arg("input_shape"))
      .def("run", &PreprocessTuple, py::arg("image"), py::arg("order") = "bgr")
      .def(
          "run_crop",
          [](const Preprocessor& pre, const py::array& image, std::vector<float> crop,
             const std::string& order) {
            py::array keep;
            ImageView v = ToImageView(image, order, keep);
            return ToArray(pre.Normalize(pre.TransformCrop(v, ToCrop(crop))));
          },
          py::arg("image"), py::arg("crop"), py::arg("order") = "bgr",
          "Pose models: the network input (1, 3, H, W) for a person crop (x0, y0, width, height)");

  // The manifest's postprocessing without an artifact: the check a Predictor makes when it
  // opens one, for an op list before anything is compiled
  m.def(
      "check_postprocess",
      [](const std::string& task, const std::string& ops_json, const Preprocessor& pre,
         const std::vector<std::pair<std::string, std::vector<int64_t>>>& outputs,
         const std::map<std::string, py::array_t<float, py::array::c_style | py::array::forcecast>>&
             files) {
        std::vector<TensorSpec> specs;
        for (const auto& [name, shape] : outputs) specs.push_back({name, shape, "float32"});
        DataFiles data;
        data.listed = [&](const std::string& file) { return files.count(file) > 0; };
        data.read_floats = [&](const std::string& file, size_t count) {
          const auto& a = files.at(file);
          if (static_cast<size_t>(a.size()) != count)
            ThrowInvalidArtifact(file + " does not hold " + std::to_string(count) +
                                 " float32 values");
          return std::vector<float>(a.data(), a.data() + a.size());
        };
        return PlanDict(ParsePostprocess(task, json::Value::Parse(ops_json), pre, specs, data));
      },
      py::arg("task"), py::arg("ops_json"), py::arg("preprocessor"), py::arg("outputs"),
      py::arg("files") =
          std::map<std::string, py::array_t<float, py::array::c_style | py::array::forcecast>>{},
      "Check a task's postprocess ops (JSON) against the network's outputs [(name, shape)] and "
      "input (the artifact's Preprocessor) as a Predictor opening the artifact does; files: "
      "its decode data (SSD priors) by name. Returns what the ops configure; ArtifactError "
      "naming the op, task or output at fault");
  m.def(
      "postprocess_ops",
      [] {
        py::dict out;
        for (const std::string& task : PostprocessTasks())
          out[py::str(task)] = PostprocessOpsFor(task);
        return out;
      },
      "The runtime's postprocess op table: {task: [ops valid for it]}");

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
  m.def(
      "argmax_labels",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> scores) {
        return ToArray(ArgmaxLabels(ToTensor(scores)));
      },
      py::arg("scores"), "Per-pixel argmax of (1, C, H, W) class scores → (H, W) labels");
  m.def(
      "segment_labels",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> scores, int image_width,
         int image_height, std::pair<float, float> scale, std::pair<float, float> offset) {
        Geometry g;
        g.image_width = image_width;
        g.image_height = image_height;
        g.scale_x = scale.first;
        g.scale_y = scale.second;
        g.offset_x = offset.first;
        g.offset_y = offset.second;
        return ToArray(SegmentLabels(ToTensor(scores), g));
      },
      py::arg("scores"), py::arg("image_width"), py::arg("image_height"), py::arg("scale"),
      py::arg("offset") = std::pair<float, float>{0.0f, 0.0f},
      "Label map at the image size: class scores resized through the geometry, then argmax");
  m.def(
      "colorize",
      [](py::array_t<int32_t, py::array::c_style | py::array::forcecast> labels) {
        return ToArray(Colorize(ToLabelMap(labels)));
      },
      py::arg("labels"), "RGB image of a label map (Pascal VOC palette)");
  m.def(
      "person_crop",
      [](std::vector<float> box, int input_width, int input_height, float scale, int image_width,
         int image_height) {
        if (box.size() != 4) ThrowInvalidInput("a box is (x1, y1, x2, y2)");
        PoseCrop c = PersonCrop({box[0], box[1], box[2], box[3]}, input_width, input_height, scale,
                                image_width, image_height);
        return py::make_tuple(c.x0, c.y0, c.width, c.height);
      },
      py::arg("box"), py::arg("input_width"), py::arg("input_height"), py::arg("scale"),
      py::arg("image_width"), py::arg("image_height"));
  m.def(
      "crop_resize",
      [](const py::array& image, std::vector<float> crop, int width, int height) {
        py::array keep;
        ImageView v = ToImageView(image, "rgb", keep);
        return ToArray(CropResize(v, ToCrop(crop), width, height));
      },
      py::arg("image"), py::arg("crop"), py::arg("width"), py::arg("height"));
  m.def(
      "decode_heatmaps",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> heatmaps,
         std::vector<float> crop) {
        std::vector<Keypoint> k = DecodeHeatmaps(ToTensor(heatmaps), ToCrop(crop));
        py::tuple arrays = PoseArrays({k}, {ToCrop(crop)});
        return py::make_tuple(arrays[0].attr("__getitem__")(0), arrays[1].attr("__getitem__")(0));
      },
      py::arg("heatmaps"), py::arg("crop"),
      "(1, K, H, W) heatmaps → keypoints (K, 2), scores (K,)");
  m.def(
      "decode_centernet",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> heatmap,
         py::array_t<float, py::array::c_style | py::array::forcecast> wh,
         py::array_t<float, py::array::c_style | py::array::forcecast> reg, int num_classes,
         int stride, int topk, float score_threshold) {
        const CenterNetHead head{num_classes, stride, topk};
        return DetectionArrays(
            DecodeCenterNet(ToTensor(heatmap), ToTensor(wh), ToTensor(reg), head, score_threshold));
      },
      py::arg("heatmap"), py::arg("wh"), py::arg("reg"), py::arg("num_classes"),
      py::arg("stride") = 4, py::arg("topk") = 100, py::arg("score_threshold") = 0.0f,
      "CenterNet's maps (1, C, H, W), (1, 2, H, W), (1, 2, H, W) → (ids, scores, boxes) of the "
      "top-k heatmap peaks above score_threshold, boxes in input pixels");
  m.def(
      "nms",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> boxes,
         py::array_t<float, py::array::c_style | py::array::forcecast> scores,
         py::array_t<int32_t, py::array::c_style | py::array::forcecast> ids, float iou_threshold,
         float score_threshold, int topk, int max_detections, bool class_agnostic) {
        const py::ssize_t n = scores.size();
        if (boxes.ndim() != 2 || boxes.shape(1) != 4 || boxes.shape(0) != n || ids.size() != n)
          ThrowInvalidInput("nms: boxes must be (N, 4) with N scores and N ids");
        std::vector<Detection> cands(static_cast<size_t>(n));
        for (py::ssize_t i = 0; i < n; ++i) {
          const float* b = boxes.data(i, 0);
          cands[static_cast<size_t>(i)] = {ids.at(i), scores.at(i), b[0], b[1], b[2], b[3]};
        }
        NmsOptions o{iou_threshold, score_threshold, topk, max_detections, class_agnostic};
        return DetectionArrays(Nms(std::move(cands), o));
      },
      py::arg("boxes"), py::arg("scores"), py::arg("ids"), py::arg("iou_threshold") = 0.45f,
      py::arg("score_threshold") = 0.0f, py::arg("topk") = -1, py::arg("max_detections") = -1,
      py::arg("class_agnostic") = false);
  AddRcnn(m);
}
