# Hearth: the two quickstart commands are `make run` and `make test`. Both create or reuse the
# virtualenv in .venv/ and install what they need first.
#
# First install cost: llama-cpp-python has no binary wheel on PyPI, so pip compiles llama.cpp.
# CMAKE_ARGS below build the library only (no llava/mtmd, tools, examples, tests or server),
# about 3-5 minutes on 2 cores here instead of 15+.
#
# llama.cpp is built for this host's CPU (GGML_NATIVE), except its AMX kernels on x86: on an
# AMX-capable Xeon here (a VM), every multi-token llama_decode crashed (SIGSEGV in
# ggml_backend_amx_mul_mat) with those kernels in; -mno-amx-int8 leaves them out, and the AVX-512
# kernels do the work. The wheel is built once per set of build flags into LLAMA_WHEELS and
# installed from there: pip's own wheel cache is keyed on the sdist only, so it would hand back
# a wheel built with other flags.
#
# llama.cpp's own HF -> GGUF converter (`hearth export`) comes from the same llama-cpp-python
# sdist as the compiled library, so the two always agree on the GGUF format: the sdist is fetched
# once into LLAMA_SDIST_DIR (checked against LLAMA_SDIST_SHA256: update it with the version), and
# vendor/llama.cpp's convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/ and gguf-py/ are
# unpacked into the venv (CONVERTER_DIR). Run as a script, the converter puts its own gguf-py
# ahead of PyPI's gguf (which transformers' GGUF loading keeps using). Nothing is fetched at run
# time; quantize/converter.py refuses a converter whose version differs from the library's.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF
LLAMA_CPU_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8)
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)
LLAMA_WHEELS ?= $(HOME)/.cache/hearth/llama-cpp-python-$(LLAMA_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS) $(LLAMA_CPU_ARGS) $(CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA_SDIST_DIR ?= $(HOME)/.cache/hearth/llama-cpp-python-$(LLAMA_VERSION)-sdist
LLAMA_SDIST := $(LLAMA_SDIST_DIR)/llama_cpp_python-$(LLAMA_VERSION).tar.gz
LLAMA_SDIST_SHA256 := 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
CONVERTER_DIR := $(VENV)/share/hearth/llama.cpp-convert
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test install install-train install-convert browser bench clean

$(VENV)/.serve-installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_VERSION) (compiles llama.cpp: minutes) into $(LLAMA_WHEELS)"; \
		rm -rf $(LLAMA_WHEELS).part && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $(LLAMA_CPU_ARGS) $(CMAKE_ARGS)" $(PY) -m pip wheel --quiet --no-deps \
			--no-cache-dir --no-binary llama-cpp-python -w $(LLAMA_WHEELS).part llama-cpp-python==$(LLAMA_VERSION) && \
		mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); \
	fi
	$(PY) -m pip install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PY) -m pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[serve,dev]'
	touch $@

$(VENV)/.train-installed: $(VENV)/.serve-installed $(VENV)/.convert-installed
	$(PY) -m pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[serve,dev,train]'
	touch $@

# llama.cpp's converter from the llama-cpp-python sdist (see the top); its Python dependencies
# (torch, transformers, sentencepiece, numpy, pyyaml, tqdm) come with the train extra.
$(VENV)/.convert-installed: $(VENV)/.serve-installed pyproject.toml Makefile
	@if [ ! -f $(LLAMA_SDIST) ]; then \
		echo "fetching the llama-cpp-python $(LLAMA_VERSION) sdist (llama.cpp's converter) into $(LLAMA_SDIST_DIR)"; \
		rm -rf $(LLAMA_SDIST_DIR).part && \
		$(PY) -m pip download --quiet --no-binary :all: --no-deps -d $(LLAMA_SDIST_DIR).part \
			llama-cpp-python==$(LLAMA_VERSION) && \
		rm -rf $(LLAMA_SDIST_DIR) && mv $(LLAMA_SDIST_DIR).part $(LLAMA_SDIST_DIR); \
	fi
	@echo "$(LLAMA_SDIST_SHA256)  $(LLAMA_SDIST)" | sha256sum --check --quiet || { \
		echo "$(LLAMA_SDIST): sha256 differs from LLAMA_SDIST_SHA256 (set it for llama-cpp-python $(LLAMA_VERSION))"; exit 1; }
	rm -rf $(CONVERTER_DIR).part && mkdir -p $(CONVERTER_DIR).part
	tar -xzf $(LLAMA_SDIST) -C $(CONVERTER_DIR).part --strip-components=3 \
		$(addprefix llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp/,convert_hf_to_gguf.py \
			convert_lora_to_gguf.py conversion gguf-py LICENSE)
	printf '{"llama_cpp_python": "%s", "sdist_sha256": "%s"}\n' $(LLAMA_VERSION) $(LLAMA_SDIST_SHA256) \
		> $(CONVERTER_DIR).part/hearth-vendor.json
	rm -rf $(CONVERTER_DIR) && mv $(CONVERTER_DIR).part $(CONVERTER_DIR)
	touch $@

install: $(VENV)/.serve-installed

install-train: $(VENV)/.train-installed

install-convert: $(VENV)/.convert-installed

# Serve the embedded SmolLM2-135M-Instruct (OpenAI-compatible API + /v1/sql) on $(HOST):$(PORT).
run: install
	$(VENV)/bin/hearth serve --host $(HOST) --port $(PORT)

# The whole test suite (real model, real SQLite, PostgreSQL and MariaDB, and short training runs;
# the training stack comes in: torch==2.13.0 from local disk, transformers, peft).
test: install-train browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Headless Chromium for the review page's browser test, from Debian (nothing is downloaded by
# selenium). Installed only when missing and when we are root; otherwise that test skips.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else echo "chromium/chromium-driver missing and not root: the browser test will skip"; fi; \
	fi

$(VENV)/.bench-installed: $(VENV)/.serve-installed
	$(PY) -m pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[serve,dev,bench]'
	touch $@

# Serving benchmarks (need a quiet machine: they refuse to report figures taken under load).
bench: $(VENV)/.bench-installed
	$(PY) -m bench.serve --wait-quiet 60
	$(PY) -m bench.concurrency --wait-quiet 60

clean:
	rm -rf $(VENV) var build *.egg-info
