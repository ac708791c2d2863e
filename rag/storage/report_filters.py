"""The report's filters in SQL, one definition for the groundedness report's rows and /v1/usage's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kernel.records import ReportQuery
from rag.storage.schema import answer_collections, answers


def report_filters(select: sa.Select[Any], query: ReportQuery, at: sa.ColumnElement[datetime]) -> sa.Select[Any]:
    """`query`'s grants, dates, prompt version and generator on a select over answers (the collection is the caller's
    join); `at` is the date the window applies to."""
    if query.grants is not None:
        # Every collection the answer drew on must be granted: one forbidden collection hides the answer. An alias of
        # its own: when the outer query joins answer_collections too, a subquery correlated with that join had no
        # FROM left (a 500 for an analyst who filtered by collection).
        other = answer_collections.alias("other_collections")
        forbidden = sa.select(other.c.answer_id).where(
            other.c.answer_id == answers.c.id, other.c.collection.not_in(sorted(query.grants))
        )
        select = select.where(~sa.exists(forbidden))
    if query.since is not None:
        select = select.where(at >= query.since)
    if query.until is not None:
        select = select.where(at < query.until)
    if query.prompt_version:
        select = select.where(answers.c.prompt_version == query.prompt_version)
    if query.generator:
        select = select.where(answers.c.generator == query.generator)
    return select
