"""The model gateway's settings (kernel/gateway_settings.py): what is refused at start, with the setting named."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.settings import SettingsError, load_settings


def endpoint(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": base_url, "model": "m", **extra}


@pytest.mark.parametrize(
    ("gateway_settings", "message"),
    [
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1")}, "routes": [{"chain": ["b"]}]}, "unknown endpoint 'b'"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1")}, "chain": ["a", "z"]}, "unknown endpoint 'z'"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1")}, "chain": ["llm"]}, "set RAG_LLM__BASE_URL"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1")}, "chain": []}, "RAG_GATEWAY__CHAIN is empty"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1")}, "routes": [{"chain": []}]}, "empty chain"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1", timeout_seconds=-1)}}, "TIMEOUT_SECONDS"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1", timeout_seconds=0)}}, "greater than 0"),
        ({"endpoints": {"a": endpoint("127.0.0.1:1/v1")}}, "http:// or https://"),
        ({"endpoints": {"extractive": endpoint("http://127.0.0.1:1/v1")}}, "reserved"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1", modle="x")}}, "MODLE: Extra inputs"),
        ({"chain": ["a"]}, "without endpoints"),
        ({"endpoints": {"a": endpoint("http://127.0.0.1:1/v1")}, "breaker_threshold": 0}, "BREAKER_THRESHOLD"),
    ],
)
def test_bad_gateway_settings_are_refused_at_start(gateway_settings: dict[str, Any], message: str):
    with pytest.raises(SettingsError, match=message):
        load_settings(gateway=gateway_settings)


def test_bad_gateway_settings_from_the_environment_name_the_variable(monkeypatch):
    monkeypatch.setenv("RAG_GATEWAY__ENDPOINTS__FAST__BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("RAG_GATEWAY__ENDPOINTS__FAST__TIMEOUT_SECONDS", "-3")
    with pytest.raises(SettingsError, match="RAG_GATEWAY__ENDPOINTS__FAST__TIMEOUT_SECONDS"):
        load_settings()
    monkeypatch.setenv("RAG_GATEWAY__ENDPOINTS__FAST__TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("RAG_GATEWAY__ROUTES", '[{"collections": ["legal"], "chain": ["slow"]}]')
    with pytest.raises(SettingsError, match="unknown endpoint 'slow'"):
        load_settings()
    monkeypatch.setenv("RAG_GATEWAY__ROUTES", '[{"collections": ["legal"], "chain": ["fast"]}]')
    assert load_settings().gateway.routes[0].chain == ["fast"]
