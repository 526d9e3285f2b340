"""The standing agents: strike tables per user and per group, sanctions, the blacklist and the audit trail.

    moderation.violations.v1 (key sender) --+--> user-standing  [Table users, key sender_id] --> sanctions, blacklist,
    groupwarden.user-actions.v1 (key user) -+        | violations forwarded by group_id           audit
                                                      v
    chat.group-events.v1 (key group) -------+--> group-standing [Table groups, key group_id] --> sanctions, blacklist,
    groupwarden.group-actions.v1 (key group)+        | leaders' liabilities forwarded by user id   audit
    moderation.commands.v1 --> commands: pardons, unbans and lifts forwarded to both inboxes
    groupwarden.link-actions.v1 (key domain) --> link-standing [Table links, key domain] --> a domain in violations
        of many groups is a campaign: blacklisted, and announced on moderation.notices.v1

Every decision is a pure function of streams/state/tables.py, which replays run too. Effects are published, and
acknowledged, before the table is written: a crash in between replays the event, which then changes nothing but may
repeat the same outputs (with the same sanction ids). Violations only reach these agents (a few % of traffic), so
Faust's per-event cost is affordable here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import KafkaError
from faust import streams as faust_streams
from faust.streams import Stream
from faust.types import EventT, StreamT, TopicT

from streams.agents.classify import dead_letter
from streams.config import Settings
from streams.kafka.produce import partition_for
from streams.metrics import Metrics
from streams.policy.ladder import Sanction
from streams.policy.sanctions import SanctionPolicy
from streams.records import INVALID_EVENT
from streams.state import codec
from streams.state.expiries import Expiries
from streams.state.tables import INBOXES, Applied, InvalidEvent, Tables, next_change, parse
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

TICK_SECONDS = 1.0
LAG_SECONDS = 5.0
_MAX_RETRY_SECONDS = 30.0
BATCH_EVENTS = 500  # events decided together, their outputs sent together: one broker round trip a batch
BATCH_SECONDS = 0.05  # how long a batch waits to fill
# How many changelog records may wait in Faust's producer buffer before a table write waits for them to be sent:
# Faust warns when more than 100 wait, and a batch writes up to BATCH_EVENTS entries.
CHANGELOG_WAITING = 50
STANDING_ERROR = "standing_error"  # dead-letter reason for an event the tables failed on (a bug, not bad input)
_Headers = list[tuple[str, bytes]] | None
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _batches(stream: StreamT[bytes]) -> AsyncIterator[Sequence[EventT[bytes]]]:
    """The stream's events a batch at a time; Faust acknowledges a batch's events once the next one is asked for."""
    return cast(Stream[bytes], stream).take_events(BATCH_EVENTS, within=BATCH_SECONDS)


@contextlib.contextmanager
def _within(event: EventT[bytes]) -> Iterator[None]:
    """Table reads and writes as if ``event`` were the one being iterated: Faust's tables take the partition of the
    store and of the changelog from it, and a batch has none of its own."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def _bytes(raw: Any) -> bytes:
    return raw if isinstance(raw, bytes) else b"" if raw is None else str(raw).encode()


class Standing:
    """The topics, tables and schedule of the standing agents of one worker."""

    def __init__(
        self, app: faust.App, settings: Settings, policy: SanctionPolicy, rules_version: str, metrics: Metrics
    ) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics
        self.tables = Tables(policy, rules_version)
        self.expiries = Expiries()

        def topic(*names: str) -> TopicT:
            return app.topic(*(settings.topic(n) for n in names), partitions=settings.partitions, **_RAW)

        self.outputs = {name: topic(name) for name in (SANCTIONS, BLACKLIST, AUDIT, NOTICES, DEADLETTER, *INBOXES)}
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

    def use(self, policy: SanctionPolicy, rules_version: str) -> None:
        """Decide later events under a new sanction policy and rule-pack version."""
        self.tables = Tables(policy, rules_version)

    # -- agents ------------------------------------------------------------------------------------------------------

    async def _user_agent(self, stream: StreamT[bytes]) -> None:
        async for events in _batches(stream):
            await self._apply(events, self.users, USER_ACTIONS, self.tables.user)

    async def _group_agent(self, stream: StreamT[bytes]) -> None:
        async for events in _batches(stream):
            await self._apply(events, self.groups, GROUP_ACTIONS, self.tables.group)

    async def _link_agent(self, stream: StreamT[bytes]) -> None:
        async for events in _batches(stream):
            await self._apply(events, self.links, LINK_ACTIONS, self.tables.link)

    async def _command_agent(self, stream: StreamT[bytes]) -> None:
        async for events in _batches(stream):
            await self._apply(events, None, None, lambda _raw, _key, doc, now: Tables.command(doc, now))

    async def _apply(
        self,
        events: Sequence[EventT[bytes]],
        table: Any,
        inbox: str | None,
        decide: Callable[[bytes | None, bytes, dict[str, Any], int], Applied],
    ) -> None:
        """Decide a batch of events in order, publish every output and wait for every ack, then write the table.

        One round trip to the broker a batch, not an event. The events are acknowledged to Faust only after this
        returns, so a crash before the writes replays the batch, which then changes nothing (decisions are idempotent
        by message id) but may repeat outputs. An event that cannot be applied goes to the dead-letter topic."""
        written: dict[bytes, tuple[bytes, int | None, EventT[bytes], bool]] = {}  # key -> (record, due, event, new)
        out: list[tuple[TopicT, bytes | None, bytes | None, _Headers]] = []
        sanctions: list[Sanction] = []
        dead: list[str] = []
        for event in events:
            message, key = event.message, _bytes(event.key)
            try:
                with _within(event):
                    raw = written[key][0] if key in written else table.get(key) if table is not None else None
                applied = decide(raw, key, parse(_bytes(event.value)), _now_ms())
            except InvalidEvent as exc:
                # The detail names ids: it goes in the dead letter's headers, never in a log line.
                log.warning(
                    "dead letter from %s[%d]@%d: %s", message.topic, message.partition, message.offset, INVALID_EVENT
                )
                out.append(self._dead_letter(message, INVALID_EVENT, str(exc)))
                dead.append(INVALID_EVENT)
                continue
            except Exception as exc:  # a bug must not stop the stream, nor lose the event: it is kept with the error
                log.exception("applying %s[%d]@%d failed", message.topic, message.partition, message.offset)
                out.append(self._dead_letter(message, STANDING_ERROR, repr(exc)))
                dead.append(STANDING_ERROR)
                continue
            out += [(self.outputs[o.topic], o.key, o.value, None) for o in applied.outputs]
            sanctions += applied.sanctions
            if table is not None and applied.record is not None:
                new = written[key][3] if key in written else raw is None
                written[key] = (applied.record, applied.due_ms, event, new)
        await self._send(out)
        for s in sanctions:
            self.metrics.sanctions.labels(s.kind, "revoked" if s.revoked else "issued").inc()
        for reason in dead:
            self.metrics.dead_letters.labels(reason).inc()
        if table is None or inbox is None:
            return
        changelog = self.app.producer.buffer  # where Faust keeps a table's changelog records until it sends them
        for key, (record, due_ms, event, new) in written.items():
            if changelog.size >= CHANGELOG_WAITING:
                await changelog.flush()
            with _within(event):
                table[key] = record
            self.expiries.schedule(inbox, key, due_ms)
            if new:
                self.metrics.table_keys.labels(table.name).inc()
        self.metrics.table_events.labels(table.name).inc(len(events) - len(dead))

    def _dead_letter(
        self, message: Any, reason: str, detail: str
    ) -> tuple[TopicT, bytes | None, bytes | None, _Headers]:
        out = dead_letter(self.settings, message, reason, detail)
        return self.outputs[DEADLETTER], out.key, out.value, list(out.headers)

    # -- outputs -----------------------------------------------------------------------------------------------------

    async def _send(self, records: list[tuple[TopicT, bytes | None, bytes | None, _Headers]]) -> None:
        """Send and wait until the broker has every record; while it fails, try again (records repeat, none lost)."""
        for attempt in itertools.count():
            try:
                await asyncio.gather(*[await t.send(key=k, value=v, headers=h) for t, k, v, h in records])
            except KafkaError:
                delay = min(_MAX_RETRY_SECONDS, 0.5 * 2**attempt)
                log.warning("sending %d records failed; again in %.1f s", len(records), delay, exc_info=True)
                await asyncio.sleep(delay)
            else:
                return

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
        await self._send([(self.outputs[inbox], key, tick, None) for inbox, key in self.expiries.pop_due(now)])

    async def _reschedule_users(self) -> None:
        for key, raw in self._owned(self.users):
            self.expiries.schedule(USER_ACTIONS, key, next_change(codec.load_user(raw).listed))

    async def _reschedule_groups(self) -> None:
        for key, raw in self._owned(self.groups):
            self.expiries.schedule(GROUP_ACTIONS, key, next_change(codec.load_group(raw).listed))

    async def _reschedule_links(self) -> None:
        for key, raw in self._owned(self.links):
            self.expiries.schedule(LINK_ACTIONS, key, next_change(codec.load_link(raw).listed))

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
