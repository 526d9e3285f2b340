"""Standing records: what users and groups are under, their blacklist entries, forwards and expiries.

The clock is explicit: every event carries its own time (at_ms / now_ms); nothing reads a real clock. Expected values
are derived from rules/sanctions.toml (the shipped policy), as the comments say.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from conftest import DEFAULT_PACK_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy.escalation import NONE, SHUT_DOWN, SUSPENDED, WARNED, GroupState
from streams.policy.ladder import Sanction, Violation, credit_at
from streams.policy.rules import Severity
from streams.policy.sanctions import DAY_MS, load_sanctions
from streams.policy.standing import (
    Forward,
    GroupRecord,
    LeaderLiability,
    LiftLiability,
    Outcome,
    Restriction,
    UserRecord,
    group_event,
    group_lift_suspension,
    group_pardon,
    group_tick,
    group_violation,
    liability_key,
    liability_parts,
    new_user_record,
    user_liability,
    user_lift_liability,
    user_pardon,
    user_tick,
    user_unban,
    user_violation,
)

POLICY = load_sanctions(DEFAULT_PACK_DIR / "sanctions.toml")
T0 = 1_800_000_000_000
HOUR_MS = 3600 * 1000
MUTE_MS = 7 * DAY_MS  # user.ladder: a mute lasts 7 days
SUSPEND_MS = 7 * DAY_MS  # group.suspend_days
MANAGEMENT_SUSPENDED_MS = 30 * DAY_MS  # group.management_suspended_days
CREATION_BARRED_MS = 180 * DAY_MS  # group.group_creation_barred_days
RATE = 0.5 / DAY_MS  # credit.recovery_per_day, per millisecond
USER = "alice"
GROUP = "g1"
OWNER, MGR_A, MGR_B = "olga", "mgr-a", "mgr-b"
PLAIN = (("scam",), ("scam.task-rebate",))  # on no severe list: the ladder starts at a warning

UserStep = Callable[[UserRecord], tuple[UserRecord, Outcome]]
GroupStep = Callable[[GroupRecord], tuple[GroupRecord, Outcome]]
Line = tuple[str, int | None]  # a blacklist line: kind, until


def returns_at(credit: float, at_ms: int, threshold: float) -> int:
    """When credit recovering at credit.recovery_per_day from ``credit`` at ``at_ms`` reaches ``threshold``."""
    return at_ms + math.ceil((threshold - credit) / RATE)


def lines(entry: tuple[Restriction, ...] | None) -> list[Line] | None:
    """A blacklist entry as sorted (kind, until) pairs, None kept: None means 'unchanged', [] a tombstone."""
    if entry is None:
        return None
    return sorted(((r.kind, r.until_ms) for r in entry), key=lambda x: (x[0], -1 if x[1] is None else x[1]))


def issued(sanctions: list[Sanction]) -> list[tuple[str, bool]]:
    return [(s.kind, s.revoked) for s in sanctions]


def identity(s: Sanction) -> tuple[str, str, tuple[str, ...], int]:
    """What names one sanction across its issue and its revocation (the reason may change on a lift)."""
    return (s.subject, s.kind, s.evidence, s.start_ms)


def next_change(record: UserRecord | GroupRecord) -> int | None:
    return min((r.until_ms for r in record.listed if r.until_ms is not None), default=None)


# --- user steps ---------------------------------------------------------------------------------------------------


def violation(
    message_id: str,
    at_ms: int,
    severity: Severity = Severity.LOW,
    keys: tuple[tuple[str, ...], tuple[str, ...]] = PLAIN,
    *,
    sender: str = USER,
    group: str = GROUP,
) -> Violation:
    categories, rule_ids = keys
    return Violation(message_id, sender, group, at_ms, severity, categories, rule_ids)


def strike(message_id: str, at_ms: int, severity: Severity = Severity.LOW) -> UserStep:
    return lambda r: user_violation(r, violation(message_id, at_ms, severity), POLICY)


def tick(at_ms: int) -> UserStep:
    return lambda r: user_tick(r, POLICY, at_ms)


def pardon(message_id: str, at_ms: int) -> UserStep:
    return lambda r: user_pardon(r, USER, message_id, POLICY, at_ms)


def unban(at_ms: int) -> UserStep:
    return lambda r: user_unban(r, "appeal", POLICY, at_ms)


def liable(action: LeaderLiability) -> UserStep:
    return lambda r: user_liability(r, action, POLICY)


def lift(action: LiftLiability) -> UserStep:
    return lambda r: user_lift_liability(r, action, POLICY)


def run(steps: list[UserStep], record: UserRecord | None = None) -> tuple[UserRecord, list[Outcome]]:
    """Apply each step in turn; the final record and each step's outcome."""
    record = new_user_record(POLICY) if record is None else record
    outcomes = []
    for step in steps:
        record, outcome = step(record)
        outcomes.append(outcome)
    return record, outcomes


def at(n: int) -> int:
    """When the n-th hourly violation happened."""
    return T0 + (n - 1) * HOUR_MS


def hourly(count: int, severity: Severity = Severity.LOW) -> list[UserStep]:
    return [strike(f"m{n}", at(n), severity) for n in range(1, count + 1)]


def same_time(count: int, severity: Severity) -> list[UserStep]:
    """``count`` violations in the same millisecond T0: credit falls by exact penalties, with no recovery between."""
    return [strike(f"m{n}", T0, severity) for n in range(1, count + 1)]


# --- the ladder and the blacklist ---------------------------------------------------------------------------------

# Four LOW violations an hour apart: credit.penalty.low = 2 keeps credit at 92 or more, so only the ladder lists:
# warn, then a 7-day mute at the 2nd and 3rd, then a permanent ban at the 4th (user.ladder).
LADDER_ROWS = [
    pytest.param(1, [("warning", False)], None, None, id="warning-does-not-list"),
    pytest.param(2, [("mute", False)], [("mute", at(2) + MUTE_MS)], at(2) + MUTE_MS, id="first-mute-lists"),
    pytest.param(
        3,
        [("mute", False)],
        [("mute", at(2) + MUTE_MS), ("mute", at(3) + MUTE_MS)],
        at(2) + MUTE_MS,
        id="second-mute-adds-a-line",
    ),
    pytest.param(
        4,
        [("ban", False)],
        [("ban", None), ("mute", at(2) + MUTE_MS), ("mute", at(3) + MUTE_MS)],
        at(2) + MUTE_MS,
        id="ban-is-permanent",
    ),
]


@pytest.mark.parametrize(("count", "sanctions", "listing", "due"), LADDER_ROWS)
def test_the_ladder_on_the_blacklist(
    count: int, sanctions: list[tuple[str, bool]], listing: list[Line] | None, due: int | None
) -> None:
    record, outcomes = run(hourly(count))
    last = outcomes[-1]
    assert issued(last.sanctions) == sanctions
    assert lines(last.listing) == listing
    assert last.due_ms == due
    assert last.forwards == []
    assert lines(record.listed) == (listing or [])


def test_the_mute_lines_say_why() -> None:
    record, outcomes = run(hourly(2))
    assert outcomes[1].listing == (Restriction("mute", at(2) + MUTE_MS, "strike 2: scam"),)
    assert [(s.kind, s.start_ms, s.expires_ms) for s in record.held] == [("mute", at(2), at(2) + MUTE_MS)]


@pytest.mark.parametrize("severity", [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL])
def test_a_warning_alone_does_not_blacklist(severity: Severity) -> None:
    """Even the critical penalty (20) leaves credit at 80, above every threshold (70, 60, 50)."""
    record, [outcome] = run([strike("m1", T0, severity)])
    assert issued(outcome.sanctions) == [("warning", False)]
    assert (outcome.listing, outcome.due_ms) == (None, None)
    assert (record.held, record.listed) == ((), ())


@pytest.mark.parametrize(
    ("keys", "listing"),
    [
        pytest.param((("weapons",), ("weapons.firearms",)), [("mute", T0 + MUTE_MS)], id="firearms-start-at-a-mute"),
        pytest.param((("weapons",), ("weapons.explosives",)), [("ban", None)], id="explosives-start-at-a-ban"),
    ],
)
def test_a_severe_first_violation_lists_at_once(
    keys: tuple[tuple[str, ...], tuple[str, ...]], listing: list[Line]
) -> None:
    """user.severe: firearms start at rung 3 (a mute), explosives at rung 4 (the ban)."""
    _, [outcome] = run([lambda r: user_violation(r, violation("m1", T0, Severity.LOW, keys), POLICY)])
    assert lines(outcome.listing) == listing


# --- idempotence --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "again"),
    [
        pytest.param(hourly(1), strike("m1", at(1)), id="the-warning"),
        pytest.param(hourly(2), strike("m2", at(2)), id="the-first-mute"),
        pytest.param(hourly(4), strike("m1", at(1)), id="an-early-one-after-the-ban"),
        pytest.param(hourly(4), strike("m4", at(4)), id="the-ban"),
        pytest.param(hourly(4), strike("m2", at(2), Severity.CRITICAL), id="redelivered-differently"),
        pytest.param([*hourly(2), tick(at(2) + MUTE_MS)], strike("m2", at(2)), id="after-the-mute-ended"),
        pytest.param(
            # 4 HIGH at T0: credit 60 (< 70: review) until it recovers to 70 at T0 + 20 days.
            [*same_time(4, Severity.HIGH), tick(T0 + 20 * DAY_MS)],
            strike("m1", T0, Severity.HIGH),
            id="after-credit-recovered",
        ),
        pytest.param([*hourly(2), pardon("m2", at(3))], strike("m2", at(2)), id="pardoned"),
    ],
)
def test_the_same_violation_twice_changes_nothing(steps: list[UserStep], again: UserStep) -> None:
    record, _ = run(steps)
    after, outcome = again(record)
    assert after == record
    assert (outcome.sanctions, outcome.listing, outcome.forwards) == ([], None, [])
    assert outcome.due_ms == next_change(record)  # the schedule keeps its next expiry


# --- expiry ---------------------------------------------------------------------------------------------------------


def test_user_tick_before_and_after_a_mute_ends() -> None:
    record, _ = run(hourly(2))
    ends = at(2) + MUTE_MS
    before, early = user_tick(record, POLICY, ends - 1)
    assert before == record
    assert (early.sanctions, early.listing, early.due_ms) == ([], None, ends)
    after, on_time = user_tick(record, POLICY, ends)
    assert (on_time.sanctions, on_time.listing, on_time.due_ms) == ([], (), None)  # a tombstone
    assert (after.held, after.listed) == ((), ())
    again, later = user_tick(after, POLICY, ends + DAY_MS)
    assert again == after
    assert (later.listing, later.due_ms) == (None, None)


def test_the_second_mute_outlasts_the_first() -> None:
    record, _ = run(hourly(3))
    record, first = user_tick(record, POLICY, at(2) + MUTE_MS)
    assert lines(first.listing) == [("mute", at(3) + MUTE_MS)]
    assert first.due_ms == at(3) + MUTE_MS
    _, second = user_tick(record, POLICY, at(3) + MUTE_MS)
    assert (second.listing, second.due_ms) == ((), None)


def test_a_ban_never_expires() -> None:
    record, _ = run(hourly(4))
    record, outcome = user_tick(record, POLICY, T0 + 1000 * DAY_MS)
    assert lines(outcome.listing) == [("ban", None)]  # the mutes are gone, the ban stays
    assert outcome.due_ms is None
    assert [s.kind for s in record.held] == ["ban"]


# --- credit ---------------------------------------------------------------------------------------------------------

# Three CRITICAL violations at T0: credit 100 - 3 * 20 = 40, below review (70), create (60) and manage (50); it
# recovers 0.5 a day, so to 50 after 20 days, 60 after 40 and 70 after 60. The ladder adds two 7-day mutes.
CREDIT_RETURNS = {
    "management_barred": T0 + 20 * DAY_MS,
    "group_creation_barred": T0 + 40 * DAY_MS,
    "messages_held_for_review": T0 + 60 * DAY_MS,
}
ALL_CREDIT = sorted(CREDIT_RETURNS.items())
MUTES = [("mute", T0 + MUTE_MS), ("mute", T0 + MUTE_MS)]


def credit_lines(*kinds: str) -> list[Line]:
    return [(kind, CREDIT_RETURNS[kind]) for kind in kinds]


@pytest.mark.parametrize(
    ("now", "listing"),
    [
        pytest.param(T0, ALL_CREDIT + MUTES, id="at-once"),
        pytest.param(T0 + MUTE_MS - 1, ALL_CREDIT + MUTES, id="mutes-last-a-week"),
        pytest.param(T0 + MUTE_MS, ALL_CREDIT, id="mutes-ended"),
        pytest.param(T0 + 20 * DAY_MS - 1, ALL_CREDIT, id="just-below-50"),
        pytest.param(
            T0 + 20 * DAY_MS, credit_lines("group_creation_barred", "messages_held_for_review"), id="back-to-50"
        ),
        pytest.param(T0 + 40 * DAY_MS - 1, credit_lines("group_creation_barred", "messages_held_for_review"), id="59"),
        pytest.param(T0 + 40 * DAY_MS, credit_lines("messages_held_for_review"), id="back-to-60"),
        pytest.param(T0 + 60 * DAY_MS - 1, credit_lines("messages_held_for_review"), id="69"),
        pytest.param(T0 + 60 * DAY_MS, [], id="back-to-70"),
    ],
)
def test_credit_restrictions_recover_with_time(now: int, listing: list[Line]) -> None:
    record, _ = run(same_time(3, Severity.CRITICAL))
    assert lines(record.listed) == ALL_CREDIT + MUTES
    assert credit_at(record.state, POLICY.credit, T0) == 40
    after, outcome = user_tick(record, POLICY, now)
    assert lines(after.listed) == listing
    assert lines(outcome.listing) == (None if listing == lines(record.listed) else listing)
    assert outcome.due_ms == min((until for _, until in listing if until is not None), default=None)


@pytest.mark.parametrize(
    ("count", "sanctions", "listing"),
    [
        pytest.param(1, [("warning", False)], None, id="80"),
        pytest.param(
            2,
            [("mute", False), ("messages_held_for_review", False)],
            [("messages_held_for_review", returns_at(60, T0, 70)), ("mute", T0 + MUTE_MS)],
            id="60-is-below-70-not-below-60",
        ),
        pytest.param(
            3,
            # 60 -> 40 takes away creating groups (< 60) and managing them (< 50); review was gone at 60 already.
            [("mute", False), ("group_creation_barred", False), ("management_barred", False)],
            [
                ("group_creation_barred", returns_at(40, T0, 60)),
                ("management_barred", returns_at(40, T0, 50)),
                ("messages_held_for_review", returns_at(40, T0, 70)),
                ("mute", T0 + MUTE_MS),
                ("mute", T0 + MUTE_MS),
            ],
            id="40",
        ),
    ],
)
def test_credit_restrictions_as_credit_falls(
    count: int, sanctions: list[tuple[str, bool]], listing: list[Line] | None
) -> None:
    """CRITICAL costs 20: 100 -> 80 -> 60 -> 40. A privilege goes when credit is strictly below its threshold."""
    _, outcomes = run(same_time(count, Severity.CRITICAL))
    assert issued(outcomes[-1].sanctions) == sanctions
    assert lines(outcomes[-1].listing) == listing


def test_review_starts_below_70() -> None:
    """Two CRITICAL at T0 leave 60: review (< 70) is taken away, with the warning and the mute of the ladder."""
    _, outcomes = run(same_time(2, Severity.CRITICAL))
    assert [issued(o.sanctions) for o in outcomes] == [
        [("warning", False)],
        [("mute", False), ("messages_held_for_review", False)],
    ]
    held_for_review = outcomes[1].sanctions[1]
    assert held_for_review.expires_ms == returns_at(60, T0, 70) == T0 + 20 * DAY_MS


def test_credit_lines_follow_the_credit_not_the_ladder() -> None:
    """A pardon gives the credit back: the credit lines go at once, the mute of a kept strike stays."""
    record, _ = run(same_time(3, Severity.CRITICAL))
    record, outcome = user_pardon(record, USER, "m3", POLICY, T0 + DAY_MS)
    # 40 + 0.5 (a day) + 20 (m3's penalty) = 60.5: only review (< 70) is still taken away.
    assert credit_at(record.state, POLICY.credit, T0 + DAY_MS) == pytest.approx(60.5)
    assert lines(outcome.listing) == [
        ("messages_held_for_review", returns_at(60.5, T0 + DAY_MS, 70)),
        ("mute", T0 + MUTE_MS),
    ]
    assert sorted(issued(outcome.sanctions)) == [
        ("group_creation_barred", True),
        ("management_barred", True),
        ("mute", True),
    ]


_histories = st.lists(
    st.tuples(st.integers(0, 3 * DAY_MS), st.sampled_from([Severity.LOW, Severity.HIGH, Severity.CRITICAL])),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(_histories)
def test_a_credit_line_ends_at_its_own_until(history: list[tuple[int, Severity]]) -> None:
    """Violations at any gaps leave a fractional credit; a tick at a credit line's until_ms must take it off (a line
    kept by rounding would be announced as ending and then stay, with a due time already past)."""
    steps, now = [], T0
    for n, (gap, severity) in enumerate(history, 1):
        now += gap
        steps.append(strike(f"m{n}", now, severity))
    record, _ = run(steps)
    for line in (r for r in record.listed if r.reason == "low credit"):
        assert line.until_ms is not None
        before, _ = user_tick(record, POLICY, line.until_ms - 1)
        after, outcome = user_tick(record, POLICY, line.until_ms)
        assert line in before.listed
        assert line not in after.listed
        assert outcome.due_ms is None or outcome.due_ms > line.until_ms


# --- leaders answer for their groups ------------------------------------------------------------------------------


def run_group_record() -> GroupRecord:
    """Owner olga, managers mgr-a and mgr-b, and two plain members; set up a day before T0."""
    record = GroupRecord()
    for kind, user_id in (
        ("created", OWNER),
        ("member_joined", MGR_A),
        ("member_joined", MGR_B),
        ("member_joined", "m-1"),
        ("member_joined", "m-2"),
        ("manager_added", MGR_A),
        ("manager_added", MGR_B),
    ):
        record, _ = group_event(record, GROUP, kind=kind, user_id=user_id, policy=POLICY, now_ms=T0 - DAY_MS)
    return record


def group_violation_of(message_id: str, at_ms: int) -> Violation:
    return Violation(message_id, "sender", GROUP, at_ms, Severity.HIGH, ("scam",), ("scam.x",))


def counted(n: int) -> GroupStep:
    """The n-th hourly violation in the group."""
    return lambda r: group_violation(r, group_violation_of(f"m{n}", at(n)), POLICY)


def group_hourly(count: int) -> list[GroupStep]:
    return [counted(n) for n in range(1, count + 1)]


def gpardon(message_id: str, now_ms: int) -> GroupStep:
    return lambda r: group_pardon(r, GROUP, message_id, POLICY, now_ms)


def glift(now_ms: int) -> GroupStep:
    return lambda r: group_lift_suspension(r, "appeal", now_ms)


def gtick(now_ms: int) -> GroupStep:
    return lambda r: group_tick(r, now_ms)


def run_group(steps: list[GroupStep], record: GroupRecord | None = None) -> tuple[GroupRecord, list[Outcome]]:
    record = run_group_record() if record is None else record
    outcomes = []
    for step in steps:
        record, outcome = step(record)
        outcomes.append(outcome)
    return record, outcomes


def leader_forwards() -> dict[tuple[str, str], LeaderLiability]:
    """The liabilities ten hourly violations forward: (user, step) -> action."""
    _, outcomes = run_group(group_hourly(10))
    return {(f.user_id, f.liability.step): f for o in outcomes for f in o.forwards if isinstance(f, LeaderLiability)}


FORWARDS = leader_forwards()
WARN, SUSPEND, SHUT = (FORWARDS[OWNER, step] for step in ("warn", "suspend", "shut_down"))


def lift_of(action: LeaderLiability, now_ms: int, *, restore_credit: bool) -> LiftLiability:
    return LiftLiability(action.user_id, action.key, restore_credit=restore_credit, at_ms=now_ms)


# owner_penalty: warn 5, suspend 15, shut_down 30, at at(3), at(6) and at(10), recovering in between.
OWNER_CREDIT = [
    100 - 5,
    100 - 5 + 3 * HOUR_MS * RATE - 15,
    100 - 5 + 7 * HOUR_MS * RATE - 15 - 30,
]


@pytest.mark.parametrize(
    ("count", "credit", "sanctions", "listing"),
    [
        pytest.param(1, OWNER_CREDIT[0], [], None, id="warn-costs-credit-only"),
        pytest.param(
            2,
            OWNER_CREDIT[1],
            [("management_suspended", False)],
            [("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS)],
            id="suspend-suspends-management",
        ),
        pytest.param(
            3,
            OWNER_CREDIT[2],  # 50.15: below 70 (review) and 60 (create), not below 50 (manage)
            [
                ("management_revoked", False),
                ("group_creation_barred", False),
                ("group_creation_barred", False),
                ("messages_held_for_review", False),
            ],
            [
                ("group_creation_barred", pytest.approx(returns_at(OWNER_CREDIT[2], at(10), 60), abs=1)),
                ("group_creation_barred", at(10) + CREATION_BARRED_MS),
                ("management_revoked", None),
                ("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS),
                ("messages_held_for_review", pytest.approx(returns_at(OWNER_CREDIT[2], at(10), 70), abs=1)),
            ],
            id="shut-down-revokes-and-bars",
        ),
    ],
)
def test_a_leader_liability_costs_credit_and_holds_its_sanctions(
    count: int, credit: float, sanctions: list[tuple[str, bool]], listing: list[object] | None
) -> None:
    """The credit lines' untils are compared to a millisecond: this test sums the credit in another order."""
    actions = [WARN, SUSPEND, SHUT][:count]
    record, outcomes = run([liable(a) for a in actions])
    now = actions[-1].at_ms
    assert credit_at(record.state, POLICY.credit, now) == pytest.approx(credit)
    assert issued(outcomes[-1].sanctions) == sanctions
    assert lines(outcomes[-1].listing) == listing
    assert [key for key, _ in record.liabilities] == [a.key for a in actions]
    assert {identity(s) for s in actions[-1].sanctions} <= {identity(s) for s in record.held}


def test_a_manager_answers_less() -> None:
    """manager_penalty: warn 2, suspend 8, shut_down 15; a manager is not barred from creating groups."""
    actions = [FORWARDS[MGR_A, step] for step in ("warn", "suspend", "shut_down")]
    assert [a.liability.points for a in actions] == [2, 8, 15]
    record, outcomes = run([liable(a) for a in actions])
    assert credit_at(record.state, POLICY.credit, at(10)) == pytest.approx(100 - 25 + 7 * HOUR_MS * RATE)
    assert lines(record.listed) == [
        ("management_revoked", None),
        ("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS),
    ]
    assert all(s.subject == f"user:{MGR_A}" for o in outcomes for s in o.sanctions)


@pytest.mark.parametrize("action", [WARN, SUSPEND, SHUT], ids=["warn", "suspend", "shut-down"])
def test_a_liability_applies_once_per_key(action: LeaderLiability) -> None:
    record, _ = run([liable(a) for a in (WARN, SUSPEND, SHUT) if a.at_ms <= action.at_ms])
    again, outcome = user_liability(record, action, POLICY)
    assert again == record
    assert (outcome.sanctions, outcome.listing, outcome.forwards) == ([], None, [])


def test_a_liability_redelivered_after_credit_recovered_changes_nothing() -> None:
    """The shut-down leaves 50.15 (review until 70); once recovered, a redelivery must not list review again."""
    record, _ = run([liable(a) for a in (WARN, SUSPEND, SHUT)])
    [recovered] = [r.until_ms for r in record.listed if r.kind == "messages_held_for_review"]
    assert recovered is not None
    record, outcome = user_tick(record, POLICY, recovered)
    assert "messages_held_for_review" not in {kind for kind, _ in lines(outcome.listing) or []}
    again, redelivered = user_liability(record, SHUT, POLICY)
    assert again == record
    assert (redelivered.sanctions, redelivered.listing) == ([], None)


LIFT_AT = at(10) + DAY_MS


@pytest.mark.parametrize(
    ("action", "restore", "points", "revoked"),
    [
        pytest.param(WARN, True, 5, [], id="warn-pardoned"),
        pytest.param(SUSPEND, True, 15, ["management_suspended"], id="suspend-pardoned"),
        pytest.param(SUSPEND, False, 0, ["management_suspended"], id="suspend-lifted"),
        pytest.param(SHUT, True, 30, ["management_revoked", "group_creation_barred"], id="shut-down-pardoned"),
    ],
)
def test_lifting_a_liability(action: LeaderLiability, restore: bool, points: float, revoked: list[str]) -> None:
    record, _ = run([liable(a) for a in (WARN, SUSPEND, SHUT)])
    credit_before = credit_at(record.state, POLICY.credit, LIFT_AT)
    after, outcome = user_lift_liability(record, lift_of(action, LIFT_AT, restore_credit=restore), POLICY)
    assert credit_at(after.state, POLICY.credit, LIFT_AT) == pytest.approx(credit_before + points)
    assert [s.kind for s in outcome.sanctions if s.reason.startswith(f"group {GROUP} ")] == revoked
    assert all(s.revoked for s in outcome.sanctions)
    # Each revocation names the sanction the liability brought (same subject, kind, evidence and start).
    assert {identity(s) for s in outcome.sanctions if s.reason.startswith("group ")} == {
        identity(s) for s in action.sanctions
    }
    assert not {identity(s) for s in action.sanctions} & {identity(s) for s in after.held}
    still = {kind for kind, _ in lines(after.listed) or []}
    assert not {s.kind for s in action.sanctions if s.kind != "group_creation_barred"} & still
    assert action.key in after.lifted
    assert (action.key in dict(after.liabilities)) is not restore


def test_a_restored_liability_lifts_the_credit_restrictions_it_caused() -> None:
    """Pardoning the shut-down gives back 30: 50.65 + 30 is above every threshold, so only leader lines stay."""
    record, _ = run([liable(a) for a in (WARN, SUSPEND, SHUT)])
    after, outcome = user_lift_liability(record, lift_of(SHUT, LIFT_AT, restore_credit=True), POLICY)
    assert lines(outcome.listing) == [("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS)]
    assert lines(after.listed) == [("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS)]


@pytest.mark.parametrize("restore", [True, False], ids=["pardoned", "lifted"])
def test_a_lifted_key_applied_again_is_ignored(restore: bool) -> None:
    record, _ = run([liable(WARN), liable(SUSPEND), lift(lift_of(SUSPEND, LIFT_AT, restore_credit=restore))])
    for late in (liable(SUSPEND), lift(lift_of(SUSPEND, LIFT_AT + DAY_MS, restore_credit=False))):
        again, outcome = late(record)
        assert again == record
        assert (outcome.sanctions, outcome.listing) == ([], None)


def test_a_lift_that_overtakes_its_liability_wins() -> None:
    """Lifted before it arrived (the two travel apart): the liability never applies."""
    record, _ = run([lift(lift_of(SUSPEND, at(6), restore_credit=True)), liable(SUSPEND)])
    assert record.liabilities == ()
    assert (record.held, record.listed) == ((), ())
    assert record.state.credit == 100


def test_a_pardon_after_an_operator_lift_still_gives_the_credit_back() -> None:
    """An operator lifts the suspension (no credit back); a later pardon undoes the step: its 15 points come back."""
    record, _ = run([liable(WARN), liable(SUSPEND), lift(lift_of(SUSPEND, LIFT_AT, restore_credit=False))])
    before = credit_at(record.state, POLICY.credit, LIFT_AT + DAY_MS)
    after, outcome = user_lift_liability(record, lift_of(SUSPEND, LIFT_AT + DAY_MS, restore_credit=True), POLICY)
    assert credit_at(after.state, POLICY.credit, LIFT_AT + DAY_MS) == pytest.approx(before + 15)
    assert outcome.sanctions == []  # the management suspension was revoked already
    assert after.liabilities == ((WARN.key, 5),)
    again, _ = user_lift_liability(after, lift_of(SUSPEND, LIFT_AT + 2 * DAY_MS, restore_credit=True), POLICY)
    assert again == after


# --- pardons and unbans -------------------------------------------------------------------------------------------

PARDON_AT = at(4) + DAY_MS  # the mutes of m2 and m3 still run
MUTE_2, MUTE_3 = ("mute", at(2) + MUTE_MS), ("mute", at(3) + MUTE_MS)
MUTE_4 = ("mute", at(4) + MUTE_MS)


@pytest.mark.parametrize(
    ("order", "listings"),
    [
        # Last first: each pardon takes its own rung out, the others keep theirs.
        pytest.param(["m4", "m3", "m2", "m1"], [[MUTE_2, MUTE_3], [MUTE_2], [], None], id="last-first"),
        # First first: the later strikes step down a rung each time (the ban becomes a mute, then a warning).
        pytest.param(["m1", "m2", "m3", "m4"], [[MUTE_3, MUTE_4], [MUTE_4], [], None], id="first-first"),
        pytest.param(["m2", "m4", "m1", "m3"], [[MUTE_3, MUTE_4], [MUTE_3], [], None], id="shuffled"),
    ],
)
def test_pardoning_every_strike_of_a_banned_user(order: list[str], listings: list[list[Line] | None]) -> None:
    record, _ = run(hourly(4))
    banned_with = list(record.held)
    record, pardons = run([pardon(m, PARDON_AT) for m in order], record)
    assert [lines(o.listing) for o in pardons] == listings
    assert (record.held, record.listed, record.state.strikes) == ((), (), ())
    assert record.state.credit == 100  # 92 + a day's 0.5 + 8 given back, capped at credit.start
    revoked = {identity(s) for o in pardons for s in o.sanctions if s.revoked}
    assert {identity(s) for s in banned_with} <= revoked  # the ban and both mutes
    issued_later = {identity(s) for o in pardons for s in o.sanctions if not s.revoked}
    assert issued_later <= revoked  # what a step down issued is revoked in turn
    assert pardons[-1].due_ms is None


def test_pardoning_one_strike_steps_the_ban_down() -> None:
    """Three strikes left: the 3rd rung is a mute, so m4's ban becomes a mute that started when m4 was made."""
    record, _ = run(hourly(4))
    record, outcome = user_pardon(record, USER, "m2", POLICY, PARDON_AT)
    # m3 steps down to m2's rung (also a 7-day mute: no news), m4 from the ban to a mute.
    assert issued(outcome.sanctions) == [("mute", True), ("ban", True), ("mute", False)]
    assert lines(outcome.listing) == [MUTE_3, MUTE_4]


def test_a_pardon_of_an_unknown_message_changes_no_entry() -> None:
    record, _ = run(hourly(2))
    after, outcome = user_pardon(record, USER, "m-unknown", POLICY, at(3))
    assert after.state.pardoned == {"m-unknown"}
    assert (after.held, after.listed) == (record.held, record.listed)
    assert (outcome.sanctions, outcome.listing) == ([], None)
    # ...and the message, should it come later, does not count.
    later, ignored = user_violation(after, violation("m-unknown", at(4)), POLICY)
    assert later == after
    assert ignored.sanctions == []


@pytest.mark.parametrize(
    ("steps", "now", "revoked", "listing"),
    [
        pytest.param(hourly(4), at(4) + HOUR_MS, ["ban", "mute", "mute"], [], id="ban-and-mutes"),
        pytest.param(hourly(4), at(4) + 8 * DAY_MS, ["ban"], [], id="mutes-already-over"),
        pytest.param(hourly(2), at(3), ["mute"], [], id="a-mute"),
        pytest.param(hourly(1), at(2), [], None, id="nothing-to-lift"),
        pytest.param(
            # 4 HIGH at T0: credit 60, review until T0 + 20 days; an unban lifts the ladder, not the credit.
            same_time(4, Severity.HIGH),
            T0 + DAY_MS,
            ["ban", "mute", "mute"],
            [("messages_held_for_review", T0 + 20 * DAY_MS)],
            id="credit-stays",
        ),
    ],
)
def test_unban(steps: list[UserStep], now: int, revoked: list[str], listing: list[Line] | None) -> None:
    record, _ = run(steps)
    after, outcome = user_unban(record, "appeal", POLICY, now)
    assert sorted(s.kind for s in outcome.sanctions) == revoked
    assert all(s.revoked and s.reason.endswith("; lifted: appeal") for s in outcome.sanctions)
    assert {identity(s) for s in outcome.sanctions} <= {identity(s) for s in record.held}
    assert lines(outcome.listing) == listing
    assert not [s for s in after.held if s.kind in {"ban", "mute"}]
    assert after.state == record.state  # strikes stay on the record


def test_after_an_unban_the_next_violation_bans_again() -> None:
    record, _ = run([*hourly(4), unban(at(5))])
    record, outcome = user_violation(record, violation("m5", at(6)), POLICY)
    assert issued(outcome.sanctions) == [("ban", False)]
    assert lines(outcome.listing) == [("ban", None)]


# --- groups: membership and the member limit ----------------------------------------------------------------------


def big_group(members: int) -> GroupRecord:
    """A group of ``members`` (group.member_limit is 500), not yet flagged."""
    return GroupRecord(state=GroupState(owner="u0", members=frozenset(f"u{n}" for n in range(members))))


def gevent(kind: str, user_id: str, now_ms: int = T0) -> GroupStep:
    return lambda r: group_event(r, GROUP, kind=kind, user_id=user_id, policy=POLICY, now_ms=now_ms)


@pytest.mark.parametrize(
    ("steps", "flags"),
    [
        pytest.param([gevent("member_joined", "x1")], [[("member_limit_exceeded", False)]], id="501-crosses"),
        pytest.param(
            [gevent("member_joined", "x1"), gevent("member_joined", "x2"), gevent("member_joined", "x1")],
            [[("member_limit_exceeded", False)], [], []],
            id="flagged-once",
        ),
        pytest.param(
            [gevent("member_joined", "x1"), gevent("member_left", "x1")],
            [[("member_limit_exceeded", False)], [("member_limit_exceeded", True)]],
            id="back-to-500-revokes",
        ),
        pytest.param(
            [gevent("member_joined", "x1"), gevent("member_left", "x1"), gevent("member_left", "u1")],
            [[("member_limit_exceeded", False)], [("member_limit_exceeded", True)], []],
            id="revoked-once",
        ),
        pytest.param(
            [gevent("ownership_transferred", "x1")], [[("member_limit_exceeded", False)]], id="a-new-owner-joins"
        ),
        pytest.param([gevent("member_left", "u1"), gevent("member_joined", "x1")], [[], []], id="never-over"),
        pytest.param([gevent("member_joined", "u1")], [[]], id="already-a-member"),
    ],
)
def test_the_member_limit(steps: list[GroupStep], flags: list[list[tuple[str, bool]]]) -> None:
    record, outcomes = run_group(steps, big_group(500))
    assert [issued(o.sanctions) for o in outcomes] == flags
    assert all(o.listing is None and o.forwards == [] for o in outcomes)  # flagged, not blacklisted
    assert record.flagged is (len(record.state.members) > 500)


def test_the_member_limit_sanction() -> None:
    _, [crossed, back] = run_group(
        [gevent("member_joined", "x1", T0), gevent("member_left", "x1", T0 + HOUR_MS)], big_group(500)
    )
    assert crossed.sanctions[0].subject == f"group:{GROUP}"
    assert crossed.sanctions[0].reason == "501 members, over the limit of 500"
    assert (crossed.sanctions[0].start_ms, crossed.sanctions[0].expires_ms) == (T0, None)
    assert back.sanctions[0].reason == "500 members, over the limit of 500"
    assert back.sanctions[0].start_ms == T0 + HOUR_MS


def test_membership_events_change_the_leaders() -> None:
    record = run_group_record()
    assert (record.state.owner, record.state.managers) == (OWNER, frozenset({MGR_A, MGR_B}))
    assert len(record.state.members) == 5
    record, outcome = group_event(record, GROUP, kind="member_left", user_id=MGR_A, policy=POLICY, now_ms=T0)
    assert record.state.managers == {MGR_B}
    assert (outcome.sanctions, outcome.listing) == ([], None)
    with pytest.raises(ValueError, match="unknown group event kind"):
        group_event(record, GROUP, kind="renamed", user_id=OWNER, policy=POLICY, now_ms=T0)


# --- groups: escalation ---------------------------------------------------------------------------------------------

SUSPENSION = ("group_suspension", at(6) + SUSPEND_MS)
SHUTDOWN = ("group_shutdown", None)


def test_escalation_on_the_blacklist() -> None:
    """group: warn_at 3, suspend_at 6 (7 days), shut_down_at 10 (permanent)."""
    record, outcomes = run_group(group_hourly(10))
    sanctions = {n: issued(o.sanctions) for n, o in enumerate(outcomes, 1) if o.sanctions}
    assert sanctions == {
        3: [("group_warning", False)],
        6: [("group_suspension", False)],
        10: [("group_shutdown", False)],
    }
    listings = {n: lines(o.listing) for n, o in enumerate(outcomes, 1) if o.listing is not None}
    assert listings == {6: [SUSPENSION], 10: [SHUTDOWN, SUSPENSION]}
    assert [o.due_ms for o in outcomes] == [None] * 5 + [at(6) + SUSPEND_MS] * 5
    assert all(s.subject == f"group:{GROUP}" for o in outcomes for s in o.sanctions)
    assert record.state.level == SHUT_DOWN


@pytest.mark.parametrize(
    ("n", "step", "points", "sanctions"),
    [
        pytest.param(3, "warn", {OWNER: 5, MGR_A: 2, MGR_B: 2}, {OWNER: [], MGR_A: [], MGR_B: []}, id="warn"),
        pytest.param(
            6,
            "suspend",
            {OWNER: 15, MGR_A: 8, MGR_B: 8},
            {u: [("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS)] for u in (OWNER, MGR_A, MGR_B)},
            id="suspend",
        ),
        pytest.param(
            10,
            "shut_down",
            {OWNER: 30, MGR_A: 15, MGR_B: 15},
            {
                OWNER: [("management_revoked", None), ("group_creation_barred", at(10) + CREATION_BARRED_MS)],
                MGR_A: [("management_revoked", None)],
                MGR_B: [("management_revoked", None)],
            },
            id="shut-down",
        ),
    ],
)
def test_each_leader_answers_with_its_own_sanctions(
    n: int, step: str, points: dict[str, float], sanctions: dict[str, list[Line]]
) -> None:
    """owner_penalty and manager_penalty per step; each forward carries only its leader's sanctions."""
    _, outcomes = run_group(group_hourly(n))
    forwards = outcomes[-1].forwards
    assert all(isinstance(f, LeaderLiability) for f in forwards)
    by_user = {f.user_id: f for f in forwards if isinstance(f, LeaderLiability)}
    assert [f.user_id for f in forwards] == [OWNER, MGR_A, MGR_B]
    assert {u: f.liability.points for u, f in by_user.items()} == points
    assert {u: [(s.kind, s.expires_ms) for s in f.sanctions] for u, f in by_user.items()} == sanctions
    assert all(s.subject == f"user:{u}" for u, f in by_user.items() for s in f.sanctions)
    assert {f.key for f in by_user.values()} == {liability_key(GROUP, step, f"m{n}")}
    assert {(f.liability.step, f.liability.evidence, f.at_ms) for f in by_user.values()} == {
        (step, tuple(f"m{k}" for k in range(1, n + 1)), at(n))
    }


@pytest.mark.parametrize(
    ("steps", "again"),
    [
        pytest.param(group_hourly(2), counted(2), id="before-the-warning"),
        pytest.param(group_hourly(3), counted(3), id="the-warning"),
        pytest.param(group_hourly(6), counted(6), id="the-suspension"),
        pytest.param(group_hourly(8), counted(1), id="an-early-one"),
        pytest.param(group_hourly(10), counted(10), id="the-shut-down"),
        pytest.param([*group_hourly(7), gtick(at(6) + SUSPEND_MS)], counted(6), id="after-the-suspension-ended"),
    ],
)
def test_the_same_group_violation_twice_changes_nothing(steps: list[GroupStep], again: GroupStep) -> None:
    record, _ = run_group(steps)
    after, outcome = again(record)
    assert after == record
    assert (outcome.sanctions, outcome.listing, outcome.forwards) == ([], None, [])
    assert outcome.due_ms == next_change(record)


# --- groups: pardons ------------------------------------------------------------------------------------------------

GP = at(6) + HOUR_MS  # pardons come an hour after the suspension


def lifts(step: str, n: int, *, restore_credit: bool, now_ms: int) -> list[Forward]:
    key = liability_key(GROUP, step, f"m{n}")
    return [LiftLiability(u, key, restore_credit=restore_credit, at_ms=now_ms) for u in (OWNER, MGR_A, MGR_B)]


@pytest.mark.parametrize(
    ("count", "pardons", "expected"),
    [
        pytest.param(
            6,
            ["m1", "m2", "m3", "m4"],
            [
                # 6 -> 5: below suspend_at, the suspension goes (a tombstone) and its liabilities are lifted.
                ([("group_suspension", True)], [], lifts("suspend", 6, restore_credit=True, now_ms=GP), WARNED),
                ([], None, [], WARNED),  # 4
                ([], None, [], WARNED),  # 3: warn_at still met
                # 2: below warn_at; the warning was never listed, so no entry changes.
                ([("group_warning", True)], None, lifts("warn", 3, restore_credit=True, now_ms=GP), NONE),
            ],
            id="suspended-down-to-nothing",
        ),
        pytest.param(
            10,
            ["m10"],
            [
                (
                    [("group_shutdown", True)],
                    [SUSPENSION],
                    lifts("shut_down", 10, restore_credit=True, now_ms=GP),
                    SUSPENDED,
                )
            ],
            id="shut-down-back-to-suspended",
        ),
        pytest.param(
            6,
            ["m-unknown", "m6"],
            [
                ([], None, [], SUSPENDED),  # not counted: no count falls
                ([("group_suspension", True)], [], lifts("suspend", 6, restore_credit=True, now_ms=GP), WARNED),
            ],
            id="unknown-then-counted",
        ),
        pytest.param(
            6,
            ["m1", "m1"],
            [
                ([("group_suspension", True)], [], lifts("suspend", 6, restore_credit=True, now_ms=GP), WARNED),
                ([], None, [], WARNED),  # redelivered: m1 is out of the window already
            ],
            id="the-same-pardon-twice",
        ),
    ],
)
def test_group_pardons(
    count: int, pardons: list[str], expected: list[tuple[list[tuple[str, bool]], list[Line] | None, list[Forward], int]]
) -> None:
    record, _ = run_group(group_hourly(count))
    record, outcomes = run_group([gpardon(m, GP) for m in pardons], record)
    for outcome, (sanctions, listing, forwards, _) in zip(outcomes, expected, strict=True):
        assert issued(outcome.sanctions) == sanctions
        assert lines(outcome.listing) == listing
        assert outcome.forwards == forwards
    assert record.state.level == expected[-1][3]
    assert set(pardons) <= record.pardoned


def test_a_pardon_revokes_the_held_suspension_itself() -> None:
    record, outcomes = run_group(group_hourly(6))
    [suspension] = outcomes[-1].sanctions
    record, outcome = group_pardon(record, GROUP, "m2", POLICY, GP)
    assert outcome.sanctions == [suspension._replace(revoked=True)]
    assert record.held == ()
    assert [(u, step) for u, step, _ in record.liable] == [(OWNER, "warn"), (MGR_A, "warn"), (MGR_B, "warn")]


def test_a_pardoned_message_arriving_later_is_not_counted() -> None:
    """m6 is pardoned before it reaches the group: five count (warned), m6 does not, m7 makes six (suspended)."""
    record, _ = run_group(group_hourly(5))
    record, _ = group_pardon(record, GROUP, "m6", POLICY, at(5) + 1)
    after, ignored = counted(6)(record)
    assert after == record
    assert (ignored.sanctions, ignored.listing, ignored.forwards) == ([], None, [])
    after, outcome = counted(7)(after)
    assert issued(outcome.sanctions) == [("group_suspension", False)]
    assert {f.key for f in outcome.forwards} == {liability_key(GROUP, "suspend", "m7")}


def test_a_pardon_of_an_aged_out_window_keeps_the_level() -> None:
    """Warned by m1..m3; m4 forty days later is alone in the 30-day window. A pardon of a message the group never
    counted lowers no count, so the warning (and the leaders' liability for it) stands."""
    record, _ = run_group(group_hourly(3))
    record, _ = group_violation(record, group_violation_of("m4", T0 + 40 * DAY_MS), POLICY)
    assert (record.state.level, len(record.state.violations)) == (WARNED, 1)
    after, outcome = group_pardon(record, GROUP, "m-elsewhere", POLICY, T0 + 41 * DAY_MS)
    assert (outcome.sanctions, outcome.forwards) == ([], [])
    assert after.state.level == WARNED
    assert after.liable == record.liable


# --- groups: lifting a suspension and expiry ------------------------------------------------------------------------

LIFT = at(6) + DAY_MS


@pytest.mark.parametrize(
    ("count", "now", "revoked", "listing", "forwards"),
    [
        pytest.param(
            6, LIFT, [("group_suspension", True)], [], lifts("suspend", 6, restore_credit=False, now_ms=LIFT), id="lift"
        ),
        pytest.param(
            10,
            LIFT,
            [("group_suspension", True)],
            [SHUTDOWN],
            lifts("suspend", 6, restore_credit=False, now_ms=LIFT),
            id="shut-down-stays",
        ),
        pytest.param(5, LIFT, [], None, [], id="not-suspended"),
        pytest.param(6, at(6) + SUSPEND_MS, [], [], [], id="already-over"),  # nothing to lift, the entry just ends
    ],
)
def test_group_lift_suspension(
    count: int, now: int, revoked: list[tuple[str, bool]], listing: list[Line] | None, forwards: list[Forward]
) -> None:
    record, _ = run_group(group_hourly(count))
    after, outcome = group_lift_suspension(record, "appeal", now)
    assert issued(outcome.sanctions) == revoked
    assert all(s.reason == "6 violations in the window; lifted: appeal" for s in outcome.sanctions)
    assert lines(outcome.listing) == listing
    assert outcome.forwards == forwards
    assert after.state == record.state  # the level stays: a lift is not a pardon
    again, twice = group_lift_suspension(after, "appeal", now + HOUR_MS)
    assert again == after
    assert (twice.sanctions, twice.listing, twice.forwards) == ([], None, [])


@pytest.mark.parametrize(
    ("count", "now", "listing", "due"),
    [
        pytest.param(6, at(6) + SUSPEND_MS - 1, None, at(6) + SUSPEND_MS, id="suspension-running"),
        pytest.param(6, at(6) + SUSPEND_MS, [], None, id="suspension-over"),
        pytest.param(10, at(6) + SUSPEND_MS, [SHUTDOWN], None, id="the-shut-down-stays"),
        pytest.param(3, T0 + 400 * DAY_MS, None, None, id="a-warning-has-nothing-to-end"),
    ],
)
def test_group_tick(count: int, now: int, listing: list[Line] | None, due: int | None) -> None:
    record, _ = run_group(group_hourly(count))
    after, outcome = group_tick(record, now)
    assert lines(outcome.listing) == listing
    assert (outcome.sanctions, outcome.forwards, outcome.due_ms) == ([], [], due)
    assert after.state == record.state
    assert all(s.expires_ms is None or s.expires_ms > now for s in after.held)


# --- both tables ----------------------------------------------------------------------------------------------------


def test_a_group_pardon_restores_what_its_leaders_lost() -> None:
    """The forwards of the group table, applied in the user table, leave the owner as if nothing had happened."""
    group, outcomes = run_group(group_hourly(6))
    owner, _ = run(
        [liable(f) for o in outcomes for f in o.forwards if isinstance(f, LeaderLiability) and f.user_id == OWNER]
    )
    assert lines(owner.listed) == [("management_suspended", at(6) + MANAGEMENT_SUSPENDED_MS)]
    group, lifted = run_group([gpardon(m, GP) for m in ("m1", "m2", "m3", "m4")], group)
    steps = [lift(f) for o in lifted for f in o.forwards if isinstance(f, LiftLiability) and f.user_id == OWNER]
    owner, results = run(steps, owner)
    assert len(steps) == 2  # suspend, then warn
    assert results[0].listing == ()  # the management suspension is gone
    assert (owner.held, owner.listed, owner.liabilities) == ((), (), ())
    assert credit_at(owner.state, POLICY.credit, GP) == 100
    assert group.state.level == NONE


def test_an_operator_lift_then_a_pardon_restores_the_credit() -> None:
    group, outcomes = run_group(group_hourly(6))
    owner, _ = run(
        [liable(f) for o in outcomes for f in o.forwards if isinstance(f, LeaderLiability) and f.user_id == OWNER]
    )
    group, lifted = run_group([glift(LIFT), gpardon("m1", LIFT + HOUR_MS)], group)
    owner, _ = run(
        [lift(f) for o in lifted for f in o.forwards if isinstance(f, LiftLiability) and f.user_id == OWNER], owner
    )
    # Only the warning's 5 points stay taken; the suspension's 15 came back with the pardon.
    assert credit_at(owner.state, POLICY.credit, LIFT + HOUR_MS) == pytest.approx(
        min(100, 100 - 5 + (LIFT + HOUR_MS - at(3)) * RATE)
    )
    assert owner.liabilities == ((liability_key(GROUP, "warn", "m3"), 5),)


@pytest.mark.parametrize(
    "ids", [("g1", "warn", "m1"), ("group/with/slashes", "suspend", 'm,"7"/x'), ("群", "shut_down", "")]
)
def test_a_liability_key_names_its_parts_whatever_they_hold(ids: tuple[str, str, str]) -> None:
    assert liability_parts(liability_key(*ids)) == ids
