"""What each user and group is under: the sanctions in force, the blacklist entry they make, and when it changes.

The user and group tables hold one record each. Every function here takes a record, one event, the policy and the
event's time, and returns the new record with its outcome: the sanctions to publish, the blacklist entry if it
changed, the actions to forward to the other table (a group's leaders answer in the user table) and when the record
next needs a look (an expiry). Pure and idempotent; streams/agents/standing.py wires them to topics and tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import NamedTuple

from streams.policy.escalation import (
    STEPS,
    GroupState,
    Liability,
    apply_group_event,
    level_for,
    over_member_limit,
    record_group_violation,
)
from streams.policy.ladder import (
    Sanction,
    UserState,
    Violation,
    credit_at,
    pardon,
    privilege_returns_at,
    privileges_below,
    privileges_lost,
    record_violation,
)
from streams.policy.sanctions import SanctionPolicy

# Sanctions that restrict a subject while they last and so put it on the blacklist. Warnings only inform.
HELD_KINDS = frozenset(
    {"mute", "ban", "management_suspended", "management_revoked", "group_creation_barred"}
    | {"group_suspension", "group_shutdown", "link_blacklisted"}
)
_LADDER_KINDS = frozenset({"warning", "mute", "ban"})
_STEP_KINDS = {"warn": "group_warning", "suspend": "group_suspension", "shut_down": "group_shutdown"}
_LEADER_KINDS = {
    "warn": set(),
    "suspend": {"management_suspended"},
    "shut_down": {"management_revoked", "group_creation_barred"},
}


class Restriction(NamedTuple):
    """One line of a blacklist entry."""

    kind: str
    until_ms: int | None  # None: until revoked
    reason: str


def liability_key(group_id: str, step: str, message_id: str) -> str:
    """Names one liability: a group's step, reached by one message. JSON, so any id may hold any character."""
    return json.dumps([group_id, step, message_id], ensure_ascii=False, separators=(",", ":"))


def liability_parts(key: str) -> tuple[str, str, str]:
    group_id, step, message_id = json.loads(key)
    return str(group_id), str(step), str(message_id)


class LeaderLiability(NamedTuple):
    """To the user table: a group leader's credit falls and the leader sanctions take effect, once per key."""

    user_id: str
    key: str  # liability_key(group id, step, the message that crossed the threshold)
    liability: Liability
    sanctions: tuple[Sanction, ...]
    at_ms: int


class LiftLiability(NamedTuple):
    """To the user table: a leader sanction is revoked; on a pardon the credit it took comes back too."""

    user_id: str
    key: str
    restore_credit: bool
    at_ms: int


Forward = LeaderLiability | LiftLiability


class Outcome(NamedTuple):  # no defaults: each outcome has lists of its own
    sanctions: list[Sanction]
    listing: tuple[Restriction, ...] | None  # the new blacklist entry if it changed; () is a tombstone
    forwards: list[Forward]
    due_ms: int | None  # the next time a restriction ends


class UserRecord(NamedTuple):
    state: UserState
    held: tuple[Sanction, ...] = ()  # restricting sanctions in force (ladder and leader ones)
    liabilities: tuple[tuple[str, float], ...] = ()  # (key, credit taken) of each leader liability applied
    lifted: frozenset[str] = frozenset()  # liability keys lifted: a late redelivery does not apply them again
    listed: tuple[Restriction, ...] = ()  # what the blacklist says now


class GroupRecord(NamedTuple):
    state: GroupState = GroupState()
    held: tuple[Sanction, ...] = ()
    liable: tuple[tuple[str, str, str], ...] = ()  # (user id, step, liability key) of each leader held liable
    pardoned: frozenset[str] = frozenset()
    flagged: bool = False  # over the member limit, and reported
    listed: tuple[Restriction, ...] = ()


def _identity(s: Sanction) -> tuple[str, str, tuple[str, ...], int]:
    """What makes two sanctions the same action: the revocation of one revokes the other."""
    return s.subject, s.kind, s.evidence, s.start_ms


def _hold(held: tuple[Sanction, ...], changes: list[Sanction]) -> tuple[Sanction, ...]:
    """Held sanctions after some were issued and some revoked."""
    if not changes:
        return held
    revoked = {_identity(c) for c in changes if c.revoked}
    kept = [h for h in held if _identity(h) not in revoked] if revoked else list(held)
    holding = {_identity(h) for h in kept}
    kept += [c for c in changes if not c.revoked and c.kind in HELD_KINDS and _identity(c) not in holding]
    return tuple(kept)


def _in_force(held: tuple[Sanction, ...], now_ms: int) -> tuple[Sanction, ...]:
    return tuple([s for s in held if s.expires_ms is None or s.expires_ms > now_ms])


def _restrictions(held: tuple[Sanction, ...]) -> list[Restriction]:
    return [Restriction(s.kind, s.expires_ms, s.reason) for s in held]


def _settle(
    held: tuple[Sanction, ...], listed: tuple[Restriction, ...], extra: list[Restriction], now_ms: int
) -> tuple[tuple[Sanction, ...], tuple[Restriction, ...], tuple[Restriction, ...] | None, int | None]:
    """Drop what has expired; return held, the entry now, the entry if it changed, and when it next changes."""
    held = _in_force(held, now_ms)
    if not held and not extra:  # most records: nothing restricts the subject
        return held, (), (() if listed else None), None
    entry = tuple(sorted({*_restrictions(held), *extra}, key=_restriction_order))
    due = min([r.until_ms for r in entry if r.until_ms is not None], default=None)
    return held, entry, (entry if entry != listed else None), due


def _settle_held(
    held: tuple[Sanction, ...], changes: list[Sanction], listed: tuple[Restriction, ...], now_ms: int
) -> tuple[tuple[Sanction, ...], tuple[Restriction, ...], tuple[Restriction, ...] | None, int | None]:
    """``_settle`` of the sanctions held after ``changes``, for a record whose entry lists them alone (a group's, a
    domain's): most events change none of them, and the entry they made when last settled stands."""
    if not changes and (held or not listed) and all(s.expires_ms is None or s.expires_ms > now_ms for s in held):
        return held, listed, None, min([r.until_ms for r in listed if r.until_ms is not None], default=None)
    return _settle(_hold(held, changes), listed, [], now_ms)


def _restriction_order(r: Restriction) -> tuple[str, int, str]:
    return r.kind, r.until_ms or 0, r.reason


# -- users ---------------------------------------------------------------------------------------------------------


def _credit_restrictions(state: UserState, policy: SanctionPolicy, now_ms: int) -> list[Restriction]:
    """Privileges a low credit takes away, each until credit has recovered past its threshold. Decided by that time,
    not by the credit recomputed now: rounding could keep a line past its own until_ms."""
    restrictions = []
    for kind, threshold in privileges_below(state.credit, policy.credit).items():
        until = privilege_returns_at(state.credit, state.credit_ms, threshold, policy.credit)
        if until is None or until > now_ms:
            restrictions.append(Restriction(kind, until, "low credit"))
    return restrictions


def _settle_user(
    record: UserRecord,
    state: UserState,
    sanctions: list[Sanction],
    policy: SanctionPolicy,
    now_ms: int,
    *,
    hold: list[Sanction] | None = None,
    liabilities: tuple[tuple[str, float], ...] | None = None,
    lifted: frozenset[str] | None = None,
) -> tuple[UserRecord, Outcome]:
    """The new record, built once from ``record`` with the new ``state`` (and ``liabilities`` and ``lifted`` if they
    changed). ``hold``: the sanctions to hold, if not all: a lost privilege is listed from the credit, which can
    recover sooner (a pardon), so the sanction announcing it is not held (group_creation_barred is also a leader
    kind)."""
    held = _hold(record.held, sanctions if hold is None else hold)
    credit = _credit_restrictions(state, policy, now_ms)
    held, entry, changed, due = _settle(held, record.listed, credit, now_ms)
    new = UserRecord(
        state,
        held,
        record.liabilities if liabilities is None else liabilities,
        record.lifted if lifted is None else lifted,
        entry,
    )
    return new, Outcome(sanctions, changed, [], due)


def _unchanged(record: UserRecord) -> tuple[UserRecord, Outcome]:
    """A redelivery: nothing changes. Settling at its own, older time could list again what a later tick removed."""
    due = min([r.until_ms for r in record.listed if r.until_ms is not None], default=None)
    return record, Outcome([], None, [], due)


def new_user_record(policy: SanctionPolicy) -> UserRecord:
    return UserRecord(UserState(credit=policy.credit.start))


def user_violation(record: UserRecord, violation: Violation, policy: SanctionPolicy) -> tuple[UserRecord, Outcome]:
    state, sanctions = record_violation(record.state, violation, policy)
    if not sanctions and state == record.state:
        return _unchanged(record)
    ladder = [s for s in sanctions if s.kind in _LADDER_KINDS]
    return _settle_user(record, state, sanctions, policy, violation.at_ms, hold=ladder)


def user_liability(record: UserRecord, action: LeaderLiability, policy: SanctionPolicy) -> tuple[UserRecord, Outcome]:
    """A leader answers for a group: credit lost and leader sanctions, once per liability key."""
    if action.key in record.lifted or any(key == action.key for key, _ in record.liabilities):
        return _unchanged(record)
    now = action.at_ms
    before = credit_at(record.state, policy.credit, now)
    points = min(before, action.liability.points)
    state = record.state._replace(credit=before - points, credit_ms=now)
    evidence = action.liability.evidence[-1] if action.liability.evidence else action.key
    sanctions = [
        *action.sanctions,
        *privileges_lost(
            action.user_id, before, before - points, policy.credit, now_ms=now, rule_ids=(), evidence=evidence
        ),
    ]
    liabilities = (*record.liabilities, (action.key, points))
    return _settle_user(record, state, sanctions, policy, now, hold=list(action.sanctions), liabilities=liabilities)


def user_lift_liability(
    record: UserRecord, action: LiftLiability, policy: SanctionPolicy
) -> tuple[UserRecord, Outcome]:
    """Revoke the leader sanctions a liability brought; on a pardon its credit comes back as well."""
    now = action.at_ms
    points = sum(p for key, p in record.liabilities if key == action.key)
    if action.key in record.lifted and not (action.restore_credit and points):
        return _unchanged(record)  # lifted already; only the credit of a lift that kept it may still come back
    group_id, step, _ = liability_parts(action.key)
    revoked = [
        s._replace(revoked=True)
        for s in record.held
        if s.kind in _LEADER_KINDS.get(step, set()) and s.reason.startswith(f"group {group_id} ")
    ]
    state = record.state
    if action.restore_credit and points:
        state = state._replace(
            credit=min(policy.credit.start, credit_at(state, policy.credit, now) + points), credit_ms=now
        )
    liabilities = (
        record.liabilities
        if not action.restore_credit
        else tuple(entry for entry in record.liabilities if entry[0] != action.key)
    )
    lifted = record.lifted | {action.key}
    return _settle_user(record, state, revoked, policy, now, liabilities=liabilities, lifted=lifted)


def user_pardon(
    record: UserRecord, user_id: str, message_id: str, policy: SanctionPolicy, now_ms: int
) -> tuple[UserRecord, Outcome]:
    state, changes = pardon(record.state, user_id, message_id, policy, now_ms)
    if not changes and state == record.state:
        return _unchanged(record)
    return _settle_user(record, state, changes, policy, now_ms)


def user_unban(record: UserRecord, reason: str, policy: SanctionPolicy, now_ms: int) -> tuple[UserRecord, Outcome]:
    """An operator lets a user post again: bans and mutes in force are revoked (strikes stay on the record)."""
    revoked = [
        s._replace(revoked=True, reason=f"{s.reason}; lifted: {reason}")
        for s in _in_force(record.held, now_ms)
        if s.kind in {"ban", "mute"}
    ]
    return _settle_user(record, record.state, revoked, policy, now_ms)


def user_tick(record: UserRecord, policy: SanctionPolicy, now_ms: int) -> tuple[UserRecord, Outcome]:
    """Time passed: what has expired leaves the blacklist entry."""
    return _settle_user(record, record.state, [], policy, now_ms)


# -- groups --------------------------------------------------------------------------------------------------------


def _settle_group(
    record: GroupRecord,
    sanctions: list[Sanction],
    now_ms: int,
    forwards: list[Forward] | None = None,
    *,
    state: GroupState | None = None,
    liable: tuple[tuple[str, str, str], ...] | None = None,
    pardoned: frozenset[str] | None = None,
    flagged: bool | None = None,
) -> tuple[GroupRecord, Outcome]:
    """The new record, built once from ``record`` and what changed."""
    held, entry, changed, due = _settle_held(record.held, sanctions, record.listed, now_ms)
    new = GroupRecord(
        record.state if state is None else state,
        held,
        record.liable if liable is None else liable,
        record.pardoned if pardoned is None else pardoned,
        record.flagged if flagged is None else flagged,
        entry,
    )
    return new, Outcome(sanctions, changed, forwards or [], due)


def group_event(
    record: GroupRecord, group_id: str, *, kind: str, user_id: str, policy: SanctionPolicy, now_ms: int
) -> tuple[GroupRecord, Outcome]:
    """Membership and leadership change; crossing the member limit is reported once each way."""
    state = apply_group_event(record.state, kind, user_id)
    over = over_member_limit(state, policy.group)
    sanctions = []
    if over != record.flagged:
        count, limit = len(state.members), policy.group.member_limit
        sanctions.append(
            Sanction(
                subject=f"group:{group_id}",
                kind="member_limit_exceeded",
                reason=f"{count} members, over the limit of {limit}",
                rule_ids=(),
                evidence=(),
                start_ms=now_ms,
                expires_ms=None,
                notice=f"Your group has {count} members; the limit is {limit}. Remove members to continue.",
                revoked=not over,
            ),
        )
    return _settle_group(record, sanctions, now_ms, state=state, flagged=over)


def group_violation(record: GroupRecord, violation: Violation, policy: SanctionPolicy) -> tuple[GroupRecord, Outcome]:
    if violation.message_id in record.pardoned:
        return _settle_group(record, [], violation.at_ms)
    state, sanctions, liabilities = record_group_violation(record.state, violation, policy)
    group_sanctions = [s for s in sanctions if s.subject.startswith("group:")]
    forwards: list[Forward] = []
    liable = list(record.liable)
    for liability in liabilities:
        key = liability_key(liability.group_id, liability.step, violation.message_id)
        own = tuple(s for s in sanctions if s.subject == f"user:{liability.user_id}")
        forwards.append(LeaderLiability(liability.user_id, key, liability, own, violation.at_ms))
        liable.append((liability.user_id, liability.step, key))
    return _settle_group(record, group_sanctions, violation.at_ms, forwards, state=state, liable=tuple(liable))


def group_pardon(
    record: GroupRecord, group_id: str, message_id: str, policy: SanctionPolicy, now_ms: int
) -> tuple[GroupRecord, Outcome]:
    """A pardoned message leaves the window; if the count falls below a level, that level's sanctions go too."""
    state = record.state
    if all(v[0] != message_id for v in state.violations):  # not counted: no count falls, so no level goes
        return _settle_group(record, [], now_ms, pardoned=record.pardoned | {message_id})
    window = tuple(v for v in state.violations if v[0] != message_id)
    level = min(state.level, level_for(len(window), policy.group))
    undone = {STEPS[n] for n in STEPS if level < n <= state.level}
    revoked = [s._replace(revoked=True) for s in record.held if s.kind in {_STEP_KINDS[step] for step in undone}]
    if "warn" in undone:  # a warning is not held; say it no longer stands
        revoked.append(
            Sanction(
                f"group:{group_id}", "group_warning", "pardoned", (), (message_id,), now_ms, now_ms, "", revoked=True
            )
        )
    forwards: list[Forward] = [
        LiftLiability(user_id, key, restore_credit=True, at_ms=now_ms)
        for user_id, step, key in record.liable
        if step in undone
    ]
    return _settle_group(
        record,
        revoked,
        now_ms,
        forwards,
        state=state._replace(violations=window, level=level),
        liable=tuple(entry for entry in record.liable if entry[1] not in undone),
        pardoned=record.pardoned | {message_id},
    )


def group_lift_suspension(record: GroupRecord, reason: str, now_ms: int) -> tuple[GroupRecord, Outcome]:
    """An operator lifts a suspension: the group and its leaders' management rights are restored."""
    revoked = [
        s._replace(revoked=True, reason=f"{s.reason}; lifted: {reason}")
        for s in _in_force(record.held, now_ms)
        if s.kind == "group_suspension"
    ]
    forwards: list[Forward] = []
    if revoked:
        forwards = [
            LiftLiability(user_id, key, restore_credit=False, at_ms=now_ms)
            for user_id, step, key in record.liable
            if step == "suspend"
        ]
    return _settle_group(record, revoked, now_ms, forwards)


def group_tick(record: GroupRecord, now_ms: int) -> tuple[GroupRecord, Outcome]:
    return _settle_group(record, [], now_ms)


# -- links ---------------------------------------------------------------------------------------------------------


Sighting = tuple[str, int, str, tuple[str, ...]]  # (group, at ms, message id, categories)
_NO_SIGHTINGS: Mapping[str, Sighting] = MappingProxyType({})


class LinkRecord(NamedTuple):
    # A campaign's record holds a sighting in each of hundreds of groups: kept by group (one each, in the order they
    # were seen), with their message ids and a bound on their times beside them, so that a violation costs a copy
    # of these in C, not passes of Python over every sighting.
    sightings: Mapping[str, Sighting] = _NO_SIGHTINGS  # group -> its latest sighting, oldest first
    held: tuple[Sanction, ...] = ()
    listed: tuple[Restriction, ...] = ()
    messages: AbstractSet[str] = frozenset()  # the sightings' message ids
    oldest_ms: int | None = None  # no sighting is older than this (None: none at all)


def link_record(
    sightings: Iterable[Sighting], held: tuple[Sanction, ...] = (), listed: tuple[Restriction, ...] = ()
) -> LinkRecord:
    """A link record from its sightings in the order they were seen; a group's last sighting stands for it."""
    by_group = {s[0]: s for s in sightings}
    messages = {s[2] for s in by_group.values()}
    return LinkRecord(by_group, held, listed, messages, min((s[1] for s in by_group.values()), default=None))


def link_violation(
    record: LinkRecord, domain: str, violation: Violation, policy: SanctionPolicy
) -> tuple[LinkRecord, Outcome]:
    """A blocked message linked to ``domain``: spread over enough groups in the window, the domain is a campaign."""
    now, links = violation.at_ms, policy.links
    message_id, group_id = violation.message_id, violation.group_id
    if message_id in record.messages:
        return _settle_link(record, [], now)
    since = now - links.window_ms
    messages = set(record.messages)
    if record.oldest_ms is not None and record.oldest_ms <= since:  # some may have left the window: look at each
        sightings = {g: s for g, s in record.sightings.items() if s[1] > since and g != group_id}
        messages.intersection_update(s[2] for s in sightings.values())
        oldest = min((s[1] for s in sightings.values()), default=now)
    else:
        sightings = dict(record.sightings)
        if (seen := sightings.pop(group_id, None)) is not None:  # the group's new sighting goes last
            messages.discard(seen[2])
        oldest = now if record.oldest_ms is None else record.oldest_ms  # a bound: the popped one may have been it
    sightings[group_id] = (group_id, now, message_id, violation.categories)
    messages.add(message_id)
    new = LinkRecord(sightings, record.held, record.listed, messages, min(oldest, now))
    # Too few groups (each sighting is of one), or blacklisted already.
    if len(sightings) < links.campaign_groups or any(s.kind == "link_blacklisted" for s in _in_force(record.held, now)):
        return _settle_link(new, [], now)
    categories = tuple(sorted({c for _, _, _, found in sightings.values() for c in found}))
    notice = links.notice.format(domain=domain, count=len(sightings), categories=", ".join(categories))
    sanction = Sanction(
        subject=f"link:{domain}",
        kind="link_blacklisted",
        reason=f"a campaign: in violations in {len(sightings)} groups within {links.window_ms // 3_600_000} hours",
        rule_ids=violation.rule_ids,
        evidence=tuple(s[2] for s in sightings.values()),
        start_ms=now,
        expires_ms=now + links.blacklist_ms,
        notice=notice,
    )
    return _settle_link(new, [sanction], now)


def link_tick(record: LinkRecord, now_ms: int) -> tuple[LinkRecord, Outcome]:
    return _settle_link(record, [], now_ms)


def _settle_link(record: LinkRecord, sanctions: list[Sanction], now_ms: int) -> tuple[LinkRecord, Outcome]:
    held, entry, changed, due = _settle_held(record.held, sanctions, record.listed, now_ms)
    return record._replace(held=held, listed=entry), Outcome(sanctions, changed, [], due)
