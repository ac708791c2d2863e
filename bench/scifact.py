"""SciFact data and IR metrics shared by the retrieval benchmarks."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def corpus() -> list[dict]:
    with (SCIFACT / "corpus.jsonl").open() as fh:
        return [json.loads(line) for line in fh]


def import_body(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps({"id": r["_id"], "title": r["title"], "text": r["text"]}) for r in rows).encode()


def queries() -> dict[str, str]:
    with (SCIFACT / "queries.jsonl").open() as fh:
        return {q["_id"]: q["text"] for q in map(json.loads, fh)}


def qrels(split: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with (SCIFACT / "qrels" / f"{split}.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            out[row["query-id"]][row["corpus-id"]] = int(row["score"])
    return dict(out)


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    hits = sum(1 for d in ranked[:k] if relevant.get(d, 0) > 0)
    return hits / max(1, sum(1 for g in relevant.values() if g > 0))


def evaluate(runs: dict[str, list[str]], judgments: dict[str, dict[str, int]]) -> dict[str, float]:
    ids = [q for q in judgments if q in runs]
    return {
        "ndcg@10": sum(ndcg_at(runs[q], judgments[q]) for q in ids) / len(ids),
        "recall@100": sum(recall_at(runs[q], judgments[q]) for q in ids) / len(ids),
        "queries": len(ids),
    }
