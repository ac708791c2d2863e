"""Original upload bytes, content-addressed by sha256 on the local (or a shared) file system.

Uploads and imports are written as they arrive (`writer()`): into a temporary file next to the blobs, hashed on
the way, and given their content address only when the request has been accepted (`BlobWriter.commit`). A
rejected or broken request discards its temporary files, so it leaves no blob and no partial file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from kernel.errors import NotFound

# Temporary files older than this are left over from a process that died mid-request; swept at start.
_STALE_SECONDS = 24 * 3600
_INCOMING = "incoming"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobWriter:
    """One blob being received. Blocking methods: call them in a thread."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        incoming = store.root / _INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming, prefix=".tmp-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after commit or discard"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> str:
        """Flush to disk; the content digest. The blob is not visible under it until `commit`."""
        if self.digest is None:
            assert self._file is not None
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self.digest = self._hash.hexdigest()
        return self.digest

    def commit(self) -> bool:
        """Move the blob to its content address; True if this created it (the same bytes may be stored already)."""
        digest = self.finish()
        path = self._store.path(digest)
        if path.exists():
            self._tmp.unlink(missing_ok=True)
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, path)
        return True

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def writer(self) -> BlobWriter:
        """Blocking. A new blob, written piece by piece."""
        return BlobWriter(self)

    def put(self, data: bytes) -> str:
        """Blocking. Writes once (same bytes, same file); the rename makes a half-written blob impossible."""
        writer = self.writer()
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.discard()
            raise
        return writer.finish()

    def get(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def open(self, digest: str) -> BinaryIO:
        """Blocking. The blob for reading as a stream; the caller closes it."""
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"the stored original {digest[:12]}… is missing from {self.root}") from None

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def sweep_incoming(self) -> int:
        """Blocking. Delete temporary files a process that died mid-request left; returns how many."""
        incoming = self.root / _INCOMING
        if not incoming.is_dir():
            return 0
        cutoff = time.time() - _STALE_SECONDS
        swept = 0
        for tmp in incoming.glob(".tmp-*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    swept += 1
            except FileNotFoundError:
                pass
        return swept
