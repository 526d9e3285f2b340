"""The user ladder: strikes, sanctions, credit and pardons, table-driven over sequences of violations.

The clock is explicit: a violation carries its own time (at_ms) and a pardon its now_ms; nothing reads a real clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DEFAULT_PACK_DIR

from streams.policy.ladder import (
    Sanction,
    Strike,
    UserState,
    Violation,
    active_strikes,
    credit_at,
    new_user,
    pardon,
    record_violation,
)
from streams.policy.rules import Severity
from streams.policy.sanctions import DAY_MS, load_sanctions

POLICY = load_sanctions(DEFAULT_PACK_DIR / "sanctions.toml")
T0 = 1_800_000_000_000
HOUR_MS = 3600 * 1000
WEEK_MS = 7 * DAY_MS
WINDOW_MS = 180 * DAY_MS
USER = "alice"
LADDER_KINDS = {"warning", "mute", "ban"}
PRIVILEGE_KINDS = {"messages_held_for_review", "group_creation_barred", "management_barred"}

# A plain violation's keys are on no severe list; the severe ones are on the shipped list (rules/sanctions.toml).
PLAIN = (("scam",), ("scam.task-rebate",))
FIREARMS = (("weapons",), ("weapons.firearms",))  # severe: rung 3
EXPLOSIVES = (("weapons",), ("weapons.explosives",))  # severe: rung 4
DEALING = (("drugs",), ("drugs.dealing",))  # severe: rung 3


def violation(
    message_id: str,
    at_ms: int,
    severity: Severity = Severity.LOW,
    keys: tuple[tuple[str, ...], tuple[str, ...]] = PLAIN,
    *,
    sender: str = USER,
) -> Violation:
    categories, rule_ids = keys
    return Violation(message_id, sender, "g1", at_ms, severity, categories, rule_ids)


def play(
    violations: list[Violation], state: UserState | None = None
) -> tuple[UserState, list[list[Sanction]], list[UserState]]:
    """Record each violation in turn; the final state, the sanctions of each step, and the state after each step."""
    state = new_user(POLICY) if state is None else state
    outputs, states = [], []
    for v in violations:
        state, sanctions = record_violation(state, v, POLICY)
        outputs.append(sanctions)
        states.append(state)
    return state, outputs, states


def ladder_only(sanctions: list[Sanction]) -> list[tuple[str, int, int | None]]:
    return [(s.kind, s.start_ms, s.expires_ms) for s in sanctions if s.kind in LADDER_KINDS]


def strikes_at(
    offsets_ms: list[int], keys: list[tuple[tuple[str, ...], tuple[str, ...]]] | None = None
) -> list[Violation]:
    keys = keys or [PLAIN] * len(offsets_ms)
    return [violation(f"m{n}", T0 + at, keys=k) for n, (at, k) in enumerate(zip(offsets_ms, keys, strict=True), 1)]


# --- the ladder -------------------------------------------------------------------------------------------------


def warning(at: int) -> tuple[str, int, None]:
    return ("warning", T0 + at, None)


def mute(at: int) -> tuple[str, int, int]:
    return ("mute", T0 + at, T0 + at + WEEK_MS)


def ban(at: int) -> tuple[str, int, None]:
    return ("ban", T0 + at, None)


D = DAY_MS


@pytest.mark.parametrize(
    ("offsets", "expected", "rungs"),
    [
        pytest.param([0], [warning(0)], [0], id="first-is-a-warning"),
        pytest.param([0, D], [warning(0), mute(D)], [0, 1], id="second-is-a-mute"),
        pytest.param([0, D, 2 * D], [warning(0), mute(D), mute(2 * D)], [0, 1, 2], id="third-is-a-mute"),
        pytest.param(
            [0, D, 2 * D, 3 * D], [warning(0), mute(D), mute(2 * D), ban(3 * D)], [0, 1, 2, 3], id="fourth-is-a-ban"
        ),
        pytest.param(
            [0, D, 2 * D, 3 * D, 4 * D],
            [warning(0), mute(D), mute(2 * D), ban(3 * D), ban(4 * D)],
            [0, 1, 2, 3, 3],
            id="last-rung-repeats",
        ),
        pytest.param(
            [0, HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 4 * HOUR_MS, 5 * HOUR_MS],
            [warning(0), mute(HOUR_MS), mute(2 * HOUR_MS), ban(3 * HOUR_MS), ban(4 * HOUR_MS), ban(5 * HOUR_MS)],
            [0, 1, 2, 3, 3, 3],
            id="same-day",
        ),
        pytest.param(
            [0, D, 2 * D, 3 * D, 3 * D],  # two violations in the same millisecond both count
            [warning(0), mute(D), mute(2 * D), ban(3 * D), ban(3 * D)],
            [0, 1, 2, 3, 3],
            id="same-millisecond",
        ),
    ],
)
def test_ladder(offsets: list[int], expected: list[tuple[str, int, int | None]], rungs: list[int]) -> None:
    state, outputs, _ = play(strikes_at(offsets))
    assert [ladder_only(out) for out in outputs] == [[e] for e in expected]
    assert [s.rung for s in state.strikes] == rungs
    assert [s.message_id for s in state.strikes] == [f"m{n}" for n in range(1, len(offsets) + 1)]


def test_sanctions_start_at_the_violation_not_when_replayed() -> None:
    """Two replays of the same violations give the same sanctions: nothing depends on when they are processed."""
    violations = strikes_at([0, 5 * D, 9 * D, 40 * D])
    _, first, _ = play(violations)
    _, second, _ = play(violations)
    assert first == second
    assert [(s.start_ms, s.expires_ms) for out in first for s in out] == [
        (T0, None),
        (T0 + 5 * D, T0 + 12 * D),
        (T0 + 9 * D, T0 + 16 * D),
        (T0 + 40 * D, None),
    ]


def test_ladder_sanction_fields() -> None:
    v = Violation("m1", "bob", "g9", T0, Severity.LOW, ("scam", "gambling"), ("scam.task-rebate", "gambling.casino"))
    _, [sanctions], _ = play([v])
    assert sanctions == [
        Sanction(
            subject="user:bob",
            kind="warning",
            reason="strike 1: scam, gambling",
            rule_ids=("scam.task-rebate", "gambling.casino"),
            evidence=("m1",),
            start_ms=T0,
            expires_ms=None,
            notice="Your message was removed for breaking the rules on scam, gambling. This is a warning (1 so far).",
        ),
    ]


@pytest.mark.parametrize(
    ("step", "kind", "reason", "notice"),
    [
        pytest.param(
            0,
            "warning",
            "strike 1: scam",
            "Your message was removed for breaking the rules on scam. This is a warning (1 so far).",
            id="warning",
        ),
        pytest.param(
            1,
            "mute",
            "strike 2: scam",
            "Your message was removed for breaking the rules on scam. You cannot post for 7 days.",
            id="mute",
        ),
        pytest.param(
            3,
            "ban",
            "strike 4: scam",
            "Your account is banned for repeatedly breaking the rules on scam.",
            id="ban",
        ),
    ],
)
def test_ladder_notices(step: int, kind: str, reason: str, notice: str) -> None:
    _, outputs, _ = play(strikes_at([0, D, 2 * D, 3 * D]))
    [sanction] = outputs[step]
    assert (sanction.kind, sanction.reason, sanction.notice) == (kind, reason, notice)
    assert sanction.subject == f"user:{USER}"
    assert sanction.evidence == (f"m{step + 1}",)
    assert sanction.revoked is False


# --- the severe floor -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "expected", "rungs"),
    [
        pytest.param([EXPLOSIVES], [ban(0)], [3], id="explosives-first-is-a-ban"),
        pytest.param([FIREARMS], [mute(0)], [2], id="firearms-first-is-the-third-rung"),
        pytest.param([DEALING], [mute(0)], [2], id="dealing-first-is-the-third-rung"),
        pytest.param([FIREARMS, PLAIN], [mute(0), ban(D)], [2, 3], id="after-firearms-climbs-one-above"),
        pytest.param([EXPLOSIVES, PLAIN], [ban(0), ban(D)], [3, 3], id="after-explosives-stays-banned"),
        pytest.param([PLAIN, FIREARMS], [warning(0), mute(D)], [0, 2], id="floor-above-the-next-rung"),
        pytest.param([PLAIN, PLAIN, FIREARMS], [warning(0), mute(D), mute(2 * D)], [0, 1, 2], id="floor-equals-next"),
        pytest.param([PLAIN, EXPLOSIVES, PLAIN], [warning(0), ban(D), ban(2 * D)], [0, 3, 3], id="floor-jumps-to-ban"),
        pytest.param(
            [(("weapons",), ("weapons.controlled-knives",))], [warning(0)], [0], id="other-rule-same-category-is-plain"
        ),
        pytest.param(
            [(("scam", "weapons"), ("scam.task-rebate", "weapons.explosives"))], [ban(0)], [3], id="highest-key-wins"
        ),
    ],
)
def test_severe_floor(
    keys: list[tuple[tuple[str, ...], tuple[str, ...]]], expected: list[tuple[str, int, int | None]], rungs: list[int]
) -> None:
    state, outputs, _ = play(strikes_at([n * D for n in range(len(keys))], keys))
    assert [ladder_only(out) for out in outputs] == [[e] for e in expected]
    assert [s.rung for s in state.strikes] == rungs


def test_severe_floor_by_category(tmp_path: Path) -> None:
    text = (DEFAULT_PACK_DIR / "sanctions.toml").read_text(encoding="utf-8")
    path = tmp_path / "sanctions.toml"
    path.write_text(text.replace('"weapons.firearms" = 3', '"weapons" = 2'), encoding="utf-8")
    policy = load_sanctions(path)
    state, sanctions = record_violation(new_user(policy), violation("m1", T0, keys=FIREARMS), policy)
    assert ladder_only(sanctions) == [mute(0)]
    assert state.strikes[0].rung == 1


# --- idempotence ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "again"),
    [
        pytest.param([0], violation("m1", T0), id="only-strike"),
        pytest.param([0, D, 2 * D], violation("m2", T0 + D), id="earlier-strike"),
        pytest.param([0, D, 2 * D], violation("m3", T0 + 2 * D), id="last-strike"),
        pytest.param([0, D], violation("m1", T0 + 5 * D, Severity.CRITICAL, EXPLOSIVES), id="redelivered-differently"),
    ],
)
def test_the_same_message_twice_changes_nothing(offsets: list[int], again: Violation) -> None:
    state, _, _ = play(strikes_at(offsets))
    after, sanctions = record_violation(state, again, POLICY)
    assert sanctions == []
    assert after == state


def test_a_replay_after_the_strike_left_the_window_changes_nothing() -> None:
    """A topic replayed from the start redelivers m1 after m2 pushed it out of the window: it must not count again."""
    state, _, _ = play(strikes_at([0, WINDOW_MS + D]))
    assert [s.message_id for s in state.strikes] == ["m2"]
    after, sanctions = record_violation(state, violation("m1", T0), POLICY)
    assert sanctions == []
    assert after == state


@pytest.mark.parametrize(
    "offsets",
    [
        pytest.param([], id="before-any-strike"),
        pytest.param([D, 2 * D], id="between-strikes"),
    ],
)
def test_a_pardoned_message_never_counts(offsets: list[int]) -> None:
    state, _, _ = play([violation(f"x{n}", T0 + at) for n, at in enumerate(offsets, 1)])
    state, changes = pardon(state, USER, "m1", POLICY, T0)  # pardoned before it ever arrives
    assert changes == []
    assert state.pardoned == frozenset({"m1"})
    after, sanctions = record_violation(state, violation("m1", T0 + 3 * D, Severity.CRITICAL), POLICY)
    assert sanctions == []
    assert after == state


# --- the strike window ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "expected", "kept"),
    [
        pytest.param([0, WINDOW_MS - 1], [warning(0), mute(WINDOW_MS - 1)], ["m1", "m2"], id="just-inside"),
        pytest.param([0, WINDOW_MS], [warning(0), warning(WINDOW_MS)], ["m2"], id="exactly-180-days"),
        pytest.param([0, WINDOW_MS + 1], [warning(0), warning(WINDOW_MS + 1)], ["m2"], id="just-outside"),
        pytest.param(
            [0, D, 2 * D, 3 * D, 3 * D + WINDOW_MS],
            [warning(0), mute(D), mute(2 * D), ban(3 * D), warning(3 * D + WINDOW_MS)],
            ["m5"],
            id="ladder-restarts-after-a-ban",
        ),
        pytest.param(
            [0, 10 * D, 185 * D],  # m1 is 185 days old, m2 175: the ladder climbs from m2
            [warning(0), mute(10 * D), mute(185 * D)],
            ["m2", "m3"],
            id="only-old-strikes-drop",
        ),
        pytest.param(
            [0, 10 * D, 185 * D, 200 * D],  # m3's mute is rung 2; m2 is now 190 days old
            [warning(0), mute(10 * D), mute(185 * D), ban(200 * D)],
            ["m3", "m4"],
            id="climbs-from-the-last-active",
        ),
    ],
)
def test_strike_window(offsets: list[int], expected: list[tuple[str, int, int | None]], kept: list[str]) -> None:
    state, outputs, _ = play(strikes_at(offsets))
    assert [ladder_only(out) for out in outputs] == [[e] for e in expected]
    assert [s.message_id for s in state.strikes] == kept


def test_warning_count_restarts_with_the_window() -> None:
    _, outputs, _ = play(strikes_at([0, WINDOW_MS + D]))
    assert [out[0].notice for out in outputs] == [
        "Your message was removed for breaking the rules on scam. This is a warning (1 so far).",
    ] * 2
    assert [out[0].reason for out in outputs] == ["strike 1: scam"] * 2


@pytest.mark.parametrize(
    ("now", "active"),
    [
        pytest.param(T0 + 2 * D, ["m1", "m2"], id="both"),
        pytest.param(T0 + WINDOW_MS - 1, ["m1", "m2"], id="m1-last-millisecond"),
        pytest.param(T0 + WINDOW_MS, ["m2"], id="m1-out"),
        pytest.param(T0 + D + WINDOW_MS, [], id="both-out"),
    ],
)
def test_active_strikes(now: int, active: list[str]) -> None:
    state, _, _ = play(strikes_at([0, D]))
    assert [s.message_id for s in active_strikes(state, POLICY.user, now)] == active


# --- credit -----------------------------------------------------------------------------------------------------


def test_new_user() -> None:
    state = new_user(POLICY)
    assert state == UserState(credit=100, credit_ms=0, strikes=(), pardoned=frozenset())
    assert credit_at(state, POLICY.credit, T0) == 100


C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW


@pytest.mark.parametrize(
    ("steps", "credits", "penalties"),
    [
        pytest.param([(0, L)], [98], [2], id="low-2"),
        pytest.param([(0, M)], [95], [5], id="medium-5"),
        pytest.param([(0, H)], [90], [10], id="high-10"),
        pytest.param([(0, C)], [80], [20], id="critical-20"),
        pytest.param([(0, H), (0, C), (0, M), (0, L)], [90, 70, 65, 63], [10, 20, 5, 2], id="adds-up"),
        pytest.param(
            [(0, C)] * 5 + [(0, C), (0, L)], [80, 60, 40, 20, 0, 0, 0], [20, 20, 20, 20, 20, 0, 0], id="never-below-0"
        ),
        pytest.param(
            [(0, C)] * 4 + [(0, H), (0, C)], [80, 60, 40, 20, 10, 0], [20, 20, 20, 20, 10, 10], id="takes-rest"
        ),
        pytest.param([(0, C), (10 * D, C)], [80, 65], [20, 20], id="recovers-between"),
        pytest.param([(0, C), (100 * D, H)], [80, 90], [20, 10], id="recovers-to-100-at-most"),
    ],
)
def test_credit_falls_by_the_severity_penalty(
    steps: list[tuple[int, Severity]], credits: list[float], penalties: list[float]
) -> None:
    _, _, states = play([violation(f"m{n}", T0 + at, sev) for n, (at, sev) in enumerate(steps, 1)])
    assert [s.credit for s in states] == pytest.approx(credits, abs=1e-9)
    assert [s.credit_ms for s in states] == [T0 + at for at, _ in steps]
    assert [s.penalty for s in states[-1].strikes] == penalties


@pytest.mark.parametrize(
    ("credit", "elapsed", "expected"),
    [
        pytest.param(80, 0, 80, id="no-time"),
        pytest.param(80, D, 80.5, id="one-day"),
        pytest.param(80, 10 * D, 85, id="ten-days"),
        pytest.param(80, 40 * D, 100, id="back-to-start"),
        pytest.param(80, 400 * D, 100, id="capped-at-start"),
        pytest.param(0, 200 * D, 100, id="from-zero"),
        pytest.param(0, 20 * D, 10, id="from-zero-20-days"),
        pytest.param(100, 5 * D, 100, id="already-full"),
        pytest.param(80, -5 * D, 80, id="clock-before-credit-time"),
    ],
)
def test_credit_at(credit: float, elapsed: int, expected: float) -> None:
    state = UserState(credit=credit, credit_ms=T0)
    assert credit_at(state, POLICY.credit, T0 + elapsed) == pytest.approx(expected, abs=1e-9)


# --- privileges lost with credit --------------------------------------------------------------------------------

REVIEW, NO_GROUPS, NO_MANAGING = "messages_held_for_review", "group_creation_barred", "management_barred"


def privileges(sanctions: list[Sanction]) -> list[str]:
    return [s.kind for s in sanctions if s.kind in PRIVILEGE_KINDS]


@pytest.mark.parametrize(
    ("steps", "expected", "credits"),
    [
        pytest.param(
            [(0, C), (0, C), (0, C), (0, C), (0, C)],
            [[], [REVIEW], [NO_GROUPS, NO_MANAGING], [], []],
            [80, 60, 40, 20, 0],
            id="critical-crossings",
        ),
        pytest.param(
            [(0, H), (0, H), (0, H), (0, H), (0, H), (0, H)],
            [[], [], [], [REVIEW], [NO_GROUPS], [NO_MANAGING]],
            [90, 80, 70, 60, 50, 40],
            id="high-one-at-a-time",
        ),
        pytest.param(
            [(0, C), (0, H)],  # 70 is not below 70
            [[], []],
            [80, 70],
            id="at-the-threshold-is-not-below",
        ),
        pytest.param(
            [(0, C), (0, C), (0, H), (0, M), (0, L)],
            [[], [REVIEW], [NO_GROUPS], [NO_MANAGING], []],
            [80, 60, 50, 45, 43],
            id="being-below-is-not-crossing",
        ),
        pytest.param(
            [(0, C), (0, C), (30 * D, C)],  # 60 recovers to 75, then falls to 55: both crossed again
            [[], [REVIEW], [NO_GROUPS, REVIEW]],  # in the order of their kinds' names
            [80, 60, 55],
            id="crossing-again-after-recovery",
        ),
        pytest.param(
            [(0, C), (0, C), (10 * D, L)],  # 60 recovers to 65, falls to 63: still below 70, no crossing
            [[], [REVIEW], []],
            [80, 60, 63],
            id="still-below-after-partial-recovery",
        ),
    ],
)
def test_privileges_lost_when_crossing_thresholds(
    steps: list[tuple[int, Severity]], expected: list[list[str]], credits: list[float]
) -> None:
    violations = [violation(f"m{n}", T0 + at, sev) for n, (at, sev) in enumerate(steps, 1)]
    _, outputs, states = play(violations)
    assert [privileges(out) for out in outputs] == expected
    assert [s.credit for s in states] == pytest.approx(credits, abs=1e-9)
    for v, out in zip(violations, outputs, strict=True):
        assert out[0].kind in LADDER_KINDS  # the ladder sanction comes first
        for s in out[1:]:
            assert (s.subject, s.start_ms, s.evidence, s.rule_ids, s.revoked) == (
                f"user:{USER}",
                v.at_ms,
                (v.message_id,),
                v.rule_ids,
                False,
            )


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([(0, C), (0, C)], [(REVIEW, T0 + 20 * D)], id="60-back-to-70-in-20-days"),
        pytest.param(
            [(0, C), (0, C), (0, C)], [(NO_GROUPS, T0 + 40 * D), (NO_MANAGING, T0 + 20 * D)], id="40-to-60-and-50"
        ),
        pytest.param(
            [(0, C), (0, C), (30 * D, C)], [(NO_GROUPS, T0 + 40 * D), (REVIEW, T0 + 60 * D)], id="55-from-day-30"
        ),
        pytest.param([(0, H)] * 3 + [(0, C)], [(NO_GROUPS, T0 + 20 * D), (REVIEW, T0 + 40 * D)], id="50-to-60-and-70"),
    ],
)
def test_privilege_expires_when_credit_recovers_to_the_threshold(
    steps: list[tuple[int, Severity]], expected: list[tuple[str, int]]
) -> None:
    _, outputs, states = play([violation(f"m{n}", T0 + at, sev) for n, (at, sev) in enumerate(steps, 1)])
    last = [s for s in outputs[-1] if s.kind in PRIVILEGE_KINDS]
    assert [(s.kind, s.expires_ms) for s in last] == expected
    # The expiry is the first millisecond at which the credit is no longer below the threshold.
    thresholds = {REVIEW: 70, NO_GROUPS: 60, NO_MANAGING: 50}
    for s in last:
        assert s.expires_ms is not None
        assert credit_at(states[-1], POLICY.credit, s.expires_ms - 1) < thresholds[s.kind]
        assert credit_at(states[-1], POLICY.credit, s.expires_ms) >= thresholds[s.kind]


def test_privilege_notice() -> None:
    _, outputs, _ = play([violation("m1", T0, C), violation("m2", T0, C), violation("m3", T0, C)])
    assert [s.notice for s in outputs[1][1:]] == [
        "Your credit score is 60: messages held for review until it recovers to 70.",
    ]
    assert [(s.reason, s.notice) for s in outputs[2][1:]] == [
        ("credit 40 is below 60", "Your credit score is 40: group creation barred until it recovers to 60."),
        ("credit 40 is below 50", "Your credit score is 40: management barred until it recovers to 50."),
    ]


# --- pardons ----------------------------------------------------------------------------------------------------


def four_strikes() -> tuple[UserState, list[list[Sanction]]]:
    """Low-severity strikes a day apart: warning, mute, mute, ban (credit 98, 96.5, 95, 93.5)."""
    state, outputs, _ = play(strikes_at([0, D, 2 * D, 3 * D]))
    return state, outputs


@pytest.mark.parametrize(
    ("count", "pardoned", "changes", "rungs"),
    [
        pytest.param(1, "m1", [("m1", "warning", True)], [], id="only-strike"),
        pytest.param(4, "m4", [("m4", "ban", True)], [0, 1, 2], id="last-of-four"),
        pytest.param(
            4, "m2", [("m2", "mute", True), ("m4", "ban", True), ("m4", "mute", False)], [0, 1, 2], id="second-of-four"
        ),
        pytest.param(
            4, "m3", [("m3", "mute", True), ("m4", "ban", True), ("m4", "mute", False)], [0, 1, 2], id="third-of-four"
        ),
        pytest.param(
            3,
            "m1",
            [("m1", "warning", True), ("m2", "mute", True), ("m2", "warning", False)],
            [0, 1],
            id="first-of-three",
        ),
        pytest.param(
            5,
            "m1",
            [
                ("m1", "warning", True),
                ("m2", "mute", True),
                ("m2", "warning", False),
                ("m4", "ban", True),
                ("m4", "mute", False),
            ],
            [0, 1, 2, 3],
            id="first-of-five",
        ),
    ],
)
def test_pardon_steps_later_strikes_down(
    count: int, pardoned: str, changes: list[tuple[str, str, bool]], rungs: list[int]
) -> None:
    state, outputs, _ = play(strikes_at([n * D for n in range(count)]))
    after, emitted = pardon(state, USER, pardoned, POLICY, T0 + 10 * D)
    assert [(s.evidence[0], s.kind, s.revoked) for s in emitted] == changes
    assert [s.rung for s in after.strikes] == rungs
    assert [s.message_id for s in after.strikes] == [f"m{n}" for n in range(1, count + 1) if f"m{n}" != pardoned]
    assert after.pardoned == frozenset({pardoned})
    # A revoked sanction is the very one that was emitted, marked revoked.
    originals = {out[0].evidence[0]: out[0] for out in outputs}
    for s in emitted:
        if s.revoked:
            assert s == originals[s.evidence[0]]._replace(revoked=True)


def test_pardon_of_the_second_of_four_turns_the_ban_into_a_mute() -> None:
    state, outputs = four_strikes()
    _, emitted = pardon(state, USER, "m2", POLICY, T0 + 3 * D)
    assert emitted == [
        outputs[1][0]._replace(revoked=True),
        outputs[3][0]._replace(revoked=True),
        Sanction(
            subject=f"user:{USER}",
            kind="mute",
            reason="strike 3: scam",
            rule_ids=("scam.task-rebate",),
            evidence=("m4",),
            start_ms=T0 + 3 * D,  # the mute starts when the strike was made, not at the pardon
            expires_ms=T0 + 3 * D + WEEK_MS,
            notice="Your message was removed for breaking the rules on scam. You cannot post for 7 days.",
        ),
    ]
    assert emitted[0].subject == f"user:{USER}"
    assert (emitted[1].kind, emitted[1].expires_ms) == ("ban", None)


def test_pardon_after_a_severe_strike() -> None:
    state, _, _ = play(strikes_at([0, D], [EXPLOSIVES, PLAIN]))
    after, emitted = pardon(state, USER, "m1", POLICY, T0 + D)
    assert [(s.evidence[0], s.kind, s.revoked) for s in emitted] == [
        ("m1", "ban", True),
        ("m2", "ban", True),
        ("m2", "warning", False),
    ]
    assert [s.rung for s in after.strikes] == [0]


def test_pardoning_a_severe_strike_keeps_its_floor_for_the_others() -> None:
    state, _, _ = play(strikes_at([0, D], [PLAIN, FIREARMS]))
    after, emitted = pardon(state, USER, "m1", POLICY, T0 + D)
    assert [(s.evidence[0], s.kind, s.revoked) for s in emitted] == [("m1", "warning", True)]
    assert [s.rung for s in after.strikes] == [2]


@pytest.mark.parametrize(
    ("severity", "steps", "pardoned", "now", "credit"),
    [
        pytest.param(Severity.HIGH, 1, "m1", T0, 100, id="back-to-start"),
        pytest.param(Severity.HIGH, 2, "m1", T0, 90, id="one-of-two"),
        pytest.param(Severity.CRITICAL, 3, "m2", T0, 60, id="critical-one-of-three"),
        pytest.param(Severity.HIGH, 2, "m2", T0 + 10 * D, 95, id="recovered-then-given-back"),
        pytest.param(Severity.CRITICAL, 1, "m1", T0 + 4 * D, 100, id="capped-at-start"),
    ],
)
def test_pardon_gives_the_credit_back(severity: Severity, steps: int, pardoned: str, now: int, credit: float) -> None:
    state, _, _ = play([violation(f"m{n}", T0, severity) for n in range(1, steps + 1)])
    after, _ = pardon(state, USER, pardoned, POLICY, now)
    assert after.credit == pytest.approx(credit, abs=1e-9)
    assert after.credit_ms == now


def test_pardon_gives_back_only_what_was_taken() -> None:
    state, _, _ = play([violation("m1", T0, Severity.CRITICAL)], UserState(credit=10, credit_ms=T0))
    assert state.credit == 0
    assert state.strikes[0].penalty == 10
    after, _ = pardon(state, USER, "m1", POLICY, T0)
    assert after.credit == 10


def test_pardon_of_an_unknown_message_only_records_it() -> None:
    state, _ = four_strikes()
    after, emitted = pardon(state, USER, "nope", POLICY, T0 + 5 * D)
    assert emitted == []
    assert after == state._replace(pardoned=frozenset({"nope"}))


def test_recording_a_pardoned_message_again_changes_nothing() -> None:
    state, _ = four_strikes()
    state, _ = pardon(state, USER, "m2", POLICY, T0 + 3 * D)
    after, sanctions = record_violation(state, violation("m2", T0 + D), POLICY)
    assert sanctions == []
    assert after == state


def test_pardoning_twice_changes_nothing_more() -> None:
    state, _ = four_strikes()
    state, _ = pardon(state, USER, "m2", POLICY, T0 + 3 * D)
    after, emitted = pardon(state, USER, "m2", POLICY, T0 + 3 * D)
    assert emitted == []
    assert after == state


def test_the_ladder_climbs_from_the_stepped_down_strikes() -> None:
    state, _ = four_strikes()
    state, _ = pardon(state, USER, "m2", POLICY, T0 + 3 * D)
    after, sanctions = record_violation(state, violation("m5", T0 + 4 * D), POLICY)
    assert ladder_only(sanctions) == [ban(4 * D)]
    assert sanctions[0].reason == "strike 4: scam"
    assert [s.rung for s in after.strikes] == [0, 1, 2, 3]


def test_pardon_uses_the_given_user_id_as_subject() -> None:
    state, _, _ = play([violation("m1", T0, sender="carol")])
    _, emitted = pardon(state, "carol", "m1", POLICY, T0)
    assert [(s.subject, s.kind, s.revoked) for s in emitted] == [("user:carol", "warning", True)]


def test_strike_records_what_was_taken() -> None:
    state, _, _ = play([violation("m1", T0 + 5, Severity.HIGH, FIREARMS)])
    assert state.strikes == (Strike("m1", T0 + 5, 2, 10, ("weapons",), ("weapons.firearms",)),)
