"""What of an LLM's stream may be shown before its citations are checked (used by rag.pipeline.answer_stream)."""

from __future__ import annotations

import re

from kernel.text import CITATION_MARKER, marker_numbers
from kernel.types import Context

_OPEN_MARKER = re.compile(r"\[[\d,\s\u2013-]*$")


class CitationGate:
    """What of an LLM's stream may be shown: nothing until the text holds a valid citation marker, then everything,
    with each marker cleaned once it is complete (markers pointing to no context are dropped).

    The final check turns an answer without a valid citation into an abstention, so tokens sent before the first
    valid citation could be taken back; holding them until then means no token shown is ever retracted (the
    first sentence arrives whole instead of word by word, the rest streams). A replacement event would show
    words and then take them back, and OpenAI-compatible clients have no such event."""

    def __init__(self, contexts: list[Context]) -> None:
        self._contexts = contexts
        self._valid = {c.n for c in contexts}
        self._pending = ""
        self.opened = False

    def _clean(self, text: str) -> str:
        def keep(match: re.Match[str]) -> str:
            nums = marker_numbers(match.group(1))
            if any(n in self._valid for n in nums):
                self.opened = True
            return "".join(f"[{n}]" for n in nums if n in self._valid)

        return CITATION_MARKER.sub(keep, text)

    def feed(self, delta: str) -> str:
        self._pending += delta
        tail = _OPEN_MARKER.search(self._pending)
        cut = tail.start() if tail else len(self._pending)
        head = self._pending[:cut]
        if not self.opened:
            probe = self._clean(head)
            if not self.opened:
                return ""
            self._pending = self._pending[cut:]
            return probe
        self._pending = self._pending[cut:]
        return self._clean(head)

    def finish(self) -> str:
        """The rest, if the answer was shown at all."""
        rest, self._pending = self._pending, ""
        return self._clean(rest) if self.opened else ""
