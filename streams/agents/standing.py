"""The standing agents: strike tables per user and per group, sanctions, the blacklist and the audit trail.

    moderation.violations.v1 (key sender) --+--> user-standing  [Table users, key sender_id] --> sanctions, blacklist,
    groupwarden.user-actions.v1 (key user) -+        | violations forwarded by group_id           audit
                                                      v
    chat.group-events.v1 (key group) -------+--> group-standing [Table groups, key group_id] --> sanctions, blacklist,
    groupwarden.group-actions.v1 (key group)+        | leaders' liabilities forwarded by user id   audit
    moderation.commands.v1 --> commands: pardons, unbans and lifts forwarded to both inboxes
    groupwarden.link-actions.v1 (key domain) --> link-standing [Table links, key domain] --> a domain in violations
        of many groups is a campaign: blacklisted, and announced on moderation.notices.v1

Every decision is a pure function of streams/policy/standing.py. Effects are published, and acknowledged, before the
table is written: a crash in between replays the event, which then changes nothing but may repeat the same outputs
(with the same sanction ids). Violations only reach these agents (a few % of traffic), so Faust's per-event cost
is affordable here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import EventT, StreamT, TopicT

from streams.agents.classify import dead_letter
from streams.config import Settings
from streams.kafka.produce import partition_for
from streams.metrics import Metrics
from streams.policy import standing
from streams.policy.escalation import GROUP_EVENT_KINDS
from streams.policy.sanctions import SanctionPolicy
from streams.policy.standing import GroupRecord, Outcome
from streams.records import INVALID_EVENT
from streams.state import codec
from streams.state.expiries import Expiries
from streams.topics import (
    AUDIT,
    BLACKLIST,
    COMMANDS,
    DEADLETTER,
    GROUP_ACTIONS,
    GROUP_EVENTS,
    LINK_ACTIONS,
    NOTICES,
    SANCTIONS,
    USER_ACTIONS,
    VIOLATIONS,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TICK_SECONDS = 1.0
LAG_SECONDS = 5.0
_MAX_RETRY_SECONDS = 30.0
STANDING_ERROR = "standing_error"  # dead-letter reason for an event the tables failed on (a bug, not bad input)
COMMAND_KINDS = ("pardon_message", "unban_user", "lift_suspension")
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class InvalidEvent(ValueError):
    """An input the standing tables cannot apply; it goes to the dead-letter topic with this message."""


def _ms(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"'{name}' must be epoch milliseconds")
    return value


def _parsed(parse: Callable[[dict[str, Any]], T], doc: dict[str, Any]) -> T:
    """A record built by the codec, or InvalidEvent naming what is missing or wrong."""
    try:
        return parse(doc)
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidEvent(f"not a valid record: {type(exc).__name__}: {exc}") from None


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"'{name}' must be a non-empty string")
    return value


def _bytes(raw: Any) -> bytes:
    return raw if isinstance(raw, bytes) else b"" if raw is None else str(raw).encode()


def _object(raw: Any) -> dict[str, Any]:
    doc = orjson.loads(_bytes(raw))
    if not isinstance(doc, dict):
        raise InvalidEvent("not a JSON object")
    return doc


@dataclass(frozen=True, slots=True)
class Decided:
    """One event's outcome, ready to publish."""

    subject: str  # "user:<id>" or "group:<id>"
    outcome: Outcome
    extra: tuple[tuple[str, bytes, dict[str, Any]], ...] = ()  # (inbox, key, action) beyond the outcome's forwards
    entry: dict[str, Any] = field(default_factory=dict)  # more for the blacklist entry, if it changed


class Standing:
    """The topics, tables and schedule of the standing agents of one worker."""

    def __init__(
        self, app: faust.App, settings: Settings, policy: SanctionPolicy, rules_version: str, metrics: Metrics
    ) -> None:
        self.app, self.settings, self.policy, self.rules_version = app, settings, policy, rules_version
        self.metrics = metrics
        self.expiries = Expiries()

        def topic(*names: str) -> TopicT:
            return app.topic(*(settings.topic(n) for n in names), partitions=settings.partitions, **_RAW)

        self.sanctions, self.blacklist, self.audit = topic(SANCTIONS), topic(BLACKLIST), topic(AUDIT)
        self.deadletter, self.notices = topic(DEADLETTER), topic(NOTICES)
        self.inboxes = {inbox: topic(inbox) for inbox in (USER_ACTIONS, GROUP_ACTIONS, LINK_ACTIONS)}
        table: dict[str, Any] = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
        table["schema"] = faust.Schema(**_RAW)  # the changelog's serializers; the types give the store's
        self.users = app.Table("users", **table)
        self.groups = app.Table("groups", **table)
        self.links = app.Table("links", **table)

        self.users.on_recover(self._reschedule_users)
        self.groups.on_recover(self._reschedule_groups)
        self.links.on_recover(self._reschedule_links)
        app.agent(topic(VIOLATIONS, USER_ACTIONS), name="user-standing")(self._user_agent)
        app.agent(topic(GROUP_EVENTS, GROUP_ACTIONS), name="group-standing")(self._group_agent)
        app.agent(topic(LINK_ACTIONS), name="link-standing")(self._link_agent)
        app.agent(topic(COMMANDS), name="commands")(self._command_agent)
        app.timer(TICK_SECONDS)(self._tick)
        app.timer(LAG_SECONDS)(self._measure_lag)
        self._lagging: set[tuple[str, str]] = set()
        app.on_rebalance_complete.connect(self._rebalanced)

    # -- agents ------------------------------------------------------------------------------------------------------

    async def _user_agent(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await self._handle(event, self._decide_user)

    async def _group_agent(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await self._handle(event, self._decide_group)

    async def _link_agent(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await self._handle(event, self._decide_link)

    async def _command_agent(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await self._handle(event, self._decide_command)

    async def _handle(self, event: EventT[bytes], decide: Callable[[bytes, dict[str, Any]], Awaitable[None]]) -> None:
        """Apply one event; one that cannot be applied goes to the dead-letter topic, and the stream goes on."""
        message = event.message
        try:
            await decide(_bytes(event.key), _object(event.value))
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            # The detail names ids: it goes in the dead letter's headers, never in a log line.
            log.warning(
                "dead letter from %s[%d]@%d: %s", message.topic, message.partition, message.offset, INVALID_EVENT
            )
            await self._dead_letter(message, INVALID_EVENT, str(exc))
            self.metrics.dead_letters.labels(INVALID_EVENT).inc()
        except Exception as exc:  # a bug must not stop the stream, nor lose the event: it is kept with the error
            log.exception("applying %s[%d]@%d failed", message.topic, message.partition, message.offset)
            await self._dead_letter(message, STANDING_ERROR, repr(exc))
            self.metrics.dead_letters.labels(STANDING_ERROR).inc()

    async def _dead_letter(self, message: Any, reason: str, detail: str) -> None:
        out = dead_letter(self.settings, message, reason, detail)
        await self._send([(self.deadletter, out.key, out.value)], headers=list(out.headers))

    async def _decide_user(self, key: bytes, doc: dict[str, Any]) -> None:
        user_id = key.decode()
        raw = self.users.get(key)
        record = codec.load_user(raw) if raw is not None else standing.new_user_record(self.policy)
        action = doc.get("action", "violation")
        extra: tuple[tuple[str, bytes, dict[str, Any]], ...] = ()
        if action == "violation":
            violation = _parsed(codec.violation_from_dict, doc)
            if violation.sender_id != user_id:
                raise InvalidEvent(f"violation of {violation.sender_id} keyed by {user_id}")
            record, outcome = standing.user_violation(record, violation, self.policy)
            # Repartition: the group table counts it too, on the partition of its group.
            forward = codec.violation_to_dict(violation) | {
                "action": "violation",
                "rules_version": doc.get("rules_version"),
            }
            extra = ((GROUP_ACTIONS, violation.group_id.encode(), forward),)
            domains = doc.get("domains") or []
            if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
                raise InvalidEvent("'domains' must be a list of domains")
            extra += tuple((LINK_ACTIONS, d.encode(), forward) for d in domains)  # each linked domain counts it
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
        await self._publish(Decided(f"user:{user_id}", outcome, extra), doc)
        self._write(self.users, key, codec.dump_user(record), new=raw is None)
        self.expiries.schedule(USER_ACTIONS, key, outcome.due_ms)

    async def _decide_group(self, key: bytes, doc: dict[str, Any]) -> None:
        group_id = key.decode()
        raw = self.groups.get(key)
        record = codec.load_group(raw) if raw is not None else GroupRecord()
        action = doc.get("action", "event")
        if action == "event":  # chat.group-events.v1
            kind = _text(doc, "kind")
            if kind not in GROUP_EVENT_KINDS:
                raise InvalidEvent(f"'kind' must be one of {', '.join(GROUP_EVENT_KINDS)}")
            if _text(doc, "group_id") != group_id:
                raise InvalidEvent(f"event of group {doc['group_id']} keyed by {group_id}")
            at_ms = doc.get("at_ms", _now_ms())
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
        await self._publish(Decided(f"group:{group_id}", outcome), doc)
        self._write(self.groups, key, codec.dump_group(record), new=raw is None)
        self.expiries.schedule(GROUP_ACTIONS, key, outcome.due_ms)

    async def _decide_link(self, key: bytes, doc: dict[str, Any]) -> None:
        domain = key.decode()
        raw = self.links.get(key)
        record = codec.load_link(raw) if raw is not None else standing.LinkRecord()
        action = doc.get("action")
        if action == "violation":
            violation = _parsed(codec.violation_from_dict, doc)
            record, outcome = standing.link_violation(record, domain, violation, self.policy)
        elif action == "tick":
            record, outcome = standing.link_tick(record, _ms(doc, "at_ms"))
        else:
            raise InvalidEvent(f"unknown link action {action!r}")
        categories = sorted({c for _, _, _, found in record.sightings for c in found})
        await self._publish(Decided(f"link:{domain}", outcome, entry={"categories": categories}), doc)
        self._write(self.links, key, codec.dump_link(record), new=raw is None)
        self.expiries.schedule(LINK_ACTIONS, key, outcome.due_ms)

    async def _decide_command(self, key: bytes, doc: dict[str, Any]) -> None:  # noqa: ARG002 - any key will do
        """Check an operator command and forward it to the tables it concerns."""
        kind = _text(doc, "kind")
        command: dict[str, Any] = {"command_id": _text(doc, "command_id"), "operator": _text(doc, "operator")}
        command |= {"reason": str(doc.get("reason", "")), "at_ms": _now_ms()}
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
        await self._send([(self.inboxes[inbox], k.encode(), orjson.dumps(a | command)) for inbox, k, a in out])

    def _write(self, table: Any, key: bytes, value: bytes, *, new: bool) -> None:
        table[key] = value
        if new:
            self.metrics.table_keys.labels(table.name).inc()

    # -- outputs -----------------------------------------------------------------------------------------------------

    async def _publish(self, decided: Decided, doc: dict[str, Any]) -> None:
        """Sanctions, the blacklist entry if it changed, forwards and the audit record; wait for every ack."""
        outcome, subject = decided.outcome, decided.subject
        stamp = {
            "rules_version": doc.get("rules_version") or self.rules_version,
            "policy_version": self.policy.version,
        }
        out: list[tuple[TopicT, bytes | None, bytes | None]] = []
        for s in outcome.sanctions:
            value = {"schema": "moderation.sanction.v1", "sanction_id": codec.sanction_id(s)}
            value |= codec.sanction_to_dict(s) | stamp
            out.append((self.sanctions, s.subject.encode(), orjson.dumps(value)))
            if s.kind == "link_blacklisted" and not s.revoked:  # a campaign is public knowledge
                out.append((self.notices, s.subject.encode(), orjson.dumps(value)))
        if outcome.listing is not None:
            out.append((self.blacklist, subject.encode(), self._listing(decided, stamp)))
        forwards = [
            (USER_ACTIONS, f.user_id.encode(), codec.forward_to_dict(f) | stamp) for f in outcome.forwards
        ] + list(decided.extra)
        out += [(self.inboxes[inbox], key, orjson.dumps(action)) for inbox, key, action in forwards]
        if doc.get("action") != "tick" or outcome.sanctions or outcome.listing is not None:
            audit = {
                "schema": "moderation.audit.v1",
                "subject": subject,
                "decided_at_ms": _now_ms(),
                "input": doc,
                "sanctions": [codec.sanction_id(s) for s in outcome.sanctions],
                "blacklist": None if outcome.listing is None else codec.restrictions_to_list(outcome.listing),
                "forwarded": [{"to": inbox, "key": key.decode(), "action": a["action"]} for inbox, key, a in forwards],
            } | stamp
            out.append((self.audit, subject.encode(), orjson.dumps(audit)))
        await self._send(out)
        for s in outcome.sanctions:
            self.metrics.sanctions.labels(s.kind, "revoked" if s.revoked else "issued").inc()
        self.metrics.table_events.labels(f"{subject.split(':', 1)[0]}s").inc()

    async def _send(self, records: list[tuple[TopicT, bytes | None, bytes | None]], headers: Any = None) -> None:
        """Send and wait until the broker has every record; while it fails, try again (records repeat, none lost)."""
        for attempt in itertools.count():
            try:
                await self._sent([await t.send(key=key, value=value, headers=headers) for t, key, value in records])
            except KafkaError:
                delay = min(_MAX_RETRY_SECONDS, 0.5 * 2**attempt)
                log.warning("sending %d records failed; again in %.1f s", len(records), delay, exc_info=True)
                await asyncio.sleep(delay)
            else:
                return

    @staticmethod
    async def _sent(futures: list[Awaitable[Any]]) -> None:
        await asyncio.gather(*futures)

    @staticmethod
    def _listing(decided: Decided, stamp: dict[str, Any]) -> bytes | None:
        """A blacklist entry, or None (a tombstone) when nothing restricts the subject any more."""
        outcome, subject = decided.outcome, decided.subject
        if not outcome.listing:
            return None
        untils = [r.until_ms for r in outcome.listing]
        kind, _, subject_id = subject.partition(":")
        entry = {
            "schema": "moderation.blacklist.v1",
            "key": subject,
            "type": kind,
            "id": subject_id,
            "restrictions": codec.restrictions_to_list(outcome.listing),
            "until_ms": None if None in untils else max(u for u in untils if u is not None),
        }
        return orjson.dumps(entry | decided.entry | stamp)

    def _rebalanced(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:  # noqa: ARG002
        self.metrics.rebalances.labels("standing").inc()

    async def _measure_lag(self) -> None:
        """Records not yet handed to the agents, per input partition, from the fetch high watermark."""
        consumer = self.app.consumer
        changelogs = {t.changelog_topic.get_topic_name() for t in (self.users, self.groups, self.links)}
        # Faust keeps the last offset it handed to a stream, and the committed one, only in private mappings.
        read, committed = getattr(consumer, "_read_offset", {}), getattr(consumer, "_committed_offset", {})
        now: set[tuple[str, str]] = set()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp) if tp.topic not in changelogs else None
            last = read.get(tp)
            done = last + 1 if last is not None else committed.get(tp)
            if highwater is None or done is None:
                continue
            now.add((tp.topic, str(tp.partition)))
            self.metrics.lag.labels("standing", tp.topic, str(tp.partition)).set(max(0, highwater - done))
        for topic, partition in self._lagging - now:  # moved to another worker
            self.metrics.lag.remove("standing", topic, partition)
        self._lagging = now

    # -- expiry ------------------------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        now = _now_ms()
        tick = orjson.dumps({"action": "tick", "at_ms": now})
        await self._send([(self.inboxes[inbox], key, tick) for inbox, key in self.expiries.pop_due(now)])

    async def _reschedule_users(self) -> None:
        for key, raw in self._owned(self.users):
            self.expiries.schedule(USER_ACTIONS, key, _next_change(codec.load_user(raw).listed))

    async def _reschedule_groups(self) -> None:
        for key, raw in self._owned(self.groups):
            self.expiries.schedule(GROUP_ACTIONS, key, _next_change(codec.load_group(raw).listed))

    async def _reschedule_links(self) -> None:
        for key, raw in self._owned(self.links):
            self.expiries.schedule(LINK_ACTIONS, key, _next_change(codec.load_link(raw).listed))

    def _owned(self, table: Any) -> list[tuple[bytes, bytes]]:
        """The records of the partitions this worker owns (its store also holds standby copies of others)."""
        owned = {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == table.changelog_topic.get_topic_name()
        }
        items = [(k, v) for k, v in table.items() if partition_for(k, self.settings.partitions) in owned]
        self.metrics.table_keys.labels(table.name).set(len(items))
        return items


def _next_change(listed: tuple[standing.Restriction, ...]) -> int | None:
    return min((r.until_ms for r in listed if r.until_ms is not None), default=None)
