"""Text normalisation that undoes the evasions chat spam uses, with a map back to the original text.

One table indexed by code point folds every character at once (zero-width and format characters, combining marks,
NFKC width and compatibility forms, styled and enclosed letters, case, accents on Latin letters, Cyrillic and Greek
look-alikes, traditional characters, financial numerals); two regexes then join what spammers split apart:
separators between Chinese characters, and single Latin letters spelled out with separators (``v.i.a.g.r.a``).

``normalize`` is the fast path run on every message. ``normalize_mapped`` gives the same string plus, for every
output character, the index of the original character it came from and what was done to it; it is only run for the
few messages that matched, to report spans in the original text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag
from functools import cache

import opencc

# The table covers the Basic Multilingual Plane and the Supplementary one (styled mathematical letters, enclosed
# letters, emoji); rarer planes pass through unchanged, except the tag characters removed by ``_TAGS``.
_TABLE_SIZE = 0x20000


class Fold(IntFlag):
    """What normalisation did to a character; reported with every match."""

    INVISIBLE = 1  # zero-width, format and filler characters removed
    WIDTH = 2  # full-width or half-width forms
    STYLED = 4  # styled, enclosed, super/subscript and other compatibility forms
    CASE = 8
    ACCENT = 16  # accents and combining marks on Latin letters
    LOOKALIKE = 32  # Cyrillic or Greek letters that look Latin
    TRADITIONAL = 64  # traditional to simplified Chinese
    DIGIT_FORM = 128  # circled, parenthesised, financial and other digit forms
    SEPARATOR = 256  # symbols, spaces or emoji inserted inside a word


FOLD_NAMES = {
    Fold.INVISIBLE: "invisible",
    Fold.WIDTH: "width",
    Fold.STYLED: "styled",
    Fold.CASE: "case",
    Fold.ACCENT: "accent",
    Fold.LOOKALIKE: "lookalike",
    Fold.TRADITIONAL: "traditional",
    Fold.DIGIT_FORM: "digit_form",
    Fold.SEPARATOR: "separator",
}

# Characters that render as nothing but are not all in category Cf.
_INVISIBLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180E, 0x3164, 0xFFA0}
_INVISIBLE.update(range(0xFE00, 0xFE10))  # variation selectors

# Look-alikes of Latin letters from Cyrillic and Greek, the ones spam uses (after casefolding).
_LOOKALIKES = dict(
    zip(
        "аеорсуххіјѕԁһԛԝьвкмнтѵӏαβεικνορτυχϲ",
        "aeopcyxxijsdhqwbbkmhtvlabeiknoptuxc",
        strict=True,
    ),
)

_FINANCIAL_NUMERALS = dict(zip("壹贰叁肆伍陆柒捌玖拾佰仟", "一二三四五六七八九十百千", strict=True))

# Negative circled and squared letters (🅒🅐🅢🅘🅝🅞), which have no compatibility decomposition in Unicode.
_LETTER_LOOKALIKE_BLOCKS = ((0x1F150, 0x1F169), (0x1F170, 0x1F189))
_HAN_NUMERALS = frozenset("〇一二三四五六七八九十")
_WIDTH_BLOCK = (0xFF00, 0xFFEF)

# A compatibility form that only decorates one character: "(1)", "1.", "(五)".
_DECORATED = re.compile(r"^\((.)\)$|^(.{1,2})\.$")


def _strip_latin_accents(s: str) -> str:
    out = []
    for ch in s:
        if ch < "\u0250" or "\u1e00" <= ch <= "\u1eff":
            bare = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
            out.append(unicodedata.normalize("NFC", bare))
        else:
            out.append(ch)
    return "".join(out)


_Steps = tuple[tuple[Callable[[str], str], Fold], ...]


def _per_char(table: dict[str, str]) -> Callable[[str], str]:
    return lambda text: "".join(table.get(c, c) for c in text)


def _steps(t2s: dict[str, str]) -> _Steps:
    """What follows NFKC, in order; each step that changes a character adds its Fold."""
    return (
        (str.casefold, Fold.CASE),
        (_strip_latin_accents, Fold.ACCENT),
        (_per_char(_LOOKALIKES), Fold.LOOKALIKE),
        (_per_char(t2s), Fold.TRADITIONAL),
        (_per_char(_FINANCIAL_NUMERALS), Fold.DIGIT_FORM),
    )


def _fold_char(ch: str, steps: _Steps) -> tuple[str, Fold]:
    """The normal form of one character and what it took; the single source of truth for the table."""
    cp = ord(ch)
    category = unicodedata.category(ch)
    if category == "Cf" or cp in _INVISIBLE:
        return "", Fold.INVISIBLE
    if category in ("Mn", "Me"):
        return "", Fold.ACCENT
    folds = Fold(0)
    s = unicodedata.normalize("NFKC", ch)
    for first, last in _LETTER_LOOKALIKE_BLOCKS:
        if first <= cp <= last:
            s = chr(ord("a") + cp - first)
    if s != ch:
        if any(c.isdigit() or c in _HAN_NUMERALS for c in s):
            folds |= Fold.DIGIT_FORM
        elif _WIDTH_BLOCK[0] <= cp <= _WIDTH_BLOCK[1]:
            folds |= Fold.WIDTH
        else:
            folds |= Fold.STYLED
        decorated = _DECORATED.match(s)
        if decorated and len(s) > 1:
            s = decorated.group(1) or decorated.group(2)
    for step, fold in steps:
        changed = step(s)
        if changed != s:
            folds |= fold
            s = changed
    return s, folds


def _traditional_to_simplified() -> dict[str, str]:
    """OpenCC's character table, one character at a time (phrase conversion would depend on neighbours)."""
    ranges = [(0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00), (0x20000, 0x2A6E0)]
    chars = [chr(cp) for lo, hi in ranges for cp in range(lo, hi)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    return {a: b for a, b in zip(chars, converted, strict=True) if a != b and len(b) == 1}


@dataclass(frozen=True, slots=True)
class _Tables:
    translate: list[str | int | None]  # for str.translate: None deletes, an int keeps the character
    batch_translate: list[str | int | None]  # the same, but keeps BOUNDARY
    marks: list[str]  # "1" for characters that fold to none or to several, "0" for the others
    folds: list[int]  # Fold flags per code point, 0 for characters left alone


@cache
def _tables() -> _Tables:
    steps = _steps(_traditional_to_simplified())
    translate: list[str | int | None] = list(range(_TABLE_SIZE))
    folds = [0] * _TABLE_SIZE
    for cp in range(_TABLE_SIZE):
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or (cp < 0x80 and not ch.isupper()):
            continue
        out, fold = _fold_char(ch, steps)
        if out != ch:
            translate[cp] = out or None
            folds[cp] = fold
    translate[0], folds[0] = None, Fold.INVISIBLE
    batch_translate = list(translate)
    batch_translate[0] = 0
    marks = ["1" if out is None or (isinstance(out, str) and len(out) > 1) else "0" for out in translate]
    return _Tables(translate, batch_translate, marks, folds)


_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_NOT_ZERO = re.compile("[^0]")

# NUL separates the messages of a batch: the table deletes it inside a text, and no join crosses it.
BOUNDARY = "\x00"

# Chinese characters, and the run of non-word characters (spaces, punctuation, symbols, emoji) between two of them.
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
# (Patterns start with a character class, not a lookbehind, so the regex engine can skip ahead quickly.)
_HAN_GAP = re.compile(rf"[^\w\x00](?<=[{_HAN}][^\w\x00])[^\w\x00]*(?=[{_HAN}])")
# Three or more single Latin letters or digits, each set apart by one to three non-word characters: "v.i.a.g.r.a".
_SPELLED = re.compile(r"[a-z0-9](?<![^\W_][a-z0-9])(?:[^\w\x00]{1,3}[a-z0-9](?![^\W_])){2,}")
_SPELLED_GAP = re.compile(r"[^\w\x00]+")
# Runs of white space count as one space, so "click  farming" matches "click farming".
_EXTRA_SPACE = re.compile(r"\s(?<=\s\s)\s*")


def _extra_spaces(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _EXTRA_SPACE.finditer(text)]


def _han_gaps(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _HAN_GAP.finditer(text)]


def _spelled_gaps(text: str) -> list[tuple[int, int]]:
    return [
        (m.start() + g.start(), m.start() + g.end())
        for m in _SPELLED.finditer(text)
        for g in _SPELLED_GAP.finditer(m.group())
    ]


# The joins, in order: each removes spans of what the one before left. ``_join`` is the same, as fast substitutions.
_JOINS = (_extra_spaces, _han_gaps, _spelled_gaps)


def _join(folded: str) -> str:
    folded = _EXTRA_SPACE.sub("", folded)
    folded = _HAN_GAP.sub("", folded)
    return _SPELLED.sub(lambda m: _SPELLED_GAP.sub("", m.group()), folded)


def warm_up() -> None:
    """Build the tables now rather than on the first message (~0.5 s)."""
    _tables()


def normalize(text: str) -> str:
    """The normal form matched against rule terms. Idempotent; terms are normalised with it too."""
    folded = text.translate(_tables().translate)
    if _TAGS.search(folded):  # tag characters lie beyond the table
        folded = _TAGS.sub("", folded)
    return _join(folded)


def normalize_joined(texts: list[str]) -> str:
    """The normal forms of many texts at once, joined by BOUNDARY: one pass of each step for a whole batch."""
    joined = BOUNDARY.join(texts)
    if joined.count(BOUNDARY) != len(texts) - 1:
        joined = BOUNDARY.join(t.replace(BOUNDARY, "") for t in texts)
    folded = joined.translate(_tables().batch_translate)
    if _TAGS.search(folded):
        folded = _TAGS.sub("", folded)
    return _join(folded)


@dataclass(frozen=True, slots=True)
class Mapped:
    """A normalised string and the way back: per normalised character, the index of the original one."""

    text: str
    original: str
    origin: list[int]  # origin[i] is the index in the original text of normalised character i
    joined: frozenset[int]  # original indices removed by a join (separators inside words)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of normalised characters [start, end)."""
        return self.origin[start], self.origin[end - 1] + 1

    def folds_between(self, start: int, end: int) -> Fold:
        """Every folding applied to original characters [start, end)."""
        folds = _tables().folds
        acc = 0
        for ch in self.original[start:end]:
            cp = ord(ch)
            acc |= folds[cp] if cp < _TABLE_SIZE else (Fold.INVISIBLE if _TAGS.match(ch) else 0)
        if any(start <= k < end for k in self.joined):
            acc |= Fold.SEPARATOR
        return Fold(acc)


def normalize_mapped(text: str) -> Mapped:
    """``normalize`` with the way back to the original text: slower, for the messages that matched."""
    tables = _tables()
    # Between the rare characters that fold to none or several, the text folds one character for one. The marks
    # string finds them: "1" where one is, "0" elsewhere, and characters past the table left as they are.
    pieces: list[str] = []
    folded_origin: list[int] = []
    position = 0
    for m in _NOT_ZERO.finditer(text.translate(tables.marks)):
        index = m.start()
        if m.group() != "1" and not _TAGS.match(m.group()):
            continue  # past the table and not a tag character: kept as it is
        pieces.append(text[position:index].translate(tables.translate))
        folded_origin.extend(range(position, index))
        out = tables.translate[ord(text[index])] if m.group() == "1" else None
        if isinstance(out, str):
            pieces.append(out)
            folded_origin.extend([index] * len(out))
        position = index + 1
    pieces.append(text[position:].translate(tables.translate))
    folded_origin.extend(range(position, len(text)))
    folded = "".join(pieces)
    joined: set[int] = set()
    for spans_of in _JOINS:
        if spans := spans_of(folded):
            folded, folded_origin = _remove(folded, folded_origin, spans, joined)
    return Mapped(folded, text, folded_origin, frozenset(joined))


def _remove(
    text: str,
    origin: list[int],
    spans: list[tuple[int, int]],
    removed: set[int],
) -> tuple[str, list[int]]:
    """``text`` without the sorted, disjoint ``spans``; the original indices removed are added to ``removed``."""
    kept_text: list[str] = []
    kept_origin: list[int] = []
    position = 0
    for start, end in spans:
        kept_text.append(text[position:start])
        kept_origin.extend(origin[position:start])
        removed.update(origin[start:end])
        position = end
    kept_text.append(text[position:])
    kept_origin.extend(origin[position:])
    return "".join(kept_text), kept_origin


def fold_names(folds: Fold) -> list[str]:
    return [name for flag, name in FOLD_NAMES.items() if folds & flag]
