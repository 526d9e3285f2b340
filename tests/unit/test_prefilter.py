"""Prefilter: where one of many strings may begin in a batch, never missing one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy import prefilter
from streams.policy.normalize import BOUNDARY, as_codes, normalize_joined
from streams.policy.prefilter import Prefilter


def test_the_prefilter_chooses_the_texts_where_the_first_characters_of_a_string_occur() -> None:
    # Strings are indexed by their first two characters, or four when those after the first are ASCII.
    index = Prefilter(["刷单返利", "casino", "vx加微", "qq", "bet", "x", "。com"])
    texts = ["你好", "casinos", "刷单", "cas", "vx", "qq号", "bet", "x", "刷", "ca sino", "", "be", "好。co", "a。com"]
    assert index.texts(as_codes(BOUNDARY.join(texts))) == [1, 2, 4, 5, 6, 7, 13]
    assert index.texts(as_codes("")) == []
    assert Prefilter([]).texts(as_codes(BOUNDARY.join(texts))) == []


def test_with_word_starts_a_latin_string_begins_only_where_a_word_does() -> None:
    texts = ["casino", "a casino", "onlinecasino", "9casino", "_casino", "刷单", "x刷单", "赌casino", "qq", "myqq"]
    codes = as_codes(BOUNDARY.join(texts))
    assert Prefilter(["casino", "刷单", "qq"], word_starts=True).texts(codes) == [0, 1, 4, 5, 6, 7, 8]
    assert Prefilter(["casino", "刷单", "qq"]).texts(codes) == list(range(len(texts)))


_CHARACTERS = "ab1 刷单赌博返"


@settings(max_examples=300, deadline=None)
@given(
    strings=st.lists(st.text(_CHARACTERS, min_size=1, max_size=6), min_size=1, max_size=6),
    texts=st.lists(
        st.lists(st.integers(0, 5) | st.text(_CHARACTERS + "x你", max_size=3), max_size=10), min_size=1, max_size=5
    ),
    bits_per_gram=st.sampled_from([1, 8, 128]),  # 1: a few words for all, so most positions look like starts
    word_starts=st.booleans(),
)
def test_the_prefilter_chooses_every_text_that_holds_a_string(
    strings: list[str], texts: list[list[int | str]], bits_per_gram: int, word_starts: bool
) -> None:
    batch = [
        "".join(strings[piece % len(strings)] if isinstance(piece, int) else piece for piece in pieces)
        for pieces in texts
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefilter, "_BITS_PER_GRAM", bits_per_gram)
        patch.setattr(prefilter, "_FEWEST_WORD_BITS", 1)
        chosen = Prefilter(strings, word_starts=word_starts).texts(as_codes(BOUNDARY.join(batch)))
    assert chosen == sorted(set(chosen))
    holding = [index for index, text in enumerate(batch) if any(_begins(s, text, word_starts) for s in strings)]
    assert set(holding) <= set(chosen)


def _begins(string: str, text: str, word_starts: bool) -> bool:
    """Whether ``string`` occurs in ``text``; with ``word_starts``, if it begins with a letter or digit, where no
    letter or digit comes before it."""
    latin = "abcdefghijklmnopqrstuvwxyz0123456789"
    at = text.find(string)
    while at >= 0:
        if not (word_starts and string[0] in latin and at > 0 and text[at - 1] in latin):
            return True
        at = text.find(string, at + 1)
    return False


def test_texts_are_the_ones_of_a_joined_batch_where_a_string_may_begin() -> None:
    batch = Prefilter(["刷单", "casino"])
    assert batch.texts(as_codes(normalize_joined(["你好", "刷单", "", "a ＣＡＳＩＮＯ", "刷", "单"]))) == [1, 3]
    assert batch.texts(as_codes(normalize_joined(["刷单"]))) == [0]
    assert batch.texts(as_codes("")) == []


def test_the_index_grows_with_the_strings() -> None:
    assert Prefilter(["刷单"])._words.nbytes * 8 == 2**16
    assert Prefilter([f"{n:04d}" for n in range(10_000)])._words.nbytes * 8 == 2**21
