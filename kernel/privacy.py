"""Telemetry off and hubs offline: no document, question or answer may leave the machine."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    # unstructured phones home on import and on each partition unless told not to.
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    # ragas only honours the literal "true".
    "RAGAS_DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_DATASETS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline() -> None:
    """Must run before unstructured, transformers or ragas are imported; every entry point calls it first."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
