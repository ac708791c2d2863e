"""Measure a faithfulness scorer against labelled pairs: AUROC, balanced accuracy at a threshold chosen on one
half and applied to the other, throughput, and a plain word-overlap baseline in the same run.

    .venv/bin/python -m evals.validate [--limit N]

Dev sets from ../shared/data:
- SciFact: claims labelled SUPPORT or CONTRADICT against their abstract (a contradicted claim is unfaithful).
- CLAP-NQ: gold answers against their own passage (faithful); the same answer with a number, a name or a negation
  changed, and the answer paired with another question's passage (unfaithful).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Pair = tuple[str, list[str], int]  # answer, contexts, label (1 faithful)


def scifact_pairs() -> list[Pair]:
    corpus = {}
    with (DATA / "scifact" / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            corpus[row["_id"]] = f"{row['title']}. {row['text']}"
    pairs = []
    with (DATA / "scifact" / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            for doc_id, evidence in (q.get("metadata") or {}).items():
                if doc_id in corpus and evidence:
                    pairs.append((q["text"], [corpus[doc_id]], 1 if evidence[0]["label"] == "SUPPORT" else 0))
    return pairs


_SWAP_NEG = [(" is ", " is not "), (" was ", " was not "), (" are ", " are not "), (" can ", " cannot ")]


def _perturb(answer: str, rng: random.Random) -> str | None:
    numbers = re.findall(r"\b\d+\b", answer)
    if numbers:
        n = rng.choice(numbers)
        return re.sub(rf"\b{n}\b", str(int(n) + rng.choice([1, 2, 3, 7, 10, 13])), answer, count=1)
    names = re.findall(r"(?<!^)\b[A-Z][a-z]{2,}\b", answer)
    if names:
        name = rng.choice(names)
        return answer.replace(name, rng.choice(["Smith", "Berlin", "Kowalski", "Nairobi", "Ramirez"]), 1)
    for a, b in _SWAP_NEG:
        if a in answer:
            return answer.replace(a, b, 1)
    return None


def clapnq_pairs(seed: int = 13) -> list[Pair]:
    rng = random.Random(seed)
    rows = []
    with (DATA / "clapnq" / "dev_answerable.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            answer = (r.get("output") or [{}])[0].get("answer")
            if answer:
                rows.append((answer, r["passages"][0]["text"]))
    pairs: list[Pair] = []
    for i, (answer, passage) in enumerate(rows):
        pairs.append((answer, [passage], 1))
        changed = _perturb(answer, rng)
        if changed and changed != answer:
            pairs.append((changed, [passage], 0))
        other = rows[(i + 1 + rng.randrange(len(rows) - 1)) % len(rows)][1]
        pairs.append((answer, [other], 0))
    return pairs


def auroc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def balanced_accuracy(scores: list[float], labels: list[int], t: float) -> float:
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if y == 1 and s >= t)
    tn = sum(1 for s, y in zip(scores, labels, strict=True) if y == 0 and s < t)
    return (tp / max(1, labels.count(1)) + tn / max(1, labels.count(0))) / 2


def word_overlap(answer: str, contexts: list[str]) -> float:
    words = set(re.findall(r"\w+", answer.lower()))
    ctx = set(re.findall(r"\w+", " ".join(contexts).lower()))
    return len(words & ctx) / max(1, len(words))


def evaluate(name: str, pairs: list[Pair], scorer: Callable[[str, list[str]], float | None]) -> dict[str, float]:
    started = time.perf_counter()
    scores = [scorer(a, c) or 0.0 for a, c, _ in pairs]
    elapsed = time.perf_counter() - started
    labels = [y for _, _, y in pairs]
    dev_s, dev_y, test_s, test_y = scores[0::2], labels[0::2], scores[1::2], labels[1::2]
    t = max(sorted(set(dev_s)), key=lambda x: balanced_accuracy(dev_s, dev_y, x))
    return {
        "auroc": auroc(scores, labels),
        "threshold": t,
        "bal_acc_heldout": balanced_accuracy(test_s, test_y, t),
        "per_s": len(pairs) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="pairs per set (default: all)")
    parser.add_argument("--sets", default="scifact,clapnq")
    args = parser.parse_args()
    from rag.privacy import enforce_offline

    enforce_offline()
    from evals.faithfulness import OfflineFaithfulness
    from ingestion.embed import SentenceTransformerEmbedder

    scorer = OfflineFaithfulness(SentenceTransformerEmbedder(None))
    sets = {"scifact": ("SciFact SUPPORT vs CONTRADICT", scifact_pairs), "clapnq": ("CLAP-NQ", clapnq_pairs)}
    for key in args.sets.split(","):
        set_name, load = sets[key]
        pairs = load()
        pairs = pairs[: args.limit] if args.limit else pairs
        print(f"\n{set_name}: {len(pairs)} pairs ({sum(y for *_, y in pairs)} faithful)")
        for label, fn in (("word-overlap baseline", word_overlap), ("offline scorer", scorer.score)):
            m = evaluate(label, pairs, fn)
            print(
                f"  {label:<22} AUROC {m['auroc']:.3f}  balanced acc (held-out half) {m['bal_acc_heldout']:.3f}"
                f"  at t={m['threshold']:.3f}  {m['per_s']:.0f} answers/s"
            )


if __name__ == "__main__":
    main()
