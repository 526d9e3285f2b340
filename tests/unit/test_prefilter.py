"""Prefilter: where one of many strings may begin in a batch, never missing one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy import prefilter
from streams.policy.normalize import BOUNDARY, as_codes, normalize_joined
from streams.policy.prefilter import Prefilter


def test_the_prefilter_chooses_the_texts_where_the_first_characters_of_a_string_occur() -> None:
    # Strings are indexed by their first two characters, or four when those are ASCII.
    index = Prefilter(["刷单返利", "casino", "vx加微", "qq", "bet", "x"])
    texts = ["你好", "casinos", "刷单", "cas", "vx", "qq号", "bet", "x", "刷", "ca sino", "", "be"]
    assert index.texts(as_codes(BOUNDARY.join(texts))) == [1, 2, 4, 5, 6, 7]
    assert index.texts(as_codes("")) == []
    assert Prefilter([]).texts(as_codes(BOUNDARY.join(texts))) == []


_CHARACTERS = "ab1 刷单赌博返"


@settings(max_examples=300, deadline=None)
@given(
    strings=st.lists(st.text(_CHARACTERS, min_size=1, max_size=6), min_size=1, max_size=6),
    texts=st.lists(
        st.lists(st.integers(0, 5) | st.text(_CHARACTERS + "x你", max_size=3), max_size=10), min_size=1, max_size=5
    ),
    bits_per_gram=st.sampled_from([1, 8, 128]),  # 1: a few words for all, so most positions look like starts
)
def test_the_prefilter_chooses_every_text_that_holds_a_string(
    strings: list[str], texts: list[list[int | str]], bits_per_gram: int
) -> None:
    batch = [
        "".join(strings[piece % len(strings)] if isinstance(piece, int) else piece for piece in pieces)
        for pieces in texts
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefilter, "_BITS_PER_GRAM", bits_per_gram)
        chosen = Prefilter(strings).texts(as_codes(BOUNDARY.join(batch)))
    assert chosen == sorted(set(chosen))
    holding = [index for index, text in enumerate(batch) if any(string in text for string in strings)]
    assert set(holding) <= set(chosen)


def test_texts_are_the_ones_of_a_joined_batch_where_a_string_may_begin() -> None:
    batch = Prefilter(["刷单", "casino"])
    assert batch.texts(as_codes(normalize_joined(["你好", "刷单", "", "a ＣＡＳＩＮＯ", "刷", "单"]))) == [1, 3]
    assert batch.texts(as_codes(normalize_joined(["刷单"]))) == [0]
    assert batch.texts(as_codes("")) == []


def test_the_index_grows_with_the_strings() -> None:
    assert Prefilter(["刷单"])._words.nbytes * 8 == 2**8
    assert Prefilter([f"{n:04d}" for n in range(10_000)])._words.nbytes * 8 == 2**21
