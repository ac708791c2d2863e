"""What a collection's `pii` policy does to what leaves the service.

`allow` changes nothing. `redact_answers` keeps the index and the stored answer records as they are (the scorer
needs the real answer and contexts to judge it) and redacts on the way out: answers, whole and streamed,
citation snippets, search hits, the answer record of GET /v1/answers/{id}, and the reports (JSON and CSV).
`redact_ingest` redacts the chunks before they are indexed (ingestion/index.py) and, on top, everything on the way
out as above, because a generator can still write personal data the question or its own knowledge brings in.

An answer is redacted sentence by sentence, the same way whether it is sent whole or streamed: a stream holds
each sentence until it is complete, redacts it and sends it, so no delta ever shows a name before the name is
known to be one, and the streamed words are the words of the final answer (see `StreamRedactor`).
An answer drawn from several collections is redacted when any of them asks for it; a stored answer whose
collection no longer exists is redacted too (its policy cannot be read, so the safe reading is taken).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from kernel.errors import NotFound
from kernel.ports import PolicyReader
from kernel.protocols import Redactor
from kernel.records import ReportRow

if TYPE_CHECKING:
    from kernel.types import Context
    from rag.pipeline import AnswerOut

SNIPPET_CHARS = 300

# A sentence ends at ".", "!" or "?" followed by one whitespace character, or at a line end. Not after a single
# capital or a two-letter title ("J. Smith", "Dr. Okafor", "Mrs. Liu"): the name after it must stay in the same
# sentence to be recognised as one. The rule looks at most four characters back, so a stream can apply it to
# what it holds and cut exactly where the whole text would be cut.
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])(?<!\b[A-Z][a-z])(?<!\bMrs)(?<!\bProf)[.!?]\s|\n")
_PARTIAL_PLACEHOLDER = re.compile(r"<[A-Z_]*$")


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence end; the pieces join back to `text`."""
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def snippet(text: str) -> str:
    """The start of a context as a citation shows it. Cut after redaction, so a cut never splits personal data
    (a half e-mail address would not be recognised); a placeholder the cut splits is left out."""
    cut = text[:SNIPPET_CHARS]
    if len(text) > SNIPPET_CHARS and (m := _PARTIAL_PLACEHOLDER.search(cut)):
        cut = cut[: m.start()]
    return cut


async def needs_redaction(reader: PolicyReader, collections: Iterable[str]) -> bool:
    """Whether any of these collections redacts; a collection that no longer exists counts as redacting."""
    for name in dict.fromkeys(collections):
        try:
            policy = (await reader.policies([name]))[name]
        except NotFound:
            return True
        if policy.pii != "allow":
            return True
    return False


class _Batch:
    """Text fields of plain dicts to redact in one call (one spaCy batch), written back in place."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._writes: list[tuple[dict[str, Any], str, int, int]] = []

    def add(self, obj: dict[str, Any], key: str, *, by_sentence: bool = False) -> None:
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            return
        pieces = sentences(value) if by_sentence else [value]
        self._writes.append((obj, key, len(self._texts), len(pieces)))
        self._texts.extend(pieces)

    async def run(self, redactor: Redactor) -> None:
        if not self._texts:
            return
        out = await asyncio.to_thread(redactor.redact_many, self._texts)
        for obj, key, start, n in self._writes:
            obj[key] = "".join(out[start : start + n])


async def redact_answer(redactor: Redactor, out: AnswerOut, contexts: Sequence[Context]) -> AnswerOut:
    """The answer as it is sent: its text, its citations' snippets and the standalone question, redacted."""
    data = out.model_dump()
    texts = {c.n: {"text": c.text} for c in contexts}
    batch = _Batch()
    batch.add(data, "answer", by_sentence=True)
    batch.add(data, "standalone_question")
    cited = {c["n"] for c in data["citations"]}
    for n in cited & texts.keys():
        batch.add(texts[n], "text")
    await batch.run(redactor)
    for c in data["citations"]:
        c["snippet"] = snippet(texts[c["n"]]["text"]) if c["n"] in texts else ""
    return type(out).model_validate(data)


class StreamRedactor:
    """Redacts a stream of text deltas: holds each sentence until it ends, then sends it redacted.

    A name or a phone number split across deltas ("Jane" + " Okafor") cannot be recognised from either half, and
    what was sent cannot be taken back, so nothing is sent before its sentence is complete. Sentences are cut by
    `sentences`, the rule the final answer is redacted with, so the stream and the stored answer's redacted text
    agree. The cost is latency: a sentence arrives whole instead of word by word."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pending = ""

    async def feed(self, delta: str) -> str:
        self._pending += delta
        ends = list(_SENTENCE_END.finditer(self._pending))
        if not ends:
            return ""
        head, self._pending = self._pending[: ends[-1].end()], self._pending[ends[-1].end() :]
        return await self._redact(head)

    async def finish(self) -> str:
        rest, self._pending = self._pending, ""
        return await self._redact(rest) if rest else ""

    async def _redact(self, text: str) -> str:
        return "".join(await asyncio.to_thread(self._redactor.redact_many, sentences(text)))


async def redact_record(redactor: Redactor, data: dict[str, Any]) -> dict[str, Any]:
    """A stored answer as GET /v1/answers/{id} shows it (the dict of its record, scores and feedback)."""
    data = copy.deepcopy(data)
    batch = _Batch()
    batch.add(data, "answer", by_sentence=True)
    for key in ("question", "standalone_question"):
        batch.add(data, key)
    for ctx in data.get("contexts") or []:
        batch.add(ctx, "text")
    scores = data.get("scores") or {}
    batch.add(scores, "reference")
    for claim in scores.get("claims") or []:
        batch.add(claim, "claim")
        batch.add(claim, "support")
    for item in data.get("feedback") or []:
        batch.add(item, "comment")
    await batch.run(redactor)
    by_n = {c.get("n"): c.get("text") or "" for c in data.get("contexts") or []}
    for c in data.get("citations") or []:
        c["snippet"] = snippet(by_n.get(c.get("n"), ""))
    return data


async def redact_report(reader: PolicyReader, redactor: Redactor, report: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: only its worst answers carry text (questions, answers, claims, feedback comments)."""
    report = copy.deepcopy(report)
    batch = _Batch()
    comments: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for item in report.get("worst_answers") or []:
        if not await needs_redaction(reader, item.get("collections") or []):
            continue
        batch.add(item, "answer", by_sentence=True)
        batch.add(item, "question")
        for claim in item.get("unsupported_claims") or []:
            batch.add(claim, "claim")
            batch.add(claim, "support")
        feedback = item.get("feedback") or {}
        holders = [{"comment": c} for c in feedback.get("comments") or []]
        for holder in holders:
            batch.add(holder, "comment")
        comments.append((feedback, holders))
    await batch.run(redactor)
    for feedback, holders in comments:
        feedback["comments"] = [h["comment"] for h in holders]
    return report


async def redact_rows(reader: PolicyReader, redactor: Redactor, rows: Sequence[ReportRow]) -> list[ReportRow]:
    """Report rows for the CSV export: question, answer and claim texts of every row whose collections redact."""
    cache: dict[tuple[str, ...], bool] = {}
    staged: list[tuple[ReportRow, dict[str, Any], list[dict[str, Any]]]] = []
    batch = _Batch()
    for row in rows:
        key = tuple(row.collections)
        if key not in cache:
            cache[key] = await needs_redaction(reader, key)
        if not cache[key]:
            staged.append((row, {}, []))
            continue
        fields = {"question": row.question, "answer": row.answer}
        batch.add(fields, "answer", by_sentence=True)
        batch.add(fields, "question")
        claims = copy.deepcopy(((row.score.result if row.score else None) or {}).get("claims") or [])
        for claim in claims:
            batch.add(claim, "claim")
            batch.add(claim, "support")
        staged.append((row, fields, claims))
    await batch.run(redactor)
    out = []
    for row, fields, claims in staged:
        if not fields:
            out.append(row)
            continue
        score = row.score
        if score is not None and score.result is not None:
            score = dataclasses.replace(score, result={**score.result, "claims": claims})
        out.append(dataclasses.replace(row, question=fields["question"], answer=fields["answer"], score=score))
    return out
