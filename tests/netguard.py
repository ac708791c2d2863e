"""Records every attempt of this process to reach a non-local address (connect or name lookup)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetGuard:
    def __init__(self) -> None:
        self.active = False
        self.attempts: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "socket.connect":
            sock, address = args[0], args[1]
            if getattr(sock, "family", None) == socket.AF_UNIX:
                return
            host = address[0] if isinstance(address, tuple) else address
            if not _is_local(host):
                self.attempts.append(f"connect {address!r}")
        elif event == "socket.getaddrinfo" and not _is_local(args[0]):
            self.attempts.append(f"lookup {args[0]!r}")

    @contextmanager
    def watch(self) -> Iterator[list[str]]:
        self.attempts = []
        self.active = True
        try:
            yield self.attempts
        finally:
            self.active = False
