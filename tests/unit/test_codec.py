"""The JSON codec of the standing tables and topics: every record and payload reads back exactly as it was written.

Records are built with the standing functions themselves (realistic sequences under the shipped policy); hypothesis
adds random sequences. The clock is explicit: every event carries its own time.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from conftest import DEFAULT_PACK_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.metrics import SANCTION_KINDS
from streams.policy.ladder import Sanction, Violation
from streams.policy.rules import Severity
from streams.policy.sanctions import DAY_MS, load_sanctions
from streams.policy.standing import (
    Forward,
    GroupRecord,
    LeaderLiability,
    LiftLiability,
    Outcome,
    UserRecord,
    group_event,
    group_lift_suspension,
    group_pardon,
    group_tick,
    group_violation,
    new_user_record,
    user_liability,
    user_lift_liability,
    user_pardon,
    user_tick,
    user_unban,
    user_violation,
)
from streams.state.codec import (
    dump_group,
    dump_user,
    forward_from_dict,
    forward_to_dict,
    load_group,
    load_user,
    sanction_from_dict,
    sanction_id,
    sanction_to_dict,
    violation_from_dict,
    violation_to_dict,
)

POLICY = load_sanctions(DEFAULT_PACK_DIR / "sanctions.toml")
T0 = 1_800_000_000_000
HOUR_MS = 3600 * 1000
USER, GROUP = "alice", "g1"
MGR = "mgr-a"
PLAIN = (("scam",), ("scam.task-rebate",))
SEVERE = (("weapons",), ("weapons.firearms",))  # user.severe: starts at a mute
KEYS = [PLAIN, SEVERE, (("gambling", "scam"), ("gambling.casino", "scam.x"))]

UserStep = Callable[[UserRecord], tuple[UserRecord, Outcome]]
GroupStep = Callable[[GroupRecord], tuple[GroupRecord, Outcome]]


def via_json(d: dict[str, Any]) -> dict[str, Any]:
    """What a consumer reads back: the dict through bytes, so tuples come back as lists."""
    loaded = orjson.loads(orjson.dumps(d))
    assert isinstance(loaded, dict)
    return loaded


def at(n: int) -> int:
    return T0 + (n - 1) * HOUR_MS


def violation(
    message_id: str,
    at_ms: int,
    severity: Severity = Severity.LOW,
    keys: tuple[tuple[str, ...], tuple[str, ...]] = PLAIN,
    *,
    sender: str = USER,
) -> Violation:
    return Violation(message_id, sender, GROUP, at_ms, severity, *keys)


def user_run(steps: list[UserStep]) -> tuple[UserRecord, list[Outcome]]:
    record, outcomes = new_user_record(POLICY), []
    for step in steps:
        record, outcome = step(record)
        outcomes.append(outcome)
    return record, outcomes


def group_run(steps: list[GroupStep], record: GroupRecord | None = None) -> tuple[GroupRecord, list[Outcome]]:
    record, outcomes = GroupRecord() if record is None else record, []
    for step in steps:
        record, outcome = step(record)
        outcomes.append(outcome)
    return record, outcomes


def strike(n: int, severity: Severity = Severity.LOW) -> UserStep:
    return lambda r: user_violation(r, violation(f"m{n}", at(n), severity), POLICY)


def event(kind: str, user_id: str) -> GroupStep:
    return lambda r: group_event(r, GROUP, kind=kind, user_id=user_id, policy=POLICY, now_ms=T0 - DAY_MS)


def counted(n: int) -> GroupStep:
    return lambda r: group_violation(r, violation(f"m{n}", at(n), Severity.HIGH, sender="s"), POLICY)


LEADERS = [event("created", USER), event("member_joined", MGR), event("manager_added", MGR)]


def group_flow() -> tuple[GroupRecord, list[Outcome]]:
    """Alice owns g1 with one manager: ten violations shut it down, then a pardon and a lift."""
    return group_run(
        [
            *LEADERS,
            *(counted(n) for n in range(1, 11)),
            lambda r: group_pardon(r, GROUP, "m10", POLICY, at(11)),
            lambda r: group_lift_suspension(r, "appeal", at(12)),
        ]
    )


FLOW_OUTCOMES = group_flow()[1]
FORWARDS: list[Forward] = [f for o in FLOW_OUTCOMES for f in o.forwards]
ALICE_FORWARDS = [f for f in FORWARDS if f.user_id == USER]
LIABILITIES = [f for f in ALICE_FORWARDS if isinstance(f, LeaderLiability)]
LIFTS = [f for f in ALICE_FORWARDS if isinstance(f, LiftLiability)]


def apply(forward: Forward) -> UserStep:
    if isinstance(forward, LeaderLiability):
        return lambda r: user_liability(r, forward, POLICY)
    return lambda r: user_lift_liability(r, forward, POLICY)


# --- records ----------------------------------------------------------------------------------------------------------

USER_SCENARIOS: dict[str, list[UserStep]] = {
    "fresh": [],
    "warned": [strike(1)],
    "muted": [strike(n) for n in (1, 2)],
    "banned": [strike(n) for n in (1, 2, 3, 4)],
    # hourly CRITICAL: credit falls to 40.06..., a fraction, with every credit line listed
    "low-credit": [strike(n, Severity.CRITICAL) for n in (1, 2, 3)],
    "pardoned": [
        *(strike(n) for n in (1, 2, 3, 4)),
        lambda r: user_pardon(r, USER, "m2", POLICY, at(5)),
        lambda r: user_pardon(r, USER, "m-unknown", POLICY, at(5)),
    ],
    "unbanned": [*(strike(n) for n in (1, 2, 3, 4)), lambda r: user_unban(r, "appeal", POLICY, at(5))],
    "mute-ended": [*(strike(n) for n in (1, 2)), lambda r: user_tick(r, POLICY, at(2) + 7 * DAY_MS)],
    "severe": [lambda r: user_violation(r, violation("m1", T0, Severity.HIGH, SEVERE), POLICY)],
    "leader-liable": [apply(f) for f in LIABILITIES],
    "leader-liable-and-lifted": [apply(f) for f in ALICE_FORWARDS],
    "unicode": [lambda r: user_violation(r, violation("消息-1", T0, keys=(("赌博",), ("赌博.x",))), POLICY)],
}


@pytest.mark.parametrize("steps", USER_SCENARIOS.values(), ids=USER_SCENARIOS.keys())
def test_user_record_round_trip(steps: list[UserStep]) -> None:
    record, _ = user_run(steps)
    raw = dump_user(record)
    loaded = load_user(raw)
    assert loaded == record
    assert hash(loaded) == hash(record)  # tuples and frozensets, not lists and sets, all the way down
    assert dump_user(loaded) == raw  # and the bytes are stable


def test_table_records_take_the_memory_of_their_json() -> None:
    """A table keeps its records for as long as their subjects: each must hold its JSON, not a serialiser's buffer."""
    records = [user_run(steps)[0] for steps in USER_SCENARIOS.values()] * 200
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        kept = [dump_user(record) for record in records]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 2 * sum(sys.getsizeof(raw) for raw in kept) + 64 * len(kept)


def test_the_scenarios_fill_every_user_field() -> None:
    """Round trips of empty fields prove little: between them, the scenarios give every field a value."""
    records = [user_run(steps)[0] for steps in USER_SCENARIOS.values()]
    assert any(r.state.strikes for r in records)
    assert any(r.state.pardoned for r in records)
    assert any(r.held for r in records)
    assert any(r.liabilities for r in records)
    assert any(r.lifted for r in records)
    assert any(r.listed and any(x.until_ms is None for x in r.listed) for r in records)
    assert any(r.state.credit != int(r.state.credit) for r in records)  # a fractional credit


GROUP_SCENARIOS: dict[str, list[GroupStep]] = {
    "fresh": [],
    "leaders": LEADERS,
    "warned": [*LEADERS, *(counted(n) for n in range(1, 4))],
    "suspended": [*LEADERS, *(counted(n) for n in range(1, 7))],
    "shut-down": [*LEADERS, *(counted(n) for n in range(1, 11))],
    "pardoned-and-lifted": [
        *LEADERS,
        *(counted(n) for n in range(1, 7)),
        lambda r: group_pardon(r, GROUP, "m-never", POLICY, at(7)),
        lambda r: group_lift_suspension(r, "appeal", at(8)),
        lambda r: group_pardon(r, GROUP, "m1", POLICY, at(9)),
    ],
    "suspension-ended": [
        *LEADERS,
        *(counted(n) for n in range(1, 7)),
        lambda r: group_tick(r, at(6) + 7 * DAY_MS),
    ],
}


@pytest.mark.parametrize("steps", GROUP_SCENARIOS.values(), ids=GROUP_SCENARIOS.keys())
def test_group_record_round_trip(steps: list[GroupStep]) -> None:
    record, _ = group_run(steps)
    raw = dump_group(record)
    loaded = load_group(raw)
    assert loaded == record
    assert hash(loaded) == hash(record)
    assert dump_group(loaded) == raw


def test_a_flagged_group_round_trips() -> None:
    """Over group.member_limit (500): the flag is part of the record."""
    big = GroupRecord(state=GroupRecord().state._replace(members=frozenset(f"u{n}" for n in range(500))))
    record, [outcome] = group_run([event("member_joined", "one-too-many")], big)
    assert record.flagged
    assert [s.kind for s in outcome.sanctions] == ["member_limit_exceeded"]
    assert load_group(dump_group(record)) == record


def test_the_scenarios_fill_every_group_field() -> None:
    records = [group_run(steps)[0] for steps in GROUP_SCENARIOS.values()]
    assert any(r.state.owner and r.state.managers and r.state.members for r in records)
    assert any(r.state.violations and r.state.level for r in records)
    assert any(r.held for r in records)
    assert any(r.liable for r in records)
    assert any(r.pardoned for r in records)
    assert any(r.listed for r in records)


# --- forwards, sanctions and violations ------------------------------------------------------------------------------


def test_the_flow_forwards_both_kinds() -> None:
    assert {type(f) for f in FORWARDS} == {LeaderLiability, LiftLiability}
    assert {f.restore_credit for f in FORWARDS if isinstance(f, LiftLiability)} == {True, False}
    assert any(isinstance(f, LeaderLiability) and f.sanctions for f in FORWARDS)


@pytest.mark.parametrize("forward", FORWARDS, ids=[f"{type(f).__name__}:{f.user_id}:{f.key}" for f in FORWARDS])
def test_forward_round_trip(forward: Forward) -> None:
    d = forward_to_dict(forward)
    assert d["action"] == ("liability" if isinstance(forward, LeaderLiability) else "lift_liability")
    back = forward_from_dict(via_json(d))
    assert back == forward
    assert type(back) is type(forward)
    assert hash(back) == hash(forward)


def flow_sanctions() -> list[Sanction]:
    """Every sanction the flows publish: ladder, credit, leader and group ones, issued and revoked."""
    out = [s for o in FLOW_OUTCOMES for s in o.sanctions]
    out += [s for f in LIABILITIES for s in f.sanctions]
    for steps in USER_SCENARIOS.values():
        out += [s for o in user_run(steps)[1] for s in o.sanctions]
    return out


SANCTIONS = flow_sanctions()


def test_the_flows_publish_every_kind_of_sanction() -> None:
    kinds = {s.kind for s in SANCTIONS}
    assert kinds >= {
        "warning",
        "mute",
        "ban",
        "messages_held_for_review",
        "group_creation_barred",
        "management_barred",
        "group_warning",
        "group_suspension",
        "group_shutdown",
        "management_suspended",
        "management_revoked",
    }
    assert {s.revoked for s in SANCTIONS} == {True, False}
    assert {s.expires_ms is None for s in SANCTIONS} == {True, False}
    assert kinds <= set(SANCTION_KINDS)  # the metrics export every kind at 0 from the start


@pytest.mark.parametrize("sanction", SANCTIONS)
def test_sanction_round_trip(sanction: Sanction) -> None:
    back = sanction_from_dict(via_json(sanction_to_dict(sanction)))
    assert back == sanction
    assert hash(back) == hash(sanction)
    assert sanction_id(back) == sanction_id(sanction)


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_ids = st.tuples() | st.lists(_text, max_size=3).map(tuple)
_sanctions = st.builds(
    Sanction,
    subject=_text,
    kind=_text,
    reason=_text,
    rule_ids=_ids,
    evidence=_ids,
    start_ms=st.integers(0, 2**53),
    expires_ms=st.none() | st.integers(0, 2**53),
    notice=_text,
    revoked=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(_sanctions)
def test_any_sanction_round_trips(sanction: Sanction) -> None:
    assert sanction_from_dict(via_json(sanction_to_dict(sanction))) == sanction


_violations = st.builds(
    Violation,
    message_id=_text,
    sender_id=_text,
    group_id=_text,
    at_ms=st.integers(0, 2**53),
    severity=st.sampled_from(list(Severity)),
    categories=_ids,
    rule_ids=_ids,
)


@settings(max_examples=200, deadline=None)
@given(_violations)
def test_any_violation_round_trips(v: Violation) -> None:
    back = violation_from_dict(via_json(violation_to_dict(v)))
    assert back == v
    assert back.severity is v.severity


@pytest.mark.parametrize("severity", list(Severity))
def test_violation_severity_is_its_label(severity: Severity) -> None:
    """On the topic the severity is a word (low, high...), not the enum's number."""
    d = violation_to_dict(violation("m1", T0, severity))
    assert d["severity"] == severity.name.lower()
    assert violation_from_dict(d).severity is severity
    assert violation_from_dict(d | {"severity": severity.name}).severity is severity  # any case reads


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"severity": "extreme"}, KeyError, id="unknown-severity"),
        pytest.param({"at_ms": "soon"}, ValueError, id="time-not-a-number"),
    ],
)
def test_not_a_violation(change: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        violation_from_dict(violation_to_dict(violation("m1", T0)) | change)


def test_a_violation_without_a_field_is_refused() -> None:
    d = violation_to_dict(violation("m1", T0))
    for name in d:
        with pytest.raises(KeyError):
            violation_from_dict({k: v for k, v in d.items() if k != name})


# --- sanction ids -----------------------------------------------------------------------------------------------------

MUTE = next(s for s in SANCTIONS if s.kind == "mute" and not s.revoked)


def test_a_sanction_id_is_stable() -> None:
    assert sanction_id(MUTE) == sanction_id(MUTE._replace())
    _, again = user_run(USER_SCENARIOS["muted"])  # the same events, decided again, name the same sanction
    assert sanction_id(again[1].sanctions[0]) == sanction_id(MUTE)


def test_issued_and_revoked_ids_differ() -> None:
    assert sanction_id(MUTE) != sanction_id(MUTE._replace(revoked=True))


def test_a_revocation_names_what_it_revokes() -> None:
    """An unban revokes with a new reason; its id is that of revoking the very sanction issued."""
    record, _ = user_run(USER_SCENARIOS["muted"])
    _, outcome = user_unban(record, "appeal", POLICY, at(3))
    [revoked] = outcome.sanctions
    assert revoked.reason != MUTE.reason
    assert sanction_id(revoked) == sanction_id(MUTE._replace(revoked=True))


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(MUTE._replace(subject="user:bob"), id="subject"),
        pytest.param(MUTE._replace(kind="ban"), id="kind"),
        pytest.param(MUTE._replace(start_ms=MUTE.start_ms + 1), id="start"),
        pytest.param(MUTE._replace(evidence=("m9",)), id="evidence"),
    ],
)
def test_different_sanctions_have_different_ids(other: Sanction) -> None:
    assert sanction_id(other) != sanction_id(MUTE)


def test_the_ids_of_a_flow_are_unique() -> None:
    """Within one record's history no two different sanctions share an id: a consumer dropping repeats loses none."""
    _, outcomes = user_run(USER_SCENARIOS["pardoned"])
    published = [s for o in outcomes for s in o.sanctions]
    ids = [sanction_id(s) for s in published]
    assert len(set(ids)) == len(ids)


# --- random sequences -------------------------------------------------------------------------------------------------

_user_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("violation"), st.integers(0, 10 * DAY_MS), st.sampled_from(list(Severity)[1:]), st.integers(0, 2)
        ),
        st.tuples(st.just("pardon"), st.integers(0, 3 * DAY_MS), st.integers(0, 12)),
        st.tuples(st.just("tick"), st.integers(0, 30 * DAY_MS)),
        st.tuples(st.just("unban"), st.integers(0, DAY_MS)),
        st.tuples(st.just("forward"), st.integers(0, len(ALICE_FORWARDS) - 1)),
    ),
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(_user_ops)
def test_random_user_histories_round_trip(ops: list[tuple[Any, ...]]) -> None:
    """Whatever a user goes through (violations, pardons, ticks, unbans, liabilities, lifts), the record reads back."""
    record, now, count = new_user_record(POLICY), T0, 0
    for op in ops:
        if op[0] == "violation":
            now += op[1]
            count += 1
            record, _ = user_violation(record, violation(f"m{count}", now, op[2], KEYS[op[3]]), POLICY)
        elif op[0] == "pardon":
            now += op[1]
            record, _ = user_pardon(record, USER, f"m{op[2]}", POLICY, now)
        elif op[0] == "tick":
            now += op[1]
            record, _ = user_tick(record, POLICY, now)
        elif op[0] == "unban":
            now += op[1]
            record, _ = user_unban(record, "appeal", POLICY, now)
        else:
            record, _ = apply(ALICE_FORWARDS[op[1]])(record)
        raw = dump_user(record)
        assert load_user(raw) == record
        assert dump_user(load_user(raw)) == raw


_group_ops = st.lists(
    st.one_of(
        st.tuples(st.just("violation"), st.integers(0, 5 * DAY_MS)),
        st.tuples(st.just("pardon"), st.integers(0, DAY_MS), st.integers(0, 15)),
        st.tuples(st.just("lift"), st.integers(0, DAY_MS)),
        st.tuples(st.just("tick"), st.integers(0, 10 * DAY_MS)),
        st.tuples(
            st.just("event"), st.sampled_from(["member_joined", "manager_added", "member_left"]), st.integers(0, 3)
        ),
    ),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(_group_ops)
def test_random_group_histories_round_trip(ops: list[tuple[Any, ...]]) -> None:
    record, now, count = group_run(LEADERS)[0], T0, 0
    for op in ops:
        if op[0] == "event":
            record, _ = group_event(record, GROUP, kind=op[1], user_id=f"u{op[2]}", policy=POLICY, now_ms=now)
            continue
        now += op[1]
        if op[0] == "violation":
            count += 1
            record, _ = group_violation(record, violation(f"m{count}", now, Severity.HIGH, sender="s"), POLICY)
        elif op[0] == "pardon":
            record, _ = group_pardon(record, GROUP, f"m{op[2]}", POLICY, now)
        elif op[0] == "lift":
            record, _ = group_lift_suspension(record, "appeal", now)
        else:
            record, _ = group_tick(record, now)
        raw = dump_group(record)
        assert load_group(raw) == record
        assert dump_group(load_group(raw)) == raw


def test_ids_holding_separators_do_not_collide() -> None:
    """Message ids are any strings: evidence ("a,b") and ("a", "b") are different sanctions."""
    assert sanction_id(MUTE._replace(evidence=("a,b",))) != sanction_id(MUTE._replace(evidence=("a", "b")))
    assert sanction_id(MUTE._replace(subject="user:a/b", kind="mute")) != sanction_id(MUTE._replace(subject="user:a"))
