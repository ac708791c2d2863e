"""Parameters several routes share, with the constraints the OpenAPI schema states and the server enforces."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from kernel.errors import InvalidInput
from kernel.types import COLLECTION_NAME_PATTERN

# A date (2026-11-27) or an ISO 8601 timestamp (2026-11-27T10:00, ...:00Z, ...:00.5+02:00); empty: no bound
# (what a form sends for an empty field). The server holds values to this shape before datetime.fromisoformat,
# which alone would also take forms the schema does not promise (20261127, 2026-W48).
TIME_PATTERN = r"^(|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?)$"
TIME_DESCRIPTION = "A date (2026-11-27) or an ISO 8601 timestamp (2026-11-27T10:00:00Z); without a zone: UTC."

CollectionName = Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN, description="A collection name.")]
CollectionInPath = Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN, description="A collection name.")]
# Ids are uuids or short hashes; the cap keeps a megabyte of path out of the database and the audit log.
Id = Annotated[str, Path(min_length=1, max_length=128)]


def time_bound(value: str | None, name: str, *, end: bool) -> datetime | None:
    """A date or an ISO timestamp as an aware UTC datetime (naive values are UTC). With `end`, a bare date means
    the end of that day (inclusive). InvalidInput for what is not one, or lies outside the years 1 to 9999."""
    if not value:
        return None
    try:
        if not re.fullmatch(TIME_PATTERN, value):
            raise ValueError(value)
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time.min, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
        # In UTC: SQLite drops the offset of a bound timestamp, PostgreSQL honours it.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{name}={value!r} is not a date (2026-11-27) or an ISO timestamp") from None
    except OverflowError:
        # 9999-12-31 as an inclusive end, or 0001-01-01T00:00+14:00, falls off the calendar Python can count.
        raise InvalidInput(f"{name}={value!r} is out of range (years 1 to 9999, in UTC)") from None


def time_range(
    since: str | None, until: str | None, *, inclusive_until: bool
) -> tuple[datetime | None, datetime | None]:
    start = time_bound(since, "since", end=False)
    stop = time_bound(until, "until", end=inclusive_until)
    if start and stop and start >= stop:
        raise InvalidInput("since must be before until")
    return start, stop


class ReportFilters(BaseModel):
    """The filters reports share (GET /v1/reports/groundedness, GET /v1/usage)."""

    collection: CollectionName | None = None
    # The pattern is for the schema; the server's own parser says what is wrong with a bad value.
    since: str | None = Field(
        default=None, description=f"Inclusive. {TIME_DESCRIPTION}", json_schema_extra={"pattern": TIME_PATTERN}
    )
    until: str | None = Field(
        default=None,
        description=f"A date: inclusive; a timestamp: exclusive. {TIME_DESCRIPTION}",
        json_schema_extra={"pattern": TIME_PATTERN},
    )
    prompt_version: str | None = Field(default=None, max_length=128)
    generator: str | None = Field(default=None, max_length=128, description="A generator name as stored.")
