"""Matcher: keyword hits in normalised text, English word boundaries, allow phrases and batches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import header, make_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy import matcher as matcher_module
from streams.policy import pinyin
from streams.policy.matcher import Found, Hit, Matcher
from streams.policy.normalize import NormalBatch, normalize
from streams.policy.rules import RulePack, SlotNeeds, slot_needs

SCAM = (
    header("scam")
    + """
rule task-rebate pinyin=no
  刷单
  刷单返利
  shua单
  scam
  bet365
  click farming job
allow
  警惕刷单
  远离赌博
"""
)

GAMBLING = (
    header("gambling", severity="medium", decision="review")
    + """
rule casino pinyin=no
  赌博
  casino
allow
  拒绝刷单
"""
)


@pytest.fixture
def matcher(tmp_path: Path) -> Matcher:
    return Matcher(make_pack(tmp_path, {"scam": SCAM, "gambling": GAMBLING}))


def found(matcher: Matcher, text: str) -> list[tuple[str, int, int, str]]:
    """(term, start, end, rule id) of every hit in the normal form of ``text``."""
    return [(h.term.normal, h.start, h.end, h.term.rule.id) for h in matcher.find(normalize(text))]


def test_matcher_counts_terms_and_allow_phrases(matcher: Matcher) -> None:
    assert matcher.size == 11  # 8 terms and 3 allow phrases, all distinct (the rules generate no pinyin)


def test_chinese_term_found(matcher: Matcher) -> None:
    assert found(matcher, "招人刷单了") == [("刷单", 2, 4, "scam.task-rebate")]


def test_chinese_term_found_after_normalisation(matcher: Matcher) -> None:
    assert found(matcher, "这是賭*博网站") == [("赌博", 2, 4, "gambling.casino")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a scam!", [("scam", 2, 6, "scam.task-rebate")]),
        ("SCAM", [("scam", 0, 4, "scam.task-rebate")]),
        ("这是scam吗", [("scam", 2, 6, "scam.task-rebate")]),
        ("scam,scam", [("scam", 0, 4, "scam.task-rebate"), ("scam", 5, 9, "scam.task-rebate")]),
        ("scampi", []),
        ("ascam", []),
        ("scam1", []),
        ("scam_", [("scam", 0, 4, "scam.task-rebate")]),  # '_' is not a letter or digit
    ],
)
def test_english_term_matches_whole_words_only(matcher: Matcher, text: str, expected: list[object]) -> None:
    assert found(matcher, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bet365", [("bet365", 0, 6, "scam.task-rebate")]),
        ("go bet365!", [("bet365", 3, 9, "scam.task-rebate")]),
        ("去bet365注册", [("bet365", 1, 7, "scam.task-rebate")]),
        ("bet3650", []),
        ("1bet365", []),
        ("abet365", []),
    ],
)
def test_term_with_digits_matches_whole_words_only(matcher: Matcher, text: str, expected: list[object]) -> None:
    assert found(matcher, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shua单", [("shua单", 0, 5, "scam.task-rebate")]),
        ("来shua单吧", [("shua单", 1, 6, "scam.task-rebate")]),
        ("xshua单", []),  # the Latin side is checked for a word boundary
    ],
)
def test_mixed_script_term_checks_the_latin_side(matcher: Matcher, text: str, expected: list[object]) -> None:
    assert found(matcher, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Click  Farming Job now", [("click farming job", 0, 17, "scam.task-rebate")]),
        ("a click farming job.", [("click farming job", 2, 19, "scam.task-rebate")]),
        ("click farming jobs", []),
        ("click farming", []),
    ],
)
def test_multi_word_english_term(matcher: Matcher, text: str, expected: list[object]) -> None:
    assert found(matcher, text) == expected


def test_allow_phrase_cancels_hit_it_covers(matcher: Matcher) -> None:
    assert found(matcher, "警惕刷单诈骗") == []
    assert found(matcher, "刷单赚钱") == [("刷单", 0, 2, "scam.task-rebate")]


def test_allow_phrase_does_not_cancel_hit_it_only_overlaps(matcher: Matcher) -> None:
    # 警惕刷单 covers 刷单 at [2, 4) but only overlaps 刷单返利 at [2, 6).
    assert found(matcher, "警惕刷单返利") == [("刷单返利", 2, 6, "scam.task-rebate")]


def test_allow_phrase_only_cancels_hits_inside_itself(matcher: Matcher) -> None:
    assert found(matcher, "警惕刷单，刷单赚钱") == [("刷单", 4, 6, "scam.task-rebate")]


def test_allow_phrases_cancel_across_categories(matcher: Matcher) -> None:
    assert found(matcher, "远离赌博") == []  # a scam.rules allow phrase, a gambling term
    assert found(matcher, "拒绝刷单") == []  # a gambling.rules allow phrase, a scam term
    assert found(matcher, "赌博") == [("赌博", 0, 2, "gambling.casino")]


def test_overlapping_terms_are_all_reported_in_order(matcher: Matcher) -> None:
    assert found(matcher, "刷单返利") == [
        ("刷单", 0, 2, "scam.task-rebate"),
        ("刷单返利", 0, 4, "scam.task-rebate"),
    ]


def test_hits_sorted_with_character_offsets_in_mixed_text(matcher: Matcher) -> None:
    normal = normalize("Hi! 刷单 and SCAM, ｃａｓｉｎｏ賭博 bet365")
    assert normal == "hi! 刷单 and scam, casino赌博 bet365"
    hits = matcher.find(normal)
    assert [(h.term.normal, h.start, h.end) for h in hits] == [
        ("刷单", 4, 6),
        ("scam", 11, 15),
        ("casino", 17, 23),
        ("赌博", 23, 25),
        ("bet365", 26, 32),
    ]
    assert all(normal[h.start : h.end] == h.term.normal for h in hits)
    assert [h.term.rule.category for h in hits] == ["scam", "scam", "gambling", "gambling", "scam"]


def test_no_hits_in_clean_text(matcher: Matcher) -> None:
    assert matcher.find(normalize("今天天气不错 let's have lunch")) == []
    assert matcher.find("") == []


def test_find_batch_splits_hits_per_text(matcher: Matcher) -> None:
    texts = ["刷单", "nothing here", "a scam 赌博", "ＣＡＳＩＮＯ", "警惕刷单"]
    hits = matcher.find_batch(NormalBatch(texts)).hits
    assert sorted(hits) == [0, 2, 3]
    as_tuples = {i: [(h.term.normal, h.start, h.end) for h in found_hits] for i, found_hits in hits.items()}
    assert as_tuples == {
        0: [("刷单", 0, 2)],
        2: [("scam", 2, 6), ("赌博", 7, 9)],
        3: [("casino", 0, 6)],
    }
    for index, found_hits in hits.items():
        normal = normalize(texts[index])
        assert all(normal[h.start : h.end] == h.term.normal for h in found_hits)


def test_find_batch_treats_the_boundary_as_a_word_break(matcher: Matcher) -> None:
    hits = matcher.find_batch(NormalBatch(["a scam", "scam b", "sc", "am"])).hits
    assert {i: [(h.term.normal, h.start, h.end) for h in v] for i, v in hits.items()} == {
        0: [("scam", 2, 6)],
        1: [("scam", 0, 4)],
    }


def test_find_batch_offsets_count_characters_not_bytes(matcher: Matcher) -> None:
    # Multi-byte characters before a hit, in the same text and in the texts before it.
    hits = matcher.find_batch(NormalBatch(["赌博赌博", "你好你好 scam", "哈哈 bet365 ok 刷单"])).hits
    assert {i: [(h.term.normal, h.start, h.end) for h in v] for i, v in hits.items()} == {
        0: [("赌博", 0, 2), ("赌博", 2, 4)],
        1: [("scam", 5, 9)],
        2: [("bet365", 3, 9), ("刷单", 13, 15)],
    }


def test_hit_is_a_value_object(matcher: Matcher) -> None:
    [hit] = matcher.find("刷单赚钱")
    assert hit == Hit(hit.term, 0, 2)
    assert hit.term.text == "刷单"
    assert hit.term.rule.severity.label == "high"
    assert hit.term.rule.decision.label == "block"


_PIECES = [
    "刷单",
    "返利",
    "赌博",
    "警惕",
    "scam",
    "casino",
    "bet365",
    " ",
    "你好",
    "ok",
    "*",
    "，",
    "😀",
    "ＣＡＳＩＮＯ",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), min_size=1, max_size=5))
def test_a_batch_finds_in_each_text_what_the_text_alone_gives(matcher: Matcher, texts: list[str]) -> None:
    hits = matcher.find_batch(NormalBatch(texts)).hits
    for index, text in enumerate(texts):
        assert hits.get(index, []) == matcher.find(normalize(text))


def test_find_batch_scans_only_the_texts_where_a_term_may_start(
    matcher: Matcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned: list[str] = []
    scan = matcher_module._scan

    def spy(joined: str, automaton: Any, worth: Any = None, breaking: Any = ()) -> Found:
        scanned.append(joined)
        return scan(joined, automaton, worth, breaking)

    monkeypatch.setattr(matcher_module, "_scan", spy)
    texts = ["你好", "刷单", "警惕", "a scam 赌博", "scarf", "ＣＡＳＩＮＯ", "no such thing"]
    hits = matcher.find_batch(NormalBatch(texts)).hits
    assert {i: [(h.term.normal, h.start, h.end) for h in v] for i, v in hits.items()} == {
        1: [("刷单", 0, 2)],
        3: [("scam", 2, 6), ("赌博", 7, 9)],
        5: [("casino", 0, 6)],
    }
    assert scanned == ["刷单\x00a scam 赌博\x00casino"]  # 警惕 begins only an allow phrase: alone it hits nothing


# --- texts whose hits can fire nothing ----------------------------------------------------------------------------

COMMON = (
    header("violence")
    + """
set when pinyin=no
  明天
  tomorrow
set harm pinyin=no
  砍人
  casino
rule plan weight=10
  all: when, harm
rule strong pinyin=no
  炸弹
"""
)


def _firing(atoms: Any) -> bool:
    """Fires as the COMMON pack's scorer would: a plain rule's term, or both sets."""
    atoms = set(atoms)
    return "violence.strong" in atoms or {"violence.when", "violence.harm"} <= atoms


def _spans(found: Found) -> dict[int, list[tuple[str, int, int]]]:
    return {i: [(h.term.normal, h.start, h.end) for h in hits] for i, hits in found.hits.items()}


def test_with_fires_only_texts_whose_atoms_may_fire_have_hits(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"violence": COMMON})
    texts = ["明天见", "明天去砍人", "tomorrow is fine", "炸弹 tomorrow", "caaasino tomorrow", "明天 c4sino"]
    everything = Matcher(pack).find_batch(NormalBatch(texts))
    some = Matcher(pack, fires=_firing).find_batch(NormalBatch(texts))
    # Common words alone are left out; a text that may fire keeps every hit, common words too, in either view.
    assert _spans(some) == {i: spans for i, spans in _spans(everything).items() if i not in (0, 2)}
    assert set(_spans(everything)) == {0, 1, 2, 3, 4, 5}
    assert _spans(some)[4] == [("casino", 0, 8), ("tomorrow", 9, 17)]  # its rarer atom only in the second view


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(
            st.sampled_from(["明天", "tomorrow", "砍人", "casino", "caaasino", "炸弹", "你好", " ", "，"]), max_size=8
        ).map("".join),
        min_size=1,
        max_size=6,
    )
)
def test_with_fires_a_text_that_may_fire_has_the_hits_it_has_without(tmp_path: Path, texts: list[str]) -> None:
    pack = make_pack(tmp_path, {"violence": COMMON})
    everything = Matcher(pack).find_batch(NormalBatch(texts))
    some = Matcher(pack, fires=_firing).find_batch(NormalBatch(texts))
    for index, hits in everything.hits.items():  # left out only where the hits cannot fire
        assert some.hits.get(index) == hits or not _firing({hit.term.rule.id for hit in hits})
    for index, hits in some.hits.items():  # and never a hit the full search does not find
        assert hits == everything.hits[index]
    assert some.warned == everything.warned


EVADED = (
    header("drugs")
    + """
rule pills-and-casinos pinyin=no
  pills
  casino
rule task-rebate
  刷单返利
rule gambling
  赌博
warn
  beware
"""
)


@pytest.fixture
def evaded(tmp_path: Path) -> Matcher:
    return Matcher(make_pack(tmp_path, {"drugs": EVADED}))


@pytest.mark.parametrize(
    ("text", "term"),
    [
        pytest.param("ccaassiinnoo tonight", "casino", id="every-letter-doubled"),
        pytest.param("cheap pi||s", "pills", id="pipes-for-l"),
        pytest.param("cheap p!lls", "pills", id="exclamation-mark-for-i"),
        pytest.param("cheap p1lls", "pills", id="one-for-i"),
        pytest.param("cheap pi11s", "pills", id="ones-for-l"),
        pytest.param("c@s!no", "casino", id="an-exclamation-mark-beside-a-leet-symbol"),
        pytest.param("shua1dan1fan3li4", "刷单返利", id="pinyin-with-tone-numbers"),
        pytest.param("shua1 dan1 fan3 li4", "刷单返利", id="spaced-pinyin-with-tone-numbers"),
        pytest.param("shuā dān fǎn lì", "刷单返利", id="pinyin-with-tone-marks"),
        pytest.param("du bo", "赌博", id="short-pinyin-spaced"),
        pytest.param("dǔ bó", "赌博", id="short-pinyin-with-tone-marks"),
        pytest.param("du3bo2", "赌博", id="short-pinyin-with-tone-numbers"),
        pytest.param("网上赌bo，稳赚", "赌博", id="pinyin-mixed-with-a-character"),
        pytest.param("赌BO", "赌博", id="capital-pinyin-mixed-with-a-character"),
    ],
)
def test_evaded_terms_are_found(evaded: Matcher, text: str, term: str) -> None:
    assert [hit.term.text for hit in evaded.find(normalize(text))] == [term]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("帮我ShuaDanFanLiJiaQun", id="capitalised-inside-more-pinyin"),
        pytest.param("帮我zuoshuadanfanli，日结", id="after-more-pinyin"),
        pytest.param("来shuādānfǎnlìqún了", id="tone-marks-inside-more-pinyin"),
        pytest.param("woshua1dan1fan3li4", id="tone-numbers-after-more-pinyin"),
        pytest.param("jinqunzuoshuadanfanlirijie 300", id="a-long-run-in-a-text-without-characters"),
    ],
)
def test_generated_pinyin_is_found_inside_a_longer_run_of_pinyin(evaded: Matcher, text: str) -> None:
    assert [hit.term.text for hit in evaded.find(normalize(text))] == ["刷单返利"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("帮我shuadanfanlix", id="the-run-does-not-read-as-pinyin"),
        pytest.param("帮我shuadanfanlis", id="a-letter-more"),
        pytest.param("帮我shuadanfanlipills", id="no-pinyin-no-break-for-other-terms"),
    ],
)
def test_pinyin_parts_only_where_the_whole_run_reads_as_syllables(evaded: Matcher, text: str) -> None:
    assert [hit.term.text for hit in evaded.find(normalize(text))] == []


@pytest.mark.parametrize(
    ("text", "span"),
    [
        pytest.param("帮我刷dan返li，日结", (2, 9), id="syllables-between-characters"),
        pytest.param("刷单fanli 群", (0, 7), id="the-second-half-in-pinyin"),
        pytest.param("做shua1单fan3利", (1, 12), id="with-tone-numbers"),
        pytest.param("来SHUA单返利", (1, 8), id="in-capitals"),
        pytest.param("帮我shua dan返利", (2, 12), id="syllables-set-apart-by-spaces"),
        pytest.param("做shua1 dan1返利", (1, 13), id="set-apart-with-tone-numbers"),
        pytest.param("lai shua1dan1 fan3li4 ba", (4, 20), id="a-text-wholly-in-pinyin-with-tone-numbers"),
        pytest.param("wo3 zuo4 shuadan fanli", (9, 22), id="enough-of-its-words-with-a-tone"),
        pytest.param("lái shuādān fǎnlì ba", (4, 17), id="a-text-wholly-in-pinyin-with-tone-marks"),
    ],
)
def test_a_term_written_half_in_pinyin_is_found(evaded: Matcher, text: str, span: tuple[int, int]) -> None:
    hits = evaded.find_batch(NormalBatch([text])).hits.get(0, [])  # the original: its tone marks count
    assert [(hit.term.text, hit.start, hit.end) for hit in hits] == [("刷单返利", *span)]
    assert hits[0].term.variant == "pinyin"


@pytest.mark.parametrize(
    "others",
    [
        pytest.param(["日结，私聊", "ā"], id="texts-before-it-one-with-a-mark"),
        pytest.param(["a text that holds the boundary \x00 itself"], id="a-batch-read-text-by-text"),
    ],
)
@pytest.mark.parametrize("text", ["lái shuādān fǎnlì ba", "LÁI SHUĀDĀN FǍNLÌ BA"])
def test_tone_marks_are_counted_in_their_own_text_of_a_batch(evaded: Matcher, others: list[str], text: str) -> None:
    hits = evaded.find_batch(NormalBatch([*others, text])).hits
    assert [(index, hit.term.text) for index, found in hits.items() for hit in found] == [(len(others), "刷单返利")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("耍单返利，hao的", id="a-homophone-in-characters-beside-other-pinyin"),
        pytest.param("刷dan返liす", id="a-text-with-kana"),
        pytest.param("刷单fun利", id="an-english-word-between-characters"),
        pytest.param(
            "hash sha1 and md5 of the file shuadan fanli are in the release notes for everyone",
            id="english-with-a-version-number-or-two",
        ),
    ],
)
def test_reading_a_text_as_pinyin_finds_only_what_was_written_in_pinyin(evaded: Matcher, text: str) -> None:
    assert evaded.find(normalize(text)) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param("来做sdflbjs，日结", ["刷单返利"], id="first-of-several-initials-written-together"),
        pytest.param("jzsdfl日结", ["刷单返利"], id="last-of-several"),
        pytest.param("来做sdflow，日结", [], id="a-run-with-a-vowel-is-no-run-of-initials"),
        pytest.param("sdflbjs tonight", [], id="not-in-a-text-written-in-chinese"),
    ],
)
def test_initials_are_found_inside_a_run_of_initials(evaded: Matcher, text: str, found: list[str]) -> None:
    assert [hit.term.text for hit in evaded.find(normalize(text))] == found


def test_a_run_parts_between_syllables_in_every_reading() -> None:
    known = pinyin.syllables()
    assert pinyin.cuts("xian", known) == (2,)  # xian, or xi an
    assert pinyin.cuts("dianzan", known) == (2, 4)  # di an zan, dian zan
    assert pinyin.cuts("shua1dan1", known) == (3, 5)  # shu a1 dan1, shua1 dan1
    assert pinyin.cuts("hello", known) is None
    assert pinyin.cuts("bing", known) == ()  # one syllable
    assert {"lv", "lu", "nve", "nue", "zhuang4"} <= known
    assert not {"m", "ng", "hm"} & known  # no syllable without a vowel


@pytest.mark.parametrize("text", ["sooo piss", "wow!! nice pils", "coffee, bookkeeper, pls", "dubo", "赌boy"])
def test_the_second_view_keeps_different_words_apart(evaded: Matcher, text: str) -> None:
    assert [hit.term.text for hit in evaded.find(normalize(text))] == []


def test_a_warning_frame_covers_hits_only_the_second_view_finds(evaded: Matcher) -> None:
    found = evaded.find_batch(NormalBatch(["hello", "beware of caaasino sites"]))
    assert [hit.term.text for hit in found.hits[1]] == ["casino"]
    assert found.warned == {1}


SPELLED = (
    header("gambling")
    + """
rule casinos pinyin=no
  casino
  free cash
  bet365 app
rule shorthand pinyin=no
  fp
"""
)


@pytest.fixture
def spelled(tmp_path: Path) -> Matcher:
    return Matcher(make_pack(tmp_path, {"gambling": SPELLED}))


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        pytest.param("w i n a t o u r c a s i n o", ["casino"], id="a-word-inside-spaced-letters"),
        pytest.param("g e t f r e e c a s h", ["free cash"], id="words-whose-space-the-spelling-took"),
        pytest.param("c\u200basino", ["casino"], id="after-a-zero-width-space"),
        pytest.param("x\u200bcasino", ["casino"], id="a-zero-width-space-breaks-the-word-before"),
        pytest.param("b e t 3 6 5 a p p", ["bet365 app"], id="letters-and-digits"),
    ],
)
def test_spelled_out_words_are_found_where_their_letters_join_others(
    spelled: Matcher, text: str, terms: list[str]
) -> None:
    assert [hit.term.normal for hit in spelled.find_batch(NormalBatch([text])).hits.get(0, [])] == terms


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("casinos and freecash", id="whole-words-still-whole"),
        pytest.param("o f p e n", id="no-short-terms-inside-spelled-letters"),
        pytest.param("bestcasino", id="no-join-no-break"),
    ],
)
def test_words_break_only_where_letters_were_joined(spelled: Matcher, text: str) -> None:
    assert spelled.find_batch(NormalBatch([text])).hits == {}


# --- terms with slots: texts that cannot hold them are not searched ----------------------------------------------

SLOTS = (
    header("gambling")
    + "rule odds weight=6 pinyin=no\n  at {n}/{n}\n  {n} for {price}\n  转发到{n}个群\n  up {n}%\n  {price}包邮\n"
)


def test_slot_needs_are_the_literal_parts_and_whether_a_number_word_may_fill_a_slot(tmp_path: Path) -> None:
    terms = {term.text: term for term in make_pack(tmp_path, {"gambling": SLOTS}).terms}
    assert slot_needs(terms["at {n}/{n}"]) == SlotNeeds(("at", "/"), number_words=True)
    assert slot_needs(terms["{n} for {price}"]) == SlotNeeds(("for",), number_words=False)  # a price has digits
    assert slot_needs(terms["转发到{n}个群"]) == SlotNeeds(("转发到", "个群"), number_words=True)
    assert slot_needs(terms["{price}包邮"]) == SlotNeeds(("包邮",), number_words=False)


def test_the_default_packs_slot_needs_are_parts_of_their_patterns(default_pack: RulePack) -> None:
    slotted = [term for term in default_pack.terms if term.pattern is not None]
    assert slotted
    for term in slotted:
        needs = slot_needs(term)
        assert term.normal in needs.literals, term.text
        assert all(re.escape(literal) in term.pattern.pattern for literal in needs.literals), term.text


def _whole_searched(pattern: re.Pattern[str], text: str, start: int, end: int) -> tuple[int, int] | None:
    """A term with slots around its literal part, searched whatever the text holds."""
    around = pattern.finditer(text, max(0, start - 40), end + 40)
    return next((m.span() for m in around if m.start() <= start and end <= m.end()), None)


_SLOT_PIECES = [
    "at",
    "for",
    "up",
    "/",
    "%",
    " ",
    "3",
    "12",
    "一",
    "五",
    "one",
    "someone",
    "$5",
    "元",
    "what",
    "chat",
    "转发到",
    "个群",
    "包邮",
    "¥",
    "今天",
    "x",
]


@pytest.fixture(scope="module")
def slot_pack(tmp_path_factory: pytest.TempPathFactory) -> RulePack:
    return make_pack(tmp_path_factory.mktemp("slots"), {"gambling": SLOTS})


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(_SLOT_PIECES), max_size=12))
def test_terms_with_slots_are_placed_as_by_searching_every_text(slot_pack: RulePack, pieces: list[str]) -> None:
    pack = slot_pack
    text = normalize("".join(pieces))
    for term in pack.terms:
        if term.pattern is None:
            continue
        needs = slot_needs(term)
        start = text.find(term.normal)
        while start >= 0:
            end = start + len(term.normal)
            assert matcher_module._whole(term.pattern, needs, text, start, end) == _whole_searched(
                term.pattern, text, start, end
            ), (term.text, text)
            start = text.find(term.normal, start + 1)


_SLOT_TEXTS = {
    "odds at 3/1 tonight": [("at {n}/{n}", 5, 11)],
    "what a chat": [],
    "5 for $20": [("{n} for {price}", 0, 9)],
    "someone for you": [],
    "转发到五个群": [("转发到{n}个群", 0, 6)],
    "转发到群里": [],
    "up 30% now": [("up {n}%", 0, 6)],
    "¥99包邮": [("{price}包邮", 0, 5)],
    "五包邮": [],
}


def test_terms_with_slots_are_found_only_where_whole(slot_pack: RulePack) -> None:
    matcher = Matcher(slot_pack)
    for text, expected in _SLOT_TEXTS.items():
        assert [(h.term.text, h.start, h.end) for h in matcher.find(normalize(text))] == expected, text
