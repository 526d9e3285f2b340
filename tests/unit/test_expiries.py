"""The expiry schedule: keys come back in due order, once each; the latest schedule for a key wins; None cancels.

The clock is explicit: pop_due is told the time.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state.expiries import Expiries

T0 = 1_800_000_000_000
USERS, GROUPS = "users", "groups"

# A script: ("schedule", inbox, key, due or None) or ("pop", now, [expected (inbox, key), ...]) or ("len", n).
Op = tuple[Any, ...]


def play(script: list[Op]) -> None:
    expiries = Expiries()
    for op in script:
        if op[0] == "schedule":
            expiries.schedule(op[1], op[2], op[3])
        elif op[0] == "pop":
            assert expiries.pop_due(op[1]) == op[2], op
        else:
            assert len(expiries) == op[1], op


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([("len", 0), ("pop", T0, [])], id="empty"),
        pytest.param(
            [
                ("schedule", USERS, b"c", T0 + 30),
                ("schedule", USERS, b"a", T0 + 10),
                ("schedule", USERS, b"b", T0 + 20),
                ("len", 3),
                ("pop", T0 + 9, []),
                ("pop", T0 + 25, [(USERS, b"a"), (USERS, b"b")]),  # in due order, not in order of scheduling
                ("len", 1),
                ("pop", T0 + 1000, [(USERS, b"c")]),
                ("len", 0),
            ],
            id="due-order",
        ),
        pytest.param(
            [("schedule", USERS, b"a", T0), ("pop", T0 - 1, []), ("pop", T0, [(USERS, b"a")])],
            id="due-at-its-own-time",
        ),
        pytest.param(
            [("schedule", USERS, b"a", T0 - 5000), ("pop", T0, [(USERS, b"a")])],
            id="overdue-comes-at-the-next-pop",
        ),
        pytest.param(
            [("schedule", USERS, b"a", T0), ("pop", T0, [(USERS, b"a")]), ("pop", T0 + 1, []), ("len", 0)],
            id="returned-once",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0),
                ("schedule", USERS, b"a", T0),
                ("len", 1),
                ("pop", T0, [(USERS, b"a")]),
                ("pop", T0, []),
            ],
            id="the-same-schedule-twice",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0 + 10),
                ("schedule", USERS, b"a", T0 + 50),
                ("len", 1),
                ("pop", T0 + 10, []),  # the earlier due no longer stands
                ("pop", T0 + 50, [(USERS, b"a")]),
            ],
            id="rescheduled-later",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0 + 50),
                ("schedule", USERS, b"a", T0 + 10),
                ("pop", T0 + 10, [(USERS, b"a")]),
                ("pop", T0 + 50, []),  # nor does the later one
                ("len", 0),
            ],
            id="rescheduled-earlier",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0 + 10),
                ("schedule", USERS, b"a", T0 + 50),
                ("schedule", USERS, b"a", T0 + 10),
                ("pop", T0 + 10, [(USERS, b"a")]),
                ("pop", T0 + 50, []),
            ],
            id="back-to-an-old-due",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0),
                ("schedule", USERS, b"a", None),
                ("len", 0),
                ("pop", T0 + 1000, []),
            ],
            id="cancelled",
        ),
        pytest.param([("schedule", USERS, b"a", None), ("len", 0), ("pop", T0, [])], id="cancel-unknown"),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0),
                ("schedule", USERS, b"a", None),
                ("schedule", USERS, b"a", T0),
                ("len", 1),
                ("pop", T0, [(USERS, b"a")]),
                ("pop", T0, []),
            ],
            id="cancelled-then-scheduled-again",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0),
                ("pop", T0, [(USERS, b"a")]),
                ("schedule", USERS, b"a", T0 + 10),
                ("len", 1),
                ("pop", T0 + 10, [(USERS, b"a")]),
            ],
            id="scheduled-again-after-it-came",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"k", T0 + 10),
                ("schedule", GROUPS, b"k", T0 + 20),
                ("len", 2),
                ("schedule", USERS, b"k", None),
                ("len", 1),
                ("pop", T0 + 20, [(GROUPS, b"k")]),
            ],
            id="inboxes-apart",
        ),
        pytest.param(
            [
                ("schedule", USERS, b"a", T0 + 10),
                ("schedule", USERS, b"b", T0 + 20),
                ("schedule", USERS, b"a", T0 + 30),
                ("schedule", USERS, b"b", None),
                ("len", 1),
                ("pop", T0 + 25, []),
                ("pop", T0 + 30, [(USERS, b"a")]),
            ],
            id="mixed",
        ),
    ],
)
def test_expiries(script: list[Op]) -> None:
    play(script)


def test_keys_due_together_all_come() -> None:
    expiries = Expiries()
    keys = [(USERS, b"x"), (GROUPS, b"x"), (USERS, b"a"), (GROUPS, b"z")]
    for inbox, key in keys:
        expiries.schedule(inbox, key, T0)
    due = expiries.pop_due(T0)
    assert sorted(due) == sorted(keys)
    assert len(due) == len(keys)
    assert len(expiries) == 0


# Random scripts against a model: a dict (inbox, key) -> due, where pop_due gives the due keys by time.
_keys = st.tuples(st.sampled_from([USERS, GROUPS]), st.sampled_from([b"a", b"b", b"c", b"d"]))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), _keys, st.none() | st.integers(0, 100)),
        st.tuples(st.just("pop"), st.integers(0, 100)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_expiries_agree_with_a_model(ops: list[tuple[Any, ...]]) -> None:
    expiries, model = Expiries(), dict[tuple[str, bytes], int]()
    for op in ops:
        if op[0] == "schedule":
            (inbox, key), due = op[1], op[2]
            expiries.schedule(inbox, key, None if due is None else T0 + due)
            if due is None:
                model.pop((inbox, key), None)
            else:
                model[inbox, key] = T0 + due
        else:
            now = T0 + op[1]
            popped = expiries.pop_due(now)
            expected = sorted((due, k) for k, due in model.items() if due <= now)
            assert [(model[k], k) for k in popped] == expected  # the due ones, each once, earliest first
            for k in popped:
                del model[k]
        assert len(expiries) == len(model)
