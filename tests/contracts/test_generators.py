"""The Generator contract: one suite of test methods that every generator runs.

- ExtractiveGenerator with the bundled all-MiniLM-L6-v2 (the similarity method), and with the support checker;
- OpenAICompatibleGenerator against a real llama.cpp server on loopback (tests/llm_server.py, Gemma 3 270M).

Each concrete class supplies the `generator` fixture and states what its answers carry (`expected_name`, whether
usage is counted); the tests never ask which generator they have. Every implementation gets the real prompt
(rag/prompts/templates/grounded_answer.toml).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from kernel.llm import Endpoint
from kernel.protocols import Embedder
from kernel.types import Context, GeneratedAnswer, Usage
from rag.generation.base import Generator, Prompt
from rag.prompts.registry import load_prompt
from tests.llm_server import LlamaServer, llm_server  # noqa: F401  (the session fixture)

PROMPT: Prompt = load_prompt("grounded_answer")
QUESTION = "What is the capital of France?"


def context(n: int, text: str) -> Context:
    return Context(
        n=n, chunk_id=f"c{n}", document_id=f"d{n}", version=1, filename=f"doc{n}.txt", page=n, text=text, score=0.5
    )


CONTEXTS = [
    context(1, "Paris is the capital and most populous city of France. It lies on the river Seine."),
    context(2, "Bananas are yellow fruit that grow in tropical regions. They are rich in potassium."),
]
NAME = re.compile(r"^(extractive|openai:\S+)$")  # the form recorded with every answer (rag/generation/base.py)


async def collect(stream: AsyncIterator[str | GeneratedAnswer]) -> tuple[list[str | GeneratedAnswer], GeneratedAnswer]:
    items = [item async for item in stream]
    assert items, "the stream yielded nothing"
    final = items[-1]
    assert isinstance(final, GeneratedAnswer), f"the last item is not the final answer: {final!r}"
    return items, final


def assert_well_formed(answer: GeneratedAnswer, counts_usage: bool | None) -> None:
    """`counts_usage`: True, the tokens are counted; False, usage is zero; None, either (never half counted)."""
    assert isinstance(answer, GeneratedAnswer)
    assert isinstance(answer.text, str) and answer.model
    assert isinstance(answer.usage, Usage)
    counted = answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    if counts_usage is None:
        assert counted or answer.usage == Usage(), answer.usage
    else:
        assert counted if counts_usage else answer.usage == Usage(), answer.usage
    # Evidence and its method come together: one without the other could not be read against a threshold.
    assert (answer.evidence is None) == (answer.evidence_method is None), answer
    if answer.evidence_method == "checker":
        assert answer.evidence is not None and 0.0 <= answer.evidence <= 1.0


class GeneratorContract:
    """What every Generator does. Subclasses define `generator`, `expected_name` and `counts_usage`."""

    counts_usage: bool  # generate() reports the tokens it used
    stream_counts_usage: bool | None  # and so does the final answer of stream() (None: it depends on the server)

    @pytest.fixture
    def expected_name(self) -> str:
        raise NotImplementedError("a concrete generator class defines expected_name")

    @pytest.fixture
    async def generator(self) -> Generator:
        raise NotImplementedError("a concrete generator class defines generator")

    async def test_name_has_the_recorded_form(self, generator: Generator, expected_name: str) -> None:
        assert generator.name == expected_name
        assert NAME.match(generator.name), generator.name

    async def test_generate_returns_an_answer_with_text_and_usage(self, generator: Generator) -> None:
        answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
        assert_well_formed(answer, self.counts_usage)
        assert answer.text.strip(), answer

    async def test_stream_yields_deltas_then_exactly_one_final_answer(self, generator: Generator) -> None:
        items, final = await collect(generator.stream(QUESTION, CONTEXTS, PROMPT))
        deltas = items[:-1]
        assert deltas, "an answer with text was not streamed as deltas"
        assert all(isinstance(d, str) and d for d in deltas), deltas
        assert final.text == "".join(d for d in deltas if isinstance(d, str))
        assert_well_formed(final, self.stream_counts_usage)

    async def test_stream_and_generate_agree(self, generator: Generator) -> None:
        # Deterministic generators (the LLM runs at temperature 0): the same question gives the same answer.
        answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
        _, final = await collect(generator.stream(QUESTION, CONTEXTS, PROMPT))
        assert (final.text, final.model) == (answer.text, answer.model)
        assert (final.evidence, final.evidence_method) == (answer.evidence, answer.evidence_method)

    async def test_no_contexts_still_gives_a_well_formed_answer(self, generator: Generator) -> None:
        # The pipeline abstains before calling a generator without hits; a direct caller still gets an answer,
        # not an exception, and the stream keeps its shape.
        answer = await generator.generate(QUESTION, [], PROMPT)
        assert_well_formed(answer, self.counts_usage)
        items, final = await collect(generator.stream(QUESTION, [], PROMPT))
        assert all(isinstance(d, str) and d for d in items[:-1]), items
        assert final.text == "".join(d for d in items[:-1] if isinstance(d, str))


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    from ingestion.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(None)


class ExtractiveContract(GeneratorContract):
    """What the extractive generators add: the answer is made of context sentences, each with its citation."""

    counts_usage = False
    stream_counts_usage = False

    @pytest.fixture
    def expected_name(self) -> str:
        return "extractive"

    async def test_the_answer_quotes_the_best_sentence_with_its_citation(self, generator: Generator) -> None:
        answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
        assert answer.text.startswith("Paris is the capital and most populous city of France [1]."), answer.text
        assert set(re.findall(r"\[(\d+)\]", answer.text)) <= {"1", "2"}
        assert answer.model == "extractive:sentence-transformers/all-MiniLM-L6-v2"

    async def test_no_contexts_is_an_empty_answer_without_evidence(self, generator: Generator) -> None:
        answer = await generator.generate(QUESTION, [], PROMPT)
        assert (answer.text, answer.evidence) == ("", 0.0)
        items, _ = await collect(generator.stream(QUESTION, [], PROMPT))
        assert len(items) == 1  # no delta, only the final answer


class TestExtractiveBySimilarity(ExtractiveContract):
    @pytest.fixture
    async def generator(self, embedder: Embedder) -> Generator:
        from rag.generation.extractive import ExtractiveGenerator

        return ExtractiveGenerator(embedder)

    async def test_evidence_is_a_similarity(self, generator: Generator) -> None:
        answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
        assert answer.evidence_method == "similarity" and answer.evidence is not None and answer.evidence > 0.5


class TestExtractiveByChecker(ExtractiveContract):
    @pytest.fixture
    async def generator(self, embedder: Embedder) -> Generator:
        from evals.checker import load_checker
        from rag.generation.extractive import ExtractiveGenerator

        checker = load_checker()
        assert checker is not None, "the support checker is committed in evals/models/checker"
        return ExtractiveGenerator(embedder, checker=checker)

    async def test_evidence_is_the_checker_probability(self, generator: Generator) -> None:
        answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
        assert answer.evidence_method == "checker" and answer.evidence is not None and 0.0 <= answer.evidence <= 1.0
        # A probability that tracks the evidence (its level is the small model's: no fixed threshold here).
        unrelated = await generator.generate(QUESTION, CONTEXTS[1:], PROMPT)
        assert unrelated.evidence is not None and answer.evidence > unrelated.evidence + 0.2, (answer, unrelated)


MAX_TOKENS = 32  # a short answer keeps the CPU model quick; the contract does not need more


@pytest.mark.slow
class TestOpenAICompatibleOnLlamaCpp(GeneratorContract):
    counts_usage = True
    # llama-cpp-python's server (0.3.x) ignores stream_options.include_usage, other servers send it.
    stream_counts_usage = None

    @pytest.fixture
    def expected_name(self, llm_server: LlamaServer) -> str:  # noqa: F811
        return f"openai:{llm_server.model}"

    @pytest.fixture
    async def generator(self, llm_server: LlamaServer) -> AsyncIterator[Generator]:  # noqa: F811
        from rag.generation.openai_compat import OpenAICompatibleGenerator

        endpoint = Endpoint(
            llm_server.base_url, llm_server.model, timeout_seconds=300.0, max_retries=0, max_tokens=MAX_TOKENS
        )
        gen = OpenAICompatibleGenerator(endpoint)
        yield gen
        await gen.aclose()

    async def test_the_answer_is_the_model_s(self, generator: Generator, llm_server: LlamaServer) -> None:  # noqa: F811
        answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
        assert answer.model == llm_server.model
        assert answer.usage.completion_tokens <= MAX_TOKENS
