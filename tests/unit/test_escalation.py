"""Group escalation: membership events, the member limit, and warning / suspension / shut-down with liabilities.

The clock is explicit: a violation carries its own time (at_ms); nothing reads a real clock.
"""

from __future__ import annotations

import pytest
from conftest import DEFAULT_PACK_DIR

from streams.policy.escalation import (
    NONE,
    SHUT_DOWN,
    SUSPENDED,
    WARNED,
    GroupState,
    Liability,
    apply_group_event,
    over_member_limit,
    record_group_violation,
)
from streams.policy.ladder import Sanction, Violation
from streams.policy.rules import Severity
from streams.policy.sanctions import DAY_MS, load_sanctions

POLICY = load_sanctions(DEFAULT_PACK_DIR / "sanctions.toml")
T0 = 1_800_000_000_000
HOUR_MS = 3600 * 1000
GROUP = "g1"
OWNER, MGR_A, MGR_B = "olga", "mgr-a", "mgr-b"

Event = tuple[str, str]


def events(*steps: Event, state: GroupState | None = None) -> GroupState:
    state = GroupState() if state is None else state
    for kind, user_id in steps:
        state = apply_group_event(state, kind, user_id)
    return state


def run_group() -> GroupState:
    """Owner olga, managers mgr-a and mgr-b, and two plain members."""
    return events(
        ("created", OWNER),
        ("member_joined", MGR_B),
        ("member_joined", MGR_A),
        ("member_joined", "m-1"),
        ("member_joined", "m-2"),
        ("manager_added", MGR_B),
        ("manager_added", MGR_A),
    )


def violation(message_id: str, at_ms: int, categories: tuple[str, ...] = ("scam",)) -> Violation:
    return Violation(message_id, "sender", GROUP, at_ms, Severity.HIGH, categories, tuple(f"{c}.x" for c in categories))


def play(
    violations: list[Violation], state: GroupState
) -> tuple[GroupState, list[list[Sanction]], list[list[Liability]], list[GroupState]]:
    sanctions, liabilities, states = [], [], []
    for v in violations:
        state, out, owed = record_group_violation(state, v, POLICY)
        sanctions.append(out)
        liabilities.append(owed)
        states.append(state)
    return state, sanctions, liabilities, states


def hourly(count: int, *, start: int = T0, first: int = 1) -> list[Violation]:
    return [violation(f"m{n}", start + (n - first) * HOUR_MS) for n in range(first, first + count)]


def at(n: int) -> int:
    """When the n-th hourly violation happened."""
    return T0 + (n - 1) * HOUR_MS


def ids(n: int) -> tuple[str, ...]:
    return tuple(f"m{k}" for k in range(1, n + 1))


# --- membership -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "kind", "user_id", "after"),
    [
        pytest.param(GroupState(), "created", "u1", GroupState(owner="u1", members=frozenset({"u1"})), id="created"),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1"})),
            "member_joined",
            "u2",
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            id="member-joined",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            "member_joined",
            "u2",
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            id="member-joined-twice",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1", "u2", "u3"}), managers=frozenset({"u2", "u3"})),
            "member_left",
            "u2",
            GroupState(owner="u1", members=frozenset({"u1", "u3"}), managers=frozenset({"u3"})),
            id="member-left-drops-manager-rights",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            "member_left",
            "u9",
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            id="member-left-unknown",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            "manager_added",
            "u2",
            GroupState(owner="u1", members=frozenset({"u1", "u2"}), managers=frozenset({"u2"})),
            id="manager-added",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1", "u2"}), managers=frozenset({"u2"})),
            "manager_removed",
            "u2",
            GroupState(owner="u1", members=frozenset({"u1", "u2"})),
            id="manager-removed-stays-member",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1", "u2", "u3"}), managers=frozenset({"u2", "u3"})),
            "ownership_transferred",
            "u2",
            GroupState(owner="u2", members=frozenset({"u1", "u2", "u3"}), managers=frozenset({"u3"})),
            id="ownership-to-a-manager",
        ),
        pytest.param(
            GroupState(owner="u1", members=frozenset({"u1"})),
            "ownership_transferred",
            "u4",
            GroupState(owner="u4", members=frozenset({"u1", "u4"})),
            id="ownership-to-an-outsider",
        ),
    ],
)
def test_apply_group_event(before: GroupState, kind: str, user_id: str, after: GroupState) -> None:
    assert apply_group_event(before, kind, user_id) == after


def test_events_keep_violations_and_level() -> None:
    state = GroupState(owner="u1", violations=(("m1", T0, ("scam",)),), level=WARNED)
    after = apply_group_event(state, "member_joined", "u2")
    assert (after.violations, after.level) == ((("m1", T0, ("scam",)),), WARNED)


@pytest.mark.parametrize("kind", ["renamed", "", "CREATED", "member-joined"])
def test_unknown_group_event(kind: str) -> None:
    with pytest.raises(ValueError, match=r"^unknown group event kind "):
        apply_group_event(GroupState(), kind, "u1")


@pytest.mark.parametrize(
    ("members", "over"),
    [
        pytest.param(1, False, id="1"),
        pytest.param(499, False, id="499"),
        pytest.param(500, False, id="500-at-the-limit"),
        pytest.param(501, True, id="501-over"),
        pytest.param(2000, True, id="2000"),
    ],
)
def test_over_member_limit(members: int, over: bool) -> None:
    state = GroupState(owner="u0", members=frozenset(f"u{n}" for n in range(members)))
    assert over_member_limit(state, POLICY.group) is over


# --- escalation -------------------------------------------------------------------------------------------------

Row = tuple[str, str, int, int | None]  # subject, kind, start, expiry


def rows(sanctions: list[Sanction]) -> list[Row]:
    return [(s.subject, s.kind, s.start_ms, s.expires_ms) for s in sanctions]


def warn_rows(n: int) -> list[Row]:
    return [(f"group:{GROUP}", "group_warning", at(n), None)]


def suspend_rows(n: int, leaders: list[str]) -> list[Row]:
    start = at(n)
    return [(f"group:{GROUP}", "group_suspension", start, start + 7 * DAY_MS)] + [
        (f"user:{u}", "management_suspended", start, start + 30 * DAY_MS) for u in leaders
    ]


def shut_down_rows(n: int, owner: str | None, managers: list[str]) -> list[Row]:
    start = at(n)
    out: list[Row] = [(f"group:{GROUP}", "group_shutdown", start, None)]
    if owner is not None:
        out += [
            (f"user:{owner}", "management_revoked", start, None),
            (f"user:{owner}", "group_creation_barred", start, start + 180 * DAY_MS),
        ]
    return out + [(f"user:{m}", "management_revoked", start, None) for m in managers]


def test_escalation_of_a_run_group() -> None:
    _, sanctions, _, states = play(hourly(12), run_group())
    expected: list[list[Row]] = [[] for _ in range(12)]
    expected[2] = warn_rows(3)
    expected[5] = suspend_rows(6, [OWNER, MGR_A, MGR_B])
    expected[9] = shut_down_rows(10, OWNER, [MGR_A, MGR_B])
    assert [rows(out) for out in sanctions] == expected
    assert [s.level for s in states] == [NONE] * 2 + [WARNED] * 3 + [SUSPENDED] * 4 + [SHUT_DOWN] * 3


def test_liabilities_of_a_run_group() -> None:
    _, _, liabilities, _ = play(hourly(12), run_group())
    owed = {n: out for n, out in enumerate(liabilities, 1) if out}
    assert owed == {
        3: [
            Liability(OWNER, 5, GROUP, "warn", ids(3)),
            Liability(MGR_A, 2, GROUP, "warn", ids(3)),
            Liability(MGR_B, 2, GROUP, "warn", ids(3)),
        ],
        6: [
            Liability(OWNER, 15, GROUP, "suspend", ids(6)),
            Liability(MGR_A, 8, GROUP, "suspend", ids(6)),
            Liability(MGR_B, 8, GROUP, "suspend", ids(6)),
        ],
        10: [
            Liability(OWNER, 30, GROUP, "shut_down", ids(10)),
            Liability(MGR_A, 15, GROUP, "shut_down", ids(10)),
            Liability(MGR_B, 15, GROUP, "shut_down", ids(10)),
        ],
    }


@pytest.mark.parametrize(
    ("group", "warn", "suspend", "shut_down", "liable"),
    [
        pytest.param(
            events(("created", OWNER)),
            warn_rows(3),
            suspend_rows(6, [OWNER]),
            shut_down_rows(10, OWNER, []),
            [OWNER],
            id="owner-only",
        ),
        pytest.param(
            GroupState(members=frozenset({"x", "y"})),
            warn_rows(3),
            suspend_rows(6, []),
            shut_down_rows(10, None, []),
            [],
            id="no-owner",
        ),
        pytest.param(
            events(("created", OWNER), ("member_joined", MGR_A), ("manager_added", MGR_A), ("member_left", MGR_A)),
            warn_rows(3),
            suspend_rows(6, [OWNER]),
            shut_down_rows(10, OWNER, []),
            [OWNER],
            id="manager-who-left",
        ),
        pytest.param(
            events(("created", OWNER), ("member_joined", MGR_A), ("ownership_transferred", MGR_A)),
            warn_rows(3),
            suspend_rows(6, [MGR_A]),
            shut_down_rows(10, MGR_A, []),
            [MGR_A],
            id="new-owner-answers",
        ),
    ],
)
def test_who_answers_for_the_group(
    group: GroupState, warn: list[Row], suspend: list[Row], shut_down: list[Row], liable: list[str]
) -> None:
    _, sanctions, liabilities, _ = play(hourly(10), group)
    assert rows(sanctions[2]) == warn
    assert rows(sanctions[5]) == suspend
    assert rows(sanctions[9]) == shut_down
    assert [[(x.user_id, x.step) for x in out] for out in liabilities if out] == (
        [[(u, "warn") for u in liable], [(u, "suspend") for u in liable], [(u, "shut_down") for u in liable]]
        if liable
        else []
    )


def test_no_owner_no_liabilities() -> None:
    _, sanctions, liabilities, _ = play(hourly(10), GroupState())
    assert liabilities == [[]] * 10
    assert [s.kind for out in sanctions for s in out] == ["group_warning", "group_suspension", "group_shutdown"]


def test_group_sanction_fields() -> None:
    group = run_group()
    violations = [
        violation("m1", at(1), ("scam",)),
        violation("m2", at(2), ("gambling",)),
        violation("m3", at(3), ("scam", "drugs")),
    ]
    _, sanctions, _, _ = play(violations, group)
    assert sanctions[2] == [
        Sanction(
            subject=f"group:{GROUP}",
            kind="group_warning",
            reason="3 violations in the window",
            rule_ids=(),
            evidence=("m1", "m2", "m3"),
            start_ms=at(3),
            expires_ms=None,
            notice="Your group keeps carrying messages that break the rules on drugs, gambling, scam. "
            "As its owner, act now.",
        ),
    ]


def test_suspension_and_shut_down_notices() -> None:
    _, sanctions, _, _ = play(hourly(10), run_group())
    assert sanctions[5][0].notice == "Your group is suspended for 7 days: 6 messages broke the rules on scam."
    assert sanctions[5][0].reason == "6 violations in the window"
    assert sanctions[9][0].notice == "Your group is shut down: 10 messages broke the rules on scam."
    assert sanctions[9][0].reason == "10 violations in the window"
    leaders = {(s.subject, s.kind): s for s in sanctions[5][1:] + sanctions[9][1:]}
    assert (
        leaders[(f"user:{OWNER}", "management_suspended")].notice
        == f"As owner of group {GROUP}, your management rights are suspended while it is suspended."
    )
    assert (
        leaders[(f"user:{MGR_A}", "management_revoked")].notice
        == f"As manager of group {GROUP}, which was shut down, you lose its management rights."
    )
    assert all(s.evidence == ids(6) for s in sanctions[5])
    assert all(s.evidence == ids(10) for s in sanctions[9])
    assert all(s.revoked is False for out in sanctions for s in out)


# --- idempotence, the window and the level ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "again"),
    [
        pytest.param(1, violation("m1", at(1)), id="first"),
        pytest.param(2, violation("m2", at(2)), id="before-the-warning"),
        pytest.param(3, violation("m3", at(3)), id="the-one-that-warned"),
        pytest.param(5, violation("m1", at(5), ("drugs",)), id="redelivered-differently"),
        pytest.param(9, violation("m4", at(9)), id="before-the-shut-down"),
    ],
)
def test_the_same_message_twice_changes_nothing(count: int, again: Violation) -> None:
    state, _, _, _ = play(hourly(count), run_group())
    after, sanctions, liabilities = record_group_violation(state, again, POLICY)
    assert (sanctions, liabilities) == ([], [])
    assert after == state


def test_a_replay_after_messages_left_the_window_changes_nothing() -> None:
    """Replayed from the start: m1..m5 come again after m6..m10 pushed them out of the window; no suspension."""
    first = hourly(5)
    later = hourly(5, start=T0 + 31 * DAY_MS, first=6)
    state, sanctions, _, _ = play(first + later, run_group())
    assert [s.kind for out in sanctions for s in out] == ["group_warning"]
    assert [m for m, _, _ in state.violations] == ["m6", "m7", "m8", "m9", "m10"]
    after, replayed, _, _ = play(first, state)
    assert replayed == [[]] * 5
    assert after == state


@pytest.mark.parametrize(
    ("offsets", "levels", "window"),
    [
        pytest.param([0, 0, 30 * DAY_MS], [NONE, NONE, NONE], ["m3"], id="exactly-30-days-drops-out"),
        pytest.param([0, 0, 30 * DAY_MS - 1], [NONE, NONE, WARNED], ["m1", "m2", "m3"], id="just-inside"),
        pytest.param([0, 10 * DAY_MS, 35 * DAY_MS], [NONE, NONE, NONE], ["m2", "m3"], id="first-drops-out"),
        pytest.param(
            [0, 10 * DAY_MS, 35 * DAY_MS, 36 * DAY_MS], [NONE, NONE, NONE, WARNED], ["m2", "m3", "m4"], id="warn-later"
        ),
        pytest.param([0, 31 * DAY_MS, 62 * DAY_MS, 93 * DAY_MS], [NONE] * 4, ["m4"], id="monthly-never-counts-up"),
    ],
)
def test_violations_outside_the_window_drop_out(offsets: list[int], levels: list[int], window: list[str]) -> None:
    violations = [violation(f"m{n}", T0 + off) for n, off in enumerate(offsets, 1)]
    state, sanctions, _, states = play(violations, run_group())
    assert [s.level for s in states] == levels
    assert [m for m, _, _ in state.violations] == window
    assert [ms for _, ms, _ in state.violations] == [T0 + offsets[int(m[1:]) - 1] for m in window]
    assert sum(1 for out in sanctions for s in out if s.kind == "group_warning") == (WARNED in levels)


def test_evidence_lists_the_window() -> None:
    offsets = [0, 10 * DAY_MS, 35 * DAY_MS, 36 * DAY_MS]
    _, sanctions, liabilities, _ = play([violation(f"m{n}", T0 + o) for n, o in enumerate(offsets, 1)], run_group())
    assert sanctions[3][0].evidence == ("m2", "m3", "m4")
    assert sanctions[3][0].reason == "3 violations in the window"
    assert {x.evidence for x in liabilities[3]} == {("m2", "m3", "m4")}


def test_the_level_never_goes_down_by_waiting() -> None:
    state, _, _, _ = play(hourly(3), run_group())
    assert state.level == WARNED
    later = T0 + 60 * DAY_MS
    # Three more, long after: the count is back at 3, but a warned group is not warned again.
    state, sanctions, liabilities, states = play(hourly(3, start=later, first=4), state)
    assert [s.level for s in states] == [WARNED] * 3
    assert (sanctions, liabilities) == ([[]] * 3, [[]] * 3)
    # Three more inside the window make six: the suspension follows.
    state, sanctions, _, _ = play(hourly(3, start=later + 3 * HOUR_MS, first=7), state)
    assert [[s.kind for s in out][:1] for out in sanctions] == [[], [], ["group_suspension"]]
    assert sanctions[2][0].evidence == ("m4", "m5", "m6", "m7", "m8", "m9")
    assert state.level == SUSPENDED


def test_a_shut_down_group_stays_shut_down() -> None:
    state, _, _, _ = play(hourly(10), run_group())
    after, sanctions, _, _ = play(hourly(12, start=T0 + 400 * DAY_MS, first=11), state)
    assert after.level == SHUT_DOWN
    assert sanctions == [[]] * 12


def test_group_categories_are_those_of_the_window() -> None:
    """The level's categories are those of the violations in the window that led to it, not stale ones."""
    violations = [
        violation("m1", T0, ("drugs",)),
        violation("m2", T0 + 40 * DAY_MS, ("scam",)),
        violation("m3", T0 + 40 * DAY_MS + HOUR_MS, ("scam",)),
        violation("m4", T0 + 40 * DAY_MS + 2 * HOUR_MS, ("gambling",)),
    ]
    state, sanctions, _, _ = play(violations, run_group())
    assert sanctions[3][0].evidence == ("m2", "m3", "m4")
    assert sanctions[3][0].notice == (
        "Your group keeps carrying messages that break the rules on gambling, scam. As its owner, act now."
    )
    assert sorted({c for _, _, found in state.violations for c in found}) == ["gambling", "scam"]


def test_recording_does_not_touch_membership() -> None:
    group = run_group()
    state, _, _, _ = play(hourly(10), group)
    assert (state.owner, state.managers, state.members) == (group.owner, group.managers, group.members)
    assert state._replace(violations=(), level=NONE) == group
