// The one place in the C++ runtime that knows TVM (through tvm-ffi 0.1.x headers only).
#include <dlfcn.h>
#include <dlpack/dlpack.h>
#include <link.h>

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "edgecv/engine.h"
#include "edgecv/error.h"
#include "edgecv/kernels.h"
#include "edgecv/manifest.h"

namespace edgecv {

namespace ffi = tvm::ffi;

namespace {

constexpr int kDLPooledAllocator = 2;         // tvm::runtime::memory::AllocatorType::kPooled
constexpr int kDeviceAttrExist = 0;           // tvm::runtime::DeviceAttrKind::kExist
constexpr int kDeviceAttrComputeVersion = 4;  // ... ::kComputeVersion, e.g. "8.7"
constexpr int kDeviceAttrDeviceName = 5;      // ... ::kDeviceName

struct AlignedAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = ffi::GetDataSize(*t);
    size_t rounded = (bytes + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, rounded ? rounded : 64);
    if (t->data == nullptr) throw Error(ErrorKind::kRuntime, "out of memory");
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

DLDataType ParseDType(const std::string& s) {
  if (s == "float32") return {kDLFloat, 32, 1};
  if (s == "float16") return {kDLFloat, 16, 1};
  if (s == "int8") return {kDLInt, 8, 1};
  if (s == "uint8") return {kDLUInt, 8, 1};
  if (s == "int32") return {kDLInt, 32, 1};
  if (s == "int64") return {kDLInt, 64, 1};
  ThrowInvalidArtifact("unsupported parameter dtype '" + s + "'");
}

ffi::Tensor MakeTensor(const std::vector<int64_t>& shape, DLDataType dtype, const void* src) {
  ffi::Tensor t = ffi::Tensor::FromNDAlloc(
      AlignedAlloc(), ffi::ShapeView(shape.data(), shape.size()), dtype, DLDevice{kDLCPU, 0});
  std::memcpy(t.data_ptr(), src, ffi::GetDataSize(*t.GetDLTensorPtr()));
  return t;
}

// A tensor in device memory (through TVM's device API), filled from host bytes.
ffi::Tensor MakeDeviceTensor(const std::vector<int64_t>& shape, DLDataType dtype, DLDevice device,
                             const void* src) {
  static const ffi::Function alloc =
      ffi::Function::GetGlobalRequired("runtime.TVMTensorAllocWithScope");
  static const ffi::Function copy =
      ffi::Function::GetGlobalRequired("runtime.TVMTensorCopyFromBytes");
  ffi::Tensor t =
      alloc(ffi::Shape(shape), dtype, device, ffi::Optional<ffi::String>()).cast<ffi::Tensor>();
  copy(t, const_cast<void*>(src), ffi::GetDataSize(*t.GetDLTensorPtr()));
  return t;
}

Tensor ToFloatTensor(const ffi::Tensor& t) {
  const DLTensor* dl = t.GetDLTensorPtr();
  if (dl->dtype.code != kDLFloat || dl->dtype.bits != 32)
    throw Error(ErrorKind::kRuntime, "engine output is not float32");
  Tensor out;
  out.shape.assign(dl->shape, dl->shape + dl->ndim);
  out.data.resize(static_cast<size_t>(Tensor::NumElements(out.shape)));
  if (dl->device.device_type == kDLCPU) {
    std::memcpy(out.data.data(), static_cast<const char*>(dl->data) + dl->byte_offset,
                out.data.size() * sizeof(float));
  } else {  // device memory: copied back (and synchronised) by TVM's device API
    static const ffi::Function copy =
        ffi::Function::GetGlobalRequired("runtime.TVMTensorCopyToBytes");
    copy(t, static_cast<void*>(out.data.data()), out.data.size() * sizeof(float));
  }
  return out;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// Compiled libraries resolve TVM's C symbols from the global scope. When this runtime is
// itself loaded privately (a Python extension), promote the TVM libraries it linked.
void ExposeTvmSymbols() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* lib : {"libtvm_ffi.so", "libtvm_runtime.so"})
      dlopen(lib, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  });
}

// TVM's CUDA device API lives in libtvm_runtime_cuda.so, installed next to libtvm_runtime.so;
// loading it needs the NVIDIA driver (libcuda.so.1) and the CUDA runtime it was built against.
void LoadCudaRuntime() {
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    ExposeTvmSymbols();
    std::string dir;
    if (void* h = dlopen("libtvm_runtime.so", RTLD_NOW | RTLD_NOLOAD)) {
      link_map* map = nullptr;
      if (dlinfo(h, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr)
        dir = std::filesystem::path(map->l_name).parent_path().string();
      dlclose(h);
    }
    const std::string path = (dir.empty() ? "" : dir + "/") + "libtvm_runtime_cuda.so";
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* why = dlerror();
      error =
          "cannot load TVM's CUDA runtime " + path + ": " + (why ? why : "unknown dlopen error");
    }
  });
  if (!error.empty()) throw Error(ErrorKind::kRuntime, error);
}

// The GPU must be one that some code of the artifact runs on (CudaCodeFor: a cubin of its
// major version and at most its minor, or PTX not newer than it); otherwise the artifact is
// refused naming both its architectures and the GPU's. TVM's CUDA device API (which asks the
// CUDA runtime, cudaDeviceGetAttribute) gives the GPU's compute capability and name.
void CheckCudaDevice(const DeviceSpec& device) {
  const ffi::Function attr = ffi::Function::GetGlobalRequired("runtime.GetDeviceAttr");
  if (attr(static_cast<int>(kDLCUDA), 0, kDeviceAttrExist).cast<int>() == 0)
    throw Error(ErrorKind::kRuntime, "no CUDA GPU is available (device 0 does not exist)");
  const std::string version =
      attr(static_cast<int>(kDLCUDA), 0, kDeviceAttrComputeVersion).cast<ffi::String>();
  const size_t dot = version.find('.');
  if (dot == std::string::npos)
    throw Error(ErrorKind::kRuntime,
                "cannot read the GPU's compute capability ('" + version + "')");
  const int major = std::stoi(version.substr(0, dot)), minor = std::stoi(version.substr(dot + 1));
  if (!CudaCodeFor(major, minor, device.archs, device.ptx).empty()) return;
  std::string name;
  try {
    name = attr(static_cast<int>(kDLCUDA), 0, kDeviceAttrDeviceName).cast<ffi::String>();
  } catch (const std::exception&) {
  }
  ThrowInvalidArtifact(
      "artifact has GPU code for " + DescribeGpuCode(device.archs, device.ptx) + "; this GPU" +
      (name.empty() ? "" : " (" + name + ")") + " is sm_" + std::to_string(major) +
      std::to_string(minor) + ", which none of it runs on (compile with --arch sm_" +
      std::to_string(major) + std::to_string(minor) + ", or for a target that lists it)");
}

// Resolve every symbol of the library now, so that a library built for another TVM
// fails here with a message instead of killing the process at its first call.
void CheckLoadable(const std::string& path) {
  ExposeTvmSymbols();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    ThrowInvalidArtifact("cannot load " + path + ": " + (why ? why : "unknown dlopen error"));
  }
  dlclose(handle);
}

// Cached kernel state (packed weights) lives while any engine does.
std::mutex live_mutex;
int live_engines = 0;

}  // namespace

struct Engine::Impl {
  DLDevice device{kDLCPU, 0};
  ffi::Optional<ffi::Module> vm;
  ffi::Function entry;
  std::vector<ffi::Tensor> params;
  mutable std::mutex mutex;  // the VM keeps per-call state: one run at a time per engine

  ffi::Tensor Upload(const std::vector<int64_t>& shape, DLDataType dtype, const void* src) const {
    if (device.device_type == kDLCPU) return MakeTensor(shape, dtype, src);
    return MakeDeviceTensor(shape, dtype, device, src);
  }
};

Engine::Engine(const std::string& library, const std::string& entry,
               const std::string& weights_path, const std::vector<ParamSpec>& params,
               const DeviceSpec& device)
    : impl_(std::make_unique<Impl>()) {
  if (device.type == "cuda") {
    LoadCudaRuntime();
    try {
      CheckCudaDevice(device);
    } catch (const ffi::Error& e) {
      throw Error(ErrorKind::kRuntime, "CUDA device check failed: " + FirstLine(e.what()));
    }
    impl_->device = DLDevice{kDLCUDA, 0};
  } else if (device.type != "cpu") {
    ThrowInvalidArtifact("device '" + device.type + "' is not supported by this runtime");
  }
  std::ifstream wf(weights_path, std::ios::binary | std::ios::ate);
  if (!wf) ThrowInvalidArtifact("cannot read weights " + weights_path);
  const uint64_t size = static_cast<uint64_t>(wf.tellg());
  std::vector<char> blob(size);
  wf.seekg(0);
  wf.read(blob.data(), static_cast<std::streamsize>(size));
  for (const ParamSpec& p : params) {
    DLDataType dt = ParseDType(p.dtype);
    uint64_t expect = static_cast<uint64_t>(Tensor::NumElements(p.shape)) * (dt.bits / 8);
    if (expect != p.nbytes || p.offset + p.nbytes > size)
      ThrowInvalidArtifact("weights: parameter '" + p.name + "' does not fit the weights file");
    try {
      impl_->params.push_back(impl_->Upload(p.shape, dt, blob.data() + p.offset));
    } catch (const ffi::Error& e) {
      throw Error(ErrorKind::kRuntime,
                  "cannot place parameter '" + p.name + "': " + FirstLine(e.what()));
    }
  }
  const std::string path = std::filesystem::absolute(library).string();
  CheckLoadable(path);
  RegisterKernels();  // before vm_initialization, which resolves the kernel names
  try {
    ffi::Module lib = ffi::Module::LoadFromFile(path);
    ffi::Optional<ffi::Function> load = lib->GetFunction("vm_load_executable");
    if (!load.has_value()) ThrowInvalidArtifact(library + " is not a Relax VM executable");
    impl_->vm = (*load)().cast<ffi::Module>();
    ffi::Function init = impl_->vm.value()->GetFunction("vm_initialization").value();
    // the compute device first, then the host (where shape computations run)
    init(static_cast<int>(impl_->device.device_type), impl_->device.device_id, kDLPooledAllocator,
         static_cast<int>(kDLCPU), 0, kDLPooledAllocator);
    ffi::Optional<ffi::Function> fn = impl_->vm.value()->GetFunction(entry);
    if (!fn.has_value()) ThrowInvalidArtifact("entry function '" + entry + "' not in " + library);
    impl_->entry = *fn;
  } catch (const ffi::Error& e) {
    ThrowInvalidArtifact("cannot load " + library + ": " + FirstLine(e.what()));
  }
  std::lock_guard<std::mutex> lock(live_mutex);
  ++live_engines;
  counted_ = true;
}

Engine::~Engine() {
  std::lock_guard<std::mutex> lock(live_mutex);
  if (counted_ && --live_engines == 0) ClearKernelCache();
}

std::vector<Tensor> Engine::Run(const Tensor& input) const {
  if (static_cast<int64_t>(input.data.size()) != Tensor::NumElements(input.shape))
    ThrowInvalidInput("input tensor data does not match its shape");
  std::vector<Tensor> outs;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  try {
    ffi::Tensor x = impl_->Upload(input.shape, DLDataType{kDLFloat, 32, 1}, input.data.data());
    std::vector<ffi::AnyView> args;
    args.reserve(impl_->params.size() + 1);
    args.emplace_back(x);
    for (const ffi::Tensor& p : impl_->params) args.emplace_back(p);
    ffi::Any result;
    impl_->entry.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
    if (auto t = result.as<ffi::Tensor>()) {
      outs.push_back(ToFloatTensor(*t));
    } else {
      for (const ffi::Any& item : result.cast<ffi::Array<ffi::Any>>())
        outs.push_back(ToFloatTensor(item.cast<ffi::Tensor>()));
    }
  } catch (const ffi::Error& e) {
    throw Error(ErrorKind::kRuntime, "inference failed: " + FirstLine(e.what()));
  }
  return outs;
}

}  // namespace edgecv
