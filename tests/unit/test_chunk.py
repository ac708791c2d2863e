from __future__ import annotations

import itertools

from ingestion.chunk import chunk_elements
from kernel.text import split_sentences
from kernel.types import ParsedElement


def words(texts):
    """A stand-in token counter for the chunker's arithmetic: one token per word (the real one is tested
    end-to-end with the model's tokenizer)."""
    return [len(t.split()) for t in texts]


def el(text, type_="NarrativeText", page=None, section=None):
    return ParsedElement(text=text, type=type_, page=page, section=section)


def test_split_sentences_keeps_abbreviated_numbers_together():
    assert split_sentences("It costs 3.5 dollars. Then it rose.\nNew line") == [
        "It costs 3.5 dollars.",
        "Then it rose.",
        "New line",
    ]


def test_titles_start_new_chunks_and_carry_the_section():
    elements = [
        el("Intro", "Title", 1, "Intro"),
        el("One two three. Four five six.", page=1, section="Intro"),
        el("Methods", "Title", 2, "Methods"),
        el("Seven eight nine.", page=2, section="Methods"),
    ]
    chunks = chunk_elements(elements, words, max_tokens=50, overlap_tokens=5)
    assert [c.text for c in chunks] == ["Intro\nOne two three. Four five six.", "Methods\nSeven eight nine."]
    assert [(c.section, c.page) for c in chunks] == [("Intro", 1), ("Methods", 2)]
    assert chunks[0].element_types == ["Title", "NarrativeText"]


def test_size_cap_and_overlap():
    sentences = [f"S{i} a b c d." for i in range(10)]  # 5 words each
    chunks = chunk_elements([el(" ".join(sentences))], words, max_tokens=12, overlap_tokens=5)
    assert all(c.tokens <= 12 for c in chunks)
    # Each chunk after the first starts with the last sentence of the previous one.
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.text.split(".")[0] == prev.text.split(". ")[-1].rstrip(".")
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)


def test_sentence_longer_than_the_cap_is_cut():
    long = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_elements([el(long)], words, max_tokens=30, overlap_tokens=0)
    assert len(chunks) >= 4 and all(c.tokens <= 30 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == long.split()


def test_no_text_gives_no_chunks():
    assert chunk_elements([el("   ")], words, max_tokens=30, overlap_tokens=0) == []


def test_text_without_spaces_is_cut_until_it_fits():
    def chars(texts):  # dense script: one token per character
        return [len(t) for t in texts]

    text = "漢" * 1000
    chunks = chunk_elements([el(text)], chars, max_tokens=100, overlap_tokens=0)
    assert all(c.tokens <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == text
