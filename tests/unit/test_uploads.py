from __future__ import annotations

import pytest

from rag.api.uploads import sanitize_filename


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        (".hidden.md", "hidden.md"),
        ("a\x00b\x1f.txt", "ab.txt"),
        ("", "upload"),
        ("..", "upload"),
        ("report <final>.pdf", "report _final_.pdf"),
    ],
)
def test_sanitize_filename(raw, expected):
    assert sanitize_filename(raw) == expected


def test_long_names_keep_their_extension():
    name = sanitize_filename("x" * 500 + ".docx")
    assert len(name) <= 200 and name.endswith(".docx")
