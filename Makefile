# ijepa — I-JEPA as an embeddable C-ABI library written in Swift.
#
#   make              build the distribution library build/lib/libijepa.so (static Swift runtime)
#   make demo         the main job: pretrain on Fashion-MNIST (~10 min), then linear / 1% / kNN probes (<= 15 min)
#   make test         install what is missing, build, run every test (Swift, C, Python, examples)
#   make install      install header, library and pkg-config file (PREFIX, DESTDIR)
#   make examples     build the C examples against the staged install (build/stage)
#   make mpi-test     MPI data-parallel tests (1 rank vs 2 and 3 ranks, C and Python)
#   make sanitize-test  C tests and examples under ASan/UBSan, valgrind, TSan; kill -9 during save
#   make fuzz-test    the checkpoint loader under libFuzzer for FUZZ_SECONDS (default 120)
#   make deps         install system packages (libopenblas-dev, pkg-config) when missing
#
# Speed flags live here, not in Package.swift, so the package stays usable as a dependency.

SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
PYTHON ?= python3
CC ?= cc

# the library's version: defined once, in Sources/IJEPACore/Checkpoint.swift
VERSION := $(shell sed -n 's/^public let libraryVersionString = "\(.*\)"/\1/p' Sources/IJEPACore/Checkpoint.swift)
ABI := 1
PREFIX ?= /usr/local
DESTDIR ?=
BUILD := build
STAGE := $(CURDIR)/$(BUILD)/stage
# The CPU the Swift code is compiled for (OpenBLAS picks its own kernels at run time). Default:
# this machine's vector width, as llama.cpp builds native by default: skylake-avx512 when the CPU
# has AVX-512 F/BW/DQ/VL (the element-wise kernels run 16 lanes in one register; 8% faster train
# step on tiny32), else haswell (AVX2, FMA: every x86-64 machine of the last decade). Results are
# bit-identical either way (no fused multiply-add contraction in Swift). For a library that will
# be copied to other machines, build with `make TARGET_CPU=haswell`.
HOST_AVX512 := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -w avx512f | grep -w avx512bw | grep -w avx512dq | grep -wq avx512vl && echo yes)
TARGET_CPU ?= $(if $(HOST_AVX512),skylake-avx512,haswell)
SWIFT_SPEED := -Xswiftc -target-cpu -Xswiftc $(TARGET_CPU)
# release build flags of the distribution library for CPU $(1) (one scratch directory per CPU)
dist_flags = -c release --scratch-path .build-dist-$(1) -Xswiftc -target-cpu -Xswiftc $(1) -Xswiftc -static-stdlib \
  -Xlinker -soname=libijepa.so.$(ABI) -Xlinker --version-script=$(CURDIR)/ijepa.map
LIB := $(BUILD)/lib/libijepa.so.$(VERSION)
# The same library for haswell, whatever TARGET_CPU is: valgrind (Tests/Sanitize) has no AVX-512.
PORTABLE := $(BUILD)/portable/libijepa.so.$(ABI)
SOURCES := $(shell find Sources include -type f) Package.swift ijepa.map
# (a stamp per TARGET_CPU, so that changing it rebuilds the library)
CPU_STAMP := $(BUILD)/.target-cpu-$(TARGET_CPU)

.PHONY: all lib deps py-deps demo-deps test swift-test c-test abi-test abi-baseline examples examples-test python-test \
        python-install-test swift-example-test mpi-test sanitize-test fuzz-test install stage portable demo eval-fmnist bench bench-gemm bench-deps clean

all: lib

lib: $(LIB)

$(CPU_STAMP):
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/.target-cpu-*
	@touch $@

$(LIB): $(SOURCES) $(CPU_STAMP)
	$(SWIFT) build $(call dist_flags,$(TARGET_CPU)) --product ijepa
	@mkdir -p $(BUILD)/lib
	# a new file renamed over the old one: processes that have the old library loaded keep it
	cp .build-dist-$(TARGET_CPU)/release/libijepa.so $@.tmp && mv -f $@.tmp $@
	ln -sf libijepa.so.$(VERSION) $(BUILD)/lib/libijepa.so.$(ABI)
	ln -sf libijepa.so.$(ABI) $(BUILD)/lib/libijepa.so

# System and Python packages, installed only when missing (apt needs root or sudo, as on CI).
APT_PKGS := libopenblas-dev pkg-config gcc zlib1g-dev libstb-dev
deps:
	@if ! pkg-config --exists openblas zlib stb 2>/dev/null || ! command -v cc >/dev/null; then \
	  echo "== installing $(APT_PKGS)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); \
	fi

py-deps:
	@$(PYTHON) -c "import numpy, pytest" 2>/dev/null || $(PYTHON) -m pip install -q numpy pytest

demo-deps: deps
	@test -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; }
	@$(PYTHON) -c "import numpy, sklearn, matplotlib" 2>/dev/null || $(PYTHON) -m pip install -q numpy scikit-learn matplotlib

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/ijepa.h $(DESTDIR)$(PREFIX)/include/ijepa.h
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libijepa.so.$(VERSION)
	ln -sf libijepa.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libijepa.so.$(ABI)
	ln -sf libijepa.so.$(ABI) $(DESTDIR)$(PREFIX)/lib/libijepa.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' ijepa.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ijepa.pc

# A private install that the C tests and examples build against, exactly as users do.
stage: lib
	$(MAKE) --no-print-directory install PREFIX=$(STAGE) DESTDIR=

portable: $(PORTABLE)

$(PORTABLE): $(SOURCES)
	$(SWIFT) build $(call dist_flags,haswell) --product ijepa
	@mkdir -p $(dir $@)
	cp .build-dist-haswell/release/libijepa.so $@.tmp && mv -f $@.tmp $@

test: deps py-deps swift-test c-test abi-test examples-test python-test python-install-test swift-example-test mpi-test sanitize-test fuzz-test
	@echo "== all test suites passed"

SWIFT_TEST_FLAGS := -c release -Xswiftc -enable-testing $(SWIFT_SPEED)
swift-test:
	$(SWIFT) build --build-tests $(SWIFT_TEST_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_TEST_FLAGS)

c-test: stage
	$(MAKE) --no-print-directory -C Tests/C STAGE=$(STAGE) run

# The C ABI held still (Tests/ABI/check.sh): include/ijepa.h against the committed baseline with
# libabigail's abidiff, the library's exports against the header, and a program built against
# the baseline header run against this library.
abi-test: stage
	Tests/ABI/check.sh $(STAGE)

# Regenerates the baseline from include/ijepa.h: only on purpose (a release, or an incompatible
# change with ABI and IJEPA_ABI_VERSION moved).
abi-baseline:
	@mkdir -p $(BUILD)/abi/baseline
	$(PYTHON) Tests/ABI/stub.py include/ijepa.h > $(BUILD)/abi/baseline/stub.c
	$(CC) -std=c11 -g -O0 -shared -fPIC -Wno-unused-parameter -Iinclude -Wl,-soname,libijepa.so.$(ABI) \
	  -o $(BUILD)/abi/baseline/libijepa.so.$(ABI) $(BUILD)/abi/baseline/stub.c
	abidw --out-file Tests/ABI/baseline/libijepa.abi $(BUILD)/abi/baseline/libijepa.so.$(ABI)
	cp include/ijepa.h Tests/ABI/baseline/ijepa.h

examples: stage
	$(MAKE) --no-print-directory -C examples STAGE=$(STAGE)

examples-test: stage
	$(MAKE) --no-print-directory -C examples STAGE=$(STAGE) run

# The Python package against the freshly built library (interop tests skip without torch).
python-test: stage py-deps
	IJEPA_LIBRARY=$(STAGE)/lib/libijepa.so.1 $(PYTHON) -m pytest -q python/tests tools/test_interop.py

# `pip install ./python` and `pip install .` alone, each in a fresh virtual environment (they build
# libijepa and bundle it), then the package from another directory with IJEPA_LIBRARY unset: it
# must find its own copy.
PIP_SMOKE = import ijepa, numpy as np; \
  assert '/venv-install-test/' in ijepa.library_path, ijepa.library_path; \
  e = ijepa.Encoder.load('$(CURDIR)/Tests/Fixtures/encoders/hf_v5'); \
  f = e.encode(np.zeros((2, 3, 24, 24), np.float32)); assert f.shape == (2, 32), f.shape; \
  print('ijepa', ijepa.version(), 'from', ijepa.library_path)
python-install-test: lib
	for src in ./python .; do \
	  rm -rf $(BUILD)/venv-install-test && \
	  $(PYTHON) -m venv --system-site-packages $(BUILD)/venv-install-test && \
	  $(BUILD)/venv-install-test/bin/pip install -q $$src && \
	  rm -rf python/build python/ijepa.egg-info $(BUILD)/bdist.* $(BUILD)/lib/ijepa && \
	  (cd $(BUILD) && echo -n "pip install $$src: " && env -u IJEPA_LIBRARY venv-install-test/bin/python -c "$(PIP_SMOKE)") \
	  || exit 1; \
	done

# Data-parallel training with MPI (examples/mpi_train.c, examples/mpi_train.py; docs/distributed.md):
# installs openmpi-bin/libopenmpi-dev (apt) and mpi4py (pip) when missing, then Tests/MPI/run.sh.
mpi-test: stage
	$(MAKE) --no-print-directory -C examples/mpi STAGE=$(STAGE) PYTHON=$(PYTHON) deps py-deps test

# The example Swift package that depends on this one by path.
swift-example-test:
	$(SWIFT) run --package-path examples/swift -c release train-and-encode 3

# ---- the main job -----------------------------------------------------------------------
DEMO_MINUTES ?= 10
EPOCHS ?= 5
OUT ?= out
# Hardening (docs/reliability.md): sanitizers/valgrind/TSan over the C tests and examples, kill -9
# during saves, RLIMIT_AS; then a bounded libFuzzer run over ijepa_model_load/load_weights that
# also replays every regression input in Tests/Fuzz/regressions.
FUZZ_SECONDS ?= 120
sanitize-test: stage portable
	PORTABLE_LIB_DIR=$(CURDIR)/$(dir $(PORTABLE)) Tests/Sanitize/run.sh

fuzz-test: stage
	Tests/Fuzz/run.sh $(FUZZ_SECONDS)

# DEMO_RECIPE: short (batch 64, lr 5e-4; the default) or official (batch 256, lr 1e-3); DEMO_MAX_TOTAL: minutes for the
# whole command (pretraining is cut to fit); a second `make demo` continues from out/demo's checkpoint.
# DEMO_ARGS: e.g. "--fresh", "--seed 1" (docs/fmnist.md).
DEMO_RECIPE ?= short
DEMO_MAX_TOTAL ?= 15
DEMO_ARGS ?=
# when make started: the demo's DEMO_MAX_TOTAL counts installing and building too
MAKE_STARTED := $(shell date +%s)
demo: demo-deps stage
	IJEPA_LIBRARY=$(STAGE)/lib/libijepa.so.1 $(PYTHON) examples/fmnist_demo.py --minutes $(DEMO_MINUTES) \
	  --recipe $(DEMO_RECIPE) --max-total $(DEMO_MAX_TOTAL) --started $(MAKE_STARTED) --out $(OUT)/demo $(DEMO_ARGS)

# EVAL_ARGS: e.g. "--ragged", "--ragged --full-grid", "--last-k 1,4", "--threads 1" (docs/ragged.md)
EVAL_ARGS ?=
eval-fmnist: demo-deps stage
	IJEPA_LIBRARY=$(STAGE)/lib/libijepa.so.1 $(PYTHON) examples/fmnist_eval.py --epochs $(EPOCHS) --out $(OUT)/eval $(EVAL_ARGS)

# Benchmark against PyTorch (dev-only: torch is pip-installed here, never needed by the library).
TORCH_VERSION ?= 2.13.0
BENCH_ARGS ?=
bench-deps:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "torch==$(TORCH_VERSION)" numpy

bench/build/bench_ijepa: bench/bench_ijepa.c stage
	@mkdir -p bench/build
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror $< -o $@ \
	  $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --cflags --libs ijepa) \
	  $$(pkg-config --cflags --libs openblas) -Wl,-rpath,$(STAGE)/lib

bench: deps bench-deps bench/build/bench_ijepa
	$(PYTHON) bench/run_bench.py $(BENCH_ARGS)

# The encoder's packed-weight products alone against cblas_sgemm, one thread (bench/bench_gemm.c),
# the kernels compiled as SwiftPM compiles them (the toolchain's clang, -O2).
bench/build/bench_gemm: bench/bench_gemm.c Sources/CIJEPAKernels/sgemm_packed.c Sources/CIJEPAKernels/include/ijepa_kernels.h
	@mkdir -p bench/build
	clang -O2 -std=c11 -Wall -Wextra -Werror -ISources/CIJEPAKernels/include bench/bench_gemm.c \
	  Sources/CIJEPAKernels/sgemm_packed.c -o $@ $$(pkg-config --cflags --libs openblas) -lm

bench-gemm: deps bench/build/bench_gemm
	bench/build/bench_gemm

# Pretrained-encoder inference against PyTorch (transformers IJepaModel) and ONNX Runtime, 2 threads
# each (bench/run_bench_encode.py; pip-installs transformers, onnx, onnxruntime when missing, dev-only).
# BENCH_ENCODE_ARGS: e.g. "--rows vit-s16-b32,vit-b16-b1 --quick --no-write".
BENCH_ENCODE_ARGS ?=
bench-encode: deps bench-deps stage
	IJEPA_LIBRARY=$(STAGE)/lib/libijepa.so.1 TORCH_VERSION=$(TORCH_VERSION) $(PYTHON) bench/run_bench_encode.py $(BENCH_ENCODE_ARGS)

clean:
	rm -rf .build .build-dist-* $(BUILD) bench/build
	-$(MAKE) -C Tests/C clean
	-$(MAKE) -C examples clean
	-$(MAKE) -C examples/mpi clean
