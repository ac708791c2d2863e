"""The embedder shared by chunking (token counts) and embedding, used from several threads at once.

Ingestion counts tokens in a worker thread while queries and documents are embedded in others. The HF fast
tokenizer is one shared Rust object whose padding and truncation are set before each encode: counting used to
switch them off while another thread was about to encode with them on (and the other way round). Depending on the
tokenizers version that fails with "RuntimeError: Already borrowed", or, as with the versions installed here, with
"Unable to create tensor ... activate truncation and/or padding", a wrong embedding, or a count of 256 (the
model's window) for a text of any length.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ingestion.embed import SentenceTransformerEmbedder

# Longer than the model's 256-token window: a count taken while embedding's truncation is switched on comes back
# as 256 instead of the true length, so a wrong count shows up as a wrong number, not only as an exception.
LONG = " ".join(["The suspension bridge opened to traffic in 1937 after four years of construction work."] * 30)
TO_COUNT = [LONG, "Sourdough bread is leavened by wild yeast.", "Short."]
# Of different lengths: embedding pads them to the longest; with padding switched off underneath, it fails.
DOCUMENTS = ["The Eiffel Tower is a wrought-iron lattice tower in Paris completed in 1889.", "It is 330 metres tall."]
QUERY = "When did the Golden Gate Bridge open?"
ROUNDS = 100


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(None)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    # The unsafe window is the few Python lines between setting the tokenizer up and encoding. With the default
    # 5 ms switch interval another thread seldom runs inside it; switching every 10 us makes the old code fail
    # dozens of times per run, so a pass means the race is gone, not that it was lucky.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_counting_and_embedding_from_many_threads_at_once(embedder: SentenceTransformerEmbedder) -> None:
    counts = embedder.count_tokens(TO_COUNT)
    assert counts[0] > embedder.max_tokens  # otherwise a truncated count could not be told from a right one
    documents = np.array(embedder.embed_documents(DOCUMENTS))
    query = np.array(embedder.embed_query(QUERY))
    # Every thread starts together, and counting goes on for as long as embedding does (chunking a large
    # document while queries come in): each embedding round overlaps some counting.
    start = threading.Barrier(4)
    embedding_done = threading.Event()

    def count() -> int:
        start.wait()
        rounds = 0
        while not embedding_done.is_set():
            assert embedder.count_tokens(TO_COUNT) == counts
            rounds += 1
        return rounds

    def embed_documents() -> None:
        start.wait()
        for _ in range(ROUNDS):
            np.testing.assert_allclose(embedder.embed_documents(DOCUMENTS), documents, atol=1e-5)

    def embed_query() -> None:
        start.wait()
        for _ in range(ROUNDS):
            np.testing.assert_allclose(embedder.embed_query(QUERY), query, atol=1e-5)

    # The futures re-raise what failed in their thread: "Already borrowed", a wrong count, a wrong vector.
    with ThreadPoolExecutor(max_workers=4) as pool:
        counters = [pool.submit(count), pool.submit(count)]
        embedders = [pool.submit(embed_documents), pool.submit(embed_query)]
        try:
            for future in embedders:
                future.result()
        finally:
            embedding_done.set()
        assert all(future.result() > 0 for future in counters)
