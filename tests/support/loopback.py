"""What the test HTTP servers on loopback share: serving in a daemon thread, stopping, and sending a reply."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(
    handler: type[BaseHTTPRequestHandler], name: str, port: int = 0
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A server on 127.0.0.1 (a free port unless `port` is given), serving in a daemon thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    return httpd, thread


def shut(httpd: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(timeout=10)


def send(handler: BaseHTTPRequestHandler, status: int, kind: str, data: bytes) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
        pass
