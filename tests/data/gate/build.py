"""Rebuilds the quality gate's fixed dataset (documents.jsonl, questions.jsonl) from the shared CLAP-NQ data.

Only the training half (even row numbers, as evals/shared_data.py splits it): the first answerable questions with a
gold answer, their gold passages, and the distractor passages of the first unanswerable rows as noise. Committed, so
the gate does not depend on the shared data at test time:  python tests/data/gate/build.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS, NOISE = 12, 6


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data"

    def train_rows(name: str) -> list[dict]:
        with (shared / "clapnq" / f"{name}.jsonl").open() as fh:
            return [json.loads(line) for i, line in enumerate(fh) if i % 2 == 0]

    documents, questions = [], []
    for row in train_rows("dev_answerable"):
        answer = next((o["answer"] for o in row["output"] if o["answer"].strip()), None)
        if answer is None or len(row["passages"][0]["text"]) > 2500:
            continue
        key = f"clapnq-{row['id']}"
        passage = row["passages"][0]
        documents.append({"id": key, "title": passage["title"], "text": passage["text"].strip()})
        questions.append({"id": row["id"], "question": row["input"], "reference": answer, "gold_ids": [key]})
        if len(questions) == QUESTIONS:
            break
    for row in train_rows("dev_unanswerable")[:NOISE]:
        passage = row["passages"][0]
        documents.append({"id": f"clapnq-{row['id']}", "title": passage["title"], "text": passage["text"].strip()})
    for name, rows in (("documents.jsonl", documents), ("questions.jsonl", questions)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(documents)} documents, {len(questions)} questions")


if __name__ == "__main__":
    main()
