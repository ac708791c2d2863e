# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST  ?= 127.0.0.1
PORT  ?= 8000

.PHONY: install run test lint bench-ingest clean

$(STAMP): pyproject.toml Makefile scripts/install.sh
	# The one install recipe, shared with the Dockerfile: CPU torch first, llama.cpp built portable (once, guarded
	# by .venv/.llama-portable), the project editable with its dev extras, unstructured-inference --no-deps.
	sh scripts/install.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/rag serve --host $(HOST) --port $(PORT)

test: install
	# The analyst pages are tested in a real headless Chromium, the sign-in form through its chromedriver (Debian's
	# packages; needs root on a fresh machine).
	(command -v chromium && command -v chromedriver) >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

bench-ingest: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) data
