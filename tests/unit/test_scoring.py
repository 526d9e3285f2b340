"""Scored rules: weighted terms, sets and combinations, windows, slots, signals as atoms, context discounts, generated
variants, and the normalisation views they rely on. Each test builds a small pack of its own."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from conftest import header, make_pack, write_pack
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from streams.explain import render
from streams.policy import scoring
from streams.policy.classify import Classifier
from streams.policy.matcher import Matcher
from streams.policy.normalize import BOUNDARY, NormalBatch, normalize, second_form, second_view
from streams.policy.rules import RulePack, RulePackError, load_pack
from streams.policy.scoring import Scorer
from streams.records import ChatMessage

GAMBLING = header("gambling")
DRUGS = header("drugs")


def classifier(tmp_path: Path, files: dict[str, str], lookalikes: str | None = None) -> Classifier:
    if lookalikes is not None:
        write_pack(tmp_path, {})
        (tmp_path / "lookalikes.txt").write_text(lookalikes, encoding="utf-8")
    return Classifier(make_pack(tmp_path, files))


def judge(c: Classifier, text: str) -> dict[str, Any]:
    return c.classify_batch([ChatMessage("m1", "g1", "u1", 0, text)], 1)[0]


def scores(verdict: dict[str, Any]) -> dict[str, float]:
    return {s["category"]: s["score"] for s in verdict["scores"]}


# --- weights and thresholds -------------------------------------------------------------------------------------


def test_weak_terms_add_up_once_per_rule_to_the_category_thresholds(tmp_path: Path) -> None:
    c = classifier(
        tmp_path,
        {"gambling": GAMBLING + "rule casino weight=3\n  casino\n  slots\nrule bonus weight=3\n  free spins\n"},
    )
    one = judge(c, "casino casino slots tonight")  # one rule, however many of its terms: 3
    assert (one["decision"], scores(one)) == ("allow", {"gambling": 3})
    two = judge(c, "casino with free spins")  # 3 + 3 reaches review (5), not block (10)
    assert (two["decision"], two["categories"], scores(two)) == ("review", ("gambling",), {"gambling": 6})
    assert [(m["rule_id"], m["weight"]) for m in two["matches"]] == [("gambling.casino", 3), ("gambling.bonus", 3)]


def test_a_plain_rule_decides_alone_and_thresholds_are_per_category(tmp_path: Path) -> None:
    c = classifier(
        tmp_path,
        {
            "gambling": GAMBLING.replace("decision block\n", "decision block\nreview 2\nblock 4\n")
            + "rule casino weight=3\n  casino\nrule strong\n  网赌\n",
        },
    )
    assert judge(c, "casino")["decision"] == "review"  # 3 >= review 2
    verdict = judge(c, "网赌")
    assert (verdict["decision"], scores(verdict)) == ("block", {"gambling": 4})  # a plain rule weighs the block


def test_a_review_rule_weighs_the_review_threshold(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule maybe decision=review\n  赔率表\n"})
    assert judge(c, "最新赔率表")["decision"] == "review"


# --- sets and combinations ---------------------------------------------------------------------------------------

COMBINED = (
    DRUGS
    + "set drug-nouns\n  冰毒\n  meth\n"
    + "set sale-verbs\n  出售\n  for sale\n"
    + "rule sale weight=10\n  all within 8: drug-nouns, sale-verbs\n"
    + "rule contact weight=10\n  all: drug-nouns, <contact>\n"
)


def test_a_set_alone_scores_nothing(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": COMBINED})
    verdict = judge(c, "新闻：警方查获冰毒")
    assert (verdict["decision"], verdict["matches"], verdict["scores"]) == ("allow", (), ())


def test_all_within_a_window_fires_only_when_the_atoms_are_close(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": COMBINED})
    near = judge(c, "出售冰毒，量大从优")
    assert near["decision"] == "block"
    (match,) = near["matches"]
    assert match["rule_id"] == "drugs.sale"
    assert match["term"] == "all within 8: drug-nouns, sale-verbs"
    assert [(a["atom"], a["term"], a["span"]) for a in match["atoms"]] == [
        ("drugs.drug-nouns", "冰毒", (2, 4)),
        ("drugs.sale-verbs", "出售", (0, 2)),
    ]
    far = judge(c, "出售二手自行车，九成新，另外听说隔壁小区有人吸冰毒被抓了")
    assert far["decision"] == "allow"


def test_signals_are_atoms_of_a_combination(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": COMBINED})
    assert judge(c, "meth 加v abc12345")["decision"] == "block"  # <contact>: a WeChat id
    assert judge(c, "meth call +44 7700 900123")["decision"] == "block"  # an international number
    assert judge(c, "a documentary about meth")["decision"] == "allow"


def test_two_places_that_take_the_same_set_need_two_of_its_hits(tmp_path: Path) -> None:
    c = classifier(
        tmp_path,
        {
            "gambling": GAMBLING + "set pitch\n  to the moon\n  guaranteed returns\nrule pitch-twice weight=10\n"
            "  all within 60: pitch, pitch\n"
        },
    )
    assert judge(c, "this coin goes to the moon")["decision"] == "allow"  # one hit is not two pieces of evidence
    assert judge(c, "to the moon, guaranteed returns")["decision"] == "block"
    assert judge(c, "to the moon and again to the moon")["decision"] == "block"


def test_a_word_inside_an_address_is_not_evidence_beside_it(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": COMBINED})
    assert judge(c, "questions to john@meth.org please")["decision"] == "allow"  # the word is the address
    assert judge(c, "see www.meth.org, or write to bob@example.org")["decision"] == "allow"  # another address
    assert judge(c, "meth for you, write to john@example.org")["decision"] == "block"


def test_any_and_inline_quoted_terms(tmp_path: Path) -> None:
    c = classifier(
        tmp_path,
        {"gambling": GAMBLING + 'set games\n  百家乐\nrule games-money weight=10\n  all: games, "充值"|{price}\n'},
    )
    assert judge(c, "百家乐 充值秒到")["decision"] == "block"
    assert judge(c, "百家乐 最低100元")["decision"] == "block"
    assert judge(c, "百家乐是什么游戏")["decision"] == "allow"


def test_a_premium_rate_number_and_a_shortcode_are_signals(tmp_path: Path) -> None:
    c = classifier(
        tmp_path,
        {
            "gambling": GAMBLING
            + "set prize\n  you have won\n  claim\n"
            + "rule prize-line weight=10\n  all: prize, <premium_phone>|<shortcode>\n"
        },
    )
    assert judge(c, "URGENT! You have won a £900 prize. To claim call 09061701461")["decision"] == "block"
    assert judge(c, "Claim your entry: txt WIN to 87121 now")["decision"] == "block"
    assert judge(c, "I think I have won, claim it at the desk upstairs")["decision"] == "allow"


# --- slots -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("转发到五个群就能领红包", "block"),
        ("转发到5个群", "block"),
        ("转发到 10 个群", "block"),
        ("转*发*到*两*个*群", "block"),
        ("转发到群里看看", "allow"),
    ],
)
def test_a_number_slot_reads_every_script(tmp_path: Path, text: str, decision: str) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule forward\n  转发到{n}个群\n"})
    assert judge(c, text)["decision"] == decision


def test_a_price_slot_in_an_english_term(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule cash\n  win {price} cash\n"})
    verdict = judge(c, "WIN £1,000 cash now")
    assert verdict["decision"] == "block"
    assert verdict["matches"][0]["span"] == (0, 15)
    assert judge(c, "win cash")["decision"] == "allow"


def test_a_term_with_slots_needs_two_literal_characters(tmp_path: Path) -> None:
    write_pack(tmp_path, {"gambling": GAMBLING + "rule a\n  {n}个\n"})
    with pytest.raises(
        RulePackError, match=r"gambling.rules:6: '\{n\}个' is shorter than 2 characters beside its slots"
    ):
        load_pack(tmp_path)


# --- context -----------------------------------------------------------------------------------------------------

WARNED = GAMBLING + "rule casino\n  网赌\nrule keeps context=1\n  赌博网站\nwarn\n  谨防\n  is a scam\n"


def test_a_warning_frame_discounts_the_rules_in_its_message(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": WARNED})
    assert judge(c, "加我玩网赌，日赚千元")["decision"] == "block"
    warning = judge(c, "谨防网赌陷阱，警方提醒")
    assert (warning["decision"], scores(warning)) == ("allow", {"gambling": 2.5})
    assert warning["matches"][0]["discounted"] is True
    assert judge(c, "谨防这个赌博网站")["decision"] == "block"  # context=1: no discount


def test_a_quoted_term_is_discounted_but_the_same_term_selling_is_not(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": WARNED})
    assert judge(c, "朋友发来一条“网赌”广告，大家别信")["decision"] == "allow"
    assert judge(c, "网赌，大家快来")["decision"] == "block"


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("my aunt still forwards those 'online casino' chains", "allow"),  # single marks quote in English
        ("lol, that 'online casino' post again", "allow"),
        ("it's the best online casino, don't wait", "block"),  # apostrophes open no quotation
        ("the players' online casino, sign up at the desk's counter", "block"),
    ],
)
def test_single_quotation_marks_quote_and_apostrophes_do_not(tmp_path: Path, text: str, decision: str) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule casino\n  online casino\n"})
    assert judge(c, text)["decision"] == decision


# A notice naming three harms, each a rule that blocks alone; and an offer whose contact and price are not discounted.
NOTICE = (
    GAMBLING
    + "rule casino\n  网赌\nrule baccarat\n  百家乐\nrule bonus\n  首充送彩金\n"
    + "set games\n  牛牛\nrule games-sold weight=10 context=1\n  all: games, <contact>, <money>\n"
    + "warn\n  切勿参与\n"
)


def counted(verdict: dict[str, Any]) -> list[tuple[str, float, bool, bool]]:
    return [(m["rule_id"], m["weight"], m["discounted"], m["counted"]) for m in verdict["matches"]]


def test_a_warning_naming_many_harms_counts_only_its_strongest_discounted_rule(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": NOTICE})
    assert judge(c, "网赌百家乐首充送彩金")["decision"] == "block"
    notice = judge(c, "警方提醒：网赌、百家乐、首充送彩金都是诱饵，切勿参与")  # 3 x 2.5 would reach review
    assert (notice["decision"], notice["categories"], notice["severity"]) == ("allow", (), "none")
    assert scores(notice) == {"gambling": 2.5}
    assert counted(notice) == [  # equals: the first to fire counts
        ("gambling.casino", 2.5, True, True),
        ("gambling.baccarat", 2.5, True, False),
        ("gambling.bonus", 2.5, True, False),
    ]


def test_a_warning_that_also_sells_adds_its_undiscounted_rule_in_full(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": NOTICE})
    offer = judge(c, "网赌百家乐切勿参与？牛牛一把50元，加v: abc12345")
    assert (offer["decision"], offer["categories"]) == ("block", ("gambling",))
    assert scores(offer) == {"gambling": 12.5}  # 10 for the offer, 2.5 for the strongest discounted rule
    assert counted(offer) == [
        ("gambling.casino", 2.5, True, True),
        ("gambling.baccarat", 2.5, True, False),
        ("gambling.games-sold", 10, False, True),
    ]


def test_the_explanation_names_the_discounted_rules_that_did_not_count(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": NOTICE})
    text = "警方提醒：网赌、百家乐都是诱饵，切勿参与"
    console = Console(width=200, record=True)
    console.print(render(judge(c, text), text))
    rows = [line.split() for line in console.export_text().splitlines()]
    strongest = ["gambling.casino", "网赌", "网赌", "[5,", "7]", "-", "2.5", "(discounted)"]
    weaker = ["gambling.baccarat", "百家乐", "百家乐", "[8,", "11]", "-", "2.5", "(discounted,", "not", "counted)"]
    assert strongest in rows
    assert weaker in rows


def test_the_strongest_discounted_rule_counts_in_each_category(tmp_path: Path) -> None:
    c = classifier(
        tmp_path,
        {
            "gambling": GAMBLING + "rule casino\n  网赌\nrule tips weight=4\n  包赢\n"
            "rule bets context=0.5\n  外围投注\n",
            "drugs": DRUGS + "rule ice\n  冰毒\nrule k\n  k粉\n",
        },
    )
    # Quoted terms are discounted like a warning's: 2.5, 1 and 5 in gambling, 2.5 twice in drugs.
    verdict = judge(c, "群里有人发“网赌”“包赢”“外围投注”“冰毒”“k粉”，别信")
    assert scores(verdict) == {"gambling": 5, "drugs": 2.5}
    assert (verdict["decision"], verdict["categories"]) == ("review", ("gambling",))
    assert sorted(rule for rule, _, _, kept in counted(verdict) if kept) == ["drugs.ice", "gambling.bets"]


# --- generated variants ------------------------------------------------------------------------------------------


def test_pinyin_initials_and_lookalikes_are_generated(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule online\n  网络赌博\n"}, lookalikes="赌 堵 睹\n")
    for text in ("wangluodubo 来玩", "wang luo du bo", "wldb 私聊", "网络堵博", "网络睹博"):
        assert judge(c, text)["decision"] == "block", text
    kinds = {term.variant for term in c.pack.terms}
    assert kinds == {"", "pinyin", "initials", "lookalike"}


def test_generated_variants_are_named_in_the_verdict(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule online\n  网络赌博\n"})
    match = judge(c, "wldb 私聊")["matches"][0]
    assert (match["term"], match["variant"], match["generated"]) == ("网络赌博", "initials", "wldb")
    assert "variant" not in judge(c, "网络赌博 私聊")["matches"][0]


SHORT = (
    DRUGS
    + "rule named\n  麻古\n"
    + "set drug-nouns\n  冰毒\n"
    + "set sale-verbs\n  出售\n"
    + "rule sale weight=10\n  all within 8: drug-nouns|named, sale-verbs\n"
    + "rule contact weight=10\n  all: drug-nouns|named, <contact>\n"
)


def test_short_initials_fill_a_combination_beside_other_evidence(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": SHORT})
    verdict = judge(c, "出售bd，量大")
    assert (verdict["decision"], [m["rule_id"] for m in verdict["matches"]]) == ("block", ["drugs.sale"])
    atoms = [(a["atom"], a["term"], a.get("variant"), a.get("generated")) for a in verdict["matches"][0]["atoms"]]
    assert atoms == [("drugs.drug-nouns", "冰毒", "initials", "bd"), ("drugs.sale-verbs", "出售", None, None)]
    assert judge(c, "有mg吗 加v: abc12345")["decision"] == "block"  # a contact is company too
    assert judge(c, "出售冰毒")["decision"] == "block"


def test_short_initials_never_count_alone(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": SHORT})
    assert judge(c, "麻古")["decision"] == "block"  # the written term fires its rule...
    alone = judge(c, "有mg吗")  # ...its initials do not
    assert (alone["decision"], alone["matches"]) == ("allow", ())
    assert judge(c, "cs bd 了")["decision"] == "allow"  # initials beside initials: 出售 and 冰毒, or any other words
    assert judge(c, "出售 mg")["decision"] == "block"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("please bd 13800138000", id="no-chinese"),
        pytest.param("出售 my old bikes and tools, bd, call 13800138000", id="chinese-out-of-reach"),
        pytest.param("出售 BD", id="capitals-set-apart"),
        pytest.param("出售bdz", id="inside-a-word"),
        pytest.param("出售mybd", id="end-of-a-word"),
        pytest.param("です 出售bd", id="japanese"),
    ],
)
def test_short_initials_are_read_only_as_typed_into_chinese(tmp_path: Path, text: str) -> None:
    c = classifier(tmp_path, {"drugs": SHORT})
    assert judge(c, "出售bd 13800138000")["decision"] == "block"
    assert judge(c, text)["decision"] == "allow"


def test_three_capitals_written_into_chinese_are_initials_two_are_an_acronym(tmp_path: Path) -> None:
    c = classifier(
        tmp_path, {"drugs": SHORT + "set more-nouns\n  摇头丸\nrule more weight=10\n  all: more-nouns, sale-verbs\n"}
    )
    assert judge(c, "出售YTW")["decision"] == "block"
    assert judge(c, "出售bd")["decision"] == "block"
    assert judge(c, "出售BD")["decision"] == "allow"  # 真人CS, PK赛, AA制: two capitals are an acronym


def test_short_initials_stand_for_every_term_they_abbreviate_once(tmp_path: Path) -> None:
    # 麻古 and 美工 are both "mg": the one hit may fill the place of either, not of both at once.
    files = {"drugs": SHORT + "set other-words\n  美工\nrule pair weight=10\n  all: named, other-words, sale-verbs\n"}
    c = classifier(tmp_path, files)
    assert {(t.normal, t.rule.id) for t in c.pack.terms if t.variant == "initials"} >= {
        ("mg", "drugs.named"),
        ("mg", "drugs.other-words"),
    }
    assert "drugs.pair" not in {m["rule_id"] for m in judge(c, "出售mg")["matches"]}


def test_a_rule_without_pinyin_gets_no_short_initials(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": SHORT.replace("set drug-nouns", "set drug-nouns pinyin=no")})
    assert judge(c, "出售bd")["decision"] == "allow"


def test_the_second_view_reads_no_initials_and_no_short_latin_words(tmp_path: Path) -> None:
    # The initials of 人肉搜索, "rrss", read "rs" there, as does "rss" in a text that has "zzz" elsewhere.
    c = classifier(tmp_path, {"privacy": header("privacy") + "rule doxxing\n  人肉搜索\n  seee\n"})
    assert judge(c, "the rss feed, zzz")["decision"] == "allow"
    assert judge(c, "rrss 人肉")["decision"] == "block"  # the initials themselves still match in the normal view
    assert judge(c, "seeeeee zzz")["decision"] == "allow"  # "seee" reads "se": too short to look for there


def test_initials_of_one_repeated_letter_are_not_generated(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"violence": header("violence") + "rule school\n  血洗学校\n"})
    assert "xxxx" not in {term.normal for term in c.pack.terms}
    assert judge(c, "xxxx公司的xxx说了什么")["decision"] == "allow"


def test_a_rule_can_opt_out_of_generated_variants(tmp_path: Path) -> None:
    c = classifier(
        tmp_path, {"gambling": GAMBLING + "rule online pinyin=no variants=no\n  网络赌博\n"}, lookalikes="赌 堵\n"
    )
    assert [term.variant for term in c.pack.terms] == [""]


def test_a_rule_with_nothing_to_match_is_refused(tmp_path: Path) -> None:
    write_pack(tmp_path, {"gambling": GAMBLING + "rule empty\nrule full\n  网赌\n"})
    with pytest.raises(RulePackError, match=r"gambling.rules:5: 'gambling.empty' has no terms or conditions"):
        load_pack(tmp_path)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("rule x weight=-1\n  网赌\n", r":5: weight '-1' must be a number at least 0.01"),
        ("rule x context=2\n  网赌\n", r":5: context '2' must be a number between 0 and 1"),
        ("rule x\n  all: nowhere, <phone>\n", r":6: 'nowhere' names no rule or set of the pack"),
        ("rule x\n  all: 网赌\n", r":6: 'all:' needs two atoms or more"),
        ("set s\n  网赌\nrule x\n  all: s, <fax>\n", r":8: unknown signal '<fax>'"),
        ("set s\n  网赌\nrule x\n  any within 5: s, <phone>\n", r":8: 'within' needs 'all'"),
        ("set s weight=3\n  网赌\n", r":5: unknown set option 'weight=3'"),
        ("set s\n  all: a, b\n", r":6: a set holds terms only"),
        ("rule x\n  转发{m}个群\n", r":6: unknown slot '\{m\}'"),
        ("set s\n  网赌\nset t\n  赌场\nrule x\n  all: s, <phone>\n", r":7: set 'gambling.t' is named by no condition"),
    ],
)
def test_broken_combinations_are_refused_with_file_and_line(tmp_path: Path, line: str, error: str) -> None:
    write_pack(tmp_path, {"gambling": GAMBLING + line})
    with pytest.raises(RulePackError, match=error):
        load_pack(tmp_path)


# --- the normalisation they rely on -----------------------------------------------------------------------------


def test_spelled_out_words_keep_the_gap_between_them() -> None:
    assert normalize("f.r.e.e c.a.s.i.n.o") == "free casino"
    assert normalize("v-i-a-g-r-a now") == "viagra now"


def test_separators_between_chinese_and_digits_go() -> None:
    assert normalize("转*发*5*个群") == "转发5个群"
    assert normalize("第 3 名") == "第3名"
    assert normalize("3 . 5") == "3 . 5"  # digits alone are not Chinese: spelled-out letters need three


@pytest.mark.parametrize(
    ("text", "normalisation"),
    [
        ("赌赌博博网网站站来玩", "repeat"),
        ("caaasino tonight", "repeat"),
        ("c4sino tonight", "leet"),
        ("ca$ino tonight", "leet"),
    ],
)
def test_repeats_and_leetspeak_match_through_the_second_view(tmp_path: Path, text: str, normalisation: str) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule words\n  赌博网站\n  casino\n"})
    verdict = judge(c, text)
    assert verdict["decision"] == "block"
    (match,) = verdict["matches"]
    assert normalisation in match["normalisations"]
    start, end = match["span"]
    assert normalize(text[start:end].replace("$", "s")) in {"赌赌博博网网站站", "caaasino", "c4sino", "casino"}


def test_the_second_view_does_not_turn_ordinary_words_into_terms(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule words\n  bet\n  赌博\n"})
    assert judge(c, "beet soup, 100 of them")["decision"] == "allow"  # "beet" is not spelled "bet" with a repeat
    assert judge(c, "哈哈哈 谢谢谢谢 good")["decision"] == "allow"


# The second view's definition, as regex substitutions over normal text: what the compiled passes must give.
_HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_LEET_WORD = re.compile(r"(?:[a-z0-9@$|]|(?<=[a-z$@|])!(?=[a-z$@|]))+")  # "!" between letters or symbols
_LEET_SYMBOL = re.compile(r"[013457@$|!]")
_LEET_READ = str.maketrans("013457@$|!il", "o1eastas1111")  # "1", "|", "!", "i" and "l" read as one letter, "1"


def _defined_word(word: str) -> str:
    """A word as the second view reads it: leet symbols read as letters if it mixes them with letters; "i" and "l"
    as "1"; a run of a letter as one, of "1" only if its characters are alike."""
    letters = re.search("[a-z]", word) is not None
    spelled = letters and _LEET_SYMBOL.search(word) is not None
    read = [(c.translate(_LEET_READ) if spelled or c in "il" else c, c) for c in word]
    out: list[tuple[str, str]] = []
    for letter, written in read:
        if (
            out
            and letter == out[-1][0]
            and ("a" <= letter <= "z" or (letter == "1" and letters and written == out[-1][1]))
        ):
            continue
        out.append((letter, written))
    return "".join(letter for letter, _ in out)


def _defined_second(text: str, *, every: bool = False) -> str:
    shown = (
        every
        or any(re.search("[a-z]", w) and _LEET_SYMBOL.search(w) for w in _LEET_WORD.findall(text))
        or re.search(rf"([{_HAN_CLASS}])\1|([a-z])\2\2|([a-z])\3(?!\3)([a-z])\4", text)
    )
    read = _LEET_WORD.sub(lambda m: _defined_word(m.group()), text)
    return re.sub(rf"([{_HAN_CLASS}])\1+", r"\1", read) if shown else ""


_VIEW_TEXTS = st.text(alphabet=st.sampled_from("ab c0134$@赌博博哈.x57il|!"), max_size=24)


@settings(max_examples=400, deadline=None)
@given(st.lists(_VIEW_TEXTS, min_size=1, max_size=4))
def test_the_second_view_is_its_regex_definition(texts: list[str]) -> None:
    normals = [normalize(text) for text in texts]
    view = second_view(NormalBatch(normals).codes)
    assert view.text.split(BOUNDARY) == [_defined_second(normal) for normal in normals]
    assert second_form(normals[0]) == _defined_second(normals[0], every=True)


def test_a_term_read_shorter_in_the_second_view_maps_back_to_its_whole_span(tmp_path: Path) -> None:
    # "free" reads "fre" there: the hit's end must come from what the second view matched, not the term's length.
    c = classifier(tmp_path, {"gambling": GAMBLING + "rule words\n  free spins\n"})
    text = "get freeee spinsss now"
    (match,) = judge(c, text)["matches"]
    assert text[slice(*match["span"])] == "freeee spinsss"
    assert match["normalisations"] == ("repeat",)


def test_all_without_a_window_reaches_a_long_message_s_paragraph_not_its_whole(tmp_path: Path) -> None:
    c = classifier(tmp_path, {"drugs": COMBINED})
    assert judge(c, "meth, 加v abc12345")["decision"] == "block"
    assert judge(c, "meth" + " and so on" * 40 + " 加v abc12345")["decision"] == "allow"


# --- which texts are worth scoring --------------------------------------------------------------------------------

WORTH = (
    header("violence")
    + "set when\n  明天\nset harm\n  砍人\nset where\n  学校\nset tools\n  刀子\n"
    + 'rule plan weight=6\n  all within 20: when, harm|tools, where\n  any: "杀手"\n'
    + "rule with-phone weight=3\n  all: tools, <phone>\nrule strong\n  炸弹\n"
)


def test_may_fire_answers_as_the_first_of_prospects(tmp_path: Path) -> None:
    scorer = Scorer(make_pack(tmp_path, {"violence": WORTH}))
    atoms = sorted(scorer.pack.rules)
    for size in range(len(atoms) + 1):
        for chosen in combinations(atoms, size):
            assert scorer.may_fire(chosen) == scorer.prospects(set(chosen))[0], chosen
    assert not scorer.may_fire(["violence.when", "violence.harm"])  # a place of the condition is missing
    assert scorer.may_fire(["violence.when", "violence.harm", "violence.where"])
    assert scorer.may_fire(["violence.tools"])  # with a phone number, which the detectors find


def test_prospects_remembered_by_atom_set_answer_as_found_afresh_and_stay_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "_ATOM_SETS_REMEMBERED", 3)
    pack = make_pack(tmp_path, {"violence": WORTH})
    remembering, fresh = Scorer(pack), Scorer(pack)
    atoms = sorted(pack.rules)
    for _ in range(2):  # the second time round, answers come from memory where it kept them
        for size in range(len(atoms) + 1):
            for chosen in combinations(atoms, size):
                assert remembering.prospects(set(chosen)) == Scorer(pack).prospects(set(chosen)), chosen
                assert len(remembering._prospects_of) <= 3
                assert len(remembering._conditions_of) <= 3
    assert remembering.prospects({"violence.tools"}) == fresh.prospects({"violence.tools"}) == (True, True, False)


_PIECES = ["明天", "砍人", "学校", "刀子", "杀手", "炸弹", "13800138000", "你好", "，"]


@pytest.fixture(scope="module")
def worth_pack(tmp_path_factory: pytest.TempPathFactory) -> RulePack:
    return make_pack(tmp_path_factory.mktemp("pack"), {"violence": WORTH})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join), min_size=1, max_size=6))
def test_leaving_out_hits_that_fire_nothing_changes_no_verdict(worth_pack: RulePack, texts: list[str]) -> None:
    messages = [ChatMessage(f"m{i}", "g", "u", 0, text) for i, text in enumerate(texts)]
    everything = Classifier(worth_pack)
    everything._matcher = Matcher(worth_pack)  # every hit of every text placed, as without a scorer's help
    assert Classifier(worth_pack).classify_batch(messages, 1) == everything.classify_batch(messages, 1)
