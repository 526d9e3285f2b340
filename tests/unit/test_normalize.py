"""normalize(): one case per evasion kind, the cases it must leave alone, and properties of the mapped form."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy import normalize as normalize_module
from streams.policy.normalize import (
    BOUNDARY,
    NormalBatch,
    fold_names,
    normalize,
    normalize_joined,
    normalize_mapped,
    second_view,
)

# (original, exact normal form, fold names reported for the whole original text)
EVASIONS = [
    # full-width letters and upper case
    pytest.param("ＶＩＰ", "vip", ["width", "case"], id="full-width"),
    pytest.param("Ｔｅｓｔ", "test", ["width", "case"], id="full-width-mixed-case"),
    pytest.param("VIP", "vip", ["case"], id="upper-case"),
    # zero-width and format characters
    pytest.param("刷\u200b单", "刷单", ["invisible"], id="zero-width-space"),
    pytest.param("v\u200di\u200dp", "vip", ["invisible"], id="zero-width-joiner"),
    pytest.param("\ufeffvip", "vip", ["invisible"], id="byte-order-mark"),
    pytest.param("soft\u00adware", "software", ["invisible"], id="soft-hyphen"),
    pytest.param("刷\U000e0100单", "刷单", ["invisible"], id="variation-selector-supplement"),
    pytest.param("cas\U000e01efino", "casino", ["invisible"], id="last-variation-selector-supplement"),
    pytest.param("cas\u2800ino", "casino", ["invisible"], id="braille-blank"),
    # traditional to simplified Chinese
    pytest.param("賭博", "赌博", ["traditional"], id="traditional"),
    pytest.param("賭\u200b博", "赌博", ["invisible", "traditional"], id="traditional-and-zero-width"),
    # styled and enclosed letters
    pytest.param("𝐜𝐚𝐬𝐢𝐧𝐨", "casino", ["styled"], id="math-bold"),
    pytest.param("Ⓒⓐⓢⓘⓝⓞ", "casino", ["styled", "case"], id="circled-letters"),
    pytest.param("🅒🅐🅢🅘🅝🅞", "casino", ["styled"], id="negative-circled-letters"),
    pytest.param("🅱🅴🆃", "bet", ["styled"], id="negative-squared-letters"),
    # Cyrillic and Greek look-alikes
    pytest.param("саsino", "casino", ["lookalike"], id="cyrillic-lookalike"),
    pytest.param("ВЕТ", "bet", ["case", "lookalike"], id="cyrillic-capital-lookalike"),
    pytest.param("ΒΕΤ", "bet", ["case", "lookalike"], id="greek-capital-lookalike"),
    pytest.param("ΗΟΤ ΝΕΤ", "hot net", ["case", "lookalike"], id="greek-capitals-unlike-their-small-letters"),
    pytest.param("ɡօӏԁ ıɑ", "gold ia", ["lookalike"], id="armenian-and-phonetic-lookalikes"),
    pytest.param("ꜰʀᴇᴇ ʙᴇᴛ", "free bet", ["styled"], id="small-capitals"),
    pytest.param("🇨🇦🇸🇮🇳🇴", "casino", ["styled"], id="regional-indicator-letters"),
    # look-alikes from Unicode's confusables data: Cherokee, Lisu
    pytest.param("ᏟᎪᏚᎥNO", "casino", ["case", "lookalike"], id="cherokee-lookalikes"),
    pytest.param("ꓖꓳꓳꓓ", "good", ["lookalike"], id="lisu-lookalikes"),
    # digit forms
    pytest.param("①②③", "123", ["digit_form"], id="circled-digits"),
    pytest.param("⁹", "9", ["digit_form"], id="superscript-digit"),
    pytest.param("₈", "8", ["digit_form"], id="subscript-digit"),
    pytest.param("㈤", "五", ["digit_form"], id="parenthesised-han-numeral"),
    pytest.param("壹贰", "一二", ["digit_form"], id="financial-numerals"),
    pytest.param("❶➁➌⓸", "1234", ["digit_form"], id="dingbat-and-double-circled-digits"),
    pytest.param("١٣٨", "138", ["digit_form"], id="arabic-indic-digits"),
    # accents and combining marks
    pytest.param("c̶a̶s̶i̶n̶o̶", "casino", ["accent"], id="combining-strike-through"),
    pytest.param("café", "cafe", ["accent"], id="accent"),
    pytest.param("ｃａｆé", "cafe", ["width", "accent"], id="full-width-and-accent"),
    # symbols, spaces and emoji inserted between Chinese characters
    pytest.param("刷*单", "刷单", ["separator"], id="han-symbol"),
    pytest.param("刷 单", "刷单", ["separator"], id="han-space"),
    pytest.param("刷🔥单", "刷单", ["separator"], id="han-emoji"),
    pytest.param("兼*职*刷*单", "兼职刷单", ["separator"], id="han-symbols-between-every-character"),
    # ... also when the inserted run is longer than one character
    pytest.param("刷**单", "刷单", ["separator"], id="han-two-symbols"),
    pytest.param("大_麻", "大麻", ["separator"], id="han-underscore"),
    pytest.param("刷_单_5_个", "刷单5个", ["separator"], id="han-underscores-and-a-digit"),
    pytest.param("a_b", "a_b", [], id="latin-underscore-stays"),
    pytest.param("刷  单", "刷单", ["separator"], id="han-two-spaces"),
    pytest.param("刷 🔥 单", "刷单", ["separator"], id="han-space-emoji-space"),
    pytest.param("刷🔥🔥单", "刷单", ["separator"], id="han-two-emoji"),
    pytest.param("刷丶单丿返ー利", "刷单返利", ["separator"], id="han-strokes-as-separators"),
    pytest.param("K*粉", "k粉", ["case", "separator"], id="latin-letter-symbol-han"),
    pytest.param("冰_d", "冰d", ["separator"], id="han-underscore-latin-letter"),
    # single Latin letters spelled out with separators
    pytest.param("v.i.a.g.r.a", "viagra", ["separator"], id="spelled-dots"),
    pytest.param("v i a g r a", "viagra", ["separator"], id="spelled-spaces"),
    pytest.param("V-I-A-G-R-A", "viagra", ["case", "separator"], id="spelled-hyphens-upper"),
    pytest.param("f_r_e_e c_a_s_h", "free cash", ["separator"], id="spelled-underscores"),
    pytest.param("c🔥a💰s🔥h", "cash", ["separator"], id="spelled-with-different-emoji"),
    pytest.param("W·h·o w·a。n•t、s", "who wants", ["case", "separator"], id="spelled-with-mixed-punctuation"),
    pytest.param("s🔥e🔥l👉l💰s", "sells", ["separator"], id="spelled-repeating-a-separator-then-others"),
    pytest.param("t&c's", "t&c's", [], id="ascii-punctuation-must-repeat-to-spell"),
    pytest.param("te$t!f!e$", "te$t!f!e$", [], id="leet-symbols-are-no-spelling"),
    pytest.param("p/u/l/l u/p o/n y/o/u", "pull up on you", ["separator"], id="two-letter-words-beside-spelled-ones"),
    pytest.param("i.t s.h.e w.o.n't", "it she won't", ["separator"], id="two-letter-word-before-spelled-ones"),
    pytest.param("e.g. a.m.", "e.g. a.m.", [], id="two-letters-alone-stay"),
    # digits spelled out beside Chinese characters
    pytest.param("日赚5/0/0元", "日赚500元", ["separator"], id="digits-spelled-between-han"),
    pytest.param("日 赚 5 0 0 元", "日赚500元", ["separator"], id="digits-and-han-spaced"),
    pytest.param("加微_1_3_8", "加微138", ["separator"], id="digits-underscored-after-han"),
    # runs of white space
    pytest.param("click   farming", "click farming", ["separator"], id="space-run"),
    pytest.param("click \t\n farming", "click farming", ["separator"], id="mixed-white-space-run"),
]

# Text normalisation must leave alone: no fold reported, output identical to the input.
UNCHANGED = [
    pytest.param("哈哈哈", id="no-repeat-collapse-han"),
    pytest.param("cool", id="no-repeat-collapse-latin"),
    pytest.param("e.g. example.com", id="latin-separators-kept"),
    pytest.param("hello, world", id="comma-between-words-kept"),
    pytest.param("刷单 and 返利", id="latin-word-between-han-kept"),
    pytest.param("刷单 kk 粉", id="white-space-between-han-and-a-latin-word-kept"),
    pytest.param("bet365", id="latin-digits"),
]

# Chinese punctuation between Chinese words is removed like any other separator.
CHINESE_PUNCTUATION = [
    pytest.param("你好，世界", "你好世界", ["width", "separator"], id="full-width-comma"),
    pytest.param("刷单。返利", "刷单返利", ["separator"], id="ideographic-full-stop"),
    pytest.param("刷单、返利", "刷单返利", ["separator"], id="enumeration-comma"),
]


@pytest.mark.parametrize(("original", "expected", "folds"), EVASIONS)
def test_evasion_is_undone(original: str, expected: str, folds: list[str]) -> None:
    assert normalize(original) == expected
    mapped = normalize_mapped(original)
    assert mapped.text == expected
    assert list(fold_names(mapped.folds_between(0, len(original)))) == folds


@pytest.mark.parametrize("original", UNCHANGED)
def test_text_left_alone(original: str) -> None:
    assert normalize(original) == original
    mapped = normalize_mapped(original)
    assert mapped.text == original
    assert mapped.origin == list(range(len(original)))
    assert fold_names(mapped.folds_between(0, len(original))) == ()


@pytest.mark.parametrize(("original", "expected", "folds"), CHINESE_PUNCTUATION)
def test_chinese_punctuation_between_chinese_words_is_joined(original: str, expected: str, folds: list[str]) -> None:
    assert normalize(original) == expected
    mapped = normalize_mapped(original)
    assert mapped.text == expected
    assert list(fold_names(mapped.folds_between(0, len(original)))) == folds


@pytest.mark.parametrize(
    ("original", "origin", "joined"),
    [
        ("刷*單", [0, 2], {1}),
        ("v.i.a", [0, 2, 4], {1, 3}),
        ("c̶a̶t̶", [0, 2, 4], set()),
        ("Ⅻ", [0, 0, 0], set()),  # one original character folding to three
        ("a  \t b", [0, 1, 5], {2, 3, 4}),
    ],
)
def test_mapped_origin_points_at_original_characters(original: str, origin: list[int], joined: set[int]) -> None:
    mapped = normalize_mapped(original)
    assert mapped.origin == origin
    assert mapped.joined == tuple(sorted(joined))
    assert mapped.original == original


def test_span_maps_normalised_range_back_to_original() -> None:
    original = "招聘：刷*單*返*利，日结"
    mapped = normalize_mapped(original)
    assert mapped.text == "招聘刷单返利日结"
    start = mapped.text.index("刷单返利")
    span = mapped.span(start, start + 4)
    assert span == (3, 10)
    assert original[span[0] : span[1]] == "刷*單*返*利"
    assert fold_names(mapped.folds_between(*span)) == ("traditional", "separator")


@pytest.mark.parametrize("listed", [0, 1 << 20])  # spans read off the array (a long text), or off a list
def test_spans_of_a_text_in_a_batch_read_the_same_however_its_origins_are_kept(
    monkeypatch: pytest.MonkeyPatch, listed: int
) -> None:
    monkeypatch.setattr(normalize_module, "_LISTED_ORIGINS", listed)
    texts = ["你好", "招聘：刷*單*返*利，日结", "f r e e c a s h now"]
    batch = NormalBatch(texts)
    for index, text in enumerate(texts):
        mapped, origin = batch.mapped(index), normalize_mapped(text).origin
        for start in range(len(mapped.text)):
            for end in range(start + 1, len(mapped.text) + 1):
                assert mapped.span(start, end) == (origin[start], origin[end - 1] + 1)


def test_nul_is_removed_inside_a_text() -> None:
    assert normalize("刷\x00单") == "刷单"
    assert normalize_mapped("刷\x00单").text == "刷单"


def test_normalize_joined_keeps_text_boundaries() -> None:
    texts = ["刷 单", "ＶＩＰ", "", "v.i.a.g.r.a"]
    assert normalize_joined(texts) == BOUNDARY.join(["刷单", "vip", "", "viagra"])


def test_normalize_joined_does_not_join_across_texts() -> None:
    # Han characters either side of the boundary, and spelled letters ending and starting two texts.
    assert normalize_joined(["刷", "单"]) == "刷\x00单"
    assert normalize_joined(["a b", "c d"]) == "a b\x00c d"
    assert normalize_joined(["x  ", "  y"]) == "x \x00 y"


def test_normalize_joined_removes_nul_inside_texts() -> None:
    assert normalize_joined(["刷\x00单", "vip"]) == "刷单\x00vip"


def test_a_batch_picks_the_normal_texts_asked_for() -> None:
    batch = NormalBatch(["刷 单", "ok", "", "ＶＩＰ", "\u200b"])
    assert batch.pick([0, 2, 3, 4]) == ("刷单\x00\x00vip\x00", [0, 3, 4, 8, 9])
    assert batch.pick([1]) == ("ok", [0, 3])
    assert batch.pick([]) == ("", [0])
    assert list(batch.codes) == [ord(c) for c in batch.text]


IDEMPOTENCE_EXAMPLES = [
    *(p.values[0] for p in EVASIONS),
    *(p.values[0] for p in UNCHANGED),
    *(p.values[0] for p in CHINESE_PUNCTUATION),
    "招聘：刷*單*返*利，日结",
    "v    i    a    g    r    a",  # white space that collapses into a spelled-out word
    "x ,  y ,  z",
]


@pytest.mark.parametrize("original", IDEMPOTENCE_EXAMPLES)
def test_normalize_is_idempotent(original: str) -> None:
    once = normalize(original)
    assert normalize(once) == once


# --- properties -------------------------------------------------------------------------------------------------

_ALPHABET = [
    *"abcxyzABCXYZ",
    *"0189",
    " ",
    "\t",
    "\n",
    *".,-_!?*@#:/",
    *"刷单赌博網站",
    *"ＶＩＰａ１",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u00ad",
    "🔥",
    "😀",
    "\u0336",  # combining long stroke overlay
    "\u0301",  # combining acute accent
    *"𝐜𝐚Ⓒⓐ①",
    "，",
    "。",
    "\x00",
    # characters that fold to several, white space beyond ASCII, tag and astral Han characters, look-alikes
    *"ß½ﬁ㈤",
    "\u3000",
    "\u00a0",
    "\r",
    "\U000e0041",
    "\U000e0100",
    "丶",
    "\U00020000",
    "❤\ufe0f",
    *"аВ",
]

_texts = st.lists(st.sampled_from(_ALPHABET), max_size=40).map("".join)
_texts_without_nul = st.lists(st.sampled_from([c for c in _ALPHABET if c != "\x00"]), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(_texts)
def test_mapped_agrees_with_normalize(text: str) -> None:
    mapped = normalize_mapped(text)
    assert mapped.text == normalize(text)
    assert len(mapped.origin) == len(mapped.text)
    assert all(a <= b for a, b in zip(mapped.origin, mapped.origin[1:], strict=False))
    assert all(0 <= i < len(text) for i in mapped.origin)


@settings(max_examples=300, deadline=None)
@given(_texts_without_nul, _texts_without_nul, _texts_without_nul)
def test_normalize_joined_equals_normalize_per_text(a: str, b: str, c: str) -> None:
    assert normalize_joined([a, b, c]) == "\x00".join(normalize(x) for x in [a, b, c])


@settings(max_examples=300, deadline=None)
@given(_texts, _texts)
def test_normalize_joined_equals_normalize_per_text_with_nul(a: str, b: str) -> None:
    assert normalize_joined([a, b]) == "\x00".join(normalize(x) for x in [a, b])


# The definition the array code implements, as a chain of regex substitutions on the folded text.
_HAN = normalize_module._HAN
_DEFINED_EXTRA_SPACE = re.compile(r"\s(?<=\s\s)\s*")
# A Chinese character is a word character of the Han ranges: a code point there that Unicode has not assigned is no
# word character, so it stands between words as a symbol does.
_AFTER_HAN = rf"(?<=[{_HAN}])(?<=\w)"
_HAN_NEXT = rf"(?=\w)[{_HAN}]"
_DEFINED_HAN_GAP = re.compile(
    rf"{_AFTER_HAN}(?:[^\w\x00]|_)+(?={_HAN_NEXT}|[0-9])|(?<=[0-9])(?:[^\w\x00]|_)+(?={_HAN_NEXT})"
    rf"|{_AFTER_HAN}(?:[^\w\s\x00]|_)+(?=[a-z])|(?<=[a-z])(?:[^\w\s\x00]|_)+(?={_HAN_NEXT})"
    rf"|(?<=(?<![a-z0-9])[a-z])(?:[^\w\x00]|_)+(?={_HAN_NEXT})"
)
_DEFINED_LETTER = rf"[a-z0-9](?!(?![{_HAN}])[^\W_]|[$@])"
_DEFINED_START = rf"[a-z0-9](?<!(?:(?![{_HAN}])[^\W_]|[$@!|])[a-z0-9])"
_DEFINED_SPELLED = (
    re.compile(rf"{_DEFINED_START}((?:[^\w\x00]|_){{1,3}}){_DEFINED_LETTER}(?:\1{_DEFINED_LETTER})+"),
    re.compile(rf"{_DEFINED_START}(?<=[a-z])(?:(?:[^\w\s\x00'&$@]|_){{1,3}}(?=[a-z]){_DEFINED_LETTER}){{2,}}"),
)


def _defined_spelled(folded: str) -> list[tuple[int, int]]:
    """Left to right, the longer match of the two ways a word is spelled out."""
    spans: list[tuple[int, int]] = []
    at = 0
    while at < len(folded):
        end = max((m.end() for p in _DEFINED_SPELLED if (m := p.match(folded, at))), default=0)
        if end:
            spans.append((at, end))
        at = max(end, at + 1)
    return spans


_DEFINED_PAIR = re.compile(r"[a-z](?<![^\W_][a-z])(?:[^\w\s\x00'&]|_){1,3}[a-z](?![^\W_])")


def _defined_pairs(folded: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every two letters set apart that white space alone parts from a spelled word or from such a pair."""
    candidates = {m.span() for at in range(len(folded)) if (m := _DEFINED_PAIR.match(folded, at))}
    joined, added = list(spans), True
    while added:
        added = False
        for pair in sorted(candidates - set(joined)):
            if any(
                re.fullmatch(r"\s+", folded[end : pair[0]]) or re.fullmatch(r"\s+", folded[pair[1] : start])
                for start, end in joined
            ):
                joined.append(pair)
                added = True
    return joined


def _defined(text: str) -> str:
    folded = re.sub("[\U000e0000-\U000e01ef]+", "", text.translate(normalize_module._tables().translate))
    folded = _DEFINED_HAN_GAP.sub("", _DEFINED_EXTRA_SPACE.sub("", folded))
    spans = _defined_pairs(folded, _defined_spelled(folded))
    inside = {at for start, end in spans for at in range(start, end)}
    return "".join(c for at, c in enumerate(folded) if at not in inside or not re.fullmatch(r"[^\w\x00]|_", c))


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        pytest.param("出 K 粉 同城", "出 k粉同城", id="a-lone-letter-before-chinese"),
        pytest.param("V 信 ab12", "v信 ab12", id="white-space-after-it-too"),
        pytest.param("ok 粉丝", "ok 粉丝", id="not-a-word"),
        pytest.param("粉 K 歌", "粉 k歌", id="not-the-space-before-it"),
    ],
)
def test_a_latin_letter_standing_alone_before_chinese_is_joined_to_it(original: str, expected: str) -> None:
    assert normalize(original) == expected == _defined(original)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_texts, st.text(max_size=40)))
def test_normalize_is_the_regex_definition(text: str) -> None:
    assert normalize(text) == _defined(text)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        pytest.param("0:\U0002cea1", "0\U0002cea1", id="assigned"),  # the last of Extension E
        pytest.param("0:\U0002cea2", "0:\U0002cea2", id="unassigned"),  # past it, in the range normalize reads
        pytest.param("\U0002cea2:0", "\U0002cea2:0", id="unassigned-first"),
    ],
)
def test_an_unassigned_code_point_of_the_han_ranges_is_no_chinese_character(original: str, expected: str) -> None:
    assert normalize(original) == expected == _defined(original)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        pytest.param("id_v.i.a.g.r.a", "id_viagra", id="after-an-underscore"),
        pytest.param("ab.c.d", "ab.c.d", id="first-letter-ends-a-word"),
        pytest.param("a.b.c_d", "abcd", id="a-letter-after-an-underscore"),  # "_" is one of the mixed separators
        pytest.param("a.b.c_dd", "abc_dd", id="before-an-underscore"),
        pytest.param("9.a.b.c", "9abc", id="digit-first"),
        pytest.param("x.y.z\u200b", "xyz", id="at-the-end"),
    ],
)
def test_spelled_letters_at_the_edges_of_words(original: str, expected: str) -> None:
    assert normalize(original) == expected == _defined(original)
    assert normalize_joined(["a", original, "b"]) == BOUNDARY.join(["a", expected, "b"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_texts, st.text(max_size=20)), min_size=1, max_size=4))
def test_a_batch_maps_each_text_as_normalize_mapped_does(texts: list[str]) -> None:
    batch = NormalBatch(texts)
    for index, text in enumerate(texts):
        mapped, alone = batch.mapped(index), normalize_mapped(text)
        assert (mapped.text, mapped.original, mapped.origin, mapped.joined) == (
            alone.text,
            alone.original,
            alone.origin,
            alone.joined,
        )
        for start in range(len(mapped.text)):  # what a verdict reads of a match or a signal
            span = mapped.span(start, len(mapped.text))
            assert span == alone.span(start, len(alone.text))
            assert mapped.folds_between(*span) == alone.folds_between(*span)


@settings(max_examples=300, deadline=None)
@given(_texts)
def test_every_normal_character_comes_from_its_origin(text: str) -> None:
    mapped = normalize_mapped(text)
    for character, origin in zip(mapped.text, mapped.origin, strict=True):
        assert character in _defined(text[origin]) or character in text[origin].translate(
            normalize_module._tables().translate
        )
    assert all(0 <= index < len(text) for index in mapped.joined)


@pytest.mark.parametrize(
    ("text", "view"),
    [
        pytest.param("w!th d!$creet", "w1th d1scret", id="exclamation-marks-between-letters"),
        pytest.param("好!ppt", "", id="exclamation-mark-before-a-word-is-punctuation"),
        pytest.param("wow!! 好", "", id="exclamation-marks-after-a-word-are-punctuation"),
        pytest.param("ccaassiinnoo", "cas1no", id="doubled-letters"),
        pytest.param("pi||s", "p11s", id="pipes"),
    ],
)
def test_the_second_view_of_leet_and_doubled_letters(text: str, view: str) -> None:
    assert second_view(NormalBatch([normalize(text)]).codes).text == view
