"""The OpenAPI schema states the limits of the configuration the app was made with, and the statuses each route
answers with; the schema needs no running service, so the real app is asked without its lifespan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernel.settings import load_settings
from rag.api.app import create_app
from rag.api.schema import openapi_schema


def _schema(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    loaded = load_settings(data_dir=tmp_path, **settings)
    return openapi_schema(create_app(loaded), loaded)


def _prop(schema: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    prop = schema["components"]["schemas"][model]["properties"][field]
    return next((b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"), prop)


def test_the_schema_states_the_configured_limits(tmp_path: Path) -> None:
    schema = _schema(
        tmp_path,
        retrieval={"max_top_k": 17},
        answer={"max_question_chars": 321},
        scoring={"max_text_chars": 999, "max_contexts": 4, "evaluate_max_items": 3},
        ingestion={"max_files_per_request": 7},
    )
    assert _prop(schema, "SearchRequest", "top_k")["maximum"] == 17
    assert _prop(schema, "QueryRequest", "top_k")["maximum"] == 17
    assert _prop(schema, "QueryRequest", "question")["maxLength"] == 321
    assert _prop(schema, "ChatRequest", "message")["maxLength"] == 321
    assert _prop(schema, "QueryRequest", "generator")["enum"] == ["extractive"]  # no LLM configured
    assert _prop(schema, "EvaluateItem", "contexts")["maxItems"] == 4
    assert _prop(schema, "EvaluateItem", "contexts")["items"]["maxLength"] == 999
    assert _prop(schema, "EvaluateBatch", "items")["maxItems"] == 3
    upload = schema["paths"]["/v1/collections/{name}/documents"]["post"]["requestBody"]["content"]
    form = upload["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][form]["properties"]["files"]["maxItems"] == 7
    with_llm = _schema(tmp_path, llm={"base_url": "http://127.0.0.1:9/v1"})
    assert _prop(with_llm, "ChatRequest", "generator")["enum"] == ["extractive", "llm"]


def test_the_schema_states_formats_patterns_and_error_statuses(tmp_path: Path) -> None:
    schema = _schema(tmp_path)
    report = {p["name"]: p["schema"] for p in schema["paths"]["/v1/reports/groundedness"]["get"]["parameters"]}
    assert report["since"]["pattern"] == report["until"]["pattern"] and "\\d{4}" in report["since"]["pattern"]
    assert _prop(schema, "SearchRequest", "collections")["items"]["pattern"].startswith("^[a-z0-9]")
    name = schema["paths"]["/v1/collections/{name}"]["get"]["parameters"][0]["schema"]
    assert name["pattern"].startswith("^[a-z0-9]")
    statuses = {
        ("post", "/v1/collections"): {"201", "401", "403", "409", "413", "422", "429", "503"},
        ("post", "/v1/collections/{name}/documents"): {"202", "401", "403", "404", "413", "415", "422", "429"},
        ("post", "/v1/query"): {"200", "401", "403", "404", "413", "422", "429", "502", "503"},
        ("post", "/v1/evaluate"): {"200", "401", "403", "413", "422", "429", "503"},
        ("get", "/healthz"): {"200", "503"},
    }
    for (method, path), expected in statuses.items():
        responses = schema["paths"][path][method]["responses"]
        assert expected <= set(responses), (method, path, sorted(responses))
        for code in expected - {"200", "201", "202"}:
            if path != "/healthz":
                assert responses[code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "text/event-stream" in schema["paths"]["/v1/query"]["post"]["responses"]["200"]["content"]
    # With keys the key is required; in single-user mode it is optional (see test_api_hardening).
    assert schema["paths"]["/v1/search"]["post"]["security"] == [{"HTTPBearer": []}]
