"""The redactor on the labelled set in tests/data/pii: recall and precision per entity type, checksum look-alikes
left alone, typed placeholders, no work at import and no network.

See the table: `PYTHONPATH=. .venv/bin/pytest -s tests/unit/test_pii.py -k labelled`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingestion.pii import ENTITIES, PLACEHOLDERS, Finding, PresidioRedactor

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "pii"
LABELS: dict[str, dict[str, dict[str, list[str]]]] = json.loads((DATA / "labels.json").read_text("utf-8"))["documents"]

# Floors (recall, precision), and why. Cards, IBANs and e-mail addresses are patterns with a checksum or a domain
# check and the set has no ambiguous one: anything short of perfect is a bug. Phone numbers are what
# python-phonenumbers calls valid: it misses one number of the set, a French mobile in the range reserved for
# fiction, which is unallocated and so not valid (13 of 14); the floor allows that one. Names come from the small
# statistical spaCy model the project ships: it misses some names and takes some capitalised words (places,
# brands, "Landlord:") for names. Measured when the floors were set: recall 0.864, precision 0.765; the floors sit
# a few decisions below that, so a model or Presidio update that changes two or three calls passes and a real
# regression (a recogniser switched off, the model not loaded) fails.
FLOORS = {
    "CREDIT_CARD": (1.0, 1.0),
    "IBAN_CODE": (1.0, 1.0),
    "EMAIL_ADDRESS": (1.0, 1.0),
    "PHONE_NUMBER": (0.9, 0.9),
    "PERSON": (0.8, 0.7),
    "overall": (0.88, 0.82),
}


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int


def occurrences(text: str, entity: str, values: list[str]) -> list[Span]:
    """Every occurrence of every value (not inside a longer word), without those inside a longer value."""
    spans = [
        Span(entity, m.start(), m.end())
        for v in values
        for m in re.finditer(rf"(?<![\w@.+-]){re.escape(v)}(?![\w@-])", text)
    ]
    missing = [v for v in values if not any(text[s.start : s.end] == v for s in spans)]
    assert not missing, f"labelled {entity} values not in the text: {missing}"
    return [s for s in spans if not any(o != s and o.start <= s.start and s.end <= o.end for o in spans)]


def covered(text: str, gold: Span, findings: list[Finding]) -> bool:
    """Every letter and digit of the planted value lies inside a finding of its type: none of it stays readable."""
    same = [f for f in findings if f.entity == gold.entity]
    return all(any(f.start <= i < f.end for f in same) for i in range(gold.start, gold.end) if text[i].isalnum())


def overlaps(a: Span | Finding, b: Span | Finding) -> bool:
    return a.start < b.end and b.start < a.end


@dataclass
class Tally:
    planted: Counter[str] = field(default_factory=Counter)
    recalled: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)
    decoys_hit: list[str] = field(default_factory=list)

    def row(self, entities: tuple[str, ...]) -> tuple[int, float, float]:
        planted = sum(self.planted[e] for e in entities)
        found = sum(self.found[e] for e in entities)
        recall = sum(self.recalled[e] for e in entities) / planted if planted else 1.0
        precision = sum(self.correct[e] for e in entities) / found if found else 1.0
        return planted, recall, precision


@pytest.fixture(scope="module")
def redactor() -> PresidioRedactor:
    return PresidioRedactor()


@pytest.fixture(scope="module")
def tally(redactor: PresidioRedactor) -> Tally:
    t = Tally()
    for name, labels in LABELS.items():
        text = (DATA / "docs" / name).read_text(encoding="utf-8")
        gold = [s for entity, values in labels["pii"].items() for s in occurrences(text, entity, values)]
        decoys = [s for entity, values in labels["decoys"].items() for s in occurrences(text, entity, values)]
        findings = redactor.find(text)
        for g in gold:
            t.planted[g.entity] += 1
            if covered(text, g, findings):
                t.recalled[g.entity] += 1
            else:
                t.misses.append(f"{name}: {g.entity} {text[g.start : g.end]!r}")
        for f in findings:
            t.found[f.entity] += 1
            if any(g.entity == f.entity and overlaps(f, g) for g in gold):
                t.correct[f.entity] += 1
            else:
                t.false_alarms.append(f"{name}: {f.entity} {text[f.start : f.end]!r}")
            t.decoys_hit += [f"{name}: {text[d.start : d.end]!r} as {f.entity}" for d in decoys if overlaps(f, d)]
    return t


def test_recall_and_precision_on_the_labelled_set(tally: Tally) -> None:
    rows = {e: tally.row((e,)) for e in ENTITIES} | {"overall": tally.row(ENTITIES)}
    print(f"\n{'entity':<14} {'planted':>7} {'recall':>7} {'precision':>9}   floors (recall, precision)")
    for entity, (planted, recall, precision) in rows.items():
        print(f"{entity:<14} {planted:>7} {recall:>7.3f} {precision:>9.3f}   {FLOORS[entity]}")
    print("missed:", *tally.misses, sep="\n  ")
    print("false alarms:", *tally.false_alarms, sep="\n  ")
    for entity, (_, recall, precision) in rows.items():
        least_recall, least_precision = FLOORS[entity]
        assert recall >= least_recall, f"{entity} recall {recall:.3f} < {least_recall}: {tally.misses}"
        assert precision >= least_precision, f"{entity} precision {precision:.3f}: {tally.false_alarms}"


def test_look_alikes_that_fail_their_checksum_are_left_alone(tally: Tally) -> None:
    assert sum(len(v) for d in LABELS.values() for v in d["decoys"].values()) >= 10
    assert not tally.decoys_hit


def _luhn(number: str) -> bool:
    digits = [int(c) for c in reversed(number) if c.isdigit()]
    return sum(d if i % 2 == 0 else (2 * d) // 10 + (2 * d) % 10 for i, d in enumerate(digits)) % 10 == 0


def _mod97(iban: str) -> bool:
    compact = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1


def test_the_labelled_checksums_are_what_the_labels_say() -> None:
    """So the test above measures the checksums, not a mislabelled value."""
    check = {"CREDIT_CARD": _luhn, "IBAN_CODE": _mod97}
    for labels in LABELS.values():
        for entity, ok in check.items():
            assert all(ok(v) for v in labels["pii"].get(entity, [])), labels["pii"][entity]
            assert not any(ok(v) for v in labels["decoys"].get(entity, [])), labels["decoys"][entity]


def test_every_finding_becomes_its_typed_placeholder(redactor: PresidioRedactor) -> None:
    text = (
        "Jane Okafor (jane.okafor@example.com, +44 20 7946 0958) paid with 4111 1111 1111 1111 "
        "from GB29 NWBK 6016 1331 9268 19; 4111 1111 1111 1112 was a typo."
    )
    out = redactor.redact(text)
    assert out == "<PERSON> (<EMAIL>, <PHONE>) paid with <CARD> from <IBAN>; 4111 1111 1111 1112 was a typo."
    assert set(PLACEHOLDERS.values()) == {"<PERSON>", "<EMAIL>", "<PHONE>", "<CARD>", "<IBAN>"}
    assert redactor.redact_many(["", "  ", "no personal data here.", text]) == ["", "  ", "no personal data here.", out]


def test_long_texts_are_analysed_in_pieces(redactor: PresidioRedactor) -> None:
    filler = "The warehouse ships pallets every week.\n" * 3000  # 120,000 characters: more than one piece
    out = redactor.redact(f"Write to tom.becker@example.com.\n{filler}Or call +44 20 7946 0958.\n")
    assert out == f"Write to <EMAIL>.\n{filler}Or call <PHONE>.\n"


def test_nothing_is_loaded_at_import_and_nothing_leaves_the_machine(netguard) -> None:
    probe = "import sys, ingestion.pii; print(sorted(m for m in ('presidio_analyzer', 'spacy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    with netguard.watch() as outbound:
        assert PresidioRedactor().redact("Mail noah.williams@example.org.") == "Mail <EMAIL>."
    assert outbound == []
