"""The checker's input format and the synthetic data recipe: pure functions, no model."""

from __future__ import annotations

import itertools
import random

from evals.checked_claims import answer_claims
from evals.checker_text import MAX_WINDOW_WORDS, checker_text, windows_of
from evals.synthetic import (
    Entity,
    cloze_question,
    entities,
    held_out,
    negated,
    passage_examples,
    shortened,
    swap_entity,
)


def test_checker_text_has_three_forms() -> None:
    assert checker_text("Who?", "Ann") == "question: Who? answer: Ann"
    assert checker_text(None, "Ann sings.") == "answer: Ann sings."
    assert checker_text("Who?", None) == "question: Who?"


def test_windows_cover_every_sentence_and_stay_short() -> None:
    sentences = [f"Sentence number {i} says {'word ' * (i * 9)}." for i in range(8)]
    wins = windows_of(sentences)
    covered = {i for start, end, _ in wins for i in range(start, end)}
    assert covered == set(range(8))
    for start, end, text in wins:
        assert end - start <= 3
        assert end - start == 1 or len(text.split()) <= MAX_WINDOW_WORDS
    # No window lies inside the one before it.
    assert all(b[1] > a[1] for a, b in itertools.pairwise(wins))


def test_a_bare_entity_answer_is_one_claim_and_markers_are_not_claims() -> None:
    assert answer_claims("1881 [2]") == ["1881"]
    assert answer_claims("Paris.") == ["Paris."]
    assert answer_claims("He was born in 1881 [1]. He moved to Paris in 1904 [2].") == [
        "He was born in 1881.",
        "He moved to Paris in 1904.",
    ]
    assert answer_claims(" [1] ") == []


def test_entities_find_dates_years_numbers_and_names() -> None:
    found = {
        (e.text, e.kind) for e in entities("Roberts joined Watford in 1986 and scored 34 goals on 16 September 1986.")
    }
    assert ("Watford", "name") in found
    assert ("1986", "year") in found
    assert ("34", "number") in found
    assert ("16 September 1986", "date") in found
    # Parts of identifiers are not numbers to swap.
    assert not any(e.text == "205" for e in entities("The MIR-205 host gene is inactivated."))


def test_cloze_question_hides_the_answer() -> None:
    rng = random.Random(0)
    q = cloze_question("Roberts joined Watford in 1986.", Entity("1986", "year"), rng)
    assert "1986" not in q and "what year" in q and q.endswith("?")
    q = cloze_question("Roberts joined Watford in 1986.", Entity("Watford", "name"), rng)
    assert "Watford" not in q and "what" in q


def test_perturbations_change_what_the_sentence_says() -> None:
    rng = random.Random(1)
    s = "Roberts joined Watford in 1986."
    swapped = swap_entity(s, Entity("Watford", "name"), [Entity("Leicester City", "name")], rng)
    assert swapped == "Roberts joined Leicester City in 1986."
    bumped = swap_entity(s, Entity("1986", "year"), [], rng)
    assert bumped is not None and bumped != s and "1986" not in bumped
    assert negated("The drug is effective.") == "The drug is not effective."
    assert negated("The drug is not effective.") == "The drug is effective."
    assert negated("Exercise increases bone density.") == "Exercise decreases bone density."
    assert shortened("The bridge (built in 1937) spans the strait.", rng) == "The bridge spans the strait."


def test_held_out_partition_is_stable_and_about_a_tenth() -> None:
    keys = [f"scifact:{i}" for i in range(5000)]
    share = sum(held_out(k) for k in keys) / len(keys)
    assert 0.08 < share < 0.12
    assert [held_out(k) for k in keys[:50]] == [held_out(k) for k in keys[:50]]


def test_passage_examples_label_each_kind_consistently() -> None:
    passage = [
        "Iwan Roberts was born in Bangor on 26 June 1968.",
        "He joined Watford as a trainee in 1986 and moved to Huddersfield Town in 1990.",
        "At Huddersfield he scored 50 goals in 142 games under coach Peter Withe.",
        "He later played for Norwich City, where he spent seven years.",
    ]
    other = [["The Moon orbits the Earth every 27.3 days.", "Its surface is covered in craters and dust."]]
    examples = list(passage_examples(passage, other, random.Random(3), per_passage=4))
    by_kind: dict[str, set[int]] = {}
    for ex in examples:
        by_kind.setdefault(ex.kind, set()).add(ex.label)
        assert ex.passage == " ".join(passage)
    positives = {"claim", "claim_short", "qa_entity", "qa_sentence", "answerable", "answerable_sentence"}
    for kind, labels in by_kind.items():
        assert labels == ({1} if kind in positives else {0}), kind
    assert {"claim", "claim_swap", "claim_addition", "qa_entity", "qa_wrong_entity"} <= set(by_kind)
    for ex in examples:
        if ex.kind == "qa_entity":
            assert ex.answer is not None and ex.answer in ex.b and ex.answer not in (ex.question or "")
