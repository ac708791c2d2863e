"""The observability settings: each one that can be wrong is refused with the variable to fix; switched off, the
service still answers (no /metrics, no trace id) and still gives every response a request id."""

from __future__ import annotations

import importlib.util
import io
import json
import logging

import pytest

from kernel.ops_settings import ObservabilitySettings
from kernel.settings import SettingsError, load_settings
from rag.observability.logs import log_handler
from rag.observability.tracing import Tracing
from tests.integration.test_answers import RECORDS
from tests.support.service import create_collection, import_records


@pytest.mark.parametrize(
    ("override", "variable", "hint"),
    [
        ({"otlp_endpoint": "grpc://127.0.0.1:4317"}, "RAG_OBSERVABILITY__OTLP_ENDPOINT", "http://"),
        ({"log_format": "xml"}, "RAG_OBSERVABILITY__LOG_FORMAT", "json"),
        ({"service_name": ""}, "RAG_OBSERVABILITY__SERVICE_NAME", "at least 1"),
    ],
)
def test_a_wrong_setting_names_its_variable(override: dict, variable: str, hint: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(observability=override)
    assert variable in str(caught.value) and hint in str(caught.value)


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter") is not None, reason="the `otlp` extra is installed here"
)
def test_an_otlp_endpoint_without_the_exporter_says_what_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"rag-service\[otlp\]"):
        Tracing(ObservabilitySettings(otlp_endpoint="http://127.0.0.1:4318/v1/traces"))


def test_by_default_spans_are_made_and_sent_nowhere() -> None:
    tracing = Tracing(ObservabilitySettings())
    assert tracing.provider is not None
    # The SDK's multi-processor holds the processors added; none is, so no span leaves the process.
    assert tracing.provider._active_span_processor._span_processors == ()
    tracing.shutdown()


async def test_switched_off_there_is_no_metrics_endpoint_nor_trace_id_but_still_a_request_id(own_service) -> None:
    running = await own_service({"observability": {"metrics": False, "tracing": False, "log_text": True}})
    client = running.client
    kb = await create_collection(client, "kb")
    await import_records(client, kb, RECORDS)
    resp = await client.get("/metrics")
    assert resp.status_code == 404 and "RAG_OBSERVABILITY__METRICS" in resp.json()["error"]

    stream = io.StringIO()
    handler, logger = log_handler("json", stream), logging.getLogger("rag.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        question = "When did the Golden Gate Bridge open?"
        answered = await client.post("/v1/query", json={"question": question, "collections": [kb]})
        sane = await client.get("/healthz", headers={"X-Request-Id": "client-chosen.id:1"})
        insane = await client.get("/healthz", headers={"X-Request-Id": "two words\t" + "x" * 100})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert answered.status_code == 200 and "X-Trace-Id" not in answered.headers
    assert len(answered.headers["X-Request-Id"]) == 32
    assert sane.headers["X-Request-Id"] == "client-chosen.id:1"
    assert insane.headers["X-Request-Id"] != "two words" and len(insane.headers["X-Request-Id"]) == 32
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    query_line = next(x for x in logged if x["route"] == "/v1/query")
    # log_text: the question is in the request's line, with its request id and no trace id (tracing is off).
    assert query_line["question"] == question and query_line["trace_id"] is None
    assert query_line["request_id"] == answered.headers["X-Request-Id"]
    assert (await client.get("/healthz")).json()["status"] == "ok"
