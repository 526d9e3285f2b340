"""What each standing table does with one input: its stored record and the event in, its new record and outputs out.

Pure: no Faust, no broker, the clock passed in. The standing stage (streams/agents/standing.py) runs these on the
partitions a worker owns; a replay (streams/replay.py) runs the same functions in one process, in event order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from streams.policy import standing
from streams.policy.escalation import GROUP_EVENT_KINDS
from streams.policy.ladder import Sanction
from streams.policy.sanctions import SanctionPolicy
from streams.policy.standing import GroupRecord, Outcome, UserRecord
from streams.state import codec
from streams.topics import AUDIT, BLACKLIST, GROUP_ACTIONS, LINK_ACTIONS, NOTICES, SANCTIONS, USER_ACTIONS

T = TypeVar("T")
R = TypeVar("R")
COMMAND_KINDS = ("pardon_message", "unban_user", "lift_suspension")
INBOXES = (USER_ACTIONS, GROUP_ACTIONS, LINK_ACTIONS)  # the internal topics that feed the tables


class InvalidEvent(ValueError):
    """An input the standing tables cannot apply; it goes to the dead-letter topic with this message."""


class Output(NamedTuple):  # a named tuple: an event makes several, and it builds in half a frozen dataclass's time
    topic: str  # the topic's name without the deployment's prefix
    key: bytes
    value: bytes | None  # None: a tombstone


class Applied(NamedTuple, Generic[R]):  # a named tuple, as Output is: every event makes one
    """One event applied to one table."""

    record: R | None  # the table's new record for the key (decoded, or its bytes); None for commands: no state
    outputs: list[Output]
    sanctions: list[Sanction]
    due_ms: int | None = None  # when the record next changes by itself (a tick is due)


_Forwarded = tuple[str, bytes, str, bytes]  # to an inbox: (its topic, key, action, the action as JSON)


def parse(raw: bytes | None) -> dict[str, Any]:
    """An event's JSON object, or InvalidEvent."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("not a JSON object")
    return doc


def _ms(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"'{name}' must be epoch milliseconds")
    return value


def _parsed(parse_record: Callable[[dict[str, Any]], T], doc: dict[str, Any]) -> T:
    """A record built by the codec, or InvalidEvent naming what is missing or wrong."""
    try:
        return parse_record(doc)
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidEvent(f"not a valid record: {type(exc).__name__}: {exc}") from None


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"'{name}' must be a non-empty string")
    return value


class Tables:
    """The standing tables' decisions under one sanction policy; every verdict-less event is stamped with
    ``rules_version``."""

    def __init__(self, policy: SanctionPolicy, rules_version: str) -> None:
        self.policy, self.rules_version = policy, rules_version
        self._new_user = standing.new_user_record(policy)

    # One event on a record stored as bytes: decoded, decided and encoded again. A batch decides on decoded records
    # (``decide_user`` and the others) and encodes each changed one once, whatever the events it took.

    def user(self, raw: bytes | None, key: bytes, doc: dict[str, Any], now_ms: int) -> Applied[bytes]:
        decoded = None if raw is None else codec.load_user(raw)
        return _encoded(self.decide_user(decoded, key, doc, now_ms), codec.dump_user)

    def group(self, raw: bytes | None, key: bytes, doc: dict[str, Any], now_ms: int) -> Applied[bytes]:
        decoded = None if raw is None else codec.load_group(raw)
        return _encoded(self.decide_group(decoded, key, doc, now_ms), codec.dump_group)

    def link(self, raw: bytes | None, key: bytes, doc: dict[str, Any], now_ms: int) -> Applied[bytes]:
        decoded = None if raw is None else codec.load_link(raw)
        return _encoded(self.decide_link(decoded, key, doc, now_ms), codec.dump_link)

    def decide_user(
        self, record: UserRecord | None, key: bytes, doc: dict[str, Any], now_ms: int
    ) -> Applied[UserRecord]:
        user_id = key.decode()
        if record is None:
            record = self._new_user
        action = doc.get("action", "violation")
        extra: tuple[_Forwarded, ...] = ()
        if action == "violation":
            violation = _parsed(codec.violation_from_dict, doc)
            if violation.sender_id != user_id:
                raise InvalidEvent(f"violation of {violation.sender_id} keyed by {user_id}")
            record, outcome = standing.user_violation(record, violation, self.policy)
            # Repartition: the group table counts it too, on the partition of its group.
            forward = codec.violation_to_dict(violation)
            forward["action"], forward["rules_version"] = "violation", doc.get("rules_version")
            value = orjson.dumps(forward)  # once, for the group and every linked domain
            extra = ((GROUP_ACTIONS, violation.group_id.encode(), "violation", value),)
            domains = doc.get("domains") or []
            if domains:  # most violations link nowhere
                if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
                    raise InvalidEvent("'domains' must be a list of domains")
                extra += tuple((LINK_ACTIONS, d.encode(), "violation", value) for d in domains)  # each counts it
        elif action in ("liability", "lift_liability"):
            forwarded = _parsed(codec.forward_from_dict, doc)
            if isinstance(forwarded, standing.LeaderLiability):
                record, outcome = standing.user_liability(record, forwarded, self.policy)
            else:
                record, outcome = standing.user_lift_liability(record, forwarded, self.policy)
        elif action == "pardon":
            record, outcome = standing.user_pardon(
                record, user_id, _text(doc, "message_id"), self.policy, _ms(doc, "at_ms")
            )
        elif action == "unban":
            record, outcome = standing.user_unban(record, doc.get("reason", ""), self.policy, _ms(doc, "at_ms"))
        elif action == "tick":
            record, outcome = standing.user_tick(record, self.policy, _ms(doc, "at_ms"))
        else:
            raise InvalidEvent(f"unknown user action {action!r}")
        return self._applied(record, f"user:{user_id}", outcome, doc, now_ms, extra=extra)

    def decide_group(
        self, record: GroupRecord | None, key: bytes, doc: dict[str, Any], now_ms: int
    ) -> Applied[GroupRecord]:
        group_id = key.decode()
        if record is None:
            record = GroupRecord()
        action = doc.get("action", "event")
        if action == "event":  # chat.group-events.v1
            kind = _text(doc, "kind")
            if kind not in GROUP_EVENT_KINDS:
                raise InvalidEvent(f"'kind' must be one of {', '.join(GROUP_EVENT_KINDS)}")
            if _text(doc, "group_id") != group_id:
                raise InvalidEvent(f"event of group {doc['group_id']} keyed by {group_id}")
            at_ms = doc.get("at_ms", now_ms)
            if isinstance(at_ms, bool) or not isinstance(at_ms, int):
                raise InvalidEvent("'at_ms' must be epoch milliseconds")
            user = _text(doc, "user_id")
            record, outcome = standing.group_event(
                record, group_id, kind=kind, user_id=user, policy=self.policy, now_ms=at_ms
            )
        elif action == "violation":
            record, outcome = standing.group_violation(record, _parsed(codec.violation_from_dict, doc), self.policy)
        elif action == "pardon":
            record, outcome = standing.group_pardon(
                record, group_id, _text(doc, "message_id"), self.policy, _ms(doc, "at_ms")
            )
        elif action == "lift_suspension":
            record, outcome = standing.group_lift_suspension(record, doc.get("reason", ""), _ms(doc, "at_ms"))
        elif action == "tick":
            record, outcome = standing.group_tick(record, _ms(doc, "at_ms"))
        else:
            raise InvalidEvent(f"unknown group action {action!r}")
        return self._applied(record, f"group:{group_id}", outcome, doc, now_ms)

    def decide_link(
        self, record: standing.LinkRecord | None, key: bytes, doc: dict[str, Any], now_ms: int
    ) -> Applied[standing.LinkRecord]:
        domain = key.decode()
        if record is None:
            record = standing.LinkRecord()
        action = doc.get("action")
        if action == "violation":
            violation = _parsed(codec.violation_from_dict, doc)
            record, outcome = standing.link_violation(record, domain, violation, self.policy)
        elif action == "tick":
            record, outcome = standing.link_tick(record, _ms(doc, "at_ms"))
        else:
            raise InvalidEvent(f"unknown link action {action!r}")
        entry = None  # its categories, only for an entry that lists the domain: most outcomes change no entry
        if outcome.listing:
            entry = {"categories": sorted({c for _, _, _, found in record.sightings.values() for c in found})}
        return self._applied(record, f"link:{domain}", outcome, doc, now_ms, entry=entry)

    @staticmethod
    def command(doc: dict[str, Any], now_ms: int) -> Applied[Any]:
        """Check an operator command (moderation.commands.v1) and forward it to the tables it concerns."""
        kind = _text(doc, "kind")
        command: dict[str, Any] = {"command_id": _text(doc, "command_id"), "operator": _text(doc, "operator")}
        command |= {"reason": str(doc.get("reason", "")), "at_ms": now_ms}
        out: list[tuple[str, str, dict[str, Any]]] = []
        if kind == "pardon_message":
            message_id = _text(doc, "message_id")
            out.append((USER_ACTIONS, _text(doc, "user_id"), {"action": "pardon", "message_id": message_id}))
            out.append((GROUP_ACTIONS, _text(doc, "group_id"), {"action": "pardon", "message_id": message_id}))
        elif kind == "unban_user":
            out.append((USER_ACTIONS, _text(doc, "user_id"), {"action": "unban"}))
        elif kind == "lift_suspension":
            out.append((GROUP_ACTIONS, _text(doc, "group_id"), {"action": "lift_suspension"}))
        else:
            raise InvalidEvent(f"'kind' must be one of {', '.join(COMMAND_KINDS)}")
        return Applied(None, [Output(inbox, k.encode(), orjson.dumps(a | command)) for inbox, k, a in out], [])

    def _applied(
        self,
        record: R,
        subject: str,
        outcome: Outcome,
        doc: dict[str, Any],
        now_ms: int,
        *,
        extra: tuple[_Forwarded, ...] = (),
        entry: dict[str, Any] | None = None,
    ) -> Applied[R]:
        """Sanctions, the blacklist entry if it changed, forwards and the audit record, in the order they are sent.

        ``subject``: "user:<id>", "group:<id>" or "link:<domain>"; ``extra``: forwards beyond the outcome's;
        ``entry``: more for the blacklist entry. Each JSON object is built once, in the key order of its schema, with
        the rules and policy versions as its last two keys."""
        rules_version = doc.get("rules_version") or self.rules_version
        policy_version = self.policy.version
        out: list[Output] = []
        sanction_ids: list[str] = []
        for s in outcome.sanctions:
            sanction_id = codec.sanction_id(s)
            sanction_ids.append(sanction_id)
            value = codec.sanction_message(s, sanction_id, rules_version, policy_version)
            sanctioned = s.subject.encode()
            out.append(Output(SANCTIONS, sanctioned, value))
            if s.kind == "link_blacklisted" and not s.revoked:  # a campaign is public knowledge
                out.append(Output(NOTICES, sanctioned, value))
        subject_key = subject.encode()
        restrictions = None  # the entry's lines, for the blacklist and the audit alike
        if outcome.listing is not None:
            restrictions = codec.restrictions_to_list(outcome.listing)
            listing = _listing(
                subject, outcome, restrictions, entry, rules_version=rules_version, policy_version=policy_version
            )
            out.append(Output(BLACKLIST, subject_key, listing))
        forwards = extra
        if outcome.forwards:
            forwards = (*(_forwarded(f, rules_version, policy_version) for f in outcome.forwards), *extra)
        out += [Output(inbox, key, value) for inbox, key, _, value in forwards]
        if outcome.sanctions or outcome.listing is not None or doc.get("action") != "tick":
            audit = {
                "schema": "moderation.audit.v1",
                "subject": subject,
                "decided_at_ms": now_ms,
                "input": doc,
                "sanctions": sanction_ids,
                "blacklist": restrictions,
                "forwarded": [{"to": inbox, "key": key.decode(), "action": a} for inbox, key, a, _ in forwards],
                "rules_version": rules_version,
                "policy_version": policy_version,
            }
            out.append(Output(AUDIT, subject_key, orjson.dumps(audit)))
        return Applied(record, out, outcome.sanctions, outcome.due_ms)


def _forwarded(f: standing.Forward, rules_version: Any, policy_version: str) -> _Forwarded:
    """A forward of an outcome to the user table, stamped with the versions that decided it."""
    action = codec.forward_to_dict(f)
    action["rules_version"], action["policy_version"] = rules_version, policy_version
    return USER_ACTIONS, f.user_id.encode(), action["action"], orjson.dumps(action)


def _encoded(applied: Applied[Any], dump: Callable[[Any], bytes]) -> Applied[bytes]:
    """``applied`` with its record encoded."""
    record = None if applied.record is None else dump(applied.record)
    return Applied(record, applied.outputs, applied.sanctions, applied.due_ms)


def _listing(
    subject: str,
    outcome: Outcome,
    restrictions: list[dict[str, Any]],
    more: dict[str, Any] | None,
    *,
    rules_version: Any,
    policy_version: str,
) -> bytes | None:
    """A blacklist entry, or None (a tombstone) when nothing restricts the subject any more."""
    if not outcome.listing:
        return None
    untils = [r.until_ms for r in outcome.listing]
    kind, _, subject_id = subject.partition(":")
    entry = {
        "schema": "moderation.blacklist.v1",
        "key": subject,
        "type": kind,
        "id": subject_id,
        "restrictions": restrictions,
        "until_ms": None if None in untils else max(u for u in untils if u is not None),
    }
    if more:
        entry |= more
    entry["rules_version"], entry["policy_version"] = rules_version, policy_version
    return orjson.dumps(entry)


def next_change(listed: tuple[standing.Restriction, ...]) -> int | None:
    """When a stored record's blacklist entry next changes by itself: its earliest ending restriction."""
    return min((r.until_ms for r in listed if r.until_ms is not None), default=None)
