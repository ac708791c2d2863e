"""The generator boundary: question + numbered contexts + a versioned prompt in, an answer with [n] markers out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from kernel.types import Context, GeneratedAnswer


class Prompt(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def version(self) -> str: ...

    def system(self) -> str: ...

    def user(self, question: str, contexts: Sequence[Context]) -> str: ...


class Generator(Protocol):
    @property
    def name(self) -> str:
        """'extractive', 'openai:<model>' or 'gateway': recorded with every answer."""
        ...

    async def generate(self, question: str, contexts: Sequence[Context], prompt: Prompt) -> GeneratedAnswer: ...

    def stream(
        self, question: str, contexts: Sequence[Context], prompt: Prompt
    ) -> AsyncIterator[str | GeneratedAnswer]:
        """Yields text deltas, then exactly one final GeneratedAnswer (full text and usage)."""
        ...


@runtime_checkable
class Routed(Protocol):
    """A generator that picks how to answer by the question's collections and length (the model gateway)."""

    def route(self, collections: list[str], question: str) -> Generator: ...
