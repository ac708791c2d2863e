"""`rag ingest` against a running service: uploads a folder, follows the jobs, prints the summary."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import DOCS
from tests.support.service import ServiceProcess


@pytest.mark.slow
def test_rag_ingest_folder(tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    for name in ("fake-email.eml", "unstructured-readme.md", "password.pdf", "CantinaBand3.wav"):
        shutil.copy(DOCS / name, folder / name)
    svc = ServiceProcess(tmp_path / "data")
    svc.start()
    try:
        cmd = [sys.executable, "-m", "rag", "ingest", str(folder), "--collection", "cli", "--url", svc.url]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        out = run.stdout + run.stderr
        assert run.returncode == 1, out  # some files failed: the exit code says so
        assert "2 indexed" in out and "1 failed" in out and "1 rejected" in out, out
        assert "password-protected" in out and "415" in out, out
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert "2 unchanged" in again.stdout + again.stderr
        ask = subprocess.run(
            [
                sys.executable,
                "-m",
                "rag",
                "ask",
                "Which files does the sample docs directory contain?",
                "--collection",
                "cli",
                "--url",
                svc.url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ask.returncode == 0, ask.stderr
        # The readme says it in so many words ("The sample docs directory contains the following files:"): the
        # answer is taken from it and cites it, and only it.
        assert "abstained" not in ask.stdout, ask.stdout
        assert "sample docs directory contains" in ask.stdout, ask.stdout
        assert re.findall(r"^  \[\d+\] (\S+)", ask.stdout, re.MULTILINE) == ["unstructured-readme.md"], ask.stdout
        docs = httpx.get(svc.url + "/v1/collections/cli/documents").json()
        assert sorted(d["key"] for d in docs) == ["fake-email.eml", "password.pdf", "unstructured-readme.md"]
    finally:
        svc.stop()
