#include "edgecv/manifest.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "check.h"
#include "edgecv/sha256.h"

using namespace edgecv;
namespace fs = std::filesystem;

namespace {
void Write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// A manifest in the layout the Python writer produces: body, then its own digest last.
std::string Sealed(const std::string& body_without_brace) {
  return body_without_brace + ",\n  \"manifest_sha256\": \"" +
         Sha256Hex(body_without_brace.data(), body_without_brace.size()) + "\"\n}\n";
}

// The target of an artifact built for the CPU these tests run on.
std::string NativeTarget() {
#if defined(__aarch64__)
  return R"({"name": "aarch64", "device": "cpu", "host_triple": "aarch64-linux-gnu"})";
#else
  return R"({"name": "x86_64", "device": "cpu", "host_triple": "x86_64-linux-gnu"})";
#endif
}

std::string Body(const std::string& lib_digest, int version = 1,
                 const std::string& target = NativeTarget()) {
  return "{\n  \"schema\": \"edgecv.artifact\",\n  \"schema_version\": " + std::to_string(version) +
         ",\n  \"model\": {\"name\": \"m\", \"task\": \"classification\"},\n"
         "  \"target\": " +
         target +
         ",\n"
         "  \"precision\": \"fp32\", \"entry\": \"main\",\n"
         "  \"files\": {\"library\": \"model.so\", \"weights\": \"weights.bin\"},\n"
         "  \"inputs\": [{\"name\": \"data\", \"shape\": [1, 3, 8, 8], \"dtype\": \"float32\"}],\n"
         "  \"outputs\": [], \"params\": [], \"classes\": [\"a\"],\n"
         "  \"sha256\": {\"model.so\": \"" +
         lib_digest + "\", \"weights.bin\": \"" + Sha256Hex("", 0) + "\"}";
}
}  // namespace

int main() {
  fs::path dir = fs::temp_directory_path() / "edgecv_test_manifest";
  fs::remove_all(dir);
  fs::create_directories(dir);
  Write(dir / "model.so", "library bytes");
  Write(dir / "weights.bin", "");
  std::string lib_digest = Sha256Hex("library bytes", 13);
  Write(dir / "manifest.json", Sealed(Body(lib_digest)));
  Manifest m = Manifest::Load(dir.string());
  CHECK(m.model == "m" && m.inputs.at(0).shape.at(1) == 3 && m.classes.at(0) == "a");

  Write(dir / "model.so", "library bytez");  // one changed byte in a listed file
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "model.so is corrupted", Manifest::Load(dir.string()));
  Write(dir / "model.so", "library bytes");

  std::string sealed = Sealed(Body(lib_digest));
  sealed[sealed.find("\"m\"") + 1] = 'n';  // an edit that keeps the JSON valid
  Write(dir / "manifest.json", sealed);
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "does not match manifest_sha256",
               Manifest::Load(dir.string()));

  Write(dir / "manifest.json", Sealed(Body(lib_digest, 99)));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "schema version 99", Manifest::Load(dir.string()));

  // an artifact for another CPU, or for a device this build cannot drive, is refused by name
  Write(dir / "manifest.json",
        Sealed(Body(lib_digest, 1,
                    R"({"name": "t", "device": "cpu", "host_triple": "riscv64-linux-gnu"})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "built for riscv64-linux-gnu",
               Manifest::Load(dir.string()));
  Write(dir / "manifest.json",
        Sealed(Body(lib_digest, 1,
                    R"({"name": "t", "device": "opencl", "host_triple": "x86_64-linux-gnu"})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "for device 'opencl'", Manifest::Load(dir.string()));
#ifndef EDGECV_WITH_CUDA
  Write(
      dir / "manifest.json",
      Sealed(Body(
          lib_digest, 1,
          R"({"name": "cuda", "device": "cuda", "host_triple": "x86_64-linux-gnu", "sm": "sm_87"})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "-DEDGECV_WITH_CUDA=ON", Manifest::Load(dir.string()));
#endif

  // a multi-architecture CUDA artifact: its names are checked on load whatever the build
  Write(
      dir / "manifest.json",
      Sealed(Body(
          lib_digest, 1,
          R"({"name": "cuda", "device": "cuda", "host_triple": "x86_64-linux-gnu", "sms": ["sm_75", "ampere"], "ptx": "sm_90"})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "'ampere' is not of the form sm_XY",
               Manifest::Load(dir.string()));
  Write(
      dir / "manifest.json",
      Sealed(Body(
          lib_digest, 1,
          R"({"name": "cuda", "device": "cuda", "host_triple": "x86_64-linux-gnu", "sms": [], "ptx": null})")));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "lists no GPU architecture",
               Manifest::Load(dir.string()));
#ifdef EDGECV_WITH_CUDA
  Write(
      dir / "manifest.json",
      Sealed(Body(
          lib_digest, 1,
          R"({"name": "cuda", "device": "cuda", "host_triple": "x86_64-linux-gnu", "sms": ["sm_75", "sm_86"], "ptx": "sm_90"})")));
  const Manifest cuda = Manifest::Load(dir.string());
  CHECK(cuda.gpu_archs == (std::vector<std::string>{"sm_75", "sm_86"}) && cuda.gpu_ptx == "sm_90");
#endif

  // which code of a CUDA artifact a GPU runs (the engine refuses the GPU when none)
  const std::vector<std::string> desktop = {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90"};
  CHECK(CudaCodeFor(7, 5, desktop, "sm_90") == "sm_75");        // T4
  CHECK(CudaCodeFor(8, 6, desktop, "sm_90") == "sm_86");        // RTX 3090
  CHECK(CudaCodeFor(8, 7, desktop, "sm_90") == "sm_86");        // Orin's sm_87 runs sm_86 cubins
  CHECK(CudaCodeFor(9, 0, desktop, "sm_90") == "sm_90");        // H100/H200
  CHECK(CudaCodeFor(12, 0, desktop, "sm_90") == "compute_90");  // RTX 50xx: PTX, JIT
  CHECK(CudaCodeFor(10, 0, desktop, "").empty());               // no PTX: nothing runs
  CHECK(CudaCodeFor(6, 1, desktop, "sm_90").empty());           // Pascal: older than all of it
  CHECK(CudaCodeFor(8, 0, {"sm_87"}, "").empty());              // a Jetson artifact on an A100
  CHECK(CudaCodeFor(9, 0, {"sm_90a"}, "") == "sm_90a");
  CHECK(CudaCodeFor(9, 1, {"sm_90a"}, "").empty());  // "a": exactly that GPU
  CHECK(DescribeGpuCode({"sm_75", "sm_86"}, "sm_90") == "sm_75, sm_86 + PTX sm_90");
  CHECK(DescribeGpuCode({"sm_87"}, "") == "sm_87");
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "'compute_90' is not of the form",
               CudaCodeFor(8, 0, {"compute_90"}, ""));

  Write(dir / "manifest.json", Body(lib_digest) + "}");
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "no manifest_sha256", Manifest::Load(dir.string()));

  EXPECT_THROW(ErrorKind::kInvalidArtifact, "no manifest at",
               Manifest::Load((dir / "nope").string()));
  fs::remove_all(dir);
  return Finish("test_manifest");
}
