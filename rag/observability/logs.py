"""Structured logs with the standard library: one JSON object a line, each with the request id and the trace id of
the work it belongs to (a request in the API, a job in the worker, which carries its request's id along).

What a line says is the message and its `extra` fields: ids, counts, outcomes. Questions and document text appear
only in the request line and only with `RAG_OBSERVABILITY__LOG_TEXT=true` (see middleware.py).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from kernel.settings import Settings
from rag.observability.context import current_request_id, current_trace

# The attributes every LogRecord has: anything else on a record came from `extra=` and goes into the line.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
_IDS = ("request_id", "trace_id", "span_id")


class ContextFilter(logging.Filter):
    """Stamps each record with the ids of the work in progress, when it is made (in that work's context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        if getattr(record, "trace_id", None) is None:
            record.trace_id, record.span_id = current_trace()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _IDS:
            line[key] = getattr(record, key, None)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(trace_id)s] %(message)s")


def log_handler(fmt: str = "json", stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings) -> None:
    """The root logger of a `rag` process (serve, api, worker): called by the entry points, never at import."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(log_handler(settings.observability.log_format))
    root.setLevel(settings.log_level.upper())
    # uvicorn's loggers write through the root handler; its access line is replaced by rag.access's.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
