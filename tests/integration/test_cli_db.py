"""`rag db current` / `rag db upgrade`: what an operator runs before starting a release with auto-upgrade off."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from rag.storage import migrate
from tests.conftest import REPO
from tests.support import legacy_schema as legacy


def rag(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ.update(RAG_DATA_DIR=str(data_dir), **env)
    cmd = [sys.executable, "-m", "rag", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=environ, cwd=REPO)


def rag_db(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return rag("db", *args, data_dir=data_dir, **env)


async def create_legacy(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(legacy.metadata.create_all)
    await engine.dispose()


def test_a_database_of_the_previous_release_is_shown_then_upgraded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(create_legacy(f"sqlite+aiosqlite:///{data / 'rag.db'}"))
    head = asyncio.run(migrate.status(f"sqlite+aiosqlite:///{data / 'rag.db'}")).head

    # The operator chose to migrate as a separate step: the service does not start, and says what to run.
    refused = rag("serve", "--port", "1", data_dir=data, RAG_DATABASE__AUTO_UPGRADE="false")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "before schema migrations" in refused.stderr and "Run `rag db upgrade`" in refused.stderr
    assert "Traceback" not in refused.stderr

    current = rag_db("current", data_dir=data)
    assert current.returncode == 1, current.stderr
    assert "created before schema migrations" in current.stdout and f"needs revision {head}" in current.stdout
    assert "`rag db upgrade`" in current.stderr

    upgrade = rag_db("upgrade", data_dir=data)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"upgraded from (no revision) to {head}" in upgrade.stdout

    again = rag_db("upgrade", data_dir=data)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    current = rag_db("current", data_dir=data)
    assert current.returncode == 0 and "up to date" in current.stdout, current.stdout + current.stderr


def test_an_empty_data_directory_gets_its_database(tmp_path: Path) -> None:
    data = tmp_path / "fresh"  # not created yet: `rag db upgrade` makes it, like the service does
    upgrade = rag_db("upgrade", data_dir=data)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "upgraded from (no revision)" in upgrade.stdout and (data / "rag.db").exists()


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    down = rag_db("current", data_dir=tmp_path, RAG_DATABASE__URL="postgresql://postgres@127.0.0.1:1/nowhere")
    assert down.returncode == 2
    assert down.stderr.startswith("cannot use the database (RAG_DATABASE__URL)") and "Traceback" not in down.stderr
