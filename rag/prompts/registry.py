"""Prompt templates kept in the repository, identified by id and versioned by the hash of their content."""

from __future__ import annotations

import hashlib
import re
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


def load_prompt(prompt_id: str, directory: Path = TEMPLATES) -> PromptTemplate:
    path = directory / f"{prompt_id}.toml"
    if not path.is_file() or not prompt_id.replace("_", "").isalnum():
        known = sorted(p.stem for p in directory.glob("*.toml"))
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
