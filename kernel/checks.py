"""Validators shared by the settings modules."""

from __future__ import annotations


def http_url(v: str | None) -> str | None:
    if v is not None and not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8080/v1")
    return v
