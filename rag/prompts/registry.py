"""Prompt templates kept in the repository, identified by id and versioned by the hash of their content."""

from __future__ import annotations

import hashlib
import re
import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import InvalidInput
from kernel.injection import FLAG
from kernel.types import Context

TEMPLATES = Path(__file__).parent / "templates"


# The tags a guarded prompt fences untrusted text with: inside the text they could close the fence early.
_FENCE_TAGS = re.compile(r"<\s*/?\s*(?:question|quoted)\s*>", re.IGNORECASE)


def defang(text: str) -> str:
    return _FENCE_TAGS.sub(lambda m: m.group().replace("<", "(").replace(">", ")"), text)


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: str
    system_text: str
    user_text: str
    source_text: str
    # Sources flagged as addressing the model ("injection"), quoted as data; None: shown like any other.
    quoted_text: str | None = None

    def system(self) -> str:
        return self.system_text

    def user(self, question: str, contexts: Sequence[Context]) -> str:
        fenced = self.quoted_text is not None
        sources = "\n\n".join(
            (self.quoted_text if self.quoted_text and FLAG in c.flags else self.source_text).format(
                n=c.n,
                filename=c.filename,
                location=f" (page {c.page})" if c.page else "",
                text=defang(c.text) if fenced else c.text,
            )
            for c in contexts
        )
        return self.user_text.format(sources=sources, question=defang(question) if fenced else question)


def _directories(directory: Path, extra: Path | None) -> list[Path]:
    return [directory] if extra is None else [directory, extra]


def load_prompt(prompt_id: str, directory: Path = TEMPLATES, *, extra: Path | None = None) -> PromptTemplate:
    """`extra`: the operator's own templates (RAG_PROMPTS__DIRECTORY), looked up after the shipped ones."""
    found = [d / f"{prompt_id}.toml" for d in _directories(directory, extra)]
    path = next((p for p in found if p.is_file()), None)
    if path is None or not prompt_id.replace("_", "").isalnum():
        known = sorted({p.stem for d in _directories(directory, extra) for p in d.glob("*.toml")})
        raise InvalidInput(f"unknown prompt {prompt_id!r}; available: {', '.join(known)}")
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode())
    return PromptTemplate(
        id=data["id"],
        version=hashlib.sha256(raw).hexdigest()[:12],
        system_text=data["system"],
        user_text=data["user"],
        source_text=data["source"],
        quoted_text=data.get("quoted_source"),
    )


@dataclass(frozen=True)
class PromptInfo:
    """What `GET /v1/prompts` shows of a template: never its text, which stays in the repository."""

    id: str
    version: str
    description: str
    variables: list[str]
    source: str  # "shipped" (rag/prompts/templates) or "directory" (RAG_PROMPTS__DIRECTORY)


def _description(raw: str, data: dict[str, object]) -> str:
    """The template's `description`, else the comment lines it starts with (they say what it is for)."""
    given = data.get("description")
    if isinstance(given, str) and given.strip():
        return " ".join(given.split())
    lines = []
    for line in raw.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(" ".join(lines).split())


def _variables(texts: Sequence[str | None]) -> list[str]:
    names = {field for text in texts if text for _, field, _, _ in string.Formatter().parse(text) if field}
    return sorted(names)


def list_prompts(directory: Path = TEMPLATES, *, extra: Path | None = None) -> list[PromptInfo]:
    """Every template, shipped ones first; a name in both places is the shipped one (as `load_prompt` finds it)."""
    out: dict[str, PromptInfo] = {}
    for where, source in zip(_directories(directory, extra), ("shipped", "directory"), strict=False):
        for path in sorted(where.glob("*.toml")):
            if path.stem in out or not path.stem.replace("_", "").isalnum():
                continue
            raw = path.read_bytes()
            data = tomllib.loads(raw.decode())
            texts = [data.get(k) for k in ("system", "user", "source", "quoted_source")]
            out[path.stem] = PromptInfo(
                id=path.stem,
                version=hashlib.sha256(raw).hexdigest()[:12],
                description=_description(raw.decode(), data),
                variables=_variables([t if isinstance(t, str) else None for t in texts]),
                source=source,
            )
    return list(out.values())
