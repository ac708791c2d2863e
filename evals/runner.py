"""`rag eval run DATASET.jsonl --collection NAME`: questions through the real pipeline of a running service, every
answer scored by the service's scorer, ID-based retrieval metrics where gold ids are given, JSON + HTML reports,
and a quality gate for CI.

Dataset lines: {"question": "...", "reference": "..." (optional), "gold_ids": ["doc key or id", ...] (optional),
"id": "..." (optional)}.
"""

from __future__ import annotations

import asyncio
import html
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evals.offline import average_precision
from evals.scores import METRICS

ID_METRICS = ("id_context_precision", "id_context_recall")


class EvalItem(BaseModel):
    # Lengths are the service's to limit (its settings): an item over them becomes an error row with the 422.
    question: str = Field(min_length=1)
    reference: str | None = Field(default=None, min_length=1)
    gold_ids: list[str] = Field(default_factory=list)
    id: str | None = None

    @field_validator("question", "reference")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("is blank")
        return v


class Gate(BaseModel):
    """Least acceptable means (and most acceptable abstention rate); None: not gated."""

    model_config = ConfigDict(extra="forbid")  # a misspelt threshold in a gate file must not pass silently

    faithfulness: float | None = None
    context_precision: float | None = None
    context_recall: float | None = None
    id_context_precision: float | None = None
    id_context_recall: float | None = None
    max_abstention_rate: float | None = None


class DatasetError(ValueError):
    """The dataset cannot be run; the message names the lines to fix."""


def load_dataset(path: Path, limit: int | None = None) -> list[EvalItem]:
    items: list[EvalItem] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read as UTF-8 JSONL: {exc}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(EvalItem.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            problems.append(f"line {n}: {where}: {first['msg']}")
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise DatasetError(f"{path}: {len(problems)} bad line(s): {shown}")
    if not items:
        raise DatasetError(f"{path} holds no questions")
    return items[:limit] if limit else items


def id_metrics(contexts: list[dict[str, Any]], gold_ids: list[str]) -> dict[str, float | None]:
    """A context is relevant when its document's key (file name or given id) or document id is a gold id."""
    if not gold_ids:
        return dict.fromkeys(ID_METRICS)
    gold = set(gold_ids)
    relevant = [c["filename"] in gold or c["document_id"] in gold for c in contexts]
    found = {c["filename"] for c in contexts} | {c["document_id"] for c in contexts}
    return {
        "id_context_precision": average_precision(relevant) if contexts else 0.0,
        "id_context_recall": len(gold & found) / len(gold),
    }


async def _wait_scored(client: httpx.AsyncClient, answer_id: str, timeout_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        resp = await client.get(f"/v1/answers/{answer_id}")
        resp.raise_for_status()
        data = resp.json()
        if data["scores"]["status"] in ("done", "not_scored") or loop.time() > deadline:
            return data
        await asyncio.sleep(0.2)


async def run_item(
    client: httpx.AsyncClient, item: EvalItem, collection: str, generator: str | None, timeout_s: float
) -> dict[str, Any]:
    """One question; a failure becomes an `error` row (the run goes on, and the gate counts it)."""
    try:
        return await _run_item(client, item, collection, generator, timeout_s)
    except httpx.HTTPError as exc:
        return {"id": item.id, "question": item.question, "error": f"{type(exc).__name__}: {exc}"}


async def _run_item(
    client: httpx.AsyncClient, item: EvalItem, collection: str, generator: str | None, timeout_s: float
) -> dict[str, Any]:
    resp = await client.post(
        "/v1/query", json={"question": item.question, "collections": [collection], "generator": generator}
    )
    if resp.status_code != 200:
        return {"id": item.id, "question": item.question, "error": f"{resp.status_code}: {resp.text[:300]}"}
    out = resp.json()
    if item.reference:
        ref = await client.post(f"/v1/answers/{out['answer_id']}/reference", json={"reference": item.reference})
        ref.raise_for_status()
    stored = await _wait_scored(client, out["answer_id"], timeout_s)
    scores = stored["scores"]
    return {
        "id": item.id,
        "question": item.question,
        "answer_id": out["answer_id"],
        "answer": out["answer"],
        "abstained": out["abstained"],
        "abstain_reason": out["abstain_reason"],
        "score_status": scores["status"],
        **{m: (scores.get(m) or {}).get("value") for m in METRICS},
        "null_reasons": {
            m: (scores.get(m) or {}).get("reason") for m in METRICS if (scores.get(m) or {}).get("reason")
        },
        "unsupported_claims": [c["claim"] for c in scores.get("claims", []) if c.get("supported") is False],
        **id_metrics(stored["contexts"], item.gold_ids),
    }


def summarize(rows: list[dict[str, Any]], gate: Gate) -> dict[str, Any]:
    answered = [r for r in rows if "error" not in r]
    means: dict[str, float | None] = {}
    for m in (*METRICS, *ID_METRICS):
        values = [r[m] for r in answered if r.get(m) is not None]
        means[m] = round(statistics.fmean(values), 4) if values else None
    abstention = round(sum(r["abstained"] for r in answered) / len(answered), 4) if answered else None
    failures = []
    for m, least in gate.model_dump(exclude={"max_abstention_rate"}).items():
        if least is not None and (means[m] is None or means[m] < least):
            failures.append(f"{m} mean {means[m]} < {least}")
    if gate.max_abstention_rate is not None and (abstention is None or abstention > gate.max_abstention_rate):
        failures.append(f"abstention rate {abstention} > {gate.max_abstention_rate}")
    errors = len(rows) - len(answered)
    if errors:
        failures.append(f"{errors} question(s) got an error")
    # A mean over the few answers that were scored would pass a gate it has not earned.
    unscored = sum(r["score_status"] != "done" for r in answered)
    if unscored:
        failures.append(f"{unscored} answer(s) were not scored in time")
    return {
        "count": len(rows),
        "errors": errors,
        "abstention_rate": abstention,
        "means": means,
        "gate": gate.model_dump(),
        "gate_failures": failures,
        "passed": not failures,
    }


@dataclass(frozen=True)
class RunOptions:
    generator: str | None = None  # the service's default when None
    concurrency: int = 4
    score_timeout_s: float = 600.0


async def run_eval(
    client: httpx.AsyncClient, items: list[EvalItem], collection: str, gate: Gate, options: RunOptions | None = None
) -> dict[str, Any]:
    opts = options or RunOptions()
    generator = opts.generator
    resp = await client.get(f"/v1/collections/{collection}")
    if resp.status_code != 200:
        raise DatasetError(f"collection {collection!r}: {resp.json().get('error', resp.text)}")
    limit = asyncio.Semaphore(opts.concurrency)

    async def one(item: EvalItem) -> dict[str, Any]:
        async with limit:
            return await run_item(client, item, collection, generator, opts.score_timeout_s)

    rows = await asyncio.gather(*(one(i) for i in items))
    return {"collection": collection, "generator": generator, "summary": summarize(rows, gate), "items": rows}


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def html_report(report: dict[str, Any]) -> str:
    s = report["summary"]
    verdict = "PASSED" if s["passed"] else "FAILED: " + "; ".join(s["gate_failures"])
    head = "".join(f"<th>{h}</th>" for h in ("question", "answer", *METRICS, *ID_METRICS, "unsupported claims"))
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(r['question'])}</td><td>{html.escape(r.get('answer') or r.get('error', ''))}</td>"
        + "".join(f"<td>{_fmt(r.get(m))}</td>" for m in (*METRICS, *ID_METRICS))
        + f"<td>{html.escape(' | '.join(r.get('unsupported_claims', [])))}</td></tr>"
        for r in report["items"]
    )
    means = "".join(f"<li>{m}: {_fmt(v)}</li>" for m, v in s["means"].items())
    return (
        "<!doctype html><meta charset=utf-8><title>Evaluation report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}</style>"
        f"<h1>Evaluation of {html.escape(report['collection'])}</h1><p><b>{html.escape(verdict)}</b></p>"
        f"<p>{s['count']} questions, abstention rate {_fmt(s['abstention_rate'])}</p><ul>{means}</ul>"
        f"<table><tr>{head}</tr>{body}</table>"
    )


def write_reports(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "eval-report.json", out_dir / "eval-report.html"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(html_report(report), encoding="utf-8")
    return json_path, html_path
