"""One citation-marker grammar (kernel/text.py) for the pipeline, the streaming gate, the generator and the scorer.

There used to be three regexes: the pipeline's and the scorer's knew "[1]" and "[1, 3]" but not a range such as
"[2-4]", the extractive generator's knew ranges too. An LLM answer citing "[1-2]" then kept its marker as text in
the answer, was never shown by the streaming gate, and was scored with "[1-2]" inside the claim.
"""

from __future__ import annotations

import pytest

from evals.checked_claims import answer_claims
from evals.faithfulness import claims_of
from evals.scores import ScoreInput
from kernel.text import CITATION_MARKER, marker_numbers, strip_citation_markers
from kernel.types import Context
from rag.pipeline import CitationGate, validate_citations


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("opened in 1937 [2].", "2"),
        ("opened in 1937 [1, 3].", "1, 3"),
        ("opened in 1937 [2-4].", "2-4"),
        ("opened in 1937 [2\u20134].", "2\u20134"),  # an en dash, as LLMs often write ranges
        ("opened in 1937 [1,3 - 5].", "1,3 - 5"),
    ],
)
def test_a_marker_is_found_with_its_whole_body(text: str, body: str) -> None:
    [match] = CITATION_MARKER.finditer(text)
    assert match.group(1) == body


@pytest.mark.parametrize("text", ["a list [a]", "empty []", "a year [1937", "words [see 2]", "open [2-]"])
def test_what_is_not_a_marker(text: str) -> None:
    assert CITATION_MARKER.search(text) is None


@pytest.mark.parametrize(
    ("body", "numbers"),
    [
        ("2", [2]),
        ("1, 3", [1, 3]),
        ("2-4", [2, 3, 4]),
        ("2\u20134", [2, 3, 4]),
        ("1, 3-5", [1, 3, 4, 5]),
        ("3-3", [3]),
        # Not a citation anyone meant: expanding it would cite two thousand contexts. Only its ends count.
        ("1-2024", [1, 2024]),
        # Backwards: not expanded either, so nothing is invented between the ends.
        ("4-2", [4, 2]),
    ],
)
def test_marker_numbers_expand_ranges(body: str, numbers: list[int]) -> None:
    assert marker_numbers(body) == numbers


def test_strip_citation_markers_removes_markers_and_the_space_before_them() -> None:
    text = "It opened in 1937 [1]. It is 1,280 metres long [2-3], painted orange [1, 4\u20135]."
    assert strip_citation_markers(text) == "It opened in 1937. It is 1,280 metres long, painted orange."
    assert strip_citation_markers("A list [a] stays, as does [1937") == "A list [a] stays, as does [1937"


def _contexts(n: int) -> list[Context]:
    return [
        Context(n=i, chunk_id=f"c{i}", document_id="d", version=1, filename="f", text="t", score=1.0)
        for i in range(1, n + 1)
    ]


RANGED = "The bridge opened to traffic in 1937 [1-2]. It is a suspension bridge in San Francisco [1\u20132]."
PLAIN = "The bridge opened to traffic in 1937. It is a suspension bridge in San Francisco."


def test_the_pipeline_and_the_scorer_read_a_range_marker_alike() -> None:
    # The pipeline keeps a range as the contexts it cites ...
    text, cited, removed = validate_citations(RANGED, _contexts(2))
    assert text == "The bridge opened to traffic in 1937 [1][2]. It is a suspension bridge in San Francisco [1][2]."
    assert (cited, removed) == ([1, 2], 0)
    # ... and the scorer judges the same sentences without any marker, whether the answer it reads is the one the
    # pipeline stored or the one the generator wrote: the judge never looks for "1-2" in the contexts.
    for answer in (RANGED, text):
        assert ScoreInput(question="When?", answer=answer, contexts=["c"]).answer == PLAIN
        assert claims_of(answer) == answer_claims(answer) == PLAIN.replace(". ", ".\n").splitlines()


def test_a_range_that_reaches_past_the_contexts_keeps_only_the_real_ones() -> None:
    text, cited, removed = validate_citations("It opened in 1937 [2-4].", _contexts(3))
    assert (text, cited, removed) == ("It opened in 1937 [2][3].", [2, 3], 1)


def test_the_streaming_gate_shows_an_answer_cited_by_a_range() -> None:
    gate = CitationGate(_contexts(2))
    tokens = ["The bridge ", "opened in 1937 ", "[", "1", "\u2013", "2", "]", ". It is ", "a suspension bridge [2-"]
    tokens.append("9].")
    shown = "".join(gate.feed(t) for t in tokens) + gate.finish()
    assert gate.opened
    # The same text as the whole answer gets from validate_citations: streamed and final answers agree.
    assert shown == "The bridge opened in 1937 [1][2]. It is a suspension bridge [2]."
    assert shown == validate_citations("".join(tokens), _contexts(2))[0]
