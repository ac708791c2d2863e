"""Measure faithfulness scorers against labelled pairs: the support checker, the similarity method and a plain
word-overlap baseline side by side in one run: AUROC, balanced accuracy at a threshold chosen on training data and
applied to held-out data, the share of answers left without a score, and answers/s.

    .venv/bin/python -m evals.validate [--sets scifact,clapnq,synthetic] [--limit N]

Sets (from ../shared/data; the split is evals/shared_data.py's, the same the checker's training respects):
- SciFact: claims labelled SUPPORT or CONTRADICT against their abstract (a contradicted claim is unfaithful). The
  threshold is chosen on the claims of qrels/train.tsv (which the checker trained on); qrels/test.tsv claims and
  their abstracts were never trained on and are only reported.
- CLAP-NQ: for each answerable question, its gold answer against its own passage (faithful), the answer with a
  number, a name or a negation changed, and the answer against another question's passage (unfaithful). The
  threshold is chosen on the even rows (the checker's training half); the odd rows are held out and reported.
- synthetic: the checker's training recipe (evals/synthetic.py) applied to passages never used in training (a
  stable 10% of SciFact abstracts, none cited by a test claim, and the held-out CLAP-NQ passages). The threshold
  is chosen on its even pairs and reported on the odd ones.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from evals.claims import ClaimVerdict
from evals.shared_data import (
    clapnq_rows,
    heldout_examples,
    scifact_corpus,
    scifact_queries,
    scifact_split_ids,
)

Pair = tuple[str | None, str, list[str], int]  # question, answer, contexts, label (1 faithful)


def scifact_pairs(split: str | None = None) -> list[Pair]:
    """Claim against its cited abstract; `split` ("train" or "test") keeps the claims judged in that qrels file.
    The evidence sentence indices in the metadata are never given to the scorer: only the label is used."""
    corpus = scifact_corpus()
    keep = scifact_split_ids(split) if split else None
    pairs: list[Pair] = []
    for q in scifact_queries():
        if keep is not None and q["_id"] not in keep:
            continue
        for doc_id, evidence in (q.get("metadata") or {}).items():
            if doc_id in corpus and evidence:
                pairs.append((None, q["text"], [corpus[doc_id]], 1 if evidence[0]["label"] == "SUPPORT" else 0))
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


def clapnq_pairs(part: str = "heldout", seed: int = 13) -> list[Pair]:
    """Answerable CLAP-NQ questions of one half (`train`: even rows, `heldout`: odd rows, never trained on)."""
    rng = random.Random(seed)
    rows = []
    for r in clapnq_rows(part):
        answer = (r.get("output") or [{}])[0].get("answer")
        if r["answerable"] and answer:
            rows.append((r["input"], answer, r["passages"][0]["text"]))
    pairs: list[Pair] = []
    for i, (question, answer, passage) in enumerate(rows):
        pairs.append((question, answer, [passage], 1))
        changed = _perturb(answer, rng)
        if changed and changed != answer:
            pairs.append((question, changed, [passage], 0))
        other = rows[(i + 1 + rng.randrange(len(rows) - 1)) % len(rows)][2]
        pairs.append((question, answer, [other], 0))
    return pairs


def synthetic_pairs() -> list[Pair]:
    """The training recipe applied to passages never used in training (evals.shared_data.heldout_examples)."""
    return [(ex.question, ex.answer or "", [ex.passage], ex.label) for ex in heldout_examples()]


def auroc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def balanced_accuracy(scores: list[float], labels: list[int], t: float) -> float:
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if y == 1 and s >= t)
    tn = sum(1 for s, y in zip(scores, labels, strict=True) if y == 0 and s < t)
    return (tp / max(1, labels.count(1)) + tn / max(1, labels.count(0))) / 2


def word_overlap(question: str | None, answer: str, contexts: list[str]) -> float:
    words = set(re.findall(r"\w+", answer.lower()))
    ctx = set(re.findall(r"\w+", " ".join(contexts).lower()))
    return len(words & ctx) / max(1, len(words))


def share_supported(verdicts: list[ClaimVerdict]) -> float | None:
    """What the service stores as faithfulness: the ranking score above is validated beside it."""
    return sum(v.supported for v in verdicts) / len(verdicts) if verdicts else None


Item = tuple[str | None, str, list[str]]
BatchScorer = Callable[[list[Item]], list[float | None]]


def batched(scorer: Callable[[str | None, str, list[str]], float | None]) -> BatchScorer:
    return lambda items: [scorer(q, a, c) for q, a, c in items]


def best_threshold(scores: list[float], labels: list[int]) -> float:
    return max(sorted(set(scores)), key=lambda x: balanced_accuracy(scores, labels, x))


def timed_scores(pairs: list[Pair], scorer: BatchScorer) -> tuple[list[float], float, float]:
    """Scores (a null counts as 0.0: no evidence of support), answers/s, and the share of nulls."""
    started = time.perf_counter()
    raw = scorer([(q, a, c) for q, a, c, _ in pairs])
    per_s = len(pairs) / (time.perf_counter() - started)
    return [s or 0.0 for s in raw], per_s, sum(s is None for s in raw) / max(1, len(raw))


def evaluate(pairs: list[Pair], scorer: BatchScorer) -> dict[str, float]:
    """AUROC on all pairs; threshold chosen on the even pairs, balanced accuracy on the odd ones."""
    scores, per_s, nulls = timed_scores(pairs, scorer)
    labels = [y for *_, y in pairs]
    dev_s, dev_y, test_s, test_y = scores[0::2], labels[0::2], scores[1::2], labels[1::2]
    t = best_threshold(dev_s, dev_y)
    return {
        "auroc": auroc(scores, labels),
        "threshold": t,
        "bal_acc_heldout": balanced_accuracy(test_s, test_y, t),
        "per_s": per_s,
        "nulls": nulls,
    }


def evaluate_split(train: list[Pair], test: list[Pair], scorer: BatchScorer) -> dict[str, float]:
    """Threshold chosen on the train pairs only; the test pairs are scored with it and only reported."""
    scores, per_s, nulls = timed_scores(train + test, scorer)
    labels = [y for *_, y in train + test]
    tr_s, tr_y, te_s, te_y = scores[: len(train)], labels[: len(train)], scores[len(train) :], labels[len(train) :]
    t = best_threshold(tr_s, tr_y)
    return {
        "train_auroc": auroc(tr_s, tr_y),
        "train_bal_acc": balanced_accuracy(tr_s, tr_y, t),
        "threshold": t,
        "test_auroc": auroc(te_s, te_y),
        "test_bal_acc": balanced_accuracy(te_s, te_y, t),
        "per_s": per_s,
        "nulls": nulls,
    }


def scorers() -> list[tuple[str, BatchScorer]]:
    """The word-overlap baseline, the similarity method and the support checker, as batch scorers."""
    from evals.checked_claims import CheckedClaims, ranking_score
    from evals.checker import load_checker
    from evals.claims import ClaimItem
    from evals.faithfulness import OfflineFaithfulness
    from evals.offline import CombinedJudge
    from ingestion.embed import SentenceTransformerEmbedder

    similarity = OfflineFaithfulness(SentenceTransformerEmbedder(None))
    out: list[tuple[str, BatchScorer]] = [
        ("word-overlap baseline", batched(word_overlap)),
        ("similarity: ranking score", lambda items: similarity.score_many([(a, c) for _, a, c in items])),
        (
            "similarity: share supported",
            lambda items: [share_supported(v) for v in similarity.verdicts_many([(a, c) for _, a, c in items])],
        ),
    ]
    checker = load_checker()
    if checker is None:
        print("no support checker model (evals/models/checker): only the similarity method is measured")
        return out
    claims = CheckedClaims(checker)

    def judged(items: list[Item]) -> list[list[ClaimVerdict]]:
        return claims.judge_many([ClaimItem(q, a, c) for q, a, c in items])

    combined = CombinedJudge(similarity, claims)

    def combined_score(items: list[Item]) -> list[float | None]:
        """The service's default: similarity's ranking score for sentence answers, the checker's for the rest."""
        verdicts = combined.judge_many([ClaimItem(q, a, c) for q, a, c in items])
        return [ranking_score(v) if v and v[0].method == "checker" else similarity.aggregate(v) for v in verdicts]

    out += [
        ("checker: ranking score", lambda items: [ranking_score(v) for v in judged(items)]),
        ("checker: share supported", lambda items: [share_supported(v) for v in judged(items)]),
        ("combined: ranking score", combined_score),
        (
            "combined: share supported",
            lambda items: [share_supported(v) for v in combined.judge_many([ClaimItem(q, a, c) for q, a, c in items])],
        ),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="pairs per set (default: all)")
    parser.add_argument("--sets", default="scifact,clapnq,synthetic")
    parser.add_argument("--scorers", default="", help="only the scorers whose label contains this text")
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    candidates = [(label, fn) for label, fn in scorers() if args.scorers in label]
    for key in args.sets.split(","):
        if key == "scifact":
            train, test = (scifact_pairs(split)[: args.limit] for split in ("train", "test"))
            print(
                f"\nSciFact SUPPORT vs CONTRADICT: train {len(train)} pairs ({sum(p[-1] for p in train)} faithful),"
                f" test {len(test)} pairs ({sum(p[-1] for p in test)} faithful); threshold chosen on train"
            )
            report_split(train, test, candidates)
        elif key == "clapnq":
            train, test = (clapnq_pairs(part)[: args.limit] for part in ("train", "heldout"))
            print(
                f"\nCLAP-NQ: held-out questions (odd rows, never trained on): {len(test)} pairs"
                f" ({sum(p[-1] for p in test)} faithful); threshold chosen on the train half ({len(train)} pairs)"
            )
            report_split(train, test, candidates)
        elif key == "synthetic":
            pairs = synthetic_pairs()[: args.limit]
            print(
                f"\nSynthetic held-out (passages never trained on): {len(pairs)} pairs"
                f" ({sum(p[-1] for p in pairs)} faithful)"
            )
            for label, fn in candidates:
                m = evaluate(pairs, fn)
                print(
                    f"  {label:<28} AUROC {m['auroc']:.3f}  bal acc (held-out half) {m['bal_acc_heldout']:.3f}"
                    f"  null {m['nulls']:.0%}  {m['per_s']:.1f} answers/s"
                )
        else:
            raise SystemExit(f"unknown set {key!r}: scifact, clapnq or synthetic")


def report_split(train: list[Pair], test: list[Pair], candidates: list[tuple[str, BatchScorer]]) -> None:
    for label, fn in candidates:
        m = evaluate_split(train, test, fn)
        print(
            f"  {label:<28} train AUROC {m['train_auroc']:.3f} bal acc {m['train_bal_acc']:.3f}"
            f"  | test AUROC {m['test_auroc']:.3f} bal acc {m['test_bal_acc']:.3f}"
            f"  at t={m['threshold']:.3f}  null {m['nulls']:.0%}  {m['per_s']:.1f} answers/s"
        )


if __name__ == "__main__":
    main()
