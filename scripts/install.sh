#!/bin/sh
# The project's one install recipe: `make install` runs it for the development virtualenv, the Dockerfile for the
# image. Usage: scripts/install.sh [--production] VENV
#   VENV          the virtualenv to install into (created with python3 if it has no python yet)
#   --production  the image: the project as a regular package, without the dev extras and without llama.cpp (a
#                 source build of ~12 min that only the LLM tests use)
# TORCH_INDEX_URL (environment): the package index to take torch from. Unset: pip's configured indexes, as on
# the development machines, which carry the CPU build; the Dockerfile sets the PyTorch CPU index.
set -eu

production=0
if [ "${1:-}" = "--production" ]; then
  production=1
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--production] VENV" >&2
  exit 2
fi
venv=$1
py=$venv/bin/python
# The project root: the folder above this script, wherever it is called from.
root=$(cd "$(dirname "$0")/.." && pwd)

test -x "$py" || python3 -m venv "$venv"
"$py" -m pip install -q --upgrade pip
# CPU torch first: otherwise a dependency pulls a multi-GB CUDA build.
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "$py" -m pip install -q torch==2.13.0 --index-url "$TORCH_INDEX_URL"
else
  "$py" -m pip install -q torch==2.13.0
fi
if [ "$production" = 1 ]; then
  # No cache: the image keeps no pip cache layer.
  "$py" -m pip install -q --no-cache-dir "$root"
else
  # llama.cpp for the LLM tests, built for a portable x86-64 (AVX2) target: a native build picks up AMX on CPUs
  # that report it, and the AMX kernels crash (SIGSEGV) where the VM does not let the process use the tiles.
  # No cache: a natively built wheel from an earlier install must not be reused.
  test -f "$venv/.llama-portable" || (CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
    -DGGML_F16C=ON" "$py" -m pip install -q --force-reinstall --no-deps --no-cache-dir llama-cpp-python==0.3.36 \
    && touch "$venv/.llama-portable")
  "$py" -m pip install -q -e "$root[dev]"
fi
# Its declared dependencies pull CUDA torch via timm/torchvision; the fast PDF path only needs the module.
"$py" -m pip install -q --no-deps unstructured-inference==1.6.14
