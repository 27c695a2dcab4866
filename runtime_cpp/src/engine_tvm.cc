// The one place in the C++ runtime that knows TVM (through tvm-ffi 0.1.x headers only).
#include <dlfcn.h>
#include <dlpack/dlpack.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "edgecv/engine.h"
#include "edgecv/error.h"

namespace edgecv {

namespace ffi = tvm::ffi;

namespace {

constexpr int kDLPooledAllocator = 2;  // tvm::runtime::memory::AllocatorType::kPooled

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
  ffi::Tensor t = ffi::Tensor::FromNDAlloc(AlignedAlloc(), ffi::ShapeView(shape.data(), shape.size()),
                                           dtype, DLDevice{kDLCPU, 0});
  std::memcpy(t.data_ptr(), src, ffi::GetDataSize(*t.GetDLTensorPtr()));
  return t;
}

Tensor ToFloatTensor(const ffi::Tensor& t) {
  const DLTensor* dl = t.GetDLTensorPtr();
  if (dl->device.device_type != kDLCPU)
    throw Error(ErrorKind::kRuntime, "engine output is not in CPU memory");
  if (dl->dtype.code != kDLFloat || dl->dtype.bits != 32)
    throw Error(ErrorKind::kRuntime, "engine output is not float32");
  Tensor out;
  out.shape.assign(dl->shape, dl->shape + dl->ndim);
  out.data.resize(static_cast<size_t>(Tensor::NumElements(out.shape)));
  std::memcpy(out.data.data(), static_cast<const char*>(dl->data) + dl->byte_offset,
              out.data.size() * sizeof(float));
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

}  // namespace

struct Engine::Impl {
  ffi::Optional<ffi::Module> vm;
  ffi::Function entry;
  std::vector<ffi::Tensor> params;
  mutable std::mutex mutex;  // the VM keeps per-call state: one run at a time per engine
};

Engine::Engine(const std::string& library, const std::string& entry,
               const std::string& weights_path, const std::vector<ParamSpec>& params)
    : impl_(std::make_unique<Impl>()) {
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
    impl_->params.push_back(MakeTensor(p.shape, dt, blob.data() + p.offset));
  }
  const std::string path = std::filesystem::absolute(library).string();
  CheckLoadable(path);
  try {
    ffi::Module lib = ffi::Module::LoadFromFile(path);
    ffi::Optional<ffi::Function> load = lib->GetFunction("vm_load_executable");
    if (!load.has_value()) ThrowInvalidArtifact(library + " is not a Relax VM executable");
    impl_->vm = (*load)().cast<ffi::Module>();
    ffi::Function init = impl_->vm.value()->GetFunction("vm_initialization").value();
    init(static_cast<int>(kDLCPU), 0, kDLPooledAllocator, static_cast<int>(kDLCPU), 0,
         kDLPooledAllocator);
    ffi::Optional<ffi::Function> fn = impl_->vm.value()->GetFunction(entry);
    if (!fn.has_value()) ThrowInvalidArtifact("entry function '" + entry + "' not in " + library);
    impl_->entry = *fn;
  } catch (const ffi::Error& e) {
    ThrowInvalidArtifact("cannot load " + library + ": " + FirstLine(e.what()));
  }
}

Engine::~Engine() = default;

std::vector<Tensor> Engine::Run(const Tensor& input) const {
  if (static_cast<int64_t>(input.data.size()) != Tensor::NumElements(input.shape))
    ThrowInvalidInput("input tensor data does not match its shape");
  ffi::Tensor x = MakeTensor(input.shape, DLDataType{kDLFloat, 32, 1}, input.data.data());
  std::vector<ffi::AnyView> args;
  args.reserve(impl_->params.size() + 1);
  args.emplace_back(x);
  for (const ffi::Tensor& p : impl_->params) args.emplace_back(p);
  std::vector<Tensor> outs;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  try {
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
