"""The filter a search runs with: which collections, and conditions on indexed payload fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

FieldType = Literal["keyword", "integer", "float", "datetime"]


class Condition(BaseModel):
    field: str
    type: FieldType
    eq: Any | None = None
    any: list[Any] | None = None
    gte: Any | None = None
    gt: Any | None = None
    lte: Any | None = None
    lt: Any | None = None


class FilterSpec(BaseModel):
    """What a search may see: these collections, active chunks only, and every condition."""

    collections: list[str]
    conditions: list[Condition] = []
    # The live generation of each collection (`rag reindex`); a collection left out is seen whole, as before
    # generations. Generation 0 includes chunks that carry no generation (indexed before generations existed).
    generations: dict[str, int] = {}
