"""Sentence vectors stored at ingestion: extractive answers read them instead of encoding their candidate sentences,
and come out the same as answers that encode them (documents indexed without them, or the setting off)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from kernel.protocols import Embedder
from rag.generation.extractive import ExtractiveGenerator
from rag.pipeline import to_contexts
from rag.prompts.registry import load_prompt
from rag.storage.sentence_vectors import SentenceVectorStore
from tests.support.service import RunningService, create_collection, import_records

GATE = Path(__file__).resolve().parents[1] / "data" / "gate"


class CountingEmbedder:
    """The real embedder, counting the texts each call encodes."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.texts = 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.texts += 1
        return self._inner.embed_query(text)


def _gate(name: str) -> list[dict]:
    with (GATE / name).open() as fh:
        return [json.loads(line) for line in fh]


async def test_answers_read_stored_sentence_vectors_and_stay_the_same(
    own_service: Callable[..., Awaitable[RunningService]],
) -> None:
    svc = await own_service({"cache": {"sentence_vectors": True}, "scoring": {"enabled": False}})
    client, services = svc.client, svc.services
    name = await create_collection(client, "gate")
    records = [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in _gate("documents.jsonl")]
    await import_records(client, name, records)

    store = SentenceVectorStore(services.catalog.engine)
    stored = CountingEmbedder(services.embedder)
    plain = CountingEmbedder(services.embedder)
    with_vectors = ExtractiveGenerator(stored, sentence_vectors=store)
    without = ExtractiveGenerator(plain)  # what an index without sentence vectors, or the setting off, gives
    prompt = load_prompt("grounded_answer")
    questions = [q["question"] for q in _gate("questions.jsonl")]
    for question in questions:
        contexts = to_contexts((await services.retriever.retrieve(question, [name])).hits[:5])
        a = await with_vectors.generate(question, contexts, prompt)
        b = await without.generate(question, contexts, prompt)
        assert a.text == b.text and a.text
        assert a.evidence is not None and b.evidence is not None and abs(a.evidence - b.evidence) < 1e-4
    # Stored: only the question is encoded. Without: the question and up to 24 sentences, every time.
    assert stored.texts == len(questions)
    assert plain.texts > 5 * len(questions)
