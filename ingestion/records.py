"""JSONL imports: text that is already extracted, one record per line."""

from __future__ import annotations

import json

from pydantic import ValidationError

from kernel.errors import InvalidInput
from kernel.text import lone_surrogate
from kernel.types import ImportRecord, ParsedElement


def parse_jsonl(body: bytes, max_errors: int = 5) -> list[ImportRecord]:
    """Every line must be a record; the first few bad lines are named so the owner can fix them."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the import body is not UTF-8 text: {exc}") from None
    records: list[ImportRecord] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            record = ImportRecord.model_validate(value)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: not JSON ({exc.msg})")
        except RecursionError:
            errors.append(f"line {lineno}: nested too deeply")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            errors.append(f"line {lineno}: {where}: {first['msg']}")
        else:
            # JSON can escape half a surrogate pair; no tokenizer, database or response can carry it.
            if (found := lone_surrogate(value)) is not None:
                where = ".".join(str(p) for p in found[0]) or "record"
                errors.append(f"line {lineno}: {where}: contains an unpaired UTF-16 surrogate ({found[1]}), not text")
            elif record.id in seen:
                errors.append(f"line {lineno}: id {record.id!r} already used on line {seen[record.id]}")
            elif not (record.title.strip() or record.text.strip()):
                errors.append(f"line {lineno}: record {record.id!r} has no text")
            else:
                seen[record.id] = lineno
                records.append(record)
        if len(errors) >= max_errors:
            break
    if errors:
        raise InvalidInput("the import has invalid records; nothing was imported:\n" + "\n".join(errors))
    if not records:
        raise InvalidInput('the import is empty: send JSONL lines like {"id": "...", "title": "...", "text": "..."}')
    return records


def record_elements(record: ImportRecord) -> list[ParsedElement]:
    title = record.title.strip() or None
    elements = []
    if title:
        elements.append(ParsedElement(text=title, type="Title", section=title))
    if record.text.strip():
        elements.append(ParsedElement(text=record.text, type="NarrativeText", section=title))
    return elements


def record_content(record: ImportRecord) -> bytes:
    """The bytes a record's version hash is computed over: what gets indexed, nothing else."""
    return json.dumps(
        {"title": record.title, "text": record.text, "metadata": record.metadata},
        sort_keys=True,
        ensure_ascii=False,
    ).encode()
