"""Evasion survival: how much of what the rule pack catches as written it still catches once the words are evaded.

    python -m benchmarks.evasion [--rules DIR] [--corpus DIR] [--seed N] [--kinds K,K] [--styles] [--misses N]
                                 [--evaded-too]

Takes the violating messages of the corpus's dev slice (``tests/data/corpus/dev-*.jsonl``; the held-aside slice is
never read) written plainly (``evasion: none``; with ``--evaded-too`` the already evaded ones as well, which then
carry two evasions) that the pack flags (review or block) as written, evades them the ways spam does, and classifies
them again. Each evasion kind has several styles (zero-width: between every character, some, soft hyphens, variation
selectors, tag characters; width: full-width, mathematical bold, script, fraktur, circled, small capitals, ...), and
each style is applied twice: to the whole message, and only to the words the verdict said it scored on (the spans of
its terms; for digit forms, of its numbers too), as spammers evade the trigger word and leave the rest. A message a
style leaves unchanged (pinyin of an English message) does not count for it.

Reported per kind: the share still flagged ("survival") over both scopes and each, per language, and with
``--styles`` per style. ``initials`` (``发票`` as ``fp``) is reported too, but is ambiguous by nature. Every random
choice comes from ``--seed`` and the message, so two runs print the same figures. The last line sums up:

    evasion: digit_form=0.990 initials=0.400 leet=0.980 ... zero_width=1.000
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import opencc
from confusable_homoglyphs import confusables
from pypinyin import Style, lazy_pinyin
from rich.console import Console
from rich.table import Table

from benchmarks.quality import (
    DEFAULT_CORPUS,
    DEFAULT_RULES,
    FLAGGED,
    BadInput,
    Row,
    Tally,
    classify,
    fmt,
    read_rows,
    share,
)
from streams.policy.classify import Classifier
from streams.policy.rules import RulePackError, load_pack

WHOLE, TERMS = "whole", "terms"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_DIGITS = re.compile(r"[0-9]")


def _wordish(ch: str) -> bool:
    """A character a separator or a repeat goes between or on: a letter, a digit or a Chinese character."""
    return ch.isalnum()


def _between(text: str, rng: random.Random, insert: Callable[[random.Random], str], rate: float = 1.0) -> str:
    """``text`` with ``insert`` between two word characters, at each such gap with probability ``rate`` (at least
    once when there is a gap)."""
    gaps = [i for i in range(1, len(text)) if _wordish(text[i - 1]) and _wordish(text[i])]
    if not gaps:
        return text
    chosen = {i for i in gaps if rng.random() < rate} or {rng.choice(gaps)}
    return "".join(insert(rng) + ch if i in chosen else ch for i, ch in enumerate(text))


def _after_each(text: str, rng: random.Random, pick: Callable[[random.Random], str]) -> str:
    """``text`` with ``pick`` after every character but the last."""
    return "".join(ch + (pick(rng) if i + 1 < len(text) else "") for i, ch in enumerate(text))


# --- zero-width -------------------------------------------------------------------------------------------------------

_ZERO_WIDTH = [chr(c) for c in (*range(0x200B, 0x2010), *range(0x2060, 0x2065), 0xFEFF, 0x180E, 0x034F, 0x00AD)]
_VARIATION_SELECTORS = [chr(c) for c in range(0xFE00, 0xFE10)]
_TAG_CHARACTERS = [chr(c) for c in range(0xE0020, 0xE007F)]
_MORE_VARIATION_SELECTORS = [chr(c) for c in range(0xE0100, 0xE01F0)]
# Format characters render as nothing, but for those that prefix a number (Arabic number signs) and draw a mark.
_DRAWN_FORMAT = frozenset((*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x110BD, 0x110CD))
_FORMAT_CHARACTERS = [
    chr(c)
    for c in range(0x110000)
    if unicodedata.category(chr(c)) == "Cf" and c not in _DRAWN_FORMAT and not 0xE0000 <= c <= 0xE007F
]
_BIDI_CONTROLS = [chr(c) for c in (0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A))]
# Letters and symbols that draw a blank: Hangul fillers, the braille blank, Khmer inherent vowels, the Mongolian
# vowel separator, the combining grapheme joiner.
_BLANKS = [chr(c) for c in (0x3164, 0x115F, 0x1160, 0xFFA0, 0x2800, 0x17B4, 0x17B5, 0x180E, 0x034F)]
_COMBINING_MARKS = [chr(c) for c in range(0x300, 0x370)]


def _zalgo(rng: random.Random) -> str:
    """One to three combining marks, the noise of "zalgo" text: c̴̛a̸s̷i̵n̶o̸."""
    return "".join(rng.choice(_COMBINING_MARKS) for _ in range(rng.randint(1, 3)))


def _one_of(choices: Sequence[str]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(choices)


# --- separators and spelling out --------------------------------------------------------------------------------------

_EMOJI = "🔥💰✨⭐👉❤🎉💯"
_EMOJI_SEQUENCES = ("👍🏻", "👨\u200d👩\u200d👧", "❤\ufe0f", "🇨🇳", "1\ufe0f\u20e3"[1:])  # modifiers, ZWJ, flags
_FULLWIDTH_PUNCTUATION = "，。、·•"
# Strokes and marks drawn like a dot or a dash: 丶 and 丿 are Chinese characters (radicals), ー katakana.
_STROKES = "丶丿ー〃"


def _separated(separator: Callable[[random.Random], str]) -> Callable[[str, random.Random], str]:
    """A separator between every two word characters, drawn gap by gap (emoji, full-width punctuation vary)."""

    def transform(text: str, rng: random.Random) -> str:
        return _between(text, rng, separator)

    return transform


def _spelled(separators: Sequence[str], *, per_word: bool = False) -> Callable[[str, random.Random], str]:
    """Latin words of two letters or more spelled letter by letter with a separator (one a word with ``per_word``)."""

    def transform(text: str, rng: random.Random) -> str:
        fixed = rng.choice(separators)

        def spell(m: re.Match[str]) -> str:
            word = m.group()
            return (rng.choice(separators) if per_word else fixed).join(word) if len(word) > 1 else word

        return _LATIN_WORD.sub(spell, text)

    return transform


# --- styled letters ---------------------------------------------------------------------------------------------------

# Families of styled letters and digits, by the start of their Unicode names; the first that fits wins.
_FAMILIES = (
    ("FULLWIDTH LATIN ", "fullwidth"),
    ("FULLWIDTH DIGIT ", "fullwidth"),
    ("MATHEMATICAL BOLD ITALIC ", "bold-italic"),
    ("MATHEMATICAL BOLD SCRIPT ", ""),
    ("MATHEMATICAL BOLD FRAKTUR ", ""),
    ("MATHEMATICAL BOLD ", "bold"),
    ("MATHEMATICAL ITALIC ", "italic"),
    ("PLANCK CONSTANT", "italic"),
    ("MATHEMATICAL SCRIPT ", "script"),
    ("SCRIPT ", "script"),
    ("MATHEMATICAL FRAKTUR ", "fraktur"),
    ("BLACK-LETTER ", "fraktur"),
    ("MATHEMATICAL DOUBLE-STRUCK ", "double-struck"),
    ("DOUBLE-STRUCK ", "double-struck"),
    ("MATHEMATICAL MONOSPACE ", "monospace"),
    ("MATHEMATICAL SANS-SERIF BOLD ITALIC ", ""),
    ("MATHEMATICAL SANS-SERIF ITALIC ", ""),
    ("MATHEMATICAL SANS-SERIF BOLD ", "sans-bold"),
    ("MATHEMATICAL SANS-SERIF ", "sans"),
    ("CIRCLED ", "circled"),
    ("NEGATIVE CIRCLED LATIN ", "negative-circled"),
    ("PARENTHESIZED ", "parenthesised"),
    ("SQUARED LATIN ", "squared"),
    ("NEGATIVE SQUARED LATIN ", "negative-squared"),
    ("LATIN LETTER SMALL CAPITAL ", "small-capitals"),
    ("MODIFIER LETTER ", "superscript"),
    ("SUPERSCRIPT ", "superscript"),
    ("LATIN SUBSCRIPT ", "subscript"),
    ("SUBSCRIPT ", "subscript"),
    ("REGIONAL INDICATOR SYMBOL LETTER ", "regional-indicator"),
)
_DECORATED = re.compile(r"^\(?([A-Za-z0-9])\)?\.?$")
_NAMED_LETTER = re.compile(r" (?:LETTER|CAPITAL) ([A-Z])$")


@cache
def styled_alphabets() -> dict[str, dict[str, str]]:
    """Per family, the styled form of each ASCII letter and digit it has, read off the Unicode names (letters a
    family has only in one case serve both)."""
    alphabets: dict[str, dict[str, str]] = {}
    for cp in range(0x80, 0x20000):
        ch = chr(cp)
        name = unicodedata.name(ch, "")
        family = next((f for prefix, f in _FAMILIES if name.startswith(prefix)), None)
        if not family:
            continue
        plain = _DECORATED.match(unicodedata.normalize("NFKC", ch))
        if plain:
            letter = plain.group(1)
        elif named := _NAMED_LETTER.search(name):  # no compatibility form: 🅐, ᴀ
            letter = named.group(1).lower() if family == "small-capitals" else named.group(1)
        else:
            continue
        alphabet = alphabets.setdefault(family, {})
        alphabet.setdefault(letter, ch)
    for alphabet in alphabets.values():
        for letter in [c for c in alphabet if c.isalpha()]:
            alphabet.setdefault(letter.swapcase(), alphabet[letter])
    return alphabets


def _styled(family: str) -> Callable[[str, random.Random], str]:
    def transform(text: str, _: random.Random) -> str:
        alphabet = styled_alphabets()[family]
        return "".join(alphabet.get(ch, ch) if ch.isascii() else ch for ch in text)

    return transform


# --- leetspeak --------------------------------------------------------------------------------------------------------

_LEET_DIGITS = {"a": "4", "e": "3", "i": "1", "l": "1", "o": "0", "s": "5", "t": "7"}
_LEET_SYMBOLS = {"a": "@", "s": "$", "i": "!", "l": "|"}


def _leet(table: dict[str, str] | None) -> Callable[[str, random.Random], str]:
    """Every letter ``table`` knows written as its digit or symbol; with None, about half the letters, each as a
    digit or a symbol (at least one a word)."""

    def word(m: re.Match[str], rng: random.Random) -> str:
        letters = list(m.group())
        if table is not None:
            return "".join(table.get(c.lower(), c) for c in letters)
        places = [i for i, c in enumerate(letters) if c.lower() in _LEET_DIGITS]
        if not places:
            return m.group()
        chosen = {i for i in places if rng.random() < 0.5} or {rng.choice(places)}
        for i in chosen:
            options = [t[letters[i].lower()] for t in (_LEET_DIGITS, _LEET_SYMBOLS) if letters[i].lower() in t]
            letters[i] = rng.choice(options)
        return "".join(letters)

    def transform(text: str, rng: random.Random) -> str:
        return re.sub(r"[A-Za-z]{3,}", lambda m: word(m, rng), text)

    return transform


# --- repeats ----------------------------------------------------------------------------------------------------------

_REPEATABLE = re.compile(r"[A-Za-z]+|[\u3400-\u4dbf\u4e00-\u9fff]+")


def _doubled(text: str, _: random.Random) -> str:
    """Every letter and Chinese character written twice: 赌赌博博, ccaassiinnoo."""
    return _REPEATABLE.sub(lambda m: "".join(c * 2 for c in m.group()), text)


def _one_stretched(low: int, high: int) -> Callable[[str, random.Random], str]:
    """In each word (a run of letters, or of Chinese characters), one character written ``low`` to ``high`` times."""

    def stretch(m: re.Match[str], rng: random.Random) -> str:
        word = m.group()
        if len(word) < 2:  # a one-letter word says nothing
            return word
        at = rng.randrange(len(word))
        return word[:at] + word[at] * rng.randint(low, high) + word[at + 1 :]

    def transform(text: str, rng: random.Random) -> str:
        return _REPEATABLE.sub(lambda m: stretch(m, rng), text)

    return transform


# --- traditional characters, digit forms ------------------------------------------------------------------------------


def _opencc(config: str) -> Callable[[str, random.Random], str]:
    converter = opencc.OpenCC(config)
    return lambda text, _: converter.convert(text)


_DIGIT_FORMS: dict[str, str | list[str]] = {
    "chinese": "零一二三四五六七八九",
    "chinese-zero": "〇一二三四五六七八九",
    "financial": "零壹贰叁肆伍陆柒捌玖",
    "fullwidth": "０１２３４５６７８９",
    "circled": "⓪①②③④⑤⑥⑦⑧⑨",
    "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹",
    "parenthesised": "0⑴⑵⑶⑷⑸⑹⑺⑻⑼",
    "dingbat-negative-circled": "⓿❶❷❸❹❺❻❼❽❾",
    "dingbat-circled-sans": "🄋➀➁➂➃➄➅➆➇➈",
    "dingbat-negative-sans": "🄌➊➋➌➍➎➏➐➑➒",
    "double-circled": "0⓵⓶⓷⓸⓹⓺⓻⓼⓽",
    "keycap": [f"{d}\ufe0f\u20e3" for d in "0123456789"],
    "arabic-indic": "٠١٢٣٤٥٦٧٨٩",
}
_CHINESE_NUMERALS = frozenset({"chinese", "chinese-zero", "financial"})


def _digit_form(form: str) -> Callable[[str, random.Random], str]:
    digits = _DIGIT_FORMS[form]
    return lambda text, _: _DIGITS.sub(lambda m: digits[int(m.group())], text)


def _mixed_digit_forms(text: str, rng: random.Random) -> str:
    """Each digit in a form drawn digit by digit: 1③8二七⁴."""
    forms = list(_DIGIT_FORMS.values())
    return _DIGITS.sub(lambda m: rng.choice(forms)[int(m.group())], text)


def _digit_groups(separators: Sequence[str]) -> Callable[[str, random.Random], str]:
    """Numbers of four digits or more in Chinese numerals, in groups of two to four set apart: 一三八-二七四五."""

    def number(m: re.Match[str], rng: random.Random) -> str:
        digits, groups, at = m.group(), [], 0
        while at < len(digits):
            size = rng.randint(2, 4)
            groups.append("".join("零一二三四五六七八九"[int(d)] for d in digits[at : at + size]))
            at += size
        return rng.choice(separators).join(groups)

    return lambda text, rng: re.sub("[0-9]{4,}", lambda m: number(m, rng), text)


# --- look-alikes ------------------------------------------------------------------------------------------------------

# Letters other scripts draw like Latin ones.
_CYRILLIC = dict(zip("aceopxyijshdqwlABCEHKMOPTXY", "асеорхуіјѕһԁԛԝӏАВСЕНКМОРТХУ", strict=True))
_GREEK = dict(zip("aoivkptuxABEHIKMNOPTXYZ", "αοινκρτυχΑΒΕΗΙΚΜΝΟΡΤΧΥΖ", strict=True))
_OTHER_SCRIPTS = dict(zip("iagoun", "ıɑɡօսո", strict=True))  # dotless i, Latin alpha, script g, Armenian
# Chinese characters written for others by sound or shape; the benchmark keeps only those rules/lookalikes.txt does
# not list, to see what the pack does with substitutions it has never seen.
_CHINESE_BEYOND = {
    "毒": "独读", "赌": "杜肚", "博": "勃脖", "麻": "嘛蟆", "枪": "呛抢", "票": "漂嫖", "彩": "采菜",
    "药": "要钥", "卖": "麦迈", "粉": "份奋", "冰": "兵并", "丸": "完玩", "黄": "簧璜", "色": "涩瑟",
    "约": "乐越", "贷": "代袋", "款": "宽", "证": "正政", "假": "价架", "钱": "浅", "骗": "片篇",
    "杀": "沙纱", "刀": "叨", "爆": "暴瀑", "炸": "乍咋", "群": "裙", "转": "专", "发": "法",
}  # fmt: skip


@cache
def _confusable_letters() -> dict[str, str]:
    """Per ASCII letter, the letters of scripts other than Latin, Cyrillic and Greek that Unicode's confusables data
    says look like it (Cherokee, Lisu, Armenian, Coptic, Canadian syllabics ...)."""
    found: dict[str, str] = {}
    for cp in range(0x80, 0x20000):
        ch = chr(cp)
        if not unicodedata.category(ch).startswith("L"):
            continue
        if unicodedata.name(ch, "").startswith(("LATIN", "CYRILLIC", "GREEK", "MATHEMATICAL", "FULLWIDTH")):
            continue
        for found_char in confusables.is_confusable(ch, greedy=True, preferred_aliases=["latin"]) or ():
            for glyph in found_char["homoglyphs"]:
                if glyph["c"].isascii() and glyph["c"].isalpha() and len(glyph["c"]) == 1:
                    found[glyph["c"]] = found.get(glyph["c"], "") + ch
    return found


def _other_confusable(text: str, rng: random.Random) -> str:
    table = _confusable_letters()
    return _swap_letters({c: rng.choice(table[c]) for c in table}, 0.5)(text, rng)


def _swap_letters(table: dict[str, str], rate: float) -> Callable[[str, random.Random], str]:
    """Latin letters ``table`` knows swapped for their look-alikes, each with probability ``rate`` (at least one)."""

    def transform(text: str, rng: random.Random) -> str:
        places = [i for i, c in enumerate(text) if c in table]
        if not places:
            return text
        chosen = {i for i in places if rng.random() < rate} or {rng.choice(places)}
        return "".join(table[c] if i in chosen else c for i, c in enumerate(text))

    return transform


def _swap_chinese(table: Callable[[], dict[str, str]]) -> Callable[[str, random.Random], str]:
    """In each run of Chinese characters, one character ``table`` knows written as one of its look-alikes."""

    def run(m: re.Match[str], rng: random.Random) -> str:
        word, known = m.group(), table()
        places = [i for i, c in enumerate(word) if known.get(c)]
        if not places:
            return word
        at = rng.choice(places)
        return word[:at] + rng.choice(known[word[at]]) + word[at + 1 :]

    return lambda text, rng: _HAN.sub(lambda m: run(m, rng), text)


# --- pinyin and initials ----------------------------------------------------------------------------------------------


def _pinyin(style: Style, joiner: str, *, capitals: bool = False) -> Callable[[str, random.Random], str]:
    """Each run of Chinese characters in pinyin, its syllables joined by ``joiner`` (each capitalised with
    ``capitals``: DuBo); set apart by a space from a letter or digit beside it."""

    def run(m: re.Match[str]) -> str:
        text = m.string
        syllables = lazy_pinyin(m.group(), style=style, neutral_tone_with_five=style == Style.TONE3)
        if capitals:
            syllables = [syllable.capitalize() for syllable in syllables]
        before = " " if m.start() > 0 and text[m.start() - 1].isalnum() else ""
        after = " " if m.end() < len(text) and text[m.end()].isalnum() else ""
        return before + joiner.join(syllables) + after

    return lambda text, _: _HAN.sub(run, text)


def _pinyin_mixed(text: str, rng: random.Random) -> str:
    """In each run of two Chinese characters or more, some but not all in pinyin: 冰du, yao头wan."""

    def run(m: re.Match[str]) -> str:
        word = m.group()
        if len(word) < 2:
            return word
        syllables = lazy_pinyin(word)
        chosen = {i for i in range(len(word)) if rng.random() < 0.5} or {rng.randrange(len(word))}
        if len(chosen) == len(word):
            chosen.discard(rng.randrange(len(word)))
        return "".join(syllables[i] if i in chosen else c for i, c in enumerate(word))

    return _HAN.sub(run, text)


# --- the kinds --------------------------------------------------------------------------------------------------------

Transform = Callable[[str, random.Random], str]


@dataclass(frozen=True)
class Evasion:
    kind: str
    name: str
    transform: Transform
    scopes: tuple[str, ...] = (WHOLE, TERMS)
    languages: frozenset[str] | None = None  # the languages of the messages it applies to; None: every one


def _lookalikes_file(rules: Path) -> dict[str, str]:
    """rules/lookalikes.txt as a table: a character, then the characters written for it."""
    path = rules / "lookalikes.txt"
    table: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) > 1:
                table[fields[0]] = table.get(fields[0], "") + "".join(fields[1:])
    return table


def styles(rules: Path) -> list[Evasion]:
    """Every style of every kind."""

    @cache
    def known() -> dict[str, str]:
        return _lookalikes_file(rules)

    @cache
    def beyond() -> dict[str, str]:
        listed = known()
        return {c: "".join(s for s in subs if s not in listed.get(c, "")) for c, subs in _CHINESE_BEYOND.items()}

    zero_width: list[Evasion] = [
        Evasion("zero_width", "every-gap", lambda t, r: _after_each(t, r, _one_of(_ZERO_WIDTH))),
        Evasion("zero_width", "some-gaps", lambda t, r: _between(t, r, _one_of(_ZERO_WIDTH), rate=0.3)),
        Evasion("zero_width", "soft-hyphen", lambda t, r: _after_each(t, r, lambda _: "\u00ad")),
        Evasion("zero_width", "variation-selector", lambda t, r: _after_each(t, r, _one_of(_VARIATION_SELECTORS))),
        Evasion("zero_width", "tag-characters", lambda t, r: _after_each(t, r, _one_of(_TAG_CHARACTERS))),
        Evasion(
            "zero_width",
            "variation-selector-supplement",
            lambda t, r: _after_each(t, r, _one_of(_MORE_VARIATION_SELECTORS)),
        ),
        Evasion("zero_width", "format-characters", lambda t, r: _after_each(t, r, _one_of(_FORMAT_CHARACTERS))),
        Evasion("zero_width", "bidi-controls", lambda t, r: _between(t, r, _one_of(_BIDI_CONTROLS))),
        Evasion("zero_width", "blanks", lambda t, r: _between(t, r, _one_of(_BLANKS))),
        Evasion("zero_width", "zalgo", lambda t, r: _after_each(t, r, _zalgo)),
    ]
    separators = {
        "space": " ", "dot": ".", "slash": "/", "pipe": "|", "star": "*", "dash": "-", "underscore": "_",
        "tilde": "~", "fullwidth": _FULLWIDTH_PUNCTUATION,
    }  # fmt: skip
    separator = [
        Evasion("separator", name, _separated(_one_of(chars)))
        for name, chars in {**separators, "emoji": _EMOJI}.items()
    ]
    separator += [
        Evasion("separator", "emoji-sequences", _separated(_one_of(_EMOJI_SEQUENCES))),
        Evasion("separator", "strokes", _separated(_one_of(_STROKES))),
        Evasion("separator", "ascii-symbols", _separated(_one_of("#+=^<>&%:;,'\"`"))),
        Evasion("separator", "spaced-symbols", _separated(_one_of([" . ", " * ", " - ", " | ", " / "]))),
        Evasion("separator", "brackets", _separated(_one_of(["】【", ")(", "][", "》《"]))),
    ]
    spelled = [
        Evasion("spelled", "spaces", _spelled(" ")),
        Evasion("spelled", "dots", _spelled(".")),
        Evasion("spelled", "dashes", _spelled("-")),
        Evasion("spelled", "underscores", _spelled("_")),
        Evasion("spelled", "mixed", _spelled(".-_ *", per_word=True)),
        Evasion("spelled", "capitals", lambda t, r: _spelled(" .")(t.upper(), r)),
        Evasion("spelled", "dot-space", _spelled([". "])),
        Evasion("spelled", "symbols", _spelled("+~/|,")),
    ]
    width = [Evasion("width_styled", family, _styled(family)) for family in sorted(styled_alphabets())]
    leet = [
        Evasion("leet", "digits", _leet(_LEET_DIGITS)),
        Evasion("leet", "symbols", _leet(_LEET_SYMBOLS)),
        Evasion("leet", "mixed", _leet(None)),
    ]
    repeat = [
        Evasion("repeat", "doubled", _doubled),
        Evasion("repeat", "one-tripled", _one_stretched(3, 3)),
        Evasion("repeat", "one-stretched", _one_stretched(2, 5)),
    ]
    traditional = [Evasion("traditional", config, _opencc(config)) for config in ("s2t", "s2tw", "s2hk")]
    chinese_only = frozenset({"zh", "mixed"})  # Chinese numerals in English spam would be no evasion but noise
    digit_form = [
        Evasion("digit_form", form, _digit_form(form), languages=chinese_only if form in _CHINESE_NUMERALS else None)
        for form in _DIGIT_FORMS
    ]
    digit_form += [
        Evasion("digit_form", "mixed-forms", _mixed_digit_forms),
        Evasion("digit_form", "chinese-groups", _digit_groups(" -·、"), languages=chinese_only),
    ]
    lookalike = [
        Evasion("lookalike_char", "cyrillic", _swap_letters(_CYRILLIC, 1.0)),
        Evasion("lookalike_char", "cyrillic-some", _swap_letters(_CYRILLIC, 0.4)),
        Evasion("lookalike_char", "greek", _swap_letters(_GREEK, 1.0)),
        Evasion("lookalike_char", "other-scripts", _swap_letters({**_CYRILLIC, **_OTHER_SCRIPTS}, 0.5)),
        Evasion("lookalike_char", "confusables", _other_confusable),
        Evasion("lookalike_char", "chinese-listed", _swap_chinese(known)),
        Evasion("lookalike_char", "chinese-unlisted", _swap_chinese(beyond)),
    ]
    pinyin = [
        Evasion("pinyin", "joined", _pinyin(Style.NORMAL, ""), (TERMS,)),
        Evasion("pinyin", "spaced", _pinyin(Style.NORMAL, " ")),
        Evasion("pinyin", "tone-marks", _pinyin(Style.TONE, " ")),
        Evasion("pinyin", "tone-marks-joined", _pinyin(Style.TONE, ""), (TERMS,)),
        Evasion("pinyin", "tone-numbers", _pinyin(Style.TONE3, " ")),
        Evasion("pinyin", "tone-numbers-joined", _pinyin(Style.TONE3, ""), (TERMS,)),
        Evasion("pinyin", "capitalised", _pinyin(Style.NORMAL, "", capitals=True), (TERMS,)),
        Evasion("pinyin", "capitalised-tone-marks", _pinyin(Style.TONE, " ", capitals=True)),
        Evasion("pinyin", "mixed-with-characters", _pinyin_mixed, (TERMS,)),
    ]
    initials = [
        Evasion("initials", "initials", _pinyin(Style.FIRST_LETTER, ""), (TERMS,)),
        Evasion("initials", "capitals", _pinyin(Style.FIRST_LETTER, "", capitals=True), (TERMS,)),
    ]
    return [
        *zero_width,
        *separator,
        *spelled,
        *width,
        *leet,
        *repeat,
        *traditional,
        *digit_form,
        *lookalike,
        *pinyin,
        *initials,
    ]


# --- evading and counting ---------------------------------------------------------------------------------------------


def trigger_spans(verdict: dict[str, Any], *, numbers: bool) -> list[tuple[int, int]]:
    """The spans of the words a verdict scored on, merged: each term of a rule, each term atom of a combination, and
    with ``numbers`` its signals (numbers, prices, phones) too."""
    spans: list[tuple[int, int]] = []
    for match in verdict.get("matches", ()):
        atoms = match.get("atoms")
        if atoms:
            spans += [tuple(a["span"]) for a in atoms if a["span"] and (numbers or not a["atom"].startswith("<"))]
        elif match.get("span") and (numbers or not str(match.get("term", "")).startswith("<")):
            spans.append(tuple(match["span"]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def evade(text: str, spans: Sequence[tuple[int, int]] | None, transform: Transform, rng: random.Random) -> str:
    """``text`` with ``transform`` applied to the whole (``spans`` None) or to each span alone."""
    if spans is None:
        return transform(text, rng)
    pieces, at = [], 0
    for start, end in spans:
        evaded = transform(text[start:end], rng)
        # Letters and digits that came to touch those beside the span are set apart, as a writer would ("到账88" in
        # pinyin is "daozhang 88").
        if evaded and start > 0 and _touch(text[start - 1], evaded[0]) and not _touch(text[start - 1], text[start]):
            evaded = " " + evaded
        if evaded and end < len(text) and _touch(evaded[-1], text[end]) and not _touch(text[end - 1], text[end]):
            evaded += " "
        pieces += [text[at:start], evaded]
        at = end
    return "".join([*pieces, text[at:]])


def _touch(left: str, right: str) -> bool:
    """Whether two characters side by side run into one word: both Latin letters or digits."""
    return left.isascii() and right.isascii() and left.isalnum() and right.isalnum()


@dataclass
class KindReport:
    scopes: dict[str, Tally] = field(default_factory=dict)
    languages: dict[str, Tally] = field(default_factory=dict)
    styles: dict[str, Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)


@dataclass(frozen=True)
class Trial:
    row: Row
    style: Evasion
    scope: str
    text: str


def trials(
    rows: Sequence[Row], verdicts: Sequence[dict[str, Any]], chosen: Sequence[Evasion], seed: int
) -> list[Trial]:
    """Every evaded message: each style on each row, per scope, where it changes the text."""
    made = []
    for number, (row, verdict) in enumerate(zip(rows, verdicts, strict=True)):
        for style in chosen:
            if style.languages is not None and row.lang not in style.languages:
                continue
            for scope in style.scopes:
                spans = None
                if scope == TERMS:
                    spans = trigger_spans(verdict, numbers=style.kind == "digit_form")
                    if not spans:
                        continue
                rng = random.Random(f"{seed}/{number}/{style.kind}/{style.name}/{scope}")
                text = evade(row.text, spans, style.transform, rng)
                if text != row.text:
                    made.append(Trial(row, style, scope, text))
    return made


def tally(made: Sequence[Trial], verdicts: Sequence[dict[str, Any]]) -> dict[str, KindReport]:
    reports: dict[str, KindReport] = {}
    for trial, verdict in zip(made, verdicts, strict=True):
        flagged = verdict["decision"] in FLAGGED
        report = reports.setdefault(trial.style.kind, KindReport())
        report.overall.add(flagged=flagged)
        report.scopes.setdefault(trial.scope, Tally()).add(flagged=flagged)
        report.languages.setdefault(trial.row.lang, Tally()).add(flagged=flagged)
        report.styles.setdefault(trial.style.name, Tally()).add(flagged=flagged)
    return reports


def print_reports(out: Console, reports: dict[str, KindReport], *, by_style: bool) -> None:
    kinds = sorted(reports)
    table = Table("kind", "survival", WHOLE, TERMS, title="evasion survival: flagged after evading / flagged before")
    for kind in kinds:
        report = reports[kind]
        table.add_row(kind, share(report.overall), *(share(report.scopes.get(s, Tally())) for s in (WHOLE, TERMS)))
    out.print(table)
    languages = sorted({lang for report in reports.values() for lang in report.languages})
    per_language = Table("kind", *languages, title="evasion survival per language")
    for kind in kinds:
        per_language.add_row(kind, *(share(reports[kind].languages.get(lang, Tally())) for lang in languages))
    out.print(per_language)
    if by_style:
        per_style = Table("kind", "style", "survival", title="evasion survival per style")
        for kind in kinds:
            for name, style_tally in sorted(reports[kind].styles.items()):
                per_style.add_row(kind, name, share(style_tally))
        out.print(per_style)


def warn(problem: str) -> None:
    print(f"evasion: {problem}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evasion", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rules", type=Path, default=DEFAULT_RULES, metavar="DIR", help="rule pack folder (default: rules/)"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        metavar="DIR",
        help="folder of the dev-*.jsonl files whose violations are evaded (default: tests/data/corpus/)",
    )
    parser.add_argument("--seed", type=int, default=19, help="seed of every random choice (default: 19)")
    parser.add_argument(
        "--kinds", metavar="K,K", help="only these evasion kinds, comma-separated (default: every kind)"
    )
    parser.add_argument(
        "--evaded-too",
        action="store_true",
        help="also evade the dev messages the corpus already evades (default: only those written plainly)",
    )
    parser.add_argument("--styles", action="store_true", help="also print the survival of each style of each kind")
    parser.add_argument(
        "--misses",
        type=int,
        default=0,
        metavar="N",
        help="print up to N evaded messages no longer flagged, per kind (dev slice only)",
    )
    args = parser.parse_args()
    if args.misses < 0:
        parser.error("--misses must be 0 or more")
    every = styles(args.rules)
    known_kinds = sorted({s.kind for s in every})
    chosen = every
    if args.kinds:
        wanted = {k.strip() for k in args.kinds.split(",") if k.strip()}
        if unknown := wanted - set(known_kinds):
            parser.error(f"unknown kinds: {', '.join(sorted(unknown))} (kinds: {', '.join(known_kinds)})")
        chosen = [s for s in every if s.kind in wanted]
    out = Console(soft_wrap=True)
    try:
        classifier = Classifier(load_pack(args.rules))
        rows = [
            r
            for r in read_rows(sorted(args.corpus.glob("dev-*.jsonl")))
            if r.violating and (args.evaded_too or r.evasion == "none")
        ]
        if not rows:
            warn(f"no violating messages in {args.corpus}/dev-*.jsonl")
            sys.exit(1)
        verdicts = classify(classifier, [r.text for r in rows], "dev messages")
        caught = [(r, v) for r, v in zip(rows, verdicts, strict=True) if v["decision"] in FLAGGED]
        made = trials([r for r, _ in caught], [v for _, v in caught], chosen, args.seed)
        print(
            f"{len(caught):,} of {len(rows):,} dev violations flagged as written; classifying {len(made):,} evaded "
            "copies ...",
            file=sys.stderr,
            flush=True,
        )
        evaded = classify(classifier, [t.text for t in made], "evaded messages")
    except (RulePackError, BadInput, OSError) as exc:
        warn(str(exc))
        sys.exit(1)
    reports = tally(made, evaded)
    print_reports(out, reports, by_style=args.styles)
    if args.misses:
        print_misses(out, made, evaded, args.misses)
    summary = " ".join(f"{kind}={fmt(reports[kind].overall.rate)}" for kind in sorted(reports))
    out.print(f"evasion: {summary}", markup=False, highlight=False)


def print_misses(out: Console, made: Sequence[Trial], verdicts: Sequence[dict[str, Any]], limit: int) -> None:
    missed: dict[str, list[Trial]] = {}
    for trial, verdict in zip(made, verdicts, strict=True):
        if verdict["decision"] not in FLAGGED:
            missed.setdefault(trial.style.kind, []).append(trial)
    for kind in sorted(missed):
        picked = random.Random(kind).sample(missed[kind], min(limit, len(missed[kind])))
        out.print(f"\n[bold]{kind}: {len(picked)} of {len(missed[kind]):,} evaded messages no longer flagged[/]")
        for trial in picked:
            out.print(
                f"  {trial.style.name}, {trial.scope}: {trial.text!r}  <- {trial.row.text!r}",
                markup=False,
                highlight=False,
            )


if __name__ == "__main__":
    main()
