"""Original upload bytes, content-addressed by sha256 on the local (or a shared) file system."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from kernel.errors import NotFound


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self._root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Blocking. Writes once (same bytes, same file); the rename makes a half-written blob impossible."""
        digest = sha256_hex(data)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the stored original {digest[:12]}… is missing from {self._root}") from None

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)
