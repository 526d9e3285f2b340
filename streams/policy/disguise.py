"""Words written in disguise: evidence in themselves.

Nobody splits 冰毒 with an invisible character, spells out k.u.s.h, writes c0ca1ne or mixes Cyrillic letters into
"casino" but to get the word past a filter. So a word of a set (which alone would need company) or of a weak rule,
found where normalisation undid such a disguise inside it, adds its category's ``disguised`` weight
(streams/policy/rules.py makes one rule of it per category, ``<category>.disguised-word``).

What is not a disguise: styled, full-width, traditional or accented letters (the way many people write), a repeated
letter ("sooo"), sentence punctuation, quotation marks or white space between two characters (秒杀, 手慢无 written
with a full-width comma holds no 杀手; 我 要 is two words written apart), abbreviations written with dots (F.B.I.,
T.I.P.S.), spelled-out letters that go on past the word ("E x t r a S t r e n g t h" holds no "extras"), a model
number read as leetspeak (151S), and Cyrillic words (a Russian word is no disguised English one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from streams.policy.matcher import Hit
from streams.policy.normalize import NOT_SPLITTING, Fold, Mapped
from streams.policy.rules import Rule

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_NOT_SPLITTING = re.compile(rf"[{re.escape(NOT_SPLITTING)}\s]")  # between two Chinese characters
# A Latin word spelled out: four letters at least, each set apart; five in capitals (F.B.I., T.I.P.S. abbreviate).
_SPELLED_GAPS = 3
# A spelled-out letter that goes on past the word's end, or before its start: the word is part of a longer one
# ("E x t r a S t r e n g t h" holds no "extras").
_SPELLED_ON = re.compile(r"[^\w\n]{1,3}[A-Za-z](?![A-Za-z])")
_SPELLED_BEFORE = re.compile(r"(?<![A-Za-z])[A-Za-z][^\w\n]{1,3}$")
_SHOWN = Fold.INVISIBLE | Fold.LOOKALIKE


def disguised(mapped: Mapped, hits: Sequence[Hit], counts: Callable[[Rule], bool]) -> list[Hit]:
    """The hits of a text (``mapped``) written in disguise, among those of rules ``counts`` admits."""
    return [hit for hit in hits if counts(hit.term.rule) and _shows_disguise(mapped, hit)]


def _shows_disguise(mapped: Mapped, hit: Hit) -> bool:
    term = hit.term
    if term.needs_company or term.pattern is not None or term.variant not in ("", "lookalike"):
        return False  # initials and pinyin are ways of writing; a slot's gaps are a number's spaces
    start, end = mapped.span(hit.start, hit.end)
    written = mapped.original[start:end]
    if hit.folds & Fold.LEET:  # digits or symbols for letters inside the word, not at its ends (151S, buck$)
        return len(term.normal) >= 4 and written[:1].isalpha() and written[-1:].isalpha()
    folds = mapped.folds_between(start, end)
    if folds & _SHOWN:
        return not folds & Fold.LOOKALIKE or _LATIN.search(written) is not None  # mixed into a Latin word
    if not folds & Fold.SEPARATOR:
        return False
    gaps = mapped.gaps(hit.start, hit.end)
    if _HAN.search(term.normal):
        return bool(gaps) and not any(_NOT_SPLITTING.search(gap) for gap in gaps)
    spelled = len(gaps) >= (_SPELLED_GAPS + 1 if written.isupper() else _SPELLED_GAPS)
    return spelled and _spelled_alone(mapped.original, start, end)


def _spelled_alone(original: str, start: int, end: int) -> bool:
    """Whether the letters spelled out at [start, end) of ``original`` are a word of their own: no spelled-out
    letter goes on after its end or before its start."""
    return not _SPELLED_ON.match(original, end) and not _SPELLED_BEFORE.search(original, max(0, start - 4), start)
