"""Training data for the support checker (see evals/synthetic.py for the synthetic part and MODEL_CARD.md).

Sources, and what of each may be used:
- SciFact (../shared/data/scifact): the claims of qrels/train.tsv with their SUPPORT/CONTRADICT labels, and
  abstracts as passages for synthetic pairs. Abstracts cited by any qrels/test.tsv claim are never used, and a
  stable 10% of the rest is held out for the synthetic held-out set (`evals.synthetic.held_out`).
- CLAP-NQ dev (../shared/data/clapnq): the even-numbered rows of each file train, the odd-numbered rows are held
  out (the held-out half of bench/abstain.py and of `evals.validate`).
- Nothing else: no public hallucination or faithfulness benchmark, and not the shared documents (the short-answer
  test set in tests/ is written over them).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from evals.checker_text import windows_of
from evals.shared_data import (
    clapnq_rows,
    scifact_corpus,
    scifact_passages,
    scifact_queries,
    scifact_split_ids,
    scifact_test_docs,
)
from evals.synthetic import Example, entities, negated, swap_entity, synthetic
from kernel.text import split_sentences

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of to in on at for from by with and or is are was were be been what which who when where why how "
    "that this it its as does do did not".split()
)


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def best_windows(query: str, wins: list[tuple[int, int, str]], k: int) -> list[str]:
    q = words(query)
    return [w for *_, w in sorted(wins, key=lambda x: -len(q & words(x[2])))[:k]]


def scifact_real(rng: random.Random) -> Iterator[Example]:
    """Train claims against their abstracts: the label the dataset gives, on the windows that best match."""
    corpus, train = scifact_corpus(), scifact_split_ids("train")
    test_docs = scifact_test_docs()
    for q in scifact_queries():
        if q["_id"] not in train:
            continue
        for doc_id, evidence in (q.get("metadata") or {}).items():
            if doc_id not in corpus or doc_id in test_docs or not evidence:
                continue
            label = 1 if evidence[0]["label"] == "SUPPORT" else 0
            sentences = split_sentences(corpus[doc_id])
            wins = windows_of(sentences)
            for win in best_windows(q["text"], wins, 2):
                yield Example(None, q["text"], win, label, "scifact_claim")
            # The claim as a query: the abstract that judges it is relevant to it (reranking, answerability).
            yield Example(q["text"], None, rng.choice(best_windows(q["text"], wins, 2)), 1, "relevant")


def scifact_hard_negatives(rng: random.Random, per_query: int = 1) -> Iterator[Example]:
    """Train claims against abstracts BM25 ranks high that are not judged relevant (reranking negatives)."""
    import bm25s

    corpus, train = scifact_corpus(), scifact_split_ids("train")
    test_docs = scifact_test_docs()
    ids = [i for i in corpus if i not in test_docs]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([corpus[i] for i in ids], stopwords="en", show_progress=False), show_progress=False)
    qs = [q for q in scifact_queries() if q["_id"] in train]
    results, _ = retriever.retrieve(
        bm25s.tokenize([q["text"] for q in qs], stopwords="en", show_progress=False), k=10, show_progress=False
    )
    for q, row in zip(qs, results, strict=True):
        relevant = set((q.get("metadata") or {}).keys())
        negatives = [ids[i] for i in row if ids[i] not in relevant][:per_query]
        for doc_id in negatives:
            wins = windows_of(split_sentences(corpus[doc_id]))
            yield Example(q["text"], None, best_windows(q["text"], wins, 1)[0], 0, "irrelevant")


def clapnq_real(rows: list[dict], rng: random.Random) -> Iterator[Example]:
    """CLAP-NQ questions with their gold answers and passages (train half only)."""
    passages = [r["passages"][0]["text"] for r in rows]
    for r in rows:
        q, text = r["input"], r["passages"][0]["text"]
        wins = windows_of(split_sentences(text))
        other_text = rng.choice([p for p in passages if p != text])
        other_wins = windows_of(split_sentences(other_text))
        if not r["answerable"]:
            for win in best_windows(q, wins, 2):
                yield Example(q, None, win, 0, "clapnq_unanswerable")
            ents = [e for s in split_sentences(text) for e in entities(s)]
            if ents:
                yield Example(q, rng.choice(ents).text, best_windows(q, wins, 1)[0], 0, "clapnq_no_answer")
            continue
        out = r["output"][0]
        answer, selected = out["answer"], out.get("selected_sentences") or []
        support = " ".join(selected[:3]) if selected else best_windows(answer, wins, 1)[0]
        yield Example(q, None, support, 1, "clapnq_answerable")
        for claim in [s for s in split_sentences(answer) if len(s.split()) >= 3]:
            yield Example(q, claim, support, 1, "clapnq_answer")
            yield Example(q, claim, best_windows(claim, other_wins, 1)[0], 0, "clapnq_other_passage")
            ents = entities(claim)
            pool = [e for s in split_sentences(other_text) for e in entities(s)]
            if ents and (swapped := swap_entity(claim, rng.choice(ents), pool, rng)):
                yield Example(q, swapped, support, 0, "clapnq_swap")
            elif (neg := negated(claim)) and neg != claim:
                yield Example(q, neg, support, 0, "clapnq_negation")


def training_examples(seed: int = 7, scifact_passages_n: int = 750) -> list[Example]:
    rng = random.Random(seed)
    sf = scifact_passages("train")
    sf_ids = sorted(sf)
    rng.shuffle(sf_ids)
    clap = clapnq_rows("train")
    examples: list[Example] = []
    examples += synthetic([sf[i] for i in sf_ids[:scifact_passages_n]], rng, per_passage=3)
    examples += synthetic([r["passages"][0]["text"] for r in clap], rng, per_passage=6)
    real = list(scifact_real(rng)) + list(scifact_hard_negatives(rng)) + list(clapnq_real(clap, rng))
    examples += real + real  # the real labels count twice
    rng.shuffle(examples)
    return examples
