from __future__ import annotations

import pytest

from kernel.settings import SettingsError, load_settings


def test_nested_env_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_INGESTION__MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("RAG_DATABASE__URL", "postgresql://u@db:5432/rag")
    s = load_settings()
    assert s.ingestion.max_upload_bytes == 1234
    assert s.database_url == "postgresql+asyncpg://u@db:5432/rag"
    assert s.redis.url is None and s.qdrant.url is None


def test_embedded_database_lives_in_the_data_dir(tmp_path):
    s = load_settings(data_dir=tmp_path)
    assert s.database_url.startswith("sqlite+aiosqlite:///") and str(tmp_path) in s.database_url


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("RAG_CHUNKING__OVERLAP_TOKENS", "200", "overlap_tokens must be at most half"),
        ("RAG_REDIS__URL", "http://localhost", "RAG_REDIS__URL"),
        ("RAG_PORT", "70000", "RAG_PORT"),
        ("RAG_INGESTION__MAX_UPLOAD_BYTES", "lots", "RAG_INGESTION__MAX_UPLOAD_BYTES"),
        ("RAG_SCORING__JUDGE_BASE_URL", "localhost:8080", "RAG_SCORING__JUDGE_BASE_URL"),
        ("RAG_SCORING__LOW_FAITHFULNESS", "1.5", "RAG_SCORING__LOW_FAITHFULNESS"),
        ("RAG_SCORING__EVALUATE_MAX_ITEMS", "0", "RAG_SCORING__EVALUATE_MAX_ITEMS"),
        ("RAG_LIMITS__RATE", "lots", "'lots' is not a rate such as '1200/minute'"),
        ("RAG_LIMITS__RATE", "0/minute", "allows no request at all; use 'off'"),
        ("RAG_LIMITS__RATE", "10/fortnight", "RAG_LIMITS__RATE"),
        ("RAG_LIMITS__STORAGE", "disk", "RAG_LIMITS__STORAGE"),
        ("RAG_LIMITS__EVALUATE_CONCURRENCY", "0", "RAG_LIMITS__EVALUATE_CONCURRENCY"),
        ("RAG_LIMITS__EVALUATE_WAIT_SECONDS", "-1", "RAG_LIMITS__EVALUATE_WAIT_SECONDS"),
        ("RAG_LIMITS__MAX_JSON_BYTES", "10", "RAG_LIMITS__MAX_JSON_BYTES"),
    ],
)
def test_invalid_settings_name_the_variable(monkeypatch, env, value, expected):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"), [("off", None), ("", None), ("20/second; 1200/minute", "20/second; 1200/minute")]
)
def test_rate_limit_notation(monkeypatch, value, expected):
    monkeypatch.setenv("RAG_LIMITS__RATE", value)
    assert load_settings().limits.rate == expected


def test_limits_default_to_a_safety_net_counted_in_the_process():
    limits = load_settings().limits
    assert (limits.rate, limits.storage, limits.evaluate_concurrency) == ("1200/minute", "memory", 1)


def test_cli_exits_2_with_a_readable_message(monkeypatch, capsys):
    from typer.testing import CliRunner

    from rag.cli import app

    result = CliRunner().invoke(app, ["serve"], env={"RAG_PORT": "not-a-port"})
    assert result.exit_code == 2
    assert "RAG_PORT" in result.output
