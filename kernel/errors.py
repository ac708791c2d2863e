"""Errors that cross module boundaries.

Each carries the HTTP status it maps to and a message written for the person who has to act on it.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: `status` is the HTTP status the API answers with."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RagError):
    status = 404


def collection_not_found(name: str) -> NotFound:
    """The one message for a collection that does not exist and for one the caller may not see: the two must not
    be told apart."""
    return NotFound(f"collection {name!r} does not exist")


class Unauthorized(RagError):
    """No key, or a key that is unknown, revoked or expired."""

    status = 401


class Forbidden(RagError):
    """A known key whose role does not allow the request."""

    status = 403


class TooManyRequests(RagError):
    status = 429


class Conflict(RagError):
    status = 409


class InvalidInput(RagError):
    status = 422


class PayloadTooLarge(RagError):
    status = 413


class UnsupportedMediaType(RagError):
    status = 415


class DocumentError(RagError):
    """A document that can never be ingested as it is (corrupt, encrypted, empty, no text).

    Raised by the worker pipeline; the job fails at once, without retry, with `message` as the reason.
    """

    status = 422


class TransientError(RagError):
    """A dependency (vector store, queue, database) is unavailable; the job is retried with backoff."""

    status = 503
