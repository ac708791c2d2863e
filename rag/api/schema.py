"""The OpenAPI schema states the limits this configuration enforces, not only the ones fixed in code: a client, or
a fuzzer, can then tell a request the server will refuse from one it must accept."""

from __future__ import annotations

import copy
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from kernel.settings import Settings


class Health(BaseModel):
    status: Literal["ok", "degraded", "starting"]
    mode: str | None = Field(default=None, description="api-keys, or single-user while no key exists.")
    checks: dict[str, str] = Field(default_factory=dict, description="ok, or why a backend is unavailable.")


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema itself, or for an optional value (anyOf with null) its non-null branches."""
    if "anyOf" in prop:
        return [b for b in prop["anyOf"] if b.get("type") != "null"]
    return [prop]


def _constrain(schemas: dict[str, Any], model: str, field: str, **rules: Any) -> None:
    for branch in _branches(schemas[model]["properties"][field]):
        branch.update(rules)


def _upload_form(schema: dict[str, Any]) -> dict[str, Any]:
    """The upload's form model. The route streams its body, so it states the form inline (`openapi_extra`); it is
    moved into the components as `UploadForm`, a named model like those FastAPI makes for the other bodies."""
    content = schema["paths"]["/v1/collections/{name}/documents"]["post"]["requestBody"]["content"]
    form: dict[str, Any] = content["multipart/form-data"]["schema"]
    if "$ref" not in form:
        schema.setdefault("components", {}).setdefault("schemas", {})["UploadForm"] = form
        content["multipart/form-data"]["schema"] = {"$ref": "#/components/schemas/UploadForm"}
        return form
    ref: str = form["$ref"]
    return dict(schema["components"]["schemas"][ref.rsplit("/", 1)[1]])


def document_limits(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A copy of `schema` with the configured limits written into the request models."""
    schema = copy.deepcopy(schema)
    models = schema["components"]["schemas"]
    answering_top_k = min(50, settings.retrieval.max_top_k)
    _constrain(models, "SearchRequest", "top_k", maximum=settings.retrieval.max_top_k)
    generators = ["extractive", "llm"] if settings.has_llm else ["extractive"]
    question_chars = settings.answer.max_question_chars
    for model, text in (("QueryRequest", "question"), ("ChatRequest", "message")):
        _constrain(models, model, text, maxLength=question_chars)
        _constrain(models, model, "top_k", maximum=answering_top_k)
        _constrain(models, model, "generator", enum=generators)
    scoring = settings.scoring
    for field in ("question", "answer", "reference"):
        _constrain(models, "EvaluateItem", field, maxLength=scoring.max_text_chars)
    _constrain(models, "EvaluateItem", "contexts", maxItems=scoring.max_contexts)
    models["EvaluateItem"]["properties"]["contexts"]["items"]["maxLength"] = scoring.max_text_chars
    _constrain(models, "EvaluateBatch", "items", maxItems=scoring.evaluate_max_items)
    _constrain(models, "ReferenceIn", "reference", maxLength=scoring.max_text_chars)
    _upload_form(schema)["properties"]["files"]["maxItems"] = settings.ingestion.max_files_per_request
    return schema


def key_optional(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` in which every operation also accepts no key (`{}` among its security requirements):
    the truth in single-user mode, while no key exists."""
    schema = copy.deepcopy(schema)
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("security"):
                operation["security"].append({})
    return schema


def cookie_on_reads_only(schema: dict[str, Any]) -> dict[str, Any]:
    """The browser's key cookie is honoured on GET and HEAD only (rag/security.py): other operations do not list it."""
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            if method not in ("get", "head") and operation.get("security"):
                operation["security"] = [s for s in operation["security"] if "APIKeyCookie" not in s]
    return schema


def openapi_schema(app: FastAPI, settings: Settings, *, keyed: bool = True) -> dict[str, Any]:
    """The app's schema with its configured limits; `keyed=False`: as it is in single-user mode. Made once per app."""
    cache: dict[bool, dict[str, Any]] | None = getattr(app.state, "openapi_schemas", None)
    if cache is None:
        cache = app.state.openapi_schemas = {}
    if keyed not in cache:
        schema = cookie_on_reads_only(document_limits(app.openapi(), settings))
        cache[keyed] = schema if keyed else key_optional(schema)
    return cache[keyed]
