"""The settings of split mode on one machine: the store owner's URL, the job lease, and what `rag worker` asks for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kernel.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RAG_QDRANT__STORE_URL": "127.0.0.1:8001"}, "RAG_QDRANT__STORE_URL"),
        (
            {"RAG_QDRANT__STORE_URL": "http://127.0.0.1:8001", "RAG_QDRANT__URL": "http://qdrant:6333"},
            "not both",
        ),
        ({"RAG_INGESTION__JOB_LEASE_SECONDS": "1"}, "RAG_INGESTION__JOB_LEASE_SECONDS"),
    ],
)
def test_wrong_store_settings_are_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=expected):
        load_settings()


def test_a_store_url_chooses_the_remote_store(tmp_path) -> None:
    from rag.services import make_store
    from retrieval.stores.qdrant_edge import QdrantEdgeStore
    from retrieval.stores.remote import RemoteStore

    assert isinstance(make_store(load_settings(data_dir=tmp_path)), QdrantEdgeStore)
    remote = load_settings(data_dir=tmp_path, qdrant={"store_url": "http://127.0.0.1:8001"})
    assert isinstance(make_store(remote), RemoteStore)


def test_a_split_process_without_a_shared_store_names_both_ways(tmp_path) -> None:
    from rag.cli import app

    env = {
        "RAG_DATA_DIR": str(tmp_path),
        "RAG_REDIS__URL": "redis://127.0.0.1:6379/0",
        "RAG_DATABASE__URL": "postgresql://postgres@127.0.0.1:5432/test",
    }
    for command in ("worker", "api"):
        result = CliRunner().invoke(app, [command], env=env)
        assert result.exit_code == 2
        assert "RAG_QDRANT__URL or RAG_QDRANT__STORE_URL" in result.output
        assert "rag store" in result.output
