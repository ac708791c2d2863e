"""Each `pii` policy end to end on the real service: upload, then search hits, answers (whole and streamed),
citations, the stored and the returned answer record, and the report CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from itertools import count

import httpx
import pytest

from kernel.types import Context, GeneratedAnswer
from tests.support.polling import wait_job, wait_scored

DOC = (
    "The Orion help desk is run by Jane Okafor. "
    "To reach the Orion help desk, write to jane.okafor@example.com or call +44 20 7946 0958. "
    "Refunds from the Orion help desk are paid to GB29 NWBK 6016 1331 9268 19. "
    "The Orion test card is 4111 1111 1111 1111; the look-alike 4111 1111 1111 1112 fails its checksum.\n"
)
RAW = ["Jane Okafor", "jane.okafor@example.com", "7946 0958", "GB29 NWBK", "4111 1111 1111 1111"]
PLACEHOLDERS = ["<PERSON>", "<EMAIL>", "<PHONE>", "<IBAN>", "<CARD>"]
DECOY = "4111 1111 1111 1112"  # fails Luhn: never redacted, under any policy
QUESTION = "How do I reach the Orion help desk?"
ASKED = "How do I reach Jane Okafor at the Orion help desk?"  # a question with a name: records and reports show it
POLICIES = ("allow", "redact_answers", "redact_ingest")
_names = count()


def shows_raw(text: str) -> bool:
    return any(v in text for v in RAW)


def redacted(text: str) -> bool:
    return not shows_raw(text) and any(p in text for p in PLACEHOLDERS)


@pytest.fixture(scope="module")
async def collections(client: httpx.AsyncClient) -> dict[str, str]:
    """One collection per policy, each with the same uploaded document."""
    names = {}
    for policy in POLICIES:
        name = f"pii-{policy.replace('_', '-')}-{next(_names)}"
        resp = await client.post("/v1/collections", json={"name": name, "policy": {"pii": policy}})
        assert resp.status_code == 201, resp.text
        assert resp.json()["policy"]["pii"] == policy
        up = await client.post(f"/v1/collections/{name}/documents", files={"files": ("helpdesk.txt", DOC.encode())})
        assert up.status_code == 202, up.text
        assert (await wait_job(client, up.json()[0]["job_id"]))["status"] == "succeeded"
        names[policy] = name
    return names


async def _search(client: httpx.AsyncClient, collection: str) -> str:
    resp = await client.post("/v1/search", json={"query": QUESTION, "collections": [collection], "top_k": 1})
    assert resp.status_code == 200, resp.text
    return resp.json()["hits"][0]["text"]


async def test_search_hits_follow_the_policy(client, collections) -> None:
    hits = {policy: await _search(client, name) for policy, name in collections.items()}
    assert all(v in hits["allow"] for v in RAW)
    for policy in ("redact_answers", "redact_ingest"):
        assert redacted(hits[policy]) and all(p in hits[policy] for p in PLACEHOLDERS), hits[policy]
    assert all(DECOY in hit for hit in hits.values())


async def _ask(client: httpx.AsyncClient, collection: str) -> dict:
    body = {"question": ASKED, "collections": [collection], "generator": "extractive"}
    resp = await client.post("/v1/query", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert not out["abstained"] and out["citations"], out
    return out


async def test_answers_records_and_reports_follow_the_policy(client, services, collections) -> None:
    for policy, name in collections.items():
        out = await _ask(client, name)
        comment = {"rating": "down", "comment": "Wrong: Jane Okafor moved, mail jane.okafor@example.com instead."}
        assert (await client.post(f"/v1/answers/{out['answer_id']}/feedback", json=comment)).status_code == 201
        record = await client.get(f"/v1/answers/{out['answer_id']}")
        assert record.status_code == 200, record.text
        shown = [out["answer"], *(c["snippet"] for c in out["citations"])]
        shown += [record.json()["answer"], *(c["text"] for c in record.json()["contexts"])]
        shown += [c["snippet"] for c in record.json()["citations"]]
        report = await client.get("/v1/reports/groundedness", params={"collection": name, "format": "csv"})
        assert report.status_code == 200, report.text
        exported = [row["answer"] for row in csv.DictReader(io.StringIO(report.text))]
        assert out["answer"] in exported
        worst = await _worst_answer(client, name, out["answer_id"])
        shown += [worst["answer"], *exported, *worst["feedback"]["comments"], record.json()["feedback"][0]["comment"]]
        claims = [c["claim"] for c in worst["unsupported_claims"]]
        stored = await services.answers.get(out["answer_id"])
        if policy == "allow":
            assert all(shows_raw(text) for text in shown)
            continue
        assert all(redacted(text) for text in shown), (policy, shown)
        questions = [record.json()["question"], worst["question"]]
        assert questions == ["How do I reach <PERSON> at the Orion help desk?"] * 2
        assert not any(shows_raw(text) for text in claims)
        # The same redaction everywhere: the answer sent is the answer the record and the reports show.
        assert out["answer"] == record.json()["answer"] == worst["answer"] and out["answer"] in exported
        # redact_answers keeps the index and the stored record as they are (the scorer judges the real text);
        # redact_ingest never stored the personal data at all.
        contexts = " ".join(c["text"] for c in stored.contexts)
        assert shows_raw(contexts) == (policy == "redact_answers") and shows_raw(stored.answer) == shows_raw(contexts)


async def _worst_answer(client: httpx.AsyncClient, collection: str, answer_id: str) -> dict:
    """The answer as the JSON report lists it, once the worker has scored it (the report lists scored answers)."""
    await wait_scored(client, answer_id)
    params: dict[str, str | int] = {"collection": collection, "worst": 500}
    report = await client.get("/v1/reports/groundedness", params=params)
    assert report.status_code == 200, report.text
    return next(a for a in report.json()["worst_answers"] if a["answer_id"] == answer_id)


async def _stream(client: httpx.AsyncClient, collection: str, generator: str) -> tuple[list[str], dict]:
    body = {"question": QUESTION, "collections": [collection], "generator": generator, "stream": True}
    tokens: list[str] = []
    done: dict = {}
    event = None
    async with client.stream("POST", "/v1/query", json=body) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert event != "error", data
                tokens += [data["text"]] if event == "token" else []
                done = data if event == "done" else done
    return tokens, done


class ScriptedLLM:
    """Stands in for an LLM endpoint (as in test_stream_citations): streams a fixed answer whose personal data is
    split across deltas, the case a redactor that looked at one delta at a time would let through."""

    name = "llm"
    PIECES = ("Ask Jane", " Oka", "for [1]. Write to jane.oka", "for@example", ".com or call +44 20 ", "7946 0958 [1].")

    async def generate(self, question: str, contexts: Sequence[Context], prompt: object) -> GeneratedAnswer:
        return GeneratedAnswer(text="".join(self.PIECES), model="scripted")

    async def stream(self, question: str, contexts: Sequence[Context], prompt: object) -> AsyncIterator:
        for piece in self.PIECES:
            yield piece
        yield await self.generate(question, contexts, prompt)


async def test_streamed_answers_never_show_what_the_policy_hides(client, services, collections, monkeypatch) -> None:
    monkeypatch.setitem(services.generators, "llm", ScriptedLLM())
    for policy, name in collections.items():
        for generator in ("extractive", "llm"):
            tokens, done = await _stream(client, name, generator)
            assert tokens and not done["abstained"], (policy, generator, done)
            # What was shown is the final answer, up to the whitespace the final cleaning tidies.
            assert " ".join("".join(tokens).split()) == " ".join(done["answer"].split())
            if policy == "allow":
                assert shows_raw(done["answer"])
                continue
            # No delta shows a fragment either: "Oka" alone is a piece of a name.
            assert not any(shows_raw(t) or "Oka" in t or "7946" in t for t in tokens), (policy, tokens)
            assert redacted(done["answer"])
    llm_tokens, done = await _stream(client, collections["redact_answers"], "llm")
    assert done["answer"] == "Ask <PERSON> [1]. Write to <EMAIL> or call <PHONE> [1]."
    assert llm_tokens == ["Ask <PERSON> [1]. ", "Write to <EMAIL> or call <PHONE> [1]."]


async def test_bad_input_stays_a_clear_4xx(client, collections) -> None:
    bad_policy = await client.post("/v1/collections", json={"name": "pii-bad", "policy": {"pii": "hide"}})
    assert bad_policy.status_code == 422 and "pii" in bad_policy.text
    name = collections["redact_answers"]
    for body, status in (
        ({"question": " ", "collections": [name]}, 422),
        ({"question": QUESTION, "collections": [name, "no-such-collection"]}, 404),
        ({"question": QUESTION, "collections": [name], "stream": True, "generator": "nope"}, 422),
    ):
        resp = await client.post("/v1/query", json=body)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]
