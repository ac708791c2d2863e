"""The support checker through the real service: short entity answers over the shared documents are scored (no
null for a one-word answer) and the right answer ranks above the wrong one; the extractive generator lets the
checker pick the sentence that answers; a missing model file falls back to the similarity method, marked.

tests/data/short_answers.jsonl was written for these tests, over documents the checker never trained on
(bench/checker_data.py keeps every shared document out of training).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import DOCS
from tests.support.polling import wait_job

if TYPE_CHECKING:
    from kernel.types import Context, GeneratedAnswer
    from rag.services import Services

SHORT_ANSWERS = Path(__file__).resolve().parents[1] / "data" / "short_answers.jsonl"


def _rows() -> list[dict]:
    return [json.loads(line) for line in SHORT_ANSWERS.read_text().splitlines() if line.strip()]


@pytest.fixture
async def shared_docs(client: httpx.AsyncClient, collection: str) -> str:
    names = sorted({r["doc"] for r in _rows()})
    files = [("files", (name, (DOCS / name).read_bytes())) for name in names]
    resp = await client.post(f"/v1/collections/{collection}/documents", files=files)
    assert resp.status_code == 202, resp.text
    for item in resp.json():
        assert (await wait_job(client, item["job_id"]))["status"] == "succeeded", item
    return collection


async def _contexts(client: httpx.AsyncClient, collection: str, question: str) -> list[str]:
    resp = await client.post("/v1/search", json={"query": question, "collections": [collection], "top_k": 5})
    assert resp.status_code == 200, resp.text
    return [h["text"] for h in resp.json()["hits"]]


async def test_short_answers_are_scored_and_right_ranks_above_wrong(client, services, shared_docs):
    assert services.checker is not None, "the committed checker model did not load"
    rows = _rows()
    items = []
    for r in rows:
        contexts = await _contexts(client, shared_docs, r["question"])
        items += [
            {"question": r["question"], "answer": r["right"], "contexts": contexts},
            {"question": r["question"], "answer": r["wrong"], "contexts": contexts},
        ]
    resp = await client.post("/v1/evaluate", json={"items": items})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert all("checker-" in res["scorer_version"] for res in results)
    # Every answer, one word or a date, is one claim with a value: no null.
    assert all(res["faithfulness"]["value"] is not None and len(res["claims"]) == 1 for res in results)
    right = [res["claims"][0]["probability"] for res in results[0::2]]
    wrong = [res["claims"][0]["probability"] for res in results[1::2]]
    pairs_won = sum(r > w for r, w in zip(right, wrong, strict=True))
    auroc = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong) / (len(right) * len(wrong))
    report = [(row["question"], round(r, 3), round(w, 3)) for row, r, w in zip(rows, right, wrong, strict=True)]
    # Measured with checker-1 (see the issue note): 14 of 16 questions rank the right answer above the wrong one,
    # 0.754 AUROC across all right/wrong answers. The two misses are a birthplace and a coach whose wrong answers
    # are names that also appear in the retrieved text.
    assert pairs_won >= len(rows) - 2, report
    assert auroc >= 0.7, report
    # The stored value (share of claims supported, at the 0.5 threshold) marks more right answers than wrong ones.
    supported_right = sum(res["faithfulness"]["value"] == 1.0 for res in results[0::2])
    supported_wrong = sum(res["faithfulness"]["value"] == 1.0 for res in results[1::2])
    assert supported_right > supported_wrong, report


async def test_claim_records_its_supporting_window(client, shared_docs):
    question = "When was Iwan Roberts born?"
    contexts = await _contexts(client, shared_docs, question)
    resp = await client.post(
        "/v1/evaluate", json={"question": question, "answer": "26 June 1968", "contexts": contexts}
    )
    claim = resp.json()["claims"][0]
    assert claim["supported"] is True, claim
    assert "1968" in claim["support"] and "1968" in contexts[claim["context"] - 1]
    assert claim["similarity"] is None and 0.5 <= claim["probability"] <= 1.0


MANUALS = [
    {
        "id": "python-faq",
        "title": "Programming FAQ",
        "text": "How can I sort one list by values from another list?\n"
        "Merge them into an iterator of tuples, sort the resulting list, and then pick out the element you want. "
        "The zip() function pairs up the elements of the two lists.\n"
        "How do I copy an object in Python?\n"
        "In general, try copy.copy() or copy.deepcopy() for the general case.",
    },
    {
        "id": "r-intro",
        "title": "An Introduction to R",
        "text": "Vectors and assignment\n"
        "R operates on named data structures. The simplest such structure is the numeric vector. "
        "Assignment is usually done with the operator <-, as in x <- 5, which assigns the value 5 to the variable x. "
        "The operator = can also be used at the top level. "
        "Assignments can also be made using the function assign().",
    },
]


def _manual_contexts() -> list[Context]:
    from kernel.types import Context

    return [
        Context(
            n=i,
            chunk_id=r["id"],
            document_id=r["id"],
            version=1,
            filename=r["id"],
            page=None,
            section=None,
            text=r["text"],
            score=1.0,
        )
        for i, r in enumerate(MANUALS, start=1)
    ]


async def _pick(services: Services, question: str) -> GeneratedAnswer:
    """The extractive generator with the checker picking sentences (RAG_CHECKER__ANSWER_SELECTION=true)."""
    from rag.generation.extractive import ExtractiveGenerator
    from rag.prompts.registry import load_prompt

    gen = ExtractiveGenerator(services.embedder, checker=services.checker)
    # Unused by the extractive generator, which quotes sentences instead of prompting a model.
    return await gen.generate(question, _manual_contexts(), prompt=load_prompt("grounded_answer"))


async def test_checker_selection_answers_a_plain_question_it_retrieved(services):
    out = await _pick(services, "How do you assign a value to a variable in R?")
    assert out.evidence >= services.settings.answer.min_answerable, out
    assert "<-" in out.text and "[2]" in out.text, out.text


async def test_a_missing_checker_file_falls_back_to_the_similarity_method(services, tmp_path):
    from evals.scores import ScoreInput
    from kernel.settings import load_settings
    from rag.services import make_checker, make_scorer

    settings = load_settings(data_dir=tmp_path, checker={"model": tmp_path / "no-such-model"})
    checker = make_checker(settings)
    assert checker is None
    scorer = make_scorer(settings, services.embedder, checker=checker)
    assert scorer.version.startswith("similarity-")
    scores = await scorer.score(
        ScoreInput(
            question="When did the bridge open?",
            answer="The bridge opened to traffic in 1937.",
            contexts=["The Golden Gate Bridge opened to traffic in 1937 after four years of work."],
        )
    )
    assert scores.scorer_version.startswith("similarity-") and scores.faithfulness.value == 1.0
    assert scores.claims[0].similarity is not None and scores.claims[0].probability is None
