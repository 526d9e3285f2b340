"""Group standing: who runs a group, its violations in a rolling window, and the escalation they lead to.

A group that keeps carrying violations is warned, then suspended, then shut down; its owner and managers answer for
it (credit lost, management rights suspended or revoked, the owner barred from creating groups). Pure functions of
the state, an event, the policy and the event's own time; every violation counts once, by message id.
"""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple

from streams.policy.ladder import Sanction, Violation
from streams.policy.sanctions import DAY_MS, GroupPolicy, SanctionPolicy

# Escalation levels, in order.
NONE, WARNED, SUSPENDED, SHUT_DOWN = 0, 1, 2, 3
GROUP_EVENT_KINDS = (
    "created",
    "member_joined",
    "member_left",
    "manager_added",
    "manager_removed",
    "ownership_transferred",
)
STEPS = {WARNED: "warn", SUSPENDED: "suspend", SHUT_DOWN: "shut_down"}
_MESSAGE_ID, _AT_MS = itemgetter(0), itemgetter(1)  # of a window's (message id, at ms, categories)


class GroupState(NamedTuple):
    owner: str | None = None
    managers: frozenset[str] = frozenset()
    members: frozenset[str] = frozenset()
    violations: tuple[tuple[str, int, tuple[str, ...]], ...] = ()  # (message id, at ms, categories) in the window
    level: int = NONE


class Liability(NamedTuple):
    """Credit an owner or manager loses for their group; applied in the user table, keyed by the user."""

    user_id: str
    points: float
    group_id: str
    step: str  # warn | suspend | shut_down
    evidence: tuple[str, ...]


def apply_group_event(state: GroupState, kind: str, user_id: str) -> GroupState:
    """created | member_joined | member_left | manager_added | manager_removed | ownership_transferred."""
    if kind == "created":
        return state._replace(owner=user_id, members=state.members | {user_id})
    if kind == "member_joined":
        return state._replace(members=state.members | {user_id})
    if kind == "member_left":
        return state._replace(members=state.members - {user_id}, managers=state.managers - {user_id})
    if kind == "manager_added":
        return state._replace(managers=state.managers | {user_id})
    if kind == "manager_removed":
        return state._replace(managers=state.managers - {user_id})
    if kind == "ownership_transferred":
        return state._replace(owner=user_id, managers=state.managers - {user_id}, members=state.members | {user_id})
    raise ValueError(f"unknown group event kind {kind!r}")


def over_member_limit(state: GroupState, policy: GroupPolicy) -> bool:
    return len(state.members) > policy.member_limit


def level_for(count: int, policy: GroupPolicy) -> int:
    if count >= policy.shut_down_at:
        return SHUT_DOWN
    if count >= policy.suspend_at:
        return SUSPENDED
    return WARNED if count >= policy.warn_at else NONE


def record_group_violation(
    state: GroupState,
    violation: Violation,
    policy: SanctionPolicy,
) -> tuple[GroupState, list[Sanction], list[Liability]]:
    """Count a violation against its group once; a new level sanctions the group and holds its leaders liable."""
    now, group, kept = violation.at_ms, policy.group, state.violations
    if kept:  # passes in C over the window: a busy group's holds dozens
        if violation.message_id in map(_MESSAGE_ID, kept):
            return state, [], []
        times = list(map(_AT_MS, kept))
        if now <= max(times) - group.window_ms:
            return state, [], []  # older than the window of what we have seen: a replay, or too late to count
        if min(times) <= now - group.window_ms:
            kept = tuple([v for v in kept if v[1] > now - group.window_ms])
    window = (*kept, (violation.message_id, now, violation.categories))
    level = max(state.level, level_for(len(window), group))  # a group does not climb back down by waiting
    new_state = GroupState(state.owner, state.managers, state.members, window, level)
    if level == state.level:
        return new_state, [], []
    step = STEPS[level]
    evidence = tuple(message_id for message_id, _, _ in window)
    categories = tuple(sorted({category for _, _, found in window for category in found}))
    sanctions = [
        _group_sanction(
            violation.group_id,
            step,
            count=len(window),
            categories=categories,
            evidence=evidence,
            now=now,
            policy=policy,
        ),
    ]
    liabilities = []
    leaders = [(state.owner, group.owner_penalty)] if state.owner else []
    leaders += [(manager, group.manager_penalty) for manager in sorted(state.managers)]
    for user_id, penalty in leaders:
        assert user_id is not None
        liabilities.append(Liability(user_id, penalty[step], violation.group_id, step, evidence))
        sanctions.extend(
            _leader_sanctions(
                user_id,
                violation.group_id,
                step,
                is_owner=user_id == state.owner,
                evidence=evidence,
                now=now,
                policy=group,
            )
        )
    return new_state, sanctions, liabilities


def _group_sanction(
    group_id: str,
    step: str,
    *,
    count: int,
    categories: tuple[str, ...],
    evidence: tuple[str, ...],
    now: int,
    policy: SanctionPolicy,
) -> Sanction:
    kind = {"warn": "group_warning", "suspend": "group_suspension", "shut_down": "group_shutdown"}[step]
    expires = now + policy.group.suspend_ms if step == "suspend" else None
    notice = policy.notices[f"group_{step}"].format(
        categories=", ".join(categories),
        days=f"{policy.group.suspend_ms / DAY_MS:g}",
        count=count,
    )
    return Sanction(f"group:{group_id}", kind, f"{count} violations in the window", (), evidence, now, expires, notice)


def _leader_sanctions(
    user_id: str,
    group_id: str,
    step: str,
    *,
    is_owner: bool,
    evidence: tuple[str, ...],
    now: int,
    policy: GroupPolicy,
) -> list[Sanction]:
    """Management rights suspended at a suspension and revoked at a shut-down; the owner barred from new groups."""
    role = "owner" if is_owner else "manager"
    subject = f"user:{user_id}"
    if step == "suspend":
        until = now + policy.management_suspended_ms
        notice = f"As {role} of group {group_id}, your management rights are suspended while it is suspended."
        return [
            Sanction(subject, "management_suspended", f"group {group_id} suspended", (), evidence, now, until, notice)
        ]
    if step == "shut_down":
        out = [
            Sanction(
                subject,
                "management_revoked",
                f"group {group_id} shut down",
                (),
                evidence,
                now,
                None,
                f"As {role} of group {group_id}, which was shut down, you lose its management rights.",
            ),
        ]
        if is_owner:
            until = now + policy.group_creation_barred_ms
            notice = f"As owner of group {group_id}, which was shut down, you may not create groups for a while."
            out.append(
                Sanction(
                    subject, "group_creation_barred", f"group {group_id} shut down", (), evidence, now, until, notice
                )
            )
        return out
    return []
