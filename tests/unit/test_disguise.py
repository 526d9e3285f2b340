"""Words written in disguise (streams/policy/disguise.py): a word of a set split by invisible characters or symbols,
spelled out, in leetspeak or with look-alike letters adds its category's ``disguised`` weight; the ways people write
that are no disguise add nothing. Each test builds a small pack of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import header, make_pack
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy.classify import Classifier
from streams.policy.normalize import NormalBatch
from streams.policy.rules import RulePackError
from streams.records import ChatMessage

SETS = (  # sets score nothing alone; the combination keeps them named
    "set leaf\n  叶子\n  kush\n  molly\n  sale\n  cop\n"
    "set offer\n  现货\nrule leaf-offer weight=10\n  all: leaf, offer\n"
)
DRUGS = header("drugs") + SETS


def judge(text: str, tmp_path: Path, rules: str = DRUGS) -> dict[str, Any]:
    classifier = Classifier(make_pack(tmp_path, {"drugs": rules}))
    return classifier.classify_batch([ChatMessage("m1", "g1", "u1", 0, text)], 1)[0]


def disguised_words(verdict: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(m["rule_id"], m["term"], m["normalisations"]) for m in verdict["matches"] if "disguised" in m["rule_id"]]


@pytest.mark.parametrize(
    ("text", "undone"),
    [
        ("老地方 叶\u200b子", "invisible"),  # an invisible character inside the word
        ("老地方 叶/子", "separator"),
        ("老地方 叶🔥子", "separator"),
        ("fresh k.u.s.h tonight", "separator"),  # spelled out
        ("fresh k u s h tonight", "separator"),
        ("M.O.L.L.Y tonight", "separator"),  # five capitals spelled out are a word, not an abbreviation
        ("fresh ku$h tonight", "leet"),
        ("fresh kuѕh tonight", "lookalike"),  # a Cyrillic letter among Latin ones
    ],
)
def test_a_word_of_a_set_written_in_disguise_asks_for_review(text: str, undone: str, tmp_path: Path) -> None:
    verdict = judge(text, tmp_path)
    assert verdict["decision"] == "review"
    (rule_id, term, normalisations), *_ = disguised_words(verdict)
    assert rule_id == "drugs.disguised-word"
    assert term in ("叶子", "kush", "molly")
    assert undone in normalisations


@pytest.mark.parametrize(
    "text",
    [
        "老地方 叶子",  # as written: a set's word alone fires nothing
        "落叶，子夜",  # sentence punctuation between two words
        "叶 子",  # white space between words
        '"叶"子',  # a word in quotation marks
        "K.U.S.H",  # four capitals spelled out: an abbreviation (T.I.P.S.)
        "E x t r a k u s h y",  # spelled-out letters going on past the word
        "5ale today",  # a digit at a word's end: a model number, not leetspeak
        "сор",  # Cyrillic only: a Russian word, no disguised English one
        "ｋｕｓｈ 𝐤𝐮𝐬𝐡 kùsh kuuush",  # full-width, styled, accented and repeated letters are ways of writing
    ],
)
def test_ways_of_writing_that_are_no_disguise_add_nothing(text: str, tmp_path: Path) -> None:
    verdict = judge(text, tmp_path)
    assert (verdict["decision"], disguised_words(verdict)) == ("allow", [])


def test_a_disguised_word_adds_to_the_other_evidence_and_a_warning_discounts_it(tmp_path: Path) -> None:
    rules = DRUGS + "rule hint weight=5\n  老地方\nwarn\n  谨防\n"
    assert judge("老地方 叶\u200b子", tmp_path / "a", rules)["decision"] == "block"  # 5 + 5
    warned = judge("谨防 叶\u200b子", tmp_path / "b", rules)
    assert (warned["decision"], [m["discounted"] for m in warned["matches"]]) == ("allow", [True])


def test_a_word_inside_a_term_that_blocks_alone_is_that_terms(tmp_path: Path) -> None:
    verdict = judge("冰\u200b毒", tmp_path / "a", DRUGS + "rule meth\n  冰毒\n")
    assert [m["rule_id"] for m in verdict["matches"]] == ["drugs.meth"]  # not its own disguised word too
    # nor a set's word of another category inside it: 刷*单*返*利 is a scam, not also a false claim
    scam = header("scam") + "rule task-rebate\n  刷单返利\n"
    ads = header("ads") + "set rebate\n  返利\nrule rebate-offer weight=10\n  all: rebate, <contact>\n"
    classifier = Classifier(make_pack(tmp_path / "b", {"scam": scam, "ads": ads}))
    rebate, alone = classifier.classify_batch(
        [ChatMessage("m1", "g1", "u1", 0, "刷*单*返*利"), ChatMessage("m2", "g1", "u1", 0, "高额返*利")], 1
    )
    assert [m["rule_id"] for m in rebate["matches"]] == ["scam.task-rebate"]
    assert [m["rule_id"] for m in alone["matches"]] == ["ads.disguised-word"]


def test_the_category_header_sets_the_weight_or_turns_it_off(tmp_path: Path) -> None:
    heavier = judge("叶\u200b子", tmp_path / "a", header("drugs") + "disguised 10\n" + SETS)
    assert (heavier["decision"], [m["weight"] for m in heavier["matches"]]) == ("block", [10])
    off = judge("叶\u200b子", tmp_path / "b", header("drugs") + "disguised 0\n" + SETS)
    assert (off["decision"], off["matches"]) == ("allow", ())


def test_the_rule_id_is_the_categorys_and_a_bad_weight_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match=r"drugs\.rules:5: 'disguised-word' names the rule every category has"):
        make_pack(tmp_path / "a", {"drugs": header("drugs") + "rule disguised-word\n  冰毒\n"})
    with pytest.raises(RulePackError, match=r"drugs\.rules:5: disguised weight 'heavy' must be a number"):
        make_pack(tmp_path / "b", {"drugs": header("drugs") + "disguised heavy\n" + SETS})


def test_the_batch_screen_finds_the_texts_with_a_join_or_an_invisible_or_look_alike_character() -> None:
    batch = NormalBatch(["plain words", "叶\u200b子", "k.u.s.h", "kuѕh", "中文 words"])
    assert batch.disguised() == {1, 2, 3}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab 叶子.*，\u200b\x00сz", max_size=12), min_size=1, max_size=5))
def test_the_screen_reads_each_text_of_a_batch_as_it_reads_it_alone(texts: list[str]) -> None:
    alone = {index for index, text in enumerate(texts) if NormalBatch([text]).disguised()}
    assert NormalBatch(texts).disguised() == alone
