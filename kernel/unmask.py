"""The readings of a text an injection detector has to look at: the text as a person reads it, and what hides in it.

Attackers rely on the model reading past what a filter reads: look-alike letters from other scripts, digits for
letters, letters spaced or dotted apart, invisible characters inside words, invisible "tag" characters that carry
ASCII, and payloads in base64, hex, percent-encoding, ROT13/Caesar or reversed. Each reading here undoes one of
those; the detector runs the same phrase patterns over every reading. Pure text work: nothing is downloaded and
nothing is executed.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

# Zero-width and other invisible format characters that split a word for a filter but not for a model.
_INVISIBLE = "\u00ad\u034f\u115f\u1160\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
INVISIBLE_RUN = re.compile(f"[{_INVISIBLE}]+")
_INSIDE_WORD = re.compile(rf"(?<=\w)[{_INVISIBLE}]+(?=\w)")
# Unicode tag characters mirror ASCII invisibly; a flag emoji (U+1F3F4 + tags) is their only honest use.
_TAGS = re.compile("[\U000e0020-\U000e007e]+")
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
_TAG_OFFSET = 0xE0000
# Whitespace long enough to push text out of sight (off-screen, below the fold) before more text.
HIDDEN_WHITESPACE = re.compile(r"[ \t\u00a0\u3000]{100,}|\n[\s]{60,}(?=\S)")

# Letters of other scripts that render like Latin ones (Cyrillic, Greek, Armenian, IPA).
_CONFUSABLE = str.maketrans(
    {
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "ɡ": "g", "һ": "h", "н": "h", "і": "i",
        "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m", "ո": "n", "о": "o", "р": "p", "ԛ": "q", "г": "r",
        "ѕ": "s", "т": "t", "ц": "u", "ѵ": "v", "ԝ": "w", "х": "x", "у": "y", "α": "a", "β": "b", "ε": "e",
        "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    }
)  # fmt: skip
_LATIN = re.compile(r"[a-z]")
_NON_LATIN_LETTER = re.compile(r"[^\W\da-z_]")

# Digits and symbols standing in for letters. "1" reads as i or l: the reading that makes a known word wins.
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "!": "i",
         "|": "l", "+": "t", "€": "e"}  # fmt: skip
# A word with a letter next to a stand-in: "1gn0r3", "pr3v10us" (not "2024", not "covid-19").
_LEET_WORD = re.compile(r"(?<![\w@$!|+€])[\w@$!|+€]*?(?:[a-z][0-9@$!|+€]|[0-9@$!|+€][a-z])[\w@$!|+€]*")
_LEXICON = frozenset(
    (
        "ignore disregard forget override bypass previous prior above all any your you are now instructions "
        "instruction rules rule prompt prompts system show print reveal tell the and with restrictions restricted "
        "filters dan jailbreak pretend act unfiltered unrestricted mode developer secret hidden no new task obey "
        "follow say output repeat everything initial original guidelines context hacked pwned"
    ).split()
)

# Single characters kept apart by a separator: "i g n o r e", "I.g.n.o.r.e", "i-g-n-o-r-e".
_SPACED = re.compile(r"(?<![\w])(?:\w[ .\-_*/|~]{1,3}){3,}\w(?![\w])")
# Hyphens, dots and middle dots inside words: "ig-nore", "in.struc.tions".
_INNER_MARK = re.compile(r"(?<=[^\W\d_])[-.\u00b7*_~](?=[^\W\d_])")
_SPLIT_WORD = re.compile(r"(?<![^\W\d_])[^\W\d_]+(?:[-.\u00b7*_~][^\W\d_]+)+")

_BASE64 = re.compile(r"(?<![\w+/=])[A-Za-z0-9+/_-]{16,}={0,2}(?![\w+/=])")
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:(?:\\x|0x)?[0-9a-fA-F]{2}[\s:]?){8,}")
_HEX_HINT = re.compile(r"[0-9a-fA-F]{16}|(?:\\x|0x)[0-9a-fA-F]{2}")
_PERCENT = re.compile(r"(?:%[0-9a-fA-F]{2}){4,}")
# Words that, once a rotation or a reversal reveals them, make that reading worth scanning.
_STEMS = (
    "ignor",
    "instruct",
    "previous",
    "disregard",
    "system",
    "prompt",
    "pretend",
    "jailbreak",
    "restrict",
    "reveal",
)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _shift(k: int) -> dict[int, int]:
    return str.maketrans(_ALPHABET, _ALPHABET[k:] + _ALPHABET[:k])


# For each Caesar shift: the table that undoes it, and the stems as they look disguised by it.
_SHIFTED = {k: (_shift(k), [stem.translate(_shift(26 - k)) for stem in _STEMS]) for k in range(1, 26)}

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
                      "_": " ", "\u2013": "-", "\u2014": "-"})  # fmt: skip


@dataclass(frozen=True)
class Reading:
    """One way to read the text: `via` says which disguise was undone ("text" for the text itself)."""

    via: str
    text: str


@dataclass(frozen=True)
class Hidden:
    """What the text carries that a reader does not see."""

    invisible_in_words: int
    invisible_run: int
    tag_characters: int
    whitespace_hidden: bool
    mixed_script_words: int


def normalise(text: str) -> str:
    """Compatibility forms (fullwidth, mathematical letters) to plain ones, invisible characters out, lower case,
    typographic quotes straight, horizontal whitespace as one space."""
    if not text.isascii():
        text = _TAGS.sub("", INVISIBLE_RUN.sub("", unicodedata.normalize("NFKC", text)))
    text = text.casefold().translate(FOLD)
    return _SPACES.sub(" ", _BLANK_LINES.sub("\n", text)).strip()


def visible_text(text: str) -> str:
    """What a reader sees: the text without invisible characters, stripped."""
    return _TAGS.sub("", INVISIBLE_RUN.sub("", text)).strip()


def hidden(text: str, plain: str) -> Hidden:
    """`plain`: the text normalised."""
    runs = [len(m.group()) for m in INVISIBLE_RUN.finditer(text)] if not text.isascii() else []
    tags = sum(len(m.group()) for m in _TAGS.finditer(_FLAG_TAGS.sub("", text))) if _TAGS.search(text) else 0
    mixed = 0
    if _NON_LATIN_LETTER.search(plain):
        words = re.findall(r"\w+", plain)
        mixed = sum(1 for word in words if _LATIN.search(word) and _NON_LATIN_LETTER.search(word))
    return Hidden(
        invisible_in_words=len(_INSIDE_WORD.findall(text)),
        invisible_run=max(runs, default=0),
        tag_characters=tags,
        whitespace_hidden=("  " in text or "\n\n" in text) and bool(HIDDEN_WHITESPACE.search(text)),
        mixed_script_words=mixed,
    )


def _skeleton(plain: str) -> str | None:
    """Look-alike letters as Latin, in words that mix scripts (a word all in Cyrillic is Russian, not a disguise)."""
    if not _NON_LATIN_LETTER.search(plain):
        return None

    def fix(m: re.Match[str]) -> str:
        word = m.group()
        latin = word.translate(_CONFUSABLE)
        whole = not _NON_LATIN_LETTER.search(latin)
        return latin if _LATIN.search(word) or (whole and len(word) > 1) else word

    out = re.sub(r"\w+", fix, plain)
    return out if out != plain else None


def _unleet_word(word: str) -> str:
    if not any(c in _LEET or c == "1" for c in word) or word.isdigit():
        return word
    base = "".join(_LEET.get(c, c) for c in word)
    for one in ("i", "l"):
        candidate = base.replace("1", one)
        if candidate in _LEXICON:
            return candidate
    return base.replace("1", "i")


def _unleet(plain: str) -> str | None:
    """Stand-ins read as letters, if that makes at least one telling word."""
    changed = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal changed
        word = m.group()
        out = _unleet_word(word)
        if out != word and out in _LEXICON:
            changed += 1
        return out

    out = _LEET_WORD.sub(fix, plain)
    return out if changed else None


def _unspace(text: str) -> str | None:
    """`text` keeps its runs of spaces: between spaced-out letters one space is inside a word, more is a gap."""

    def join(m: re.Match[str]) -> str:
        run = m.group()
        if re.search(r"[.\-_*/|~]", run):
            # The letters' separator is a mark; a space between letters is the word gap.
            return " ".join(re.sub(r"[.\-_*/|~\s]", "", w) for w in run.split(" ") if w)
        # Letters one space apart, words two or more apart; evenly spaced letters run together.
        return " ".join(w.replace(" ", "") for w in re.split(r" {2,}", run))

    out = _SPACED.sub(join, text)
    return re.sub(r"[^\S\n]+", " ", out).strip() if out != text else None


def _splits_a_telling_word(plain: str) -> bool:
    # "well-known" and "e.g." are split too: only a join that makes a telling word is worth another scan.
    for m in _SPLIT_WORD.finditer(plain):
        word = _INNER_MARK.sub("", m.group())
        if word in _LEXICON or any(stem in word for stem in _STEMS):
            return True
    return False


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return text if len(text) >= 6 and letters >= 0.8 * len(text) and " " in text.strip() else None


def _decode_blobs(text: str) -> list[Reading]:
    found: list[Reading] = []
    for m in _BASE64.finditer(text):
        blob = m.group().rstrip("=")
        if blob.isalpha() and (blob.islower() or blob.isupper()):
            continue  # an ordinary long word
        padded = blob + "=" * (-len(blob) % 4)
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = _printable(decoder(padded))
            except (binascii.Error, ValueError):
                decoded = None
            if decoded:
                found.append(Reading("base64", decoded))
                break
    for m in _HEX.finditer(text) if _HEX_HINT.search(text) else ():
        digits = re.sub(r"\\x|0x|[\s:]", "", m.group())
        try:
            decoded = _printable(bytes.fromhex(digits[: len(digits) // 2 * 2]))
        except ValueError:
            decoded = None
        if decoded:
            found.append(Reading("hex", decoded))
    for m in _PERCENT.finditer(text) if "%" in text else ():
        if decoded := _printable(urllib.parse.unquote_to_bytes(m.group())):
            found.append(Reading("percent-encoding", decoded))
    tags = "".join(chr(ord(c) - _TAG_OFFSET) for c in "".join(_TAGS.findall(_FLAG_TAGS.sub("", text))))
    if tags.strip():
        found.append(Reading("invisible tag characters", tags))
    return found


def _rotations(plain: str) -> list[Reading]:
    """ROT13 and the other Caesar shifts, and the text reversed: only readings that reveal two telling words."""
    if any(stem in plain for stem in _STEMS):
        return []  # it says the words already: no disguise to undo
    found = []
    for shift, (table, disguised_stems) in _SHIFTED.items():
        # Looking for the disguised stems costs substring tests; only a hit is worth turning the text.
        if sum(stem in plain for stem in disguised_stems) >= 2:
            found.append(Reading("rot13" if shift == 13 else f"caesar shift {shift}", plain.translate(table)))
    backwards = plain[::-1]
    if sum(stem in backwards for stem in _STEMS) >= 2:
        found.append(Reading("reversed text", backwards))
    return found


def readings(text: str, depth: int = 2) -> tuple[list[Reading], Hidden]:
    """Every reading worth scanning, the plain one first, and what the text hides."""
    plain = normalise(text)
    out = [Reading("text", plain)]
    if (skeleton := _skeleton(plain)) is not None:
        out.append(Reading("look-alike letters", skeleton))
    leet = _unleet(skeleton or plain)
    if leet is not None:
        out.append(Reading("leetspeak", leet))
    loose = unicodedata.normalize("NFKC", INVISIBLE_RUN.sub("", text)).casefold().translate(FOLD)
    if (spaced := _unspace(loose)) is not None:
        out.append(Reading("spaced-out letters", spaced))
    joined = _INNER_MARK.sub("", plain)
    if joined != plain and _splits_a_telling_word(plain):
        out.append(Reading("split words", joined))
    out.extend(_rotations(plain))
    if depth > 0:
        for blob in _decode_blobs(unicodedata.normalize("NFKC", text)):
            inner, _ = readings(blob.text, depth - 1)
            # A payload disguised twice (ROT13 inside base64) is named by both disguises.
            out.extend(Reading(blob.via if r.via == "text" else f"{blob.via}, {r.via}", r.text) for r in inner)
    return out, hidden(text, plain)
