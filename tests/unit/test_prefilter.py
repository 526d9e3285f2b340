"""Prefilter: where one of many strings may begin in a batch, never missing one."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy import prefilter
from streams.policy.normalize import normalize_joined
from streams.policy.prefilter import Prefilter


def _codes(text: str) -> np.ndarray:
    return np.array([ord(c) for c in text], dtype=np.uint32)


def test_the_prefilter_reports_where_the_first_characters_of_a_string_occur() -> None:
    # Strings are indexed by their first two characters, or four when those are ASCII.
    index = Prefilter(["刷单返利", "casino", "vx加微", "qq", "bet", "x"])
    text = "你好 casinos 刷单 cas vx qq号 bet x"
    assert sorted(index.starts(_codes(text)).tolist()) == [3, 11, 18, 19, 21, 25, 29]
    assert index.starts(_codes("")).tolist() == []
    assert Prefilter([]).starts(_codes(text)).tolist() == []


_CHARACTERS = "ab1 刷单赌博返"


@settings(max_examples=300, deadline=None)
@given(
    strings=st.lists(st.text(_CHARACTERS, min_size=1, max_size=6), min_size=1, max_size=6),
    pieces=st.lists(st.integers(0, 5) | st.text(_CHARACTERS + "x你", max_size=3), max_size=10),
    bits_per_gram=st.sampled_from([1, 8, 1024]),  # 1: a few bits for all, so most positions look like starts
)
def test_the_prefilter_reports_every_start_of_a_string(
    strings: list[str], pieces: list[int | str], bits_per_gram: int
) -> None:
    text = "".join(strings[p % len(strings)] if isinstance(p, int) else p for p in pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefilter, "_BITS_PER_GRAM", bits_per_gram)
        starts = set(Prefilter(strings).starts(_codes(text)).tolist())
    for string in strings:
        for occurrence in re.finditer(f"(?={re.escape(string)})", text):
            assert occurrence.start() in starts


def test_texts_are_the_ones_of_a_joined_batch_where_a_string_may_begin() -> None:
    batch = Prefilter(["刷单", "casino"])
    assert batch.texts(normalize_joined(["你好", "刷单", "", "a ＣＡＳＩＮＯ", "刷", "单"])) == [1, 3]
    assert batch.texts(normalize_joined(["刷单"])) == [0]
    assert batch.texts("") == []


def test_the_index_grows_with_the_strings() -> None:
    assert len(Prefilter(["刷单"])._bits) == 2**11 // 32
    assert len(Prefilter([f"{n:04d}" for n in range(10_000)])._bits) == 2**24 // 32
