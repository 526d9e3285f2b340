"""A user's strikes, sanctions and credit: pure functions of the state, a violation, the policy and a clock.

Every effect is keyed by the message id that caused it, so the same violation delivered twice, or a topic replayed,
changes nothing; a pardon takes the strike out, gives its credit back and revokes the sanction it caused.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import NamedTuple

from streams.policy.rules import Severity
from streams.policy.sanctions import DAY_MS, CreditPolicy, SanctionPolicy, UserPolicy

# The decisions' records are named tuples: immutable and hashable, as frozen dataclasses are, and several times
# cheaper to build, which counts where every violation builds dozens of them.


class Violation(NamedTuple):
    """A blocked message, as the user and group tables see it."""

    message_id: str
    sender_id: str
    group_id: str
    at_ms: int  # when it was classified: sanctions start then, so a replay gives the same sanctions
    severity: Severity
    categories: tuple[str, ...]
    rule_ids: tuple[str, ...]


class Strike(NamedTuple):
    message_id: str
    at_ms: int
    rung: int  # index into the ladder
    penalty: float  # credit taken, given back on a pardon
    categories: tuple[str, ...]
    rule_ids: tuple[str, ...]


class Sanction(NamedTuple):
    """One action on a user or a group, as published on moderation.sanctions.v1."""

    subject: str  # "user:<id>" or "group:<id>"
    kind: str  # warning | mute | ban | group_warning | group_suspension | group_shutdown | messages_held_for_review |
    # group_creation_barred | management_suspended | management_revoked
    reason: str
    rule_ids: tuple[str, ...]
    evidence: tuple[str, ...]  # message ids
    start_ms: int
    expires_ms: int | None  # None: until revoked
    notice: str  # what the sanctioned user sees
    revoked: bool = False


class UserState(NamedTuple):
    credit: float  # as of credit_ms; it recovers with time
    credit_ms: int = 0
    strikes: tuple[Strike, ...] = ()
    pardoned: frozenset[str] = frozenset()  # message ids that never count again


def new_user(policy: SanctionPolicy) -> UserState:
    return UserState(credit=policy.credit.start)


def credit_at(state: UserState, policy: CreditPolicy, now_ms: int) -> float:
    recovered = state.credit + max(0, now_ms - state.credit_ms) * policy.recovery_per_ms
    return min(policy.start, recovered)


def active_strikes(state: UserState, policy: UserPolicy, now_ms: int) -> tuple[Strike, ...]:
    return tuple(s for s in state.strikes if s.at_ms > now_ms - policy.strike_window_ms)


def _rung_for(previous: int | None, keys: tuple[str, ...], policy: UserPolicy) -> int:
    """One rung above the last active strike's, or the severe floor of the categories and rules if that is higher."""
    severe = policy.severe
    floor = max([severe.get(key, 0) for key in keys], default=0)
    return min(len(policy.ladder) - 1, max(floor, previous + 1 if previous is not None else 0))


_KINDS = {"warn": "warning", "mute": "mute", "ban": "ban"}
_MESSAGE_ID, _AT_MS = itemgetter(0), itemgetter(1)  # of a Strike


def _notice(template: str, categories: tuple[str, ...], days: float | None, count: int) -> str:
    return template.format(categories=", ".join(categories), days=f"{days:g}" if days is not None else "", count=count)


def _ladder_sanction(
    user_id: str, strike: Strike, count: int, policy: SanctionPolicy, *, revoked: bool = False
) -> Sanction:
    """The sanction a strike's rung gives, starting when the strike was made."""
    rung = policy.user.ladder[strike.rung]
    duration = rung.duration_ms
    days = duration / DAY_MS if duration is not None else None
    return Sanction(  # positional, in the order of its fields: every violation builds one, and keywords cost
        f"user:{user_id}",  # subject
        _KINDS[rung.action],  # kind
        f"strike {count}: {', '.join(strike.categories)}",  # reason
        strike.rule_ids,  # rule_ids
        (strike.message_id,),  # evidence
        strike.at_ms,  # start_ms
        strike.at_ms + duration if duration is not None else None,  # expires_ms
        _notice(policy.notices[rung.action], strike.categories, days, count),  # notice
        revoked,  # revoked
    )


def _privileges(policy: CreditPolicy) -> tuple[tuple[str, float], ...]:
    """Each privilege a low credit takes away, with the threshold credit must stay at or above to keep it."""
    return (
        ("messages_held_for_review", policy.review_messages_below),
        ("group_creation_barred", policy.create_groups_below),
        ("management_barred", policy.manage_groups_below),
    )


def privileges_below(credit: float, policy: CreditPolicy) -> dict[str, float]:
    """The privileges a credit takes away, each with the threshold credit must climb back to."""
    return {kind: threshold for kind, threshold in _privileges(policy) if credit < threshold}


def privileges_lost(
    user_id: str,
    credit_before: float,
    credit: float,
    policy: CreditPolicy,
    *,
    now_ms: int,
    rule_ids: tuple[str, ...],
    evidence: str,
) -> list[Sanction]:
    """A sanction for each privilege a fall in credit takes away, until credit recovers past its threshold."""
    sanctions = []
    lost = [(kind, threshold) for kind, threshold in _privileges(policy) if credit < threshold <= credit_before]
    for kind, threshold in sorted(lost):
        sanctions.append(
            Sanction(
                subject=f"user:{user_id}",
                kind=kind,
                reason=f"credit {credit:g} is below {threshold:g}",
                rule_ids=rule_ids,
                evidence=(evidence,),
                start_ms=now_ms,
                expires_ms=privilege_returns_at(credit, now_ms, threshold, policy),
                notice=f"Your credit score is {credit:g}: {kind.replace('_', ' ')} until it recovers to {threshold:g}.",
            ),
        )
    return sanctions


def privilege_returns_at(credit: float, credit_ms: int, threshold: float, policy: CreditPolicy) -> int | None:
    """When credit recovering from ``credit`` at ``credit_ms`` climbs back to ``threshold``; None if it never does."""
    if not policy.recovery_per_ms:
        return None
    return credit_ms + math.ceil((threshold - credit) / policy.recovery_per_ms)


def record_violation(
    state: UserState, violation: Violation, policy: SanctionPolicy
) -> tuple[UserState, list[Sanction]]:
    """Count a violation once: a strike, the sanction of its rung, credit lost and privileges that go with it."""
    message_id, now, window_ms = violation.message_id, violation.at_ms, policy.user.strike_window_ms
    if message_id in state.pardoned:
        return state, []
    active = state.strikes
    if active:  # passes in C over the strikes
        if message_id in map(_MESSAGE_ID, active):
            return state, []
        times = list(map(_AT_MS, active))
        if now <= max(times) - window_ms:
            return state, []  # older than the window of what we have seen: a replay, or too late to count
        if min(times) <= now - window_ms:
            active = tuple([s for s in active if s.at_ms > now - window_ms])  # as active_strikes() has them
    previous = active[-1].rung if active else None
    rung = _rung_for(previous, (*violation.categories, *violation.rule_ids), policy.user)
    credit_before = credit_at(state, policy.credit, now)
    penalty = min(credit_before, policy.credit.penalty.get(violation.severity, 0.0))
    credit = credit_before - penalty
    strike = Strike(message_id, now, rung, penalty, violation.categories, violation.rule_ids)
    sanctions = [_ladder_sanction(violation.sender_id, strike, len(active) + 1, policy)]
    sanctions.extend(
        privileges_lost(
            violation.sender_id,
            credit_before,
            credit,
            policy.credit,
            now_ms=now,
            rule_ids=violation.rule_ids,
            evidence=message_id,
        )
    )
    return UserState(credit, now, (*active, strike), state.pardoned), sanctions


def pardon(
    state: UserState,
    user_id: str,
    message_id: str,
    policy: SanctionPolicy,
    now_ms: int,
) -> tuple[UserState, list[Sanction]]:
    """Take a message's strike out: its credit comes back, its sanction is revoked, and later strikes step down."""
    if not any(s.message_id == message_id for s in state.strikes):
        return state._replace(pardoned=state.pardoned | {message_id}), []
    changes: list[Sanction] = []
    kept: list[Strike] = []
    credit_before = credit = credit_at(state, policy.credit, now_ms)
    for count, strike in enumerate(state.strikes, start=1):
        if strike.message_id == message_id:
            changes.append(_ladder_sanction(user_id, strike, count, policy, revoked=True))
            credit = min(policy.credit.start, credit + strike.penalty)
            continue
        # Strikes within the window of their predecessor climb one rung above it, as when they were made.
        previous = next((s.rung for s in reversed(kept) if s.at_ms > strike.at_ms - policy.user.strike_window_ms), None)
        rung = _rung_for(previous, (*strike.categories, *strike.rule_ids), policy.user)
        stepped = strike._replace(rung=rung)
        if policy.user.ladder[rung] != policy.user.ladder[strike.rung]:  # only a different sanction is news
            old = _ladder_sanction(user_id, strike, count, policy, revoked=True)
            changes.extend([old, _ladder_sanction(user_id, stepped, len(kept) + 1, policy)])
        kept.append(stepped)
    regained = privileges_below(credit_before, policy.credit).keys() - privileges_below(credit, policy.credit).keys()
    changes.extend(
        Sanction(
            subject=f"user:{user_id}",
            kind=kind,
            reason=f"pardoned: {message_id}; credit {credit:g}",
            rule_ids=(),
            evidence=(message_id,),
            start_ms=now_ms,
            expires_ms=now_ms,
            notice=f"Your credit score is {credit:g} again: {kind.replace('_', ' ')} is lifted.",
            revoked=True,
        )
        for kind in sorted(regained)
    )
    pardoned = state.pardoned | {message_id}
    return state._replace(credit=credit, credit_ms=now_ms, strikes=tuple(kept), pardoned=pardoned), changes
