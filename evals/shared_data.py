"""The shared evaluation data (../shared/data) and how it is split between training and measuring.

- SciFact: claims of qrels/train.tsv may train; claims of qrels/test.tsv and every abstract they cite are only
  measured. Of the other abstracts, a stable 10% (by id) is held out for the synthetic held-out set.
- CLAP-NQ dev: even-numbered rows of each file may train, odd-numbered rows are held out (the held-out half of
  bench/abstain.py and `evals.validate`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evals.synthetic import ANSWER_LEVEL, Example, held_out, synthetic

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def scifact_queries() -> list[dict]:
    with (DATA / "scifact" / "queries.jsonl").open() as fh:
        return [json.loads(line) for line in fh]


def scifact_split_ids(split: str) -> set[str]:
    with (DATA / "scifact" / "qrels" / f"{split}.tsv").open() as fh:
        return {line.split("\t")[0] for line in list(fh)[1:]}


def scifact_corpus() -> dict[str, str]:
    out = {}
    with (DATA / "scifact" / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            out[row["_id"]] = f"{row['title']}. {row['text']}"
    return out


def scifact_test_docs() -> set[str]:
    """Every abstract a test claim is judged against (qrels or evidence): never trained on."""
    test = scifact_split_ids("test")
    with (DATA / "scifact" / "qrels" / "test.tsv").open() as fh:
        docs = {line.split("\t")[1] for line in list(fh)[1:]}
    for q in scifact_queries():
        if q["_id"] in test:
            docs |= set((q.get("metadata") or {}).keys())
    return docs


def scifact_passages(part: str) -> dict[str, str]:
    """Abstracts for synthetic pairs, `train` or `heldout`; never one a test claim is judged against."""
    corpus, test_docs = scifact_corpus(), scifact_test_docs()
    return {i: t for i, t in corpus.items() if i not in test_docs and held_out(f"scifact:{i}") == (part == "heldout")}


def clapnq_rows(part: str) -> list[dict]:
    """Rows of both CLAP-NQ files, `train` (even row numbers) or `heldout` (odd), each marked answerable or not."""
    rows = []
    for name, answerable in (("dev_answerable", True), ("dev_unanswerable", False)):
        with (DATA / "clapnq" / f"{name}.jsonl").open() as fh:
            for i, line in enumerate(fh):
                if (i % 2 == 0) == (part == "train"):
                    r = json.loads(line)
                    r["answerable"] = answerable
                    rows.append(r)
    return rows


def heldout_examples(seed: int = 11, scifact_passages_n: int = 150) -> list[Example]:
    """The training recipe (evals/synthetic.py) on passages never used in training, answer-level kinds only."""
    rng = random.Random(seed)
    sf = scifact_passages("heldout")
    ids = sorted(sf)
    rng.shuffle(ids)
    passages = [sf[i] for i in ids[:scifact_passages_n]] + [r["passages"][0]["text"] for r in clapnq_rows("heldout")]
    return [ex for ex in synthetic(passages, rng, per_passage=2) if ex.kind in ANSWER_LEVEL]
