"""Table records and topic payloads as JSON: what the standing stage stores and sends, and read back."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from streams.policy.escalation import GroupState, Liability
from streams.policy.ladder import Sanction, Strike, UserState, Violation
from streams.policy.rules import Severity
from streams.policy.standing import (
    Forward,
    GroupRecord,
    LeaderLiability,
    LiftLiability,
    LinkRecord,
    Restriction,
    UserRecord,
    link_record,
)


def sanction_to_dict(s: Sanction) -> dict[str, Any]:
    """As JSON has it; tuples stay tuples (orjson writes them as arrays), not copied into lists."""
    return {
        "subject": s.subject,
        "kind": s.kind,
        "reason": s.reason,
        "rule_ids": s.rule_ids,
        "evidence": s.evidence,
        "start_ms": s.start_ms,
        "expires_ms": s.expires_ms,
        "notice": s.notice,
        "revoked": s.revoked,
    }


def sanction_message(s: Sanction, sanction_id: str, rules_version: Any, policy_version: str) -> bytes:
    """A moderation.sanctions.v1 record: sanction_to_dict's keys in its order, between the id and the versions,
    written in one dict."""
    return orjson.dumps(
        {
            "schema": "moderation.sanction.v1",
            "sanction_id": sanction_id,
            "subject": s.subject,
            "kind": s.kind,
            "reason": s.reason,
            "rule_ids": s.rule_ids,
            "evidence": s.evidence,
            "start_ms": s.start_ms,
            "expires_ms": s.expires_ms,
            "notice": s.notice,
            "revoked": s.revoked,
            "rules_version": rules_version,
            "policy_version": policy_version,
        }
    )


def sanction_from_dict(d: dict[str, Any]) -> Sanction:
    return Sanction(  # in the order of its fields, positional: records hold many, and keywords cost
        d["subject"],
        d["kind"],
        d["reason"],
        tuple(d["rule_ids"]),
        tuple(d["evidence"]),
        d["start_ms"],
        d["expires_ms"],
        d["notice"],
        d["revoked"],
    )


def sanction_id(s: Sanction) -> str:
    """The same action always has the same id, so a consumer can drop a redelivered one."""
    what = orjson.dumps((s.subject, s.kind, s.start_ms, s.evidence))  # unambiguous, whatever the ids hold
    issued = f"{s.subject}/{s.kind}/{hashlib.sha256(what).digest()[:8].hex()}"
    return f"{issued}/revoked" if s.revoked else issued


_SEVERITIES = dict(Severity.__members__)  # a plain dict: Severity[name] goes through the enum's metaclass


def violation_from_dict(d: dict[str, Any]) -> Violation:
    """A moderation.violations.v1 record; KeyError or ValueError when it is not one."""
    return Violation(  # positional, in the order of its fields: every event of the standing tables reads one
        str(d["message_id"]),
        str(d["sender_id"]),
        str(d["group_id"]),
        int(d["at_ms"]),
        _SEVERITIES[str(d["severity"]).upper()],
        tuple(d["categories"]),
        tuple(d["rule_ids"]),
    )


def violation_to_dict(v: Violation) -> dict[str, Any]:
    return {
        "message_id": v.message_id,
        "sender_id": v.sender_id,
        "group_id": v.group_id,
        "at_ms": v.at_ms,
        "severity": v.severity.label,
        "categories": list(v.categories),
        "rule_ids": list(v.rule_ids),
    }


def restrictions_to_list(entry: tuple[Restriction, ...]) -> list[dict[str, Any]]:
    return [{"kind": r.kind, "until_ms": r.until_ms, "reason": r.reason} for r in entry]


def _restrictions(items: list[dict[str, Any]]) -> tuple[Restriction, ...]:
    return tuple([Restriction(r["kind"], r["until_ms"], r["reason"]) for r in items])


# -- forwarded actions (to the internal user and group action topics) ------------------------------------------------


def forward_to_dict(f: Forward) -> dict[str, Any]:
    if isinstance(f, LeaderLiability):
        liability = f.liability
        return {
            "action": "liability",
            "user_id": f.user_id,
            "key": f.key,
            "group_id": liability.group_id,
            "step": liability.step,
            "points": liability.points,
            "evidence": liability.evidence,
            "sanctions": [sanction_to_dict(s) for s in f.sanctions],
            "at_ms": f.at_ms,
        }
    return {
        "action": "lift_liability",
        "user_id": f.user_id,
        "key": f.key,
        "restore_credit": f.restore_credit,
        "at_ms": f.at_ms,
    }


def forward_from_dict(d: dict[str, Any]) -> Forward:
    if d["action"] == "liability":
        liability = Liability(d["user_id"], float(d["points"]), d["group_id"], d["step"], tuple(d["evidence"]))
        sanctions = tuple(sanction_from_dict(s) for s in d["sanctions"])
        return LeaderLiability(d["user_id"], d["key"], liability, sanctions, int(d["at_ms"]))
    return LiftLiability(d["user_id"], d["key"], restore_credit=bool(d["restore_credit"]), at_ms=int(d["at_ms"]))


# -- table records ---------------------------------------------------------------------------------------------------


def sized(raw: bytes) -> bytes:
    """A copy the size of the JSON: orjson 3.12+ returns bytes on an allocation of 4 KiB or more, which counts
    wherever many are held: a record lives in a table (memory://, or a replay's) as long as its subject does, and a
    replay holds a chunk of outputs before each send."""
    return bytes(memoryview(raw))


def dump_user(r: UserRecord) -> bytes:
    s = r.state
    return sized(
        orjson.dumps(
            {
                "credit": s.credit,
                "credit_ms": s.credit_ms,
                "strikes": [(k.message_id, k.at_ms, k.rung, k.penalty, k.categories, k.rule_ids) for k in s.strikes],
                "pardoned": sorted(s.pardoned),
                "held": [sanction_to_dict(h) for h in r.held],
                "liabilities": r.liabilities,
                "lifted": sorted(r.lifted),
                "listed": restrictions_to_list(r.listed),
            }
        )
    )


def load_user(raw: bytes) -> UserRecord:
    d = orjson.loads(raw)
    strikes = tuple(
        [Strike(m, at, rung, pen, tuple(cats), tuple(rules)) for m, at, rung, pen, cats, rules in d["strikes"]]
    )
    return UserRecord(
        state=UserState(d["credit"], d["credit_ms"], strikes, frozenset(d["pardoned"])),
        held=tuple([sanction_from_dict(h) for h in d["held"]]),
        liabilities=tuple([(key, float(points)) for key, points in d["liabilities"]]),
        lifted=frozenset(d["lifted"]),
        listed=_restrictions(d["listed"]),
    )


def dump_group(r: GroupRecord) -> bytes:
    s = r.state
    return sized(
        orjson.dumps(
            {
                "owner": s.owner,
                "managers": sorted(s.managers),
                "members": sorted(s.members),
                "violations": s.violations,
                "level": s.level,
                "held": [sanction_to_dict(h) for h in r.held],
                "liable": r.liable,
                "pardoned": sorted(r.pardoned),
                "flagged": r.flagged,
                "listed": restrictions_to_list(r.listed),
            }
        )
    )


def load_group(raw: bytes) -> GroupRecord:
    d = orjson.loads(raw)
    state = GroupState(
        owner=d["owner"],
        managers=frozenset(d["managers"]),
        members=frozenset(d["members"]),
        violations=tuple([(m, at, tuple(cats)) for m, at, cats in d["violations"]]),
        level=d["level"],
    )
    return GroupRecord(
        state=state,
        held=tuple([sanction_from_dict(h) for h in d["held"]]),
        liable=tuple([(u, step, key) for u, step, key in d["liable"]]),
        pardoned=frozenset(d["pardoned"]),
        flagged=d["flagged"],
        listed=_restrictions(d["listed"]),
    )


def dump_link(r: LinkRecord) -> bytes:
    return sized(
        orjson.dumps(
            {
                "sightings": tuple(r.sightings.values()),
                "held": [sanction_to_dict(h) for h in r.held],
                "listed": restrictions_to_list(r.listed),
            }
        )
    )


def load_link(raw: bytes) -> LinkRecord:
    d = orjson.loads(raw)
    return link_record(
        [(g, at, m, tuple(cats)) for g, at, m, cats in d["sightings"]],
        tuple(sanction_from_dict(h) for h in d["held"]),
        _restrictions(d["listed"]),
    )
