"""Text normalisation that undoes the evasions chat spam uses, with a map back to the original text.

One table indexed by code point folds every character at once (zero-width and format characters, combining marks,
NFKC width and compatibility forms, styled and enclosed letters, case, accents on Latin letters, Cyrillic and Greek
look-alikes, traditional characters, financial numerals); joins then undo what spammers split apart: runs of white
space, separators between Chinese characters, and single Latin letters spelled out with separators (``v.i.a.g.r.a``).

The text is handled as a numpy array of code points: a batch's texts joined by BOUNDARY are folded and the first two
joins made in one compiled pass (``streams.policy.compiled``), and every normal character keeps the index of the
original character it came from. ``NormalBatch`` gives a batch's normal text and, for the few messages that matched,
each one's map back (``Mapped``) to report spans in the original text. The tests hold this code to the same joins
written as regex substitutions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag
from functools import cache, lru_cache
from itertools import accumulate, pairwise
from typing import NamedTuple

import numpy as np
import opencc
from confusable_homoglyphs import confusables
from numpy.typing import NDArray

from streams.policy.cache import key, remembered
from streams.policy.compiled import compiled

# The table covers the Basic Multilingual Plane and the Supplementary one (styled mathematical letters, enclosed
# letters, emoji); rarer planes pass through unchanged, except the tag characters and variation selectors removed by
# ``_TAGS``.
_TABLE_SIZE = 0x20000


class Fold(IntFlag):
    """What normalisation did to a character; reported with every match."""

    NONE = 0
    INVISIBLE = 1  # zero-width, format and filler characters removed
    WIDTH = 2  # full-width or half-width forms
    STYLED = 4  # styled, enclosed, super/subscript and other compatibility forms
    CASE = 8
    ACCENT = 16  # accents and combining marks on Latin letters
    LOOKALIKE = 32  # Cyrillic or Greek letters that look Latin
    TRADITIONAL = 64  # traditional to simplified Chinese
    DIGIT_FORM = 128  # circled, parenthesised, financial and other digit forms
    SEPARATOR = 256  # symbols, spaces or emoji inserted inside a word
    LEET = 512  # digits or symbols for letters inside a Latin word, read in the second view
    REPEAT = 1024  # a repeated letter, read as one in the second view


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
    Fold.LEET: "leet",
    Fold.REPEAT: "repeat",
}

# Characters that render as nothing but are not all in category Cf (the braille blank is a symbol).
_INVISIBLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180E, 0x2800, 0x3164, 0xFFA0}
_INVISIBLE.update(range(0xFE00, 0xFE10))  # variation selectors
# Strokes drawn like a dot or a dash between Chinese characters (刷丶单): two radicals that no word is written with,
# and the katakana long-vowel mark; they fold to a separator, which the join between Chinese characters removes.
_STROKES = {"\u4e36": "\u00b7", "\u4e3f": "\u00b7", "\u30fc": "-"}

# Look-alikes of Latin letters from Cyrillic, Greek, Armenian and the phonetic letters, the ones spam uses (after
# casefolding).
_LOOKALIKES = dict(
    zip(
        "аеорсуххіјѕԁһԛԝьвкмнтѵӏαβεικνορτυχϲηıɑɡɩօսոցһ℘",
        "aeopcyxxijsdhqwbbkmhtvlabeikvoptuxcniagiounqhp",
        strict=True,
    ),
)
# Capitals whose small letter looks like another Latin letter: Greek Eta is H, but eta is n; Nu is N, but nu is v.
_CAPITAL_LOOKALIKES = dict(zip("ΗΝΜΖΚΤΡΧΥΙΑΒΕΟ", "HNMZKTPXYIABEO", strict=True))
# Small capitals (ᴀ ʙ ᴄ, "LATIN LETTER SMALL CAPITAL A") have no compatibility form: read off their names.
_SMALL_CAPITAL = re.compile(r"^LATIN LETTER SMALL CAPITAL ([A-Z])$")

_FINANCIAL_NUMERALS = dict(zip("壹贰叁肆伍陆柒捌玖拾佰仟", "一二三四五六七八九十百千", strict=True))

# Negative circled and squared letters (🅒🅐🅢🅘🅝🅞) and the regional indicator letters (🇨🇦🇸🇮🇳🇴, which two
# by two draw a flag: a flag reads as its country's two letters), which have no compatibility decomposition.
_LETTER_LOOKALIKE_BLOCKS = ((0x1F150, 0x1F169), (0x1F170, 0x1F189), (0x1F1E6, 0x1F1FF))
# Digits NFKC leaves alone: other scripts' (٣), dingbat and double circled ones (❸ ➌ ⓷), read by their value.
_DIGIT_CATEGORIES = ("Nd", "No")
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
        (_per_char(_CAPITAL_LOOKALIKES), Fold.LOOKALIKE),
        (str.casefold, Fold.CASE),
        (_strip_latin_accents, Fold.ACCENT),
        (_per_char(_LOOKALIKES), Fold.LOOKALIKE),
        (_per_char(t2s), Fold.TRADITIONAL),
        (_per_char(_FINANCIAL_NUMERALS), Fold.DIGIT_FORM),
    )


def _compatibility_form(ch: str, category: str) -> str:
    """NFKC, and the forms it lacks: negative circled, squared and regional indicator letters, small capitals and
    digits read by their value."""
    cp = ord(ch)
    for first, last in _LETTER_LOOKALIKE_BLOCKS:
        if first <= cp <= last:
            return chr(ord("a") + cp - first)
    if small_capital := _SMALL_CAPITAL.match(unicodedata.name(ch, "")):
        return small_capital.group(1).lower()
    s = unicodedata.normalize("NFKC", ch)
    value = unicodedata.numeric(ch, -1)
    if s == ch and category in _DIGIT_CATEGORIES and value >= 0 and value == int(value):
        return str(int(value))
    return s


def _fold_char(ch: str, steps: _Steps) -> tuple[str, Fold]:
    """The normal form of one character and what it took; the single source of truth for the table."""
    cp = ord(ch)
    category = unicodedata.category(ch)
    if category == "Cf" or cp in _INVISIBLE:
        return "", Fold.INVISIBLE
    if category in ("Mn", "Me"):
        return "", Fold.ACCENT
    if ch in _STROKES:
        return _STROKES[ch], Fold.SEPARATOR
    folds = Fold(0)
    s = _compatibility_form(ch, category)
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
    if len(s) == 1 and not s.isascii() and (latin := _confusable_latin().get(ch)):
        return latin, folds | Fold.LOOKALIKE
    return s, folds


# Scripts whose letters are the words of Chinese, Japanese and Korean text: none of them is read as a Latin letter.
_CJK_NAMES = ("CJK", "HANGUL", "HIRAGANA", "KATAKANA", "BOPOMOFO")


@cache
def _confusable_latin() -> dict[str, str]:
    """The letters that Unicode's confusables data (UTS #39) draws like one Latin letter, as that letter: Cherokee,
    Lisu, Armenian, Coptic, Canadian syllabics and the rest beyond the look-alikes above."""
    latin = {}
    for ch, glyphs in confusables.confusables_data.items():
        if len(ch) != 1 or not unicodedata.category(ch).startswith("L") or ch.isascii():
            continue
        if unicodedata.name(ch, "").startswith(_CJK_NAMES):
            continue
        letters = [g["c"].casefold() for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()]
        if letters:
            latin[ch] = letters[0]
    return latin


def _traditional_to_simplified() -> dict[str, str]:
    """OpenCC's character table, one character at a time (phrase conversion would depend on neighbours)."""
    ranges = [(0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00), (0x20000, 0x2A6E0)]
    chars = [chr(cp) for lo, hi in ranges for cp in range(lo, hi)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    return {a: b for a, b in zip(chars, converted, strict=True) if a != b and len(b) == 1}


_Codes = NDArray[np.uint32]
_Indices = NDArray[np.int32]
_Positions = NDArray[np.intp]  # positions in an array, as numpy reports them

# A code point's fold in the tables below when it is one character, or one of these.
_DELETE, _EXPAND = 0xFFFF_FFFF, 0xFFFF_FFFE
# How the joins class a code point, as the regexes \w, [_HAN] and \s do.
_WORD, _HAN_CHAR, _SPACE, _SPELLABLE, _DIGIT, _LATIN = 1, 2, 4, 8, 16, 32


class _Expansions(NamedTuple):  # a tuple of arrays: compiled code takes it as one argument
    """The characters that fold to several ("ß", "½", ligatures), marked _EXPAND in a table of codes."""

    rows: _Indices  # per code point, its row
    lengths: _Indices  # per row, how many characters
    codes: _Codes  # per row, them, 0-padded


@dataclass(frozen=True, slots=True)
class _Tables:
    translate: list[str | int | None]  # per code point, as for str.translate: None deletes, an int keeps it
    folds: list[int]  # Fold flags per code point, 0 for characters left alone
    codes: _Codes  # per code point, its fold when that is one character, or _DELETE or _EXPAND; NUL is deleted
    batch_codes: _Codes  # the same, but NUL (BOUNDARY) stays
    expansions: _Expansions
    kinds: NDArray[np.uint8]  # per code point of all Unicode: _WORD | _HAN_CHAR | _SPACE


@cache
def _tables() -> _Tables:
    """The tables, read back from the cache folder when this code built them before (building takes seconds)."""
    return remembered("normalize-tables", key(), _build_tables)


def _build_tables() -> _Tables:
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
            folds[cp] = int(fold)  # a plain int: or-ing IntFlags runs Python code
    translate[0], folds[0] = None, int(Fold.INVISIBLE)
    codes = np.arange(_TABLE_SIZE, dtype=np.uint32)
    several = {cp: out for cp, out in enumerate(translate) if isinstance(out, str) and len(out) > 1}
    expansions = np.zeros((len(several), max(map(len, several.values()))), dtype=np.uint32)
    expansion_rows = np.zeros(_TABLE_SIZE, dtype=np.int32)
    for row, (cp, out) in enumerate(several.items()):
        expansions[row, : len(out)] = as_codes(out)
        expansion_rows[cp] = row
    for cp, folded in enumerate(translate):
        if folded is None:
            codes[cp] = _DELETE
        elif isinstance(folded, str):
            codes[cp] = ord(folded) if len(folded) == 1 else _EXPAND
    batch_codes = codes.copy()
    batch_codes[ord(BOUNDARY)] = ord(BOUNDARY)
    lengths = np.array([len(out) for out in several.values()], dtype=np.int32)
    expanded = _Expansions(expansion_rows, lengths, expansions)
    return _Tables(translate, folds, codes, batch_codes, expanded, _kinds())


def _kinds() -> NDArray[np.uint8]:
    """How the joins class every code point, read off the regex engine's own classes."""
    every = "".join(map(chr, range(0x110000)))
    kinds = np.zeros(0x110000, dtype=np.uint8)
    classes = (
        (r"\w+", _WORD),
        (f"[{_HAN}]+", _HAN_CHAR),
        (r"\s+", _SPACE),
        ("[a-z0-9]+", _SPELLABLE),
        ("[0-9]+", _DIGIT),
        ("[a-z]+", _LATIN),
    )
    for pattern, kind in classes:
        for m in re.finditer(pattern, every):
            kinds[m.start() : m.end()] |= kind
    kinds[ord(BOUNDARY)] |= _WORD  # no join crosses a batch's boundary
    return kinds


# Past the table: the tag characters and the supplement of variation selectors, which render as nothing.
_TAGS = re.compile("[\U000e0000-\U000e01ef]+")
_TAG_CODES = (0xE0000, 0xE01EF)

# NUL separates the texts of a batch: the table deletes it inside a text, and no join crosses it.
BOUNDARY = "\x00"
BOUNDARY_CODE = ord(BOUNDARY)  # as the compiled passes over a batch's code points see it
_UNDERSCORE = ord("_")

# The joins, in order, each on what the one before left:
# 1. runs of white space count as one space, so "click  farming" matches "click farming";
# 2. runs of non-word characters (spaces, punctuation, symbols, emoji) and underscores between two Chinese
#    characters, or between a Chinese character and a digit, go: "转*发*5*个群" is "转发5个群", "大_麻" is "大麻";
#    so do those without white space between a Chinese character and a Latin letter: "k*粉" is "k粉", and any after a
#    Latin letter that is a word of its own, before a Chinese character: "K 粉" is "k粉", "V 信" is "v信";
# 3. three or more single Latin letters or digits, each set apart by one to three non-word characters or underscores,
#    are joined: "v.i.a.g.r.a", "f_r_e_e", "c🔥a💰s🔥h", and digits beside Chinese: "日赚5/0/0元" is "日赚500元".
#    Either the separator repeats, or none holds white space and all are letters ("c🔥a💰s·h"), so the gap between
#    two words stays: "f.r.e.e c.a.s.h" is "free cash", "f r e e" is "free"; an apostrophe, "&", "$" or "@" must
#    repeat ("t&c's" stays). The first two are made while folding, the third with these regexes.
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_WORD_NOT_HAN = rf"(?![{_HAN}])[^\W_]"  # a word character that sets a spelled letter apart: not "_", not Chinese
# Nor do leet symbols beside letters: "te$t!f!e$" is leetspeak, not "t", "f", "e" spelled out.
_LETTER = rf"[a-z0-9](?!{_WORD_NOT_HAN}|[$@])"
# Two letters (not digits: "3.5" stays) set apart by one to three non-word characters ("u/p", "i.t") are a spelled word
# only where white space alone parts them from a spelled word, or from such a pair beside one: "p/u/l/l u/p" is
# "pull up", "e.g. example.com" stays.
_PAIR = re.compile(r"[a-z](?<![^\W_][a-z])(?:[^\w\s\x00'&]|_){1,3}[a-z](?![^\W_])")
_WHITE_SPACE = re.compile(r"\s+")
_SPELLED_START = rf"[a-z0-9](?<!(?:{_WORD_NOT_HAN}|[$@!|])[a-z0-9])"
# The longer of the two ways wins: "s🔥e🔥l👉l" is one word, though "s🔥e🔥l" repeats its separator.
_SPELLED = (
    re.compile(rf"{_SPELLED_START}((?:[^\w\x00]|_){{1,3}}){_LETTER}(?:\1{_LETTER})+"),
    re.compile(rf"{_SPELLED_START}(?<=[a-z])(?:(?:[^\w\s\x00'&$@]|_){{1,3}}(?=[a-z]){_LETTER}){{2,}}"),
)


def as_codes(text: str) -> _Codes:
    """The code points of ``text``."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _as_text(codes: _Codes) -> str:
    return codes.tobytes().decode("utf-32-le", "surrogatepass")


@dataclass(frozen=True, slots=True)
class _Normal:
    text: str
    codes: _Codes  # text's code points
    origin: _Indices  # per character of text, the index of the original character it came from
    joined: _Indices  # original indices removed by a join
    original: _Codes  # the original text's code points


def _normalise(text: str, table: _Codes) -> _Normal:
    """Fold every character and make the first two joins in one compiled pass, then the spelled-out join; each
    character keeps its origin."""
    tables = _tables()
    original = as_codes(text)
    codes, origin, kinds, joined_first = _fold_and_join(original, table, tables.expansions, tables.kinds)
    joined = [joined_first]
    folded = _as_text(codes)
    if spelled := _spelled(folded, codes, kinds):  # the non-word characters inside each go
        spelled += _pairs_beside(folded, spelled)
        spans = np.array(spelled, dtype=np.intp)
        removed = np.zeros(len(codes), dtype=np.bool_)
        removed[_positions(spans[:, 0], spans[:, 1])] = True
        removed &= ((kinds & _WORD) == 0) | (codes == _UNDERSCORE)
        codes, origin, kinds = _without(removed, codes, origin, kinds, joined)
        folded = _as_text(codes)
    return _Normal(folded, codes, origin, np.concatenate(joined), original)


@compiled
def _fold(code: int, table: _Codes) -> int:
    """The fold of one code point: one code point, _DELETE or _EXPAND. Past the table, tag characters and variation
    selectors go and the others stay as they are."""
    if code < table.size:
        return int(table[code])
    return _DELETE if _TAG_CODES[0] <= code <= _TAG_CODES[1] else code


@compiled
def _folded_size(original: _Codes, table: _Codes, expansions: _Expansions) -> int:
    """How many code points folding ``original`` gives at most: one each, or an expansion's length."""
    size = 0
    for code in original:
        size += expansions.lengths[expansions.rows[code]] if _fold(code, table) == _EXPAND else 1
    return size


@compiled
def _fold_and_join(
    original: _Codes, table: _Codes, expansions: _Expansions, kinds: NDArray[np.uint8]
) -> tuple[_Codes, _Indices, NDArray[np.uint8], _Indices]:
    """The folded code points of ``original`` after the first two joins, each one's origin (index in ``original``)
    and kind, and the origins of the characters the joins removed."""
    size = _folded_size(original, table, expansions)
    codes = np.empty(size, dtype=np.uint32)
    origin = np.empty(size, dtype=np.int32)
    out_kinds = np.empty(size, dtype=np.uint8)
    joined = np.empty(size, dtype=np.int32)
    count = removed = 0
    run_start = -1  # where the run of non-word characters being read began in the output, -1 outside one
    han_before = False  # whether the word character before that run is Chinese...
    digit_before = False  # ...or a digit...
    latin_before = False  # ...or a Latin letter
    lone_before = False  # ...or a Latin letter that is a word of its own ("K 粉", "A 货", "V 信")
    space_before = False  # whether the character before is white space
    spaced_run = False  # whether the run holds white space
    for index in range(original.size):
        folded = _fold(original[index], table)
        if folded == _DELETE:
            continue
        row, several = 0, 1
        if folded == _EXPAND:
            row = expansions.rows[original[index]]
            several = expansions.lengths[row]
        for k in range(several):
            out = expansions.codes[row, k] if folded == _EXPAND else folded
            kind = kinds[out]
            if kind & _WORD and out != _UNDERSCORE:  # "_" separates like a symbol between Chinese characters
                if run_start >= 0 and (  # join 2: the run between two Chinese, Chinese and a digit, or Chinese and
                    (han_before and kind & (_HAN_CHAR | _DIGIT))  # a Latin letter without white space ("k*粉")
                    or (digit_before and kind & _HAN_CHAR)
                    or (not spaced_run and ((han_before and kind & _LATIN) or (latin_before and kind & _HAN_CHAR)))
                    or (lone_before and kind & _HAN_CHAR)  # white space too: a lone letter before Chinese ("K 粉")
                ):
                    for dropped in range(run_start, count):  # a loop: a slice copy costs more for a run this short
                        joined[removed] = origin[dropped]
                        removed += 1
                    count = run_start
                # A letter right after a letter or a digit (none of the run between) is no word of its own.
                lone_before = (kind & _LATIN) != 0 and not (run_start < 0 and (latin_before or digit_before))
                run_start, han_before, digit_before = -1, (kind & _HAN_CHAR) != 0, (kind & _DIGIT) != 0
                latin_before, space_before = (kind & _LATIN) != 0, False
            else:
                space = (kind & _SPACE) != 0
                if space and space_before:  # join 1: white space right after white space
                    joined[removed] = index
                    removed += 1
                    continue
                space_before = space
                if run_start < 0:
                    run_start, spaced_run = count, False
                spaced_run |= space
            codes[count], origin[count], out_kinds[count] = out, index, kind
            count += 1
    return codes[:count], origin[:count], out_kinds[:count], joined[:removed]


def _positions(starts: _Positions, ends: _Positions) -> _Positions:
    """Every position inside the spans [starts[i], ends[i])."""
    lengths = ends - starts
    skipped = np.cumsum(lengths) - lengths  # how many positions come before each span's
    positions: _Positions = np.repeat(starts - skipped, lengths) + np.arange(int(lengths.sum()), dtype=np.intp)
    return positions


def _without(
    removed: NDArray[np.bool_], codes: _Codes, origin: _Indices, kinds: NDArray[np.uint8], joined: list[_Indices]
) -> tuple[_Codes, _Indices, NDArray[np.uint8]]:
    """The characters not ``removed``; the removed ones' origins go to ``joined``."""
    joined.append(origin.take(np.flatnonzero(removed)))
    kept = np.flatnonzero(~removed)
    return codes.take(kept), origin.take(kept), kinds.take(kept)


def _spelled(folded: str, codes: _Codes, kinds: NDArray[np.uint8]) -> list[tuple[int, int]]:
    """The spans of spelled words (the longer match of either ``_SPELLED`` pattern, left to right), trying only
    where a match can start (``_spelled_starts``): those are few, and the regex scan is slow."""
    spans: list[tuple[int, int]] = []
    after = 0
    for start in _spelled_starts(codes, kinds).tolist():
        if start >= after and (end := max((m.end() for p in _SPELLED if (m := p.match(folded, start))), default=0)):
            spans.append((start, end))
            after = end
    return spans


def _pairs_beside(folded: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of two letters set apart (``_PAIR``) that white space alone parts from a spelled word or from such a
    pair beside one, on either side."""
    pairs: list[tuple[int, int]] = []
    for start, end in spans:
        at = end
        while (gap := _WHITE_SPACE.match(folded, at)) and (pair := _PAIR.match(folded, gap.end())):
            pairs.append(pair.span())
            at = pair.end()
        at = start
        while (before := len(folded[:at].rstrip())) < at:  # the white space before ``at`` ends at ``before``
            pair = next(filter(None, (_PAIR.fullmatch(folded, k, before) for k in range(before - 5, before - 2))), None)
            if pair is None:
                break
            pairs.append(pair.span())
            at = pair.start()
    return pairs


@compiled
def _spelled_starts(codes: _Codes, kinds: NDArray[np.uint8]) -> _Positions:
    """Where ``_SPELLED`` can match: a letter or digit that follows a non-word character, ``_``, a Chinese character,
    BOUNDARY or nothing (its lookbehind) and precedes a non-word character other than BOUNDARY, ``_``, or nothing."""
    starts = np.empty(codes.size, dtype=np.intp)
    count = 0
    for at in range(codes.size):
        if not kinds[at] & _SPELLABLE:
            continue
        before = kinds[at - 1] if at > 0 else 0
        if (
            before & _WORD
            and not before & _HAN_CHAR
            and codes[at - 1] != _UNDERSCORE
            and codes[at - 1] != BOUNDARY_CODE
        ):
            continue
        if at + 1 < codes.size and kinds[at + 1] & _WORD and codes[at + 1] != _UNDERSCORE:  # BOUNDARY is a word
            continue
        starts[count] = at
        count += 1
    return starts[:count]


def normalize(text: str) -> str:
    """The normal form matched against rule terms. Idempotent; terms are normalised with it too."""
    return _normalise(text, _tables().codes).text


def normalize_joined(texts: list[str]) -> str:
    """The normal forms of many texts at once, joined by BOUNDARY: one pass of each step for a whole batch."""
    return NormalBatch(texts).text


_INVISIBLE_BIT, _SEPARATOR_BIT = int(Fold.INVISIBLE), int(Fold.SEPARATOR)
_DISGUISE_BITS = int(Fold.INVISIBLE | Fold.LOOKALIKE)
# Between two characters, these do not split a word: sentence punctuation ends a phrase (a full stop may be the dot of
# 冰.毒), quotation marks and brackets set a word apart ("杀"了). Nor does white space beside a Chinese character, the
# way some write between words (我 要).
NOT_SPLITTING = "，。！？；：、…,!?;:\"'“”‘’「」『』《》()（）【】[]"
_DISGUISING, _NOT_SPLITTING, _SPACE, _CHINESE = 1, 2, 4, 8  # what the batch's screen reads of a character


@cache
def _screen_kinds() -> NDArray[np.uint8]:
    """Per code point, what ``NormalBatch.disguised`` reads of it: whether it is an invisible or look-alike character
    (the batch's boundary is neither), one that does not split a word, white space, Chinese."""
    kinds = np.zeros(0x110000, dtype=np.uint8)
    kinds[:_TABLE_SIZE] = np.where(np.array(_tables().folds, dtype=np.uint16) & _DISGUISE_BITS, _DISGUISING, 0)
    kinds[_TAG_CODES[0] : _TAG_CODES[1] + 1] = _DISGUISING
    kinds[BOUNDARY_CODE] = 0
    kinds[as_codes(NOT_SPLITTING + "\n\r")] = _NOT_SPLITTING
    kinds[as_codes(" \t\u3000\xa0")] = _SPACE
    kinds[0x3400:0xA000] = _CHINESE
    return kinds


@compiled
def _disguised_texts(
    codes: _Codes, joined: NDArray[np.bool_], kinds: NDArray[np.uint8], count: int
) -> NDArray[np.bool_]:
    """Per text of a batch (its original code points), whether it holds an invisible or look-alike character or a
    join took out a character that splits a word: not sentence punctuation or quotation marks, nor white space beside
    a Chinese character or more white space."""
    texts = np.zeros(count, dtype=np.bool_)
    text, last = 0, codes.size - 1
    for at in range(codes.size):
        code = codes[at]
        if code == BOUNDARY_CODE:
            text += 1
            continue
        kind = kinds[code]
        if kind & _DISGUISING:
            texts[text] = True
        elif joined[at] and not kind & _NOT_SPLITTING:
            beside = kinds[codes[max(at - 1, 0)]] | kinds[codes[min(at + 1, last)]]
            if not (kind & _SPACE and beside & (_CHINESE | _SPACE)):
                texts[text] = True
    return texts


_FOLDS_BY_VALUE = [Fold(bits) for bits in range(1 << len(Fold))]  # making a Fold runs Python code


# A text this long or shorter has its origins read as a list once its first span is asked for: reading a numpy
# array element by element costs several times as much, and a message that matched asks for several spans.
_LISTED_ORIGINS = 512


class Mapped:
    """A normalised string and the way back: per normalised character, the index of the original one.

    Only the few characters a match or signal covers are ever looked up, so the arrays stay as they came, possibly
    views into a whole batch's (whose original texts, joined, put this one at ``base``)."""

    __slots__ = ("_base", "_joined", "_offsets", "_origin", "original", "text")

    def __init__(self, text: str, original: str, origin: _Indices, joined: bytes, base: int = 0) -> None:
        self.text = text
        self.original = original
        self._origin = origin  # per normalised character, base + the index of its original character
        self._joined = joined  # per original character, at base + its index, whether a join removed it
        self._base = base
        self._offsets: list[int] | None = None  # ``_origin`` as Python ints, for a chat message's several spans

    @property
    def origin(self) -> list[int]:
        """origin[i] is the index in the original text of normalised character i."""
        origin: list[int] = (self._origin - self._base).tolist()
        return origin

    @property
    def joined(self) -> tuple[int, ...]:
        """The original indices removed by a join (separators inside words), in order."""
        mask = self._joined[self._base : self._base + len(self.original)]
        return tuple(index for index, removed in enumerate(mask) if removed)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of normalised characters [start, end)."""
        offsets, base = self._offsets, self._base
        if offsets is None:
            if len(self._origin) > _LISTED_ORIGINS:  # a long text (mail): its few spans read off the array
                return int(self._origin[start]) - base, int(self._origin[end - 1]) + 1 - base
            # Listed as they are, the base taken off in Python: an array subtraction costs more than the list.
            self._offsets = offsets = self._origin.tolist()
        return offsets[start] - base, offsets[end - 1] + 1 - base

    def gaps(self, start: int, end: int) -> list[str]:
        """The original characters taken out between normalised characters [start, end), one string per place."""
        origin, base = self._origin[start:end].tolist(), self._base
        return [
            self.original[before + 1 - base : after - base] for before, after in pairwise(origin) if after > before + 1
        ]

    def folds_between(self, start: int, end: int) -> Fold:
        """Every folding applied to original characters [start, end)."""
        folds = _tables().folds
        acc = 0
        for ch in self.original[start:end]:
            cp = ord(ch)
            acc |= folds[cp] if cp < _TABLE_SIZE else (_INVISIBLE_BIT if _TAGS.match(ch) else 0)
        if 1 in self._joined[self._base + start : self._base + end]:  # a join removed one in between
            acc |= _SEPARATOR_BIT
        return _FOLDS_BY_VALUE[acc]


def normalize_mapped(text: str) -> Mapped:
    """``normalize`` with the way back to the original text, to report spans in it."""
    normal = _normalise(text, _tables().codes)
    return Mapped(normal.text, text, normal.origin, _removed(normal.joined, len(text)))


def _removed(indices: _Indices, size: int) -> bytes:
    """Per index below ``size``, 1 if it is one of ``indices``, else 0: a mask costs less to make than the sorted
    indices, and as bytes it tells whether a span holds one (``1 in mask[start:end]``) in a few C steps."""
    removed = np.zeros(size, dtype=np.uint8)
    removed[indices] = 1
    return removed.tobytes()


class NormalBatch:
    """The normal forms of a batch of texts, joined by BOUNDARY, their code points, and the way back to each
    original text. The passes over a whole batch (``Prefilter``, the detectors' screen) read the code points; the
    automaton and the patterns then search only the texts they pick."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        joined = BOUNDARY.join(texts)
        self._clean = joined.count(BOUNDARY) == len(texts) - 1
        if not self._clean:  # a text holds BOUNDARY itself: normalised without it, and mapped text by text
            joined = BOUNDARY.join(t.replace(BOUNDARY, "") for t in texts)
        self._normal = _normalise(joined, _tables().batch_codes)
        self._size = len(joined)  # of the originals, joined
        self.text = self._normal.text
        self.codes = self._normal.codes
        self._starts: list[int] | None = None
        self._joined: bytes | None = None

    def starts(self) -> list[int]:
        """Where each text begins in ``text``, and where one more would (past the end)."""
        if self._starts is None:
            boundaries = np.flatnonzero(self.codes == BOUNDARY_CODE) + 1
            self._starts = [0, *boundaries.tolist(), len(self.text) + 1]
        return self._starts

    def originals(self) -> _Codes:
        """The original texts' code points, joined by BOUNDARY."""
        return self._normal.original if self._clean else as_codes(BOUNDARY.join(self.texts))

    def apart(self) -> list[int]:
        """Positions in ``text`` of Latin letters or digits whose original is not next to that of the letter or digit
        before: a join or a deletion took what stood between ("f r e e c a s h" is "freecash", "c\u200basino" is
        "casino"), so a word may begin there, as the writer meant it."""
        codes, origin = self.codes, self._normal.origin
        latin = ((codes >= ord("a")) & (codes <= ord("z"))) | ((codes >= ord("0")) & (codes <= ord("9")))
        gaps: list[int] = (np.flatnonzero(latin[1:] & latin[:-1] & (np.diff(origin) > 1)) + 1).tolist()
        return gaps

    def disguised(self) -> set[int]:
        """The texts where normalisation took a character from inside a word (a separator, a word spelled out) or
        undid an invisible or look-alike one: those where a word may be written in disguise."""
        codes = self._normal.original
        joined = np.zeros(len(codes), dtype=np.bool_)
        joined[self._normal.joined] = True
        return set(np.flatnonzero(_disguised_texts(codes, joined, _screen_kinds(), len(self.texts))).tolist())

    def pick(self, chosen: list[int]) -> tuple[str, list[int]]:
        """The normal texts ``chosen`` (ascending indices) joined by BOUNDARY, and where each begins in the result.
        Only the chosen texts are copied."""
        starts, normal = self.starts(), self.text
        picked = [normal[starts[index] : starts[index + 1] - 1] for index in chosen]
        return BOUNDARY.join(picked), [0, *accumulate(len(text) + 1 for text in picked)]

    def mapped(self, index: int) -> Mapped:
        """``normalize_mapped`` of text ``index``, read off the batch."""
        if not self._clean:
            return normalize_mapped(self.texts[index])
        if self._joined is None:  # per character of the joined originals, whether a join removed it
            self._joined = _removed(self._normal.joined, self._size)
        starts, origin = self.starts(), self._normal.origin
        start, end = starts[index], starts[index + 1] - 1
        # The text begins in the joined originals right after the BOUNDARY before it, which folding keeps.
        base = int(origin[start - 1]) + 1 if index else 0
        return Mapped(self.text[start:end], self.texts[index], origin[start:end], self._joined, base)


# The names of every combination of folds, by value.
_NAMES_BY_VALUE = [tuple(name for flag, name in FOLD_NAMES.items() if bits & flag) for bits in range(1 << len(Fold))]


def fold_names(folds: int) -> tuple[str, ...]:
    return _NAMES_BY_VALUE[folds]


# The second view: what a literal match cannot see through, undone where a text shows it. Leetspeak inside a Latin
# word ("c0ca1ne", "fr33", "ca$ino", "pi||s": a word that mixes letters with these digits or symbols) and runs of a
# repeated letter ("caaasino", "ccaassiinnoo", "赌赌博博") are common evasions, but folding them in the normal text
# would turn ordinary numbers and words ("100", "哈哈", "good") into others. So a text that holds a leet word, three
# of a Latin letter in a row, two doubled letters in a row or a repeated Chinese character is matched a second time
# with its leet letters read as letters and every run of a repeated letter as one; terms are read the same way, and a
# hit there counts only if it covers what was undone. "1", "|" and "!" stand for "i" as well as "l", so the view
# reads those letters and symbols as one letter, I_OR_L, and a run of the same one as one ("pi11s", "pills" and "p1lls"
# read alike, "kiss" differently); "!" is a letter only between letters ("w!th"): "wow!", "好!ppt" are no leet.
_LEET = {"0": "o", "1": "1", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "|": "1", "!": "1"}
I_OR_L = ord("1")
_EXCLAMATION = ord("!")


@cache
def _leet_table() -> NDArray[np.uint32]:
    table = np.zeros(128, dtype=np.uint32)
    for character, letter in _LEET.items():
        table[ord(character)] = ord(letter)
    return table


@compiled
def _latin_letter(code: int) -> bool:
    return ord("a") <= code <= ord("z")


@compiled
def _han(code: int) -> bool:
    """Whether ``code`` is a Chinese character, as ``_HAN`` says: compared by range, which is cheaper in a pass over
    every character than a look-up in the table of all Unicode."""
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2EBEF
    )


# The leet helpers below take a character's leet letter (``leet[code]`` for ASCII, else 0), not the table: a compiled
# call that takes an array costs its reference counts, and a pass calling one for every character ran 4-5x slower.


@compiled
def _leet_word(code: int, letter: int) -> bool:
    """Whether ``code``, whose leet letter is ``letter``, can be part of a word that leetspeak spells: a Latin letter, a
    digit or a leet symbol."""
    return _latin_letter(code) or ord("0") <= code <= ord("9") or letter != 0


@compiled
def _exclamation_spells(codes: _Codes, at: int) -> bool:
    """Whether the "!" at ``at`` stands between what spells a word with it."""
    return 0 < at < codes.size - 1 and _spells_beside(codes[at - 1]) and _spells_beside(codes[at + 1])


@compiled
def _spells_beside(code: int) -> bool:
    """Whether a "!" beside ``code`` may stand for a letter: a Latin letter or a leet symbol other than a digit."""
    return _latin_letter(code) or code in (ord("$"), ord("@"), ord("|"))


@compiled
def _leet_symbol(code: int, letter: int) -> bool:
    return letter != 0 and not _latin_letter(code)


@compiled
def _read(code: int, letter: int, spelled: bool) -> int:  # noqa: FBT001 - compiled
    """A character, whose leet letter is ``letter``, as the second view reads it: "i" and "l" as I_OR_L, a leet digit or
    symbol as its letter in a word that ``spelled``."""
    if code in (ord("i"), ord("l")):
        return I_OR_L
    if spelled and _leet_symbol(code, letter):
        return letter
    return int(code)


@compiled
def _repeated(third: int, second: int, code: int) -> bool:
    """Whether a Latin letter ``code`` that doubles the one before it, and the two before those, make a run of three
    ("aaa") or two doubled letters ("ccaa")."""
    return second == code or (third == second and _latin_letter(second))


@compiled
def _shows_evasion(codes: _Codes, leet: NDArray[np.uint32]) -> NDArray[np.bool_]:
    """Per text (joined by BOUNDARY): whether it holds a leet word, a Chinese character twice in a row, a Latin
    letter three times or two doubled Latin letters in a row ("ccaa"). One pass, as most texts hold none."""
    shown = np.zeros(codes.size + 1, dtype=np.bool_)
    text = 0
    letters = symbols = False  # in the word being read: Latin letters, leet digits or symbols
    for at in range(codes.size):
        code = codes[at]
        if code == BOUNDARY_CODE:
            text += 1
            letters = symbols = False
            continue
        if shown[text]:
            continue
        if _latin_letter(code):
            letters = True
            if at >= 2 and codes[at - 1] == code:
                shown[text] = _repeated(codes[at - 3] if at >= 3 else 0, codes[at - 2], code)
        elif code < 128 and leet[code]:
            if code != _EXCLAMATION or _exclamation_spells(codes, at):  # "!" is punctuation unless it spells
                symbols = True
            else:  # punctuation: the word ends
                letters = symbols = False
        elif at >= 1 and codes[at - 1] == code and _han(code):
            shown[text] = True
        if not _leet_word(code, leet[code] if code < 128 else 0):
            letters = symbols = False
        if letters and symbols:
            after = codes[at + 1] if at + 1 < codes.size else BOUNDARY_CODE
            if not _leet_word(after, leet[after] if after < 128 else 0) or (
                after == _EXCLAMATION
                and not (_spells_beside(code) and at + 2 < codes.size and _spells_beside(codes[at + 2]))
            ):
                shown[text] = True
    return shown[: text + 1]


@compiled
def _second_view(
    codes: _Codes, leet: NDArray[np.uint32], shown: NDArray[np.bool_], starts: _Positions
) -> tuple[_Codes, _Indices, _Indices, NDArray[np.bool_]]:
    """The second view of the texts ``shown`` of texts joined by BOUNDARY, which begin at ``starts``: per character,
    its code, the first and last index of the normal characters it stands for, and whether it undoes something. The
    other texts are left empty."""
    size = codes.size
    out = np.empty(size, dtype=np.uint32)
    first = np.empty(size, dtype=np.int32)
    last = np.empty(size, dtype=np.int32)
    undone = np.empty(size, dtype=np.bool_)
    count = 0
    for text in range(shown.size):
        if text:
            out[count], first[count], last[count], undone[count] = BOUNDARY_CODE, starts[text] - 1, starts[text] - 1, 0
            count += 1
        if not shown[text]:
            continue
        at, end = starts[text], starts[text + 1] - 1
        while at < end:  # a word at a time: leet letters if it mixes letters and leet symbols
            word_end, letters, symbols = at, False, False
            while word_end < end:
                code = codes[word_end]
                letter = leet[code] if code < 128 else 0
                # "!" only between Latin letters or the symbols "$", "@", "|" ("w!th", "th!$"), as it ends many a word
                # as punctuation ("wow!", "好!ppt", "ppt!12").
                if not _leet_word(code, letter) or (code == _EXCLAMATION and not _exclamation_spells(codes, word_end)):
                    break
                letters |= _latin_letter(code)
                symbols |= _leet_symbol(code, letter)
                word_end += 1
            if word_end == at:  # not a word that leet can spell: a Chinese character's run goes on to the text's end
                word_end = at + 1
                while word_end < end and codes[word_end] == codes[at]:
                    word_end += 1
            spelled = letters and symbols
            k = at
            while k < word_end:  # then every run of a repeated letter as one, as leet reads them
                code = codes[k]
                letter = leet[code] if code < 128 else 0
                read = _read(code, letter, spelled)
                run = k
                if _latin_letter(read) or _han(read) or (read == I_OR_L and letters):
                    while run + 1 < word_end:
                        following = codes[run + 1]
                        if _read(following, leet[following] if following < 128 else 0, spelled) != read or (
                            read == I_OR_L and following != code  # "ll" is one letter, "il" two
                        ):
                            break
                        run += 1
                out[count], first[count], last[count] = read, k, run
                undone[count] = (spelled and _leet_symbol(code, letter)) or run > k
                count += 1
                k = run + 1
            at = word_end
    return out[:count], first[:count], last[:count], undone[:count]


class SecondView(NamedTuple):
    """A batch's second view (see ``_second_view``): its texts joined by BOUNDARY, empty where nothing is undone."""

    codes: _Codes
    first: _Indices  # per character, the index in the batch's normal text of the first character it stands for
    last: _Indices  # ... and of the last
    undone: NDArray[np.bool_]

    @property
    def text(self) -> str:
        return _as_text(self.codes)


def second_view(codes: _Codes, *, every: bool = False, starts: list[int] | None = None) -> SecondView:
    """The second view of normal text's code points (texts joined by BOUNDARY); with ``every``, of every text.
    ``starts``: where each text begins and where one more would, if known already (``NormalBatch.starts``)."""
    leet = _leet_table()
    if starts is None:
        starts = [0, *(np.flatnonzero(codes == BOUNDARY_CODE) + 1).tolist(), codes.size + 1]
    shown = np.ones(len(starts) - 1, dtype=np.bool_) if every else _shows_evasion(codes, leet)
    return SecondView(*_second_view(codes, leet, shown, np.asarray(starts, dtype=np.intp)))


@lru_cache(maxsize=1 << 18)
def second_form(normal: str) -> str:
    """How a term (in normal form) reads in the second view; remembered, as a reloaded pack asks for every term's."""
    return second_view(as_codes(normal), every=True).text
