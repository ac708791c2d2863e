"""The support checker at run time: the int8 ONNX cross-encoder in evals/models/checker, on onnxruntime.

`SupportChecker.predict(pairs)` gives, for each (a, b) pair made with `evals.checker_text.checker_text`, the
probability that window b supports a (or answers it). Blocking; callers run it in a thread. The model is loaded
by path like the embedding model; `load_checker()` returns None when the file is missing, and the service then
scores with the similarity method, marked as such.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evals.checker_text import checker_text

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent / "models" / "checker"
MAX_LENGTH = 256


class SupportChecker:
    def __init__(self, model_dir: Path, threads: int = 0, batch_size: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_dir / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        # Its own tokenizer: one shared with the embedder fails when two threads use it at once ("Already borrowed").
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_LENGTH, strategy="only_second")
        self._lock = threading.Lock()
        # One pair per run by default: the int8 model quantizes activations with a scale taken over the whole input,
        # so in a batch a pair's probability would depend on its neighbours and the padding (0.45 alone, 0.61 in a
        # pair, measured). Batches bought little here: 93 pairs/s at 8, 67 at 32; one pair per run was no slower in
        # a run of 300 pairs (tests/contracts/test_scorers.py checks batch == one by one).
        self._batch = batch_size
        # Named in the scorer version stored with every score; bump it with a retrained model.
        self.version = "1"

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities in input order. Pairs are batched by length so that little is padding."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = np.zeros(len(pairs), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), self._batch):
                idx = order[start : start + self._batch]
                out[idx] = self._run([pairs[i] for i in idx])
        return out

    def answers(self, question: str, passages: Sequence[str]) -> list[float]:
        """The answerability form: for each passage, the probability that it answers the question."""
        a = checker_text(question, None)
        return self.predict([(a, p) for p in passages]).tolist()

    def _run(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(pairs)
        width = max(len(e.ids) for e in encoded)
        feeds = {
            "input_ids": np.zeros((len(encoded), width), dtype=np.int64),
            "attention_mask": np.zeros((len(encoded), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encoded), width), dtype=np.int64),
        }
        for row, e in enumerate(encoded):
            n = len(e.ids)
            feeds["input_ids"][row, :n] = e.ids
            feeds["attention_mask"][row, :n] = 1
            feeds["token_type_ids"][row, :n] = e.type_ids
        (logits,) = self._session.run(["logits"], {k: v for k, v in feeds.items() if k in self._inputs})
        return 1.0 / (1.0 + np.exp(-logits[:, 0]))


def load_checker(model_dir: Path | None = None, threads: int = 0) -> SupportChecker | None:
    """The checker at `model_dir` (default: the one committed with the code), or None if its files are missing."""
    path = model_dir or MODEL_DIR
    if not (path / "model.onnx").is_file() or not (path / "tokenizer.json").is_file():
        log.warning("no support checker at %s: scoring falls back to the similarity method", path)
        return None
    return SupportChecker(path, threads)
