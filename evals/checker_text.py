"""How the support checker sees its input: one definition for training and for the service, so that both agree.

The checker reads a pair: `a` is what is checked, `b` a source window of up to `WINDOW_SENTENCES` consecutive
sentences. `a` takes one of three forms:
- `question: Q answer: A` - is A, as a reply to Q, stated by the window (a bare entity answer is a claim);
- `answer: A` - is the claim A stated by the window (no question known);
- `question: Q` - does the window answer Q (answerability, and reranking).
"""

from __future__ import annotations

from collections.abc import Sequence

from kernel.text import split_sentences

WINDOW_SENTENCES = 3
MAX_WINDOW_WORDS = 100


def checker_text(question: str | None, answer: str | None) -> str:
    parts = []
    if question:
        parts.append(f"question: {question.strip()}")
    if answer:
        parts.append(f"answer: {answer.strip()}")
    return " ".join(parts)


def windows_of(sentences: Sequence[str], size: int = WINDOW_SENTENCES) -> list[tuple[int, int, str]]:
    """Sliding windows (start, end, text) of up to `size` sentences, stride 1, each at most MAX_WINDOW_WORDS words
    (a window stops early rather than cut a sentence, but a single long sentence is kept whole)."""
    out: list[tuple[int, int, str]] = []
    n = len(sentences)
    for start in range(n):
        end, words = start, 0
        while end < n and end - start < size:
            w = len(sentences[end].split())
            if end > start and words + w > MAX_WINDOW_WORDS:
                break
            words += w
            end += 1
        if out and out[-1][1] >= end:
            continue  # inside the previous window
        out.append((start, end, " ".join(sentences[start:end])))
    return out


def passage_windows(text: str) -> list[tuple[int, int, str]]:
    return windows_of(split_sentences(text))
