"""User filters on payload and metadata: validated against the indexed fields, then translated by each store.

The API takes a JSON object, one entry per field, ANDed:
    {"filename": "a.pdf"}                              equality
    {"kind": {"any": ["pdf", "docx"]}}                 any of
    {"page": {"gte": 2, "lt": 10}}                     numeric range
    {"metadata.published": {"gte": "2024-01-01"}}      date range (ISO 8601)
Only indexed fields can be filtered: the built-in ones below and the metadata fields a collection declares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from kernel.errors import InvalidInput
from kernel.filters import Condition, FieldType, FilterSpec

BUILTIN_FIELDS: dict[str, FieldType] = {
    "filename": "keyword",
    "kind": "keyword",
    "document_id": "keyword",
    "page": "integer",
    "created_at": "datetime",
}
RANGE_OPS = ("gte", "gt", "lte", "lt")


_INT64 = 2**63


Clause = tuple[str, Literal["eq", "any", "range", "datetime", "live"], Any]
# The payload field of a chunk's generation (`rag reindex`).
GENERATION_FIELD = "generation"


def spec_clauses(spec: FilterSpec) -> list[Clause]:
    """The store-neutral form of a FilterSpec: (field, kind, value) clauses, all required. Each store maps the
    four kinds to its own condition classes."""
    clauses: list[Clause] = [("collection", "any", spec.collections), ("state", "eq", "active")]
    if spec.generations:
        # "live": one of these (collection, generation) pairs; None: the collection whole. Generation 0 is "no
        # generation above 0", so that chunks indexed before generations existed (no field) stay visible.
        live = [(name, spec.generations.get(name)) for name in spec.collections]
        clauses.append((GENERATION_FIELD, "live", live))
    for cond in spec.conditions:
        if cond.eq is not None:
            clauses.append((cond.field, "eq", cond.eq))
        if cond.any is not None:
            clauses.append((cond.field, "any", cond.any))
        bounds = {op: getattr(cond, op) for op in RANGE_OPS if getattr(cond, op) is not None}
        if bounds:
            clauses.append((cond.field, "datetime" if cond.type == "datetime" else "range", bounds))
    return clauses


def _coerce(field: str, type_: FieldType, value: Any) -> Any:
    """One Python type per field type, so that every store accepts what validation let through."""
    if type_ == "keyword":
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidInput(f"filter {field!r}: expected a string, got {value!r}")
        return str(value)
    if type_ in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"filter {field!r}: expected a number, got {value!r}")
        if type_ == "float":
            return float(value)
        if isinstance(value, float) and not value.is_integer():
            raise InvalidInput(f"filter {field!r}: expected a whole number, got {value!r}")
        if not -_INT64 <= int(value) < _INT64:
            raise InvalidInput(f"filter {field!r}: {value!r} is out of range")
        return int(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise InvalidInput(f"filter {field!r}: expected an ISO 8601 date, got {value!r}") from None


def parse_filters(raw: dict[str, Any] | None, allowed: dict[str, FieldType]) -> list[Condition]:
    conditions: list[Condition] = []
    for field, spec in (raw or {}).items():
        type_ = allowed.get(field)
        if type_ is None:
            raise InvalidInput(
                f"cannot filter on {field!r}: it is not an indexed field. Filterable: {', '.join(sorted(allowed))} "
                "(declare metadata fields in the collection's `filterable` map)"
            )
        if not isinstance(spec, dict):
            spec = {"eq": spec}
        unknown = set(spec) - {"eq", "any", *RANGE_OPS}
        if unknown or not spec:
            raise InvalidInput(
                f"filter {field!r}: unknown operator(s) {sorted(unknown) or '(none given)'}; "
                "use eq, any, gte, gt, lte or lt"
            )
        cond = Condition(field=field, type=type_)
        if "eq" in spec:
            value = _coerce(field, type_, spec["eq"])
            if type_ in ("float", "datetime"):
                # Stores match these by range only; equality is the closed range [v, v].
                cond.gte = cond.lte = value
            else:
                cond.eq = value
        if "any" in spec:
            values = spec["any"]
            if not isinstance(values, list) or not values:
                raise InvalidInput(f"filter {field!r}: 'any' takes a non-empty list")
            if type_ not in ("keyword", "integer"):
                raise InvalidInput(f"filter {field!r}: 'any' works on keyword and integer fields")
            cond.any = [_coerce(field, type_, v) for v in values]
        ranges = {op: spec[op] for op in RANGE_OPS if op in spec}
        if ranges and type_ == "keyword":
            raise InvalidInput(f"filter {field!r}: ranges work on numbers and dates, not on keywords")
        for op, value in ranges.items():
            setattr(cond, op, _coerce(field, type_, value))
        conditions.append(cond)
    return conditions
