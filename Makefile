# The two commands of the README:
#   make demo   set everything up, compile the digits classifier and detector edgecv trained
#               for this CPU, run them on held-out digits (edgecv/data/)
#   make test   set everything up, then run the whole test suite (what CI runs): lint and
#               format checks, then pytest, whose zoo sweeps take one model per family
#   make sweep  every zoo model through the parity tests (~30-60 min on 2 cores), recorded in
#               tests/sweep-result.json, which `make test` checks against the catalog
#   make unit   the unit tier alone, on the source tree (numpy only; tests/test_tiers.py proves it)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_TARGET ?= x86_64
# the demo runs the models edgecv trained and ships (edgecv/weights/), on held-out digits
DEMO_CLS    := mobilenet0.25_digits
DEMO_DET    := yolo3_mobilenet0.25_digits
DEMO_ART    := artifacts

# pinned: mxnet 1.9.1 needs numpy<1.24 and onnx 1.16.2; newer tvm-ffi breaks TVM 0.27
BUILD_DEPS := "scikit-build-core>=0.10" "pybind11>=2.12" apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post1 "numpy<1.24"
SOURCES := $(shell find edgecv runtime_cpp targets calibration -type f -not -name '*.pyc') pyproject.toml CMakeLists.txt
CPP_SOURCES := $(shell find runtime_cpp -type f \( -name '*.cc' -o -name '*.h' \))

.PHONY: demo test sweep unit lint install install-test clean cross-tools kernel-libs

# Cross-compiling for aarch64 (ARM targets; the test suite runs their artifacts under qemu):
# Debian's cross toolchain and qemu-user, and TVM's runtime libraries for aarch64 (from the
# aarch64 wheels, runtime only: see runtime_cpp/tools/fetch_tvm_runtime.py)
CROSS_PACKAGES := g++-aarch64-linux-gnu qemu-user
CROSS_RUNTIME  := build/tvm-runtime/aarch64
# XNNPACK for aarch64 (ARM artifacts run their convolutions in it): Debian's arm64 packages,
# unpacked here (dpkg -x; nothing installed), for the cross-built runtime to link and bundle
CROSS_XNNPACK  := build/xnnpack/aarch64
CROSS_XNNPACK_DEBS := libxnnpack0 libxnnpack-dev libpthreadpool0 libpthreadpool-dev libcpuinfo0
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# oneDNN: x86 artifacts run their convolutions and dense layers in it (runtime_cpp/src/kernels_dnnl.cc);
# XNNPACK: ARM artifacts (and x86 ones with --kernels xnnpack) in it (kernels_xnnpack.cc)
KERNEL_PACKAGES := libdnnl-dev libxnnpack-dev libpthreadpool-dev

demo: $(VENV)/.installed
	$(BIN)/edgecv compile $(DEMO_CLS) --target $(DEMO_TARGET) --out $(DEMO_ART)/$(DEMO_CLS)-$(DEMO_TARGET)-fp32
	$(BIN)/edgecv run $(DEMO_ART)/$(DEMO_CLS)-$(DEMO_TARGET)-fp32 edgecv/data/digit_7.png
	$(BIN)/edgecv compile $(DEMO_DET) --target $(DEMO_TARGET) --out $(DEMO_ART)/$(DEMO_DET)-$(DEMO_TARGET)-fp32
	$(BIN)/edgecv run $(DEMO_ART)/$(DEMO_DET)-$(DEMO_TARGET)-fp32 edgecv/data/digits_scene.jpg \
	  --out $(DEMO_ART)/digits_scene-detections.jpg

test: $(VENV)/.installed-test lint
	$(BIN)/pytest -p no:cacheprovider -q -ra

lint: $(VENV)/.installed-test
	$(BIN)/ruff check edgecv tests bench
	$(BIN)/ruff format --check edgecv tests bench
	$(BIN)/clang-format --dry-run --Werror $(CPP_SOURCES)

sweep: $(VENV)/.installed-test
	$(BIN)/python -m tests.sweep

# the source tree first on the path: edgecv without its C++ module, so only the unit tier runs
unit: $(VENV)/.installed-test
	PYTHONPATH=$(CURDIR) $(BIN)/python -m pytest -p no:cacheprovider -q -m unit

install: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python $(SOURCES) | kernel-libs
	$(BIN)/pip install -q $(BUILD_DEPS)
	$(BIN)/pip install -q --no-build-isolation .
	touch $@

# GluonCV is a test-only reference; --no-deps keeps it from upgrading numpy or pulling torch
$(VENV)/.installed-test: $(VENV)/.installed | cross-tools $(CROSS_RUNTIME)/VERSIONS $(CROSS_XNNPACK)/.unpacked
	$(BIN)/pip install -q ".[test]" --no-build-isolation "numpy<1.24"
	$(BIN)/pip install -q --no-deps gluoncv==0.10.5.post0
	touch $@

kernel-libs:
	@test -f /usr/include/oneapi/dnnl/dnnl.hpp -a -f /usr/include/xnnpack.h -a -f /usr/include/pthreadpool.h || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(KERNEL_PACKAGES); }

cross-tools:
	@command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CROSS_PACKAGES); }

$(CROSS_RUNTIME)/VERSIONS: runtime_cpp/tools/fetch_tvm_runtime.py | $(VENV)/.installed
	$(BIN)/python runtime_cpp/tools/fetch_tvm_runtime.py --out $(CROSS_RUNTIME) --platform manylinux_2_28_aarch64

$(CROSS_XNNPACK)/.unpacked:
	@dpkg --print-foreign-architectures | grep -qx arm64 || \
	  { $(SUDO) dpkg --add-architecture arm64 && { $(SUDO) apt-get update -qq || true; }; }
	rm -rf $(CROSS_XNNPACK) && mkdir -p $(CROSS_XNNPACK)/debs
	cd $(CROSS_XNNPACK)/debs && apt-get download -qq $(addsuffix :arm64,$(CROSS_XNNPACK_DEBS))
	for d in $(CROSS_XNNPACK)/debs/*.deb; do dpkg -x $$d $(CROSS_XNNPACK); done
	touch $@

clean:
	rm -rf build artifacts $(VENV)
