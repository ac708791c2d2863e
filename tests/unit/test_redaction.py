"""Sentence-held stream redaction: whatever the deltas, the stream shows exactly the redacted final text."""

from __future__ import annotations

import random

import pytest

from ingestion.pii import PresidioRedactor
from rag.redaction import SNIPPET_CHARS, StreamRedactor, sentences, snippet

ANSWER = (
    "Ask Dr. Jane Okafor [1]. She answers at jane.okafor@example.com!\n"
    "Or call +44 20 7946 0958 [2]; refunds go to GB29 NWBK 6016 1331 9268 19 [1]. Mr. T. Becker signs them?  Yes"
)


@pytest.fixture(scope="module")
def redactor() -> PresidioRedactor:
    return PresidioRedactor()


def test_sentences_join_back_and_keep_titles_with_their_names() -> None:
    pieces = sentences(ANSWER)
    assert "".join(pieces) == ANSWER
    assert pieces[0] == "Ask Dr. Jane Okafor [1]. "
    assert pieces[1] == "She answers at jane.okafor@example.com!\n"
    assert pieces[3] == "Mr. T. Becker signs them? "
    assert sentences("") == [] and sentences("no end") == ["no end"]


async def test_the_stream_shows_the_redacted_final_text_whatever_the_deltas(redactor: PresidioRedactor) -> None:
    final = "".join(redactor.redact_many(sentences(ANSWER)))
    assert "Okafor" not in final and "<EMAIL>" in final and "<PHONE>" in final and "<IBAN>" in final
    rng = random.Random(7)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(ANSWER)), 12))
        deltas = [ANSWER[a:b] for a, b in zip([0, *cuts], [*cuts, len(ANSWER)], strict=True)]
        hold = StreamRedactor(redactor)
        shown = [await hold.feed(d) for d in deltas] + [await hold.finish()]
        assert "".join(shown) == final
        # Nothing is sent before its sentence is complete, so no delta holds a piece of a name or number.
        assert not any(frag in s for s in shown for frag in ("Oka", "okafor", "7946", "NWBK"))


def test_a_snippet_never_ends_in_half_a_placeholder() -> None:
    text = "x" * (SNIPPET_CHARS - 3) + "<EMAIL> and more"
    assert snippet(text) == "x" * (SNIPPET_CHARS - 3)
    assert snippet("short <EMAIL>") == "short <EMAIL>"
