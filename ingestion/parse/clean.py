"""Element text as its author wrote it, not as the file format or the extractor left it.

Seen when real manuals were ingested: Sphinx permalink marks ("...another list?¶"), PDF line-break
hyphenation ("identi- cal"), accents extracted as separate characters ("Universit¨at", "O˘guz"), ligature
glyphs ("efﬁciently"). Every element's text passes through `clean_texts` once, before sections are taken
from titles and before chunking. Code blocks and tables are verbatim: they only lose trailing whitespace
(tables also runs of spaces), as an accent, a hyphen or a pilcrow in them may be literal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

# unstructured categories whose text is kept as written.
VERBATIM_CATEGORIES = frozenset({"CodeSnippet", "Table", "Formula"})

_LINE_ENDS = re.compile(r"\r\n?")
# Horizontal whitespace of any kind (tabs, NO-BREAK SPACE, thin spaces): a run reads as one space.
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# UTF-8 read as Latin-1 or Windows-1252 somewhere upstream ("1985â\x80\x9386", "Â£300", "â€™"): a lead byte
# and its continuation bytes, each shown as the character that byte is in those charsets.
_CONTINUATION = "[\u0080-\u00bf€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ]"
_MOJIBAKE = re.compile(
    f"[\u00c2-\u00df]{_CONTINUATION}|[\u00e0-\u00ef]{_CONTINUATION}{{2}}|[\u00f0-\u00f4]{_CONTINUATION}{{3}}"
)
_LATIN_EXTENDED_B = 0x180
# C1 controls are never text: they are Windows-1252 punctuation decoded as Latin-1.
_C1_CONTROLS = re.compile("[\u0080-\u009f]")
# Invisible characters that only split words for search: ZERO WIDTH SPACE, ZERO WIDTH NO-BREAK SPACE (a BOM
# inside the text). ZWJ and ZWNJ are left alone: they change how some scripts and emoji render.
_INVISIBLE = re.compile("[\u200b\ufeff]")
# A SOFT HYPHEN marks where a word may break: with the line break after it, it is the word, joined.
_SOFT_HYPHEN = re.compile(r"\u00ad(?:[^\S\n]*\n?[^\S\n]*)")
# Typographic ligatures (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ) from PDF fonts; their compatibility decomposition is the letters.
# Not unstructured's clean_ligatures: it also rewrites æ and œ, which are letters in Danish or French.
_LIGATURES = re.compile("[\ufb00-\ufb06]")
# A pilcrow ending a line is a permalink anchor (Sphinx, MkDocs), not text; one before text ("¶ 12") is a
# paragraph reference and stays.
_PERMALINK = re.compile(r"[^\S\n]*¶(?=[^\S\n]*(?:\n|$))")

# Spacing forms of accents and the combining marks they stand for. PDFs typeset with TeX draw the accent as
# a glyph of its own next to the letter, usually before it ("Universit¨at"), and extraction keeps it there.
# The grave accent (`), ^ and ~ are left out: in running text they are code or markup far more often.
_SPACING_ACCENTS = {
    "\u00a8": "\u0308",  # diaeresis
    "\u00b4": "\u0301",  # acute
    "\u02c6": "\u0302",  # circumflex
    "\u02dc": "\u0303",  # tilde
    "\u00af": "\u0304",  # macron
    "\u02d8": "\u0306",  # breve
    "\u02d9": "\u0307",  # dot above
    "\u02da": "\u030a",  # ring above
    "\u02dd": "\u030b",  # double acute
    "\u02c7": "\u030c",  # caron
    "\u00b8": "\u0327",  # cedilla
    "\u02db": "\u0328",  # ogonek
}
_DETACHED_ACCENT = re.compile(rf"(?P<before>[^\W\d_]?)(?P<accent>[{''.join(_SPACING_ACCENTS)}])(?P<after>[^\W\d_]?)")
# "it´s", "don´t", "we´ll": an acute accent typed for an apostrophe, not an accent on the s or t.
_CONTRACTION = re.compile(r"(?:s|t|d|m|ll|re|ve)(?![^\W\d_])", re.IGNORECASE)
# The letters of Western and Central European languages; a composition outside them (t with diaeresis, ẗ)
# says the accent belongs to the other neighbour.
_COMMON_LETTERS = ("\u00c0", "\u024f")

# A hyphen at a line break, or where a line break was turned into a space: "identi- cal", "identi-\ncal".
_BROKEN_WORD = re.compile(
    r"(?<!\w)(?P<left>[^\W\d_]+)(?P<hyphen>[-\u2010])(?:[^\S\n]*\n[^\S\n]*|[^\S\n]+)(?P<right>[^\W\d_]+)"
)
# "pre- and post-processing", "Ein- und Ausgang": a suspended hyphen, the compound is completed later.
_SUSPENDED_BEFORE = frozenset({"and", "or", "nor", "to", "und", "oder", "bis"})
_WORD = re.compile(r"[^\W\d_]+(?:[-\u2010][^\W\d_]+)*")
_HYPHENS = re.compile("[-\u2010]")


def clean_texts(elements: Sequence[tuple[str, str]], english: Collection[str]) -> list[str]:
    """The cleaned text of each (unstructured category, text) element of one document, in order.

    `english` holds lower-cased English words; with the document's own words it decides whether a hyphen
    at a line break belongs to the word. An element may come out empty (it held only a permalink mark).
    """
    normalised = [
        (category, _verbatim(text, category) if category in VERBATIM_CATEGORIES else _normalise(text))
        for category, text in elements
    ]
    vocabulary = _Vocabulary.of([text for _, text in normalised], english)
    return [
        text if category in VERBATIM_CATEGORIES else _layout(_mend_broken_words(text, vocabulary))
        for category, text in normalised
    ]


def _verbatim(text: str, category: str) -> str:
    lines = [line.rstrip() for line in _LINE_ENDS.sub("\n", text).split("\n")]
    if category == "Table":
        # Cells are joined with spaces; the runs left are layout, not content.
        lines = [_SPACES.sub(" ", line).strip() for line in lines]
    return "\n".join(lines).strip()


def _normalise(text: str) -> str:
    from unstructured.cleaners.core import replace_unicode_quotes

    # The general repair first: replace_unicode_quotes has its own table of such sequences, and it gives the en
    # dash for an em dash and vice versa. What it adds is curly quotes for C1 controls and &apos;.
    text = replace_unicode_quotes(_MOJIBAKE.sub(_undo_mojibake, _LINE_ENDS.sub("\n", text)))
    text = _C1_CONTROLS.sub(_undo_c1_control, text)
    text = _SOFT_HYPHEN.sub("", _INVISIBLE.sub("", text))
    text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = unicodedata.normalize("NFC", _DETACHED_ACCENT.sub(_attach_accent, text))
    return _PERMALINK.sub("", text)


def _undo_mojibake(match: re.Match[str]) -> str:
    try:
        raw = b"".join(c.encode("latin-1") if ord(c) < 0x100 else c.encode("cp1252") for c in match.group())
        repaired = raw.decode("utf-8")
    except UnicodeError:
        return match.group()  # not UTF-8 after all
    code = ord(repaired)
    # Real text has these sequences too: „Gruß“ is ß and a quote, "é«»" no CJK letter. A broken character is
    # Latin-1 or Latin Extended-A (é, £, NBSP, ő) or, past U+0800, punctuation or a symbol (–, ’, €, →, emoji).
    if _LATIN_EXTENDED_B <= code < 0x800 or (code >= 0x800 and unicodedata.category(repaired).startswith("L")):
        return match.group()
    return repaired


def _undo_c1_control(match: re.Match[str]) -> str:
    try:
        return match.group().encode("latin-1").decode("cp1252")
    except UnicodeError:
        return ""  # one of the five bytes Windows-1252 leaves undefined


def _attach_accent(match: re.Match[str]) -> str:
    """The accent composed with the neighbouring letter it fits best; the text unchanged if none fits."""
    before, accent, after = match.group("before", "accent", "after")
    mark = _SPACING_ACCENTS[accent]
    if accent == "\u00b4" and before and _CONTRACTION.match(match.string, match.end("accent")):
        return match.group()
    if not before and match.string[max(match.start() - 1, 0) : match.start()] == "/":
        return match.group()  # "~user" in a URL, drawn by TeX as a tilde accent
    candidates: list[tuple[int, int, str]] = []
    if after and (rank := _composition_rank(after + mark)) is not None:
        # TeX's order (accent first) wins a tie.
        candidates.append((rank, 0, before + unicodedata.normalize("NFC", after + mark)))
    if before and (rank := _composition_rank(before + mark)) is not None:
        candidates.append((rank, 1, unicodedata.normalize("NFC", before + mark) + after))
    return min(candidates)[2] if candidates else match.group()


def _composition_rank(decomposed: str) -> int | None:
    composed = unicodedata.normalize("NFC", decomposed)
    if len(composed) != 1:
        return None  # no such letter: the accent does not belong here
    return 0 if _COMMON_LETTERS[0] <= composed <= _COMMON_LETTERS[1] else 1


@dataclass(frozen=True)
class _Vocabulary:
    english: Collection[str]
    seen: frozenset[str]  # the document's words, outside line-break hyphens
    compounds: frozenset[str]  # the document's hyphenated words, with "-"

    @classmethod
    def of(cls, texts: Sequence[str], english: Collection[str]) -> _Vocabulary:
        seen: set[str] = set()
        compounds: set[str] = set()
        for text in texts:
            for word in _WORD.findall(_BROKEN_WORD.sub(" ", text)):
                parts = _HYPHENS.split(word.lower())
                seen.update(parts)
                if len(parts) > 1:
                    compounds.add("-".join(parts))
        return cls(english, frozenset(seen), frozenset(compounds))

    def knows(self, word: str) -> bool:
        word = word.lower()
        return word in self.seen or word in self.english


def _mend_broken_words(text: str, vocabulary: _Vocabulary) -> str:
    return _BROKEN_WORD.sub(lambda match: _mend(match, vocabulary), text)


def _mend(match: re.Match[str], vocabulary: _Vocabulary) -> str:
    """One word from its two halves: joined, or kept hyphenated when the hyphen is part of the word."""
    left, hyphen, right = match.group("left", "hyphen", "right")
    if right.lower() in _SUSPENDED_BEFORE:
        return match.group()
    joined, hyphenated = left + right, left + hyphen + right
    if not right[0].islower() and not (left.isupper() and right.isupper()):
        return hyphenated  # "Lucene- BM25", "Anglo- Saxon": no word breaks before a capital, a compound does
    if f"{left}-{right}".lower() in vocabulary.compounds:
        return hyphenated  # the document writes "dual-encoder" elsewhere
    if vocabulary.knows(joined):
        return joined  # "identical", or a word the document writes whole elsewhere
    if vocabulary.knows(left) and vocabulary.knows(right):
        return hyphenated  # "well- known", "privacy- preserving": two words, one compound
    return joined  # "digiti- zation": fragments that are no words


def _layout(text: str) -> str:
    from unstructured.cleaners.core import group_broken_paragraphs

    if "\n" in text:
        # Lines wrapped for the page become one paragraph; runs of short lines (an address) stay lines.
        text = group_broken_paragraphs(text)
    # Not clean_extra_whitespace: it also turns every line break into a space and keeps tabs.
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
