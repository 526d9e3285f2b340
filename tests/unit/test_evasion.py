"""benchmarks.evasion: each evasion style changes text the way it says, reads back through normalisation where that
is the point, and the benchmark picks the words a verdict scored on."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from benchmarks import evasion
from streams.policy.normalize import normalize

RULES = Path(evasion.DEFAULT_RULES)
STYLES = {(style.kind, style.name): style for style in evasion.styles(RULES)}


def evade(kind: str, name: str, text: str, seed: int = 1) -> str:
    return STYLES[kind, name].transform(text, random.Random(seed))


def test_every_kind_has_several_styles() -> None:
    kinds: dict[str, int] = {}
    for kind, _ in STYLES:
        kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {
        "zero_width", "separator", "spelled", "width_styled", "leet", "repeat", "traditional", "digit_form",
        "lookalike_char", "pinyin", "initials",
    }  # fmt: skip
    assert all(count >= 3 for kind, count in kinds.items() if kind != "initials")


@pytest.mark.parametrize("family", sorted(evasion.styled_alphabets()))
def test_styled_alphabets_hold_every_letter_in_their_style(family: str) -> None:
    alphabet = evasion.styled_alphabets()[family]
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if c in alphabet]
    assert len(letters) >= 17  # Unicode has subscripts of 17 letters; most families have all 26
    assert all(not alphabet[c].isascii() for c in letters)


@pytest.mark.parametrize(("kind", "name"), [key for key in STYLES if key[0] in ("zero_width", "width_styled")])
def test_invisible_and_styled_letters_normalise_back(kind: str, name: str) -> None:
    text = "casino bonus 88"
    evaded = evade(kind, name, text)
    assert evaded != text
    assert normalize(evaded) == text


def test_zero_width_styles_insert_only_invisible_characters() -> None:
    for name in ("every-gap", "soft-hyphen", "variation-selector", "tag-characters"):
        evaded = evade("zero_width", name, "刷单")
        assert len(evaded) == 3
        assert unicodedata.category(evaded[1]) in ("Cf", "Mn")


def test_separators_go_between_word_characters_only() -> None:
    assert evade("separator", "dot", "刷单 5个") == "刷.单 5.个"
    assert evade("spelled", "dashes", "free casino 刷单") == "f-r-e-e c-a-s-i-n-o 刷单"


def test_leet_repeat_and_digit_forms() -> None:
    assert evade("leet", "digits", "sell pills") == "5311 p1115"
    assert evade("leet", "symbols", "sell pills") == "$e|| p!||$"
    assert evade("repeat", "doubled", "赌博 casino 88") == "赌赌博博 ccaassiinnoo 88"
    assert evade("digit_form", "chinese", "加v 138") == "加v 一三八"
    assert evade("digit_form", "circled", "138") == "①③⑧"


def test_chinese_evasions() -> None:
    assert evade("traditional", "s2t", "赌博网站") == "賭博網站"
    assert evade("pinyin", "tone-numbers", "赌博") == "du3 bo2"
    assert evade("pinyin", "tone-marks", "赌博") == "dǔ bó"
    assert evade("initials", "initials", "发票") == "fp"
    listed = evade("lookalike_char", "chinese-listed", "赌博")
    assert listed != "赌博"
    assert sum(a != b for a, b in zip(listed, "赌博", strict=True)) == 1


def test_the_styles_are_deterministic_per_seed() -> None:
    text = "free casino bonus, 刷单返利 138"
    for style in STYLES.values():
        assert style.transform(text, random.Random(7)) == style.transform(text, random.Random(7))


def test_trigger_spans_are_the_scored_words_merged() -> None:
    verdict = {
        "matches": [
            {"term": "casino", "span": [5, 11]},
            {
                "term": "all: x, <phone>",
                "span": [0, 30],
                "atoms": [
                    {"atom": "g.bonus", "span": [9, 16]},
                    {"atom": "<phone>", "span": [20, 30]},
                ],
            },
        ]
    }
    assert evasion.trigger_spans(verdict, numbers=False) == [(5, 16)]
    assert evasion.trigger_spans(verdict, numbers=True) == [(5, 16), (20, 30)]


def test_evading_the_terms_leaves_the_rest_and_sets_words_apart() -> None:
    pinyin = STYLES["pinyin", "joined"].transform
    text = "到账88元，快来"
    assert evasion.evade(text, [(0, 2)], pinyin, random.Random(1)) == "daozhang 88元，快来"
    assert evasion.evade(text, None, pinyin, random.Random(1)) == "daozhang 88 yuan，kuailai"


def test_forms_beyond_the_common_ones() -> None:
    mixed = evade("pinyin", "mixed-with-characters", "冰毒")
    assert mixed in ("冰du", "bing毒")
    assert evade("pinyin", "capitalised", "赌博") == "DuBo"
    assert evade("initials", "capitals", "发票") == "FP"
    grouped = evade("digit_form", "chinese-groups", "加v 13827456901")
    assert grouped.startswith("加v 一三")
    assert not any(c.isdigit() for c in grouped)
    stroked = evade("separator", "strokes", "刷单")
    assert len(stroked) == 3
    assert stroked[1] in "丶丿ー〃"


def test_confusable_letters_come_from_other_scripts_and_read_back() -> None:
    text = "casino bonus"
    evaded = evade("lookalike_char", "confusables", text)
    assert evaded != text
    assert all(not unicodedata.name(c).startswith(("LATIN", "CYRILLIC", "GREEK")) for c in evaded if not c.isascii())
    assert normalize(evaded) == text
