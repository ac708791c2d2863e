"""The parser process: `python -m ingestion.parse.child MEMORY_MB`, started and fed by `ingestion.parse.sandbox`.

Reads requests from stdin and writes replies to stdout, each a length-prefixed frame. Its memory is capped with
RLIMIT_DATA (heap and private mappings; libraries and pandoc's reserved address space do not count), inherited by
the pandoc processes it starts, so a hostile document ends in MemoryError or a killed parser, never in the
service being killed for memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import pickle
import resource
import signal
import socket
import sys
import traceback
from typing import Any

from ingestion.parse.sandbox import READY, read_frame, write_frame

_PR_SET_PDEATHSIG = 1


def main() -> None:
    memory = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    _die_with_parent()
    # Nothing in parsing needs the network; a document that makes a parser reach out (an external entity, a
    # remote stylesheet) gets an error instead of a connection.
    sys.addaudithook(refuse_network)
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    # Anything a library prints goes to the log, not into the replies.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from ingestion.parse import ensure_offline_nlp

    # Loaded now, so that a broken install shows at start and the first document does not pay for it.
    ensure_offline_nlp()
    write_frame(replies, READY)
    while (header := read_frame(requests)) is not None:
        request = pickle.loads(header)
        parts = []
        while piece := read_frame(requests):
            parts.append(piece)
        data = b"".join(parts)
        del parts
        reply = _parse(data, request)
        del data
        write_frame(replies, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


def _parse(data: bytes, request: dict[str, Any]) -> tuple[str, Any]:
    from ingestion.parse import parse_document
    from kernel.errors import DocumentError

    try:
        elements = parse_document(data, request["filename"], request["limits"])
    except DocumentError as exc:
        return "document", exc.message
    except MemoryError:
        return "memory", None
    except BaseException as exc:
        return "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return "ok", [(e.text, e.type, e.page, e.section) for e in elements]


def refuse_network(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: every connection or name lookup but to this machine raises PermissionError."""
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) == socket.AF_UNIX:
            return
        host = address[0] if isinstance(address, tuple) else address
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in (None, "", "localhost"):
        return
    try:
        if ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback:
            return
    except ValueError:
        pass
    raise PermissionError(f"the parser process does not reach the network (tried {host!r})")


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the service dies, even by SIGKILL, so no parser is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit(0)  # the parent died before the line above


if __name__ == "__main__":
    main()
