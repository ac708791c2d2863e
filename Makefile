# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST  ?= 127.0.0.1
PORT  ?= 8000

.PHONY: install run test lint bench-ingest clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first: otherwise a dependency pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# llama.cpp for the LLM tests, built for a portable x86-64 (AVX2) target: a native build picks up AMX on CPUs
	# that report it, and the AMX kernels crash (SIGSEGV) where the VM does not let the process use the tiles.
	# No cache: a natively built wheel from an earlier install must not be reused.
	test -f $(VENV)/.llama-portable || (CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	  -DGGML_F16C=ON" $(PY) -m pip install -q --force-reinstall --no-deps --no-cache-dir llama-cpp-python==0.3.36 \
	  && touch $(VENV)/.llama-portable)
	$(PY) -m pip install -q -e '.[dev]'
	# Its declared dependencies pull CUDA torch via timm/torchvision; the fast PDF path only needs the module.
	$(PY) -m pip install -q --no-deps unstructured-inference==1.6.14
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/rag serve --host $(HOST) --port $(PORT)

test: install
	# The analyst page is tested in a real headless Chromium (Debian's package; needs root on a fresh machine).
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

bench-ingest: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) data
