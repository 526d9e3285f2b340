"""Replays: the whole pipeline in one process and in event order, so the same input and rule pack give the same
verdicts and sanctions every time.

The live pipeline spreads a user's messages over many partitions and workers; the order in which its stages see them
depends on timing. A replay removes the timing: it takes messages in the order they were sent (``sent_at``, then
their place in the source), runs on their clock (each is classified at its ``sent_at``; a mute that ends before the
next message is lifted before it) and passes every event between the tables first in, first out. The decisions are
the live ones: the same Classifier and the same table functions (streams/state/tables.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.agents.classify import CLASSIFY_ERROR, dead_letter, violation_of
from streams.config import Settings
from streams.kafka.produce import OutRecord
from streams.policy.classify import Classifier
from streams.policy.sanctions import SanctionPolicy
from streams.records import INVALID_EVENT, ChatMessage, InvalidMessage, parse_message
from streams.state.codec import sized
from streams.state.expiries import Expiries
from streams.state.recovery import true_end_offsets
from streams.state.tables import INBOXES, Applied, InvalidEvent, Output, Tables, parse
from streams.topics import BLACKLIST, GROUP_ACTIONS, LINK_ACTIONS, USER_ACTIONS, VERDICTS, VIOLATIONS

_CHUNK = 2000  # messages classified together
SEND_CHUNK = 10 * _CHUNK  # outputs sent together, each chunk acknowledged before the next


@dataclass(slots=True)  # not frozen: it fits streams.records.SourceRecord, which dead letters take
class InputRecord:
    """One input record and where it came from: a topic's partition and offset, or a file (``file:<path>``) and line."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Emitted:
    """One output record, by the topic's name without prefix."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Pipeline:
    """Classifier and standing tables with their state in memory, fed one message at a time in event order."""

    def __init__(self, classifier: Classifier, policy: SanctionPolicy) -> None:
        self.classifier = classifier
        self.tables = Tables(policy, classifier.version)
        self.state: dict[str, dict[bytes, bytes]] = {inbox: {} for inbox in INBOXES}
        self.expiries = Expiries()
        self._apply: dict[str, Callable[[bytes | None, bytes, dict[str, Any], int], Applied[bytes]]] = {
            USER_ACTIONS: self.tables.user,
            GROUP_ACTIONS: self.tables.group,
            LINK_ACTIONS: self.tables.link,
        }

    def run(self, records: Iterable[InputRecord], group_events: Iterable[InputRecord] = ()) -> Iterator[Emitted]:
        """Every output of the records: dead letters of invalid ones first, then each message's and each group
        event's in time order (a group event first when they tie)."""
        # Only each message's time is kept from this first parse: the messages are parsed again a chunk at a time,
        # so that a replay holds its input's bytes and not also every message parsed, most of its memory otherwise.
        valid: list[InputRecord] = []
        sent_at = array("q")
        for record in records:
            try:
                sent_at.append(parse_message(record.value).sent_at_ms)
            except InvalidMessage as exc:
                yield _dead_letter(record, exc.reason, exc.detail)
            else:
                valid.append(record)
        in_order = np.argsort(np.frombuffer(sent_at, dtype=np.int64), kind="stable")  # ties keep the source's order
        del sent_at
        events = sorted(((_event_time(e), e) for e in group_events), key=lambda pair: pair[0])
        next_event = 0
        start = 0
        while start < len(in_order):
            chunk = [(r, parse_message(r.value)) for r in map(valid.__getitem__, in_order[start : start + _CHUNK])]
            verdicts = self._classify(chunk)
            for index, ((record, message), verdict) in enumerate(zip(chunk, verdicts, strict=True)):
                while next_event < len(events) and events[next_event][0] <= message.sent_at_ms:
                    yield from self._group_event(*events[next_event])
                    next_event += 1
                if verdict is None:
                    yield _dead_letter(record, CLASSIFY_ERROR, "the classifier failed on this message")
                    continue
                campaigns = self.classifier.campaigns()
                yield from self._message(message, verdict)
                if self.classifier.campaigns() != campaigns:  # later messages must see the new blacklist
                    start += index + 1
                    break
            else:
                start += len(chunk)
        for at_ms, event in events[next_event:]:
            yield from self._group_event(at_ms, event)

    def _classify(self, chunk: Sequence[tuple[InputRecord, ChatMessage]]) -> list[dict[str, Any] | None]:
        """Verdicts of the chunk, each stamped with its message's sent_at, the replay's clock; None where the
        classifier failed."""
        verdicts: list[dict[str, Any] | None] = []
        for result, (_, message) in zip(self.classifier.classify_each([m for _, m in chunk], 0), chunk, strict=True):
            if isinstance(result, Exception):
                verdicts.append(None)
            else:
                result["classified_at_ms"] = message.sent_at_ms  # the only field the time of classifying sets
                verdicts.append(result)
        return verdicts

    def _group_event(self, at_ms: int, record: InputRecord) -> Iterator[Emitted]:
        """A chat.group-events.v1 record, applied to the group table as the live group agent does."""
        try:
            group_id = str(parse(record.value)["group_id"])
        except (InvalidEvent, KeyError) as exc:
            yield _dead_letter(record, INVALID_EVENT, f"not a group event: {exc}")
            return
        yield from self._expire(at_ms)
        event = Output(GROUP_ACTIONS, record.key or group_id.encode(), record.value)
        yield from self._deliver(deque([event]), at_ms, origin=record)

    def _message(self, message: ChatMessage, verdict: dict[str, Any]) -> Iterator[Emitted]:
        now = message.sent_at_ms
        yield from self._expire(now)
        yield Emitted(VERDICTS, message.group_id.encode(), orjson.dumps(verdict))
        if verdict["decision"] == "block":
            violation = orjson.dumps(violation_of(verdict))
            yield Emitted(VIOLATIONS, message.sender_id.encode(), violation)
            yield from self._deliver(deque([Output(USER_ACTIONS, message.sender_id.encode(), violation)]), now)

    def _expire(self, now_ms: int) -> Iterator[Emitted]:
        """The ticks due by ``now_ms``, each at its own time, as the live timer would have sent them."""
        while (due := self.expiries.next_due()) is not None and due <= now_ms:
            tick = orjson.dumps({"action": "tick", "at_ms": due})
            queue = deque(Output(inbox, key, tick) for inbox, key in self.expiries.pop_due(due))
            yield from self._deliver(queue, due)

    def _deliver(self, queue: deque[Output], now_ms: int, origin: InputRecord | None = None) -> Iterator[Emitted]:
        """Apply inbox events first in, first out, until none is left; yield what the tables publish. An event the
        tables refuse is a dead letter, named by ``origin`` if it came from the input."""
        while queue:
            event = queue.popleft()
            table = self.state[event.topic]
            raw = table.get(event.key)
            try:
                applied = self._apply[event.topic](raw, event.key, orjson.loads(event.value or b"{}"), now_ms)
            except InvalidEvent as exc:
                where = origin or InputRecord(event.topic, 0, 0, event.key, event.value)
                yield _dead_letter(where, INVALID_EVENT, str(exc))
                continue
            for out in applied.outputs:
                if out.topic in INBOXES:
                    queue.append(out)
                else:
                    yield Emitted(out.topic, out.key, out.value)
                    if out.topic == BLACKLIST:
                        self.classifier.follow_blacklist(out.key, out.value)
            if applied.record is not None:
                table[event.key] = applied.record
                self.expiries.schedule(event.topic, event.key, applied.due_ms)


def send_chunks(settings: Settings, outputs: Iterable[Emitted], sent: Counter[str]) -> Iterator[list[OutRecord]]:
    """The outputs as records of ``settings``' topics, SEND_CHUNK at a time, counted by topic in ``sent``. Each value
    is copied to its size (``sized``): the orjson results of a chunk held 80 MiB."""
    chunk: list[OutRecord] = []
    for output in outputs:
        value = None if output.value is None else sized(output.value)
        chunk.append(OutRecord(settings.topic(output.topic), output.key, value, output.headers))
        sent[output.topic] += 1
        if len(chunk) >= SEND_CHUNK:
            yield chunk
            chunk = []
    yield chunk


def _event_time(record: InputRecord) -> int:
    """When a group event happened; one without a valid ``at_ms`` counts from the start of the replay."""
    try:
        at_ms = orjson.loads(record.value or b"").get("at_ms", 0)
    except (orjson.JSONDecodeError, AttributeError):
        return 0
    return at_ms if isinstance(at_ms, int) and not isinstance(at_ms, bool) else 0


def _dead_letter(record: InputRecord, reason: str, detail: str) -> Emitted:
    out = dead_letter(Settings(), record, reason, detail)  # default settings: the topic's name without prefix
    return Emitted(out.topic, out.key, out.value, tuple(out.headers))


# --- sources ----------------------------------------------------------------------------------------------------


def file_records(path: str, lines: Iterable[bytes]) -> Iterator[InputRecord]:
    """A JSONL file's lines; a dead letter of one names the file and the line."""
    source = f"file:{path}"  # one string for every record
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield InputRecord(source, 0, number, None, line.rstrip(b"\r\n"))


@dataclass(frozen=True, slots=True)
class TopicRange:
    topic: str
    from_offset: int | None = None  # per partition; None: the earliest kept
    to_offset: int | None = None  # per partition, exclusive; None: the end when the replay starts
    since_ms: int | None = None  # record timestamps, inclusive
    until_ms: int | None = None  # exclusive


async def topic_records(
    settings: Settings, source: TopicRange, progress: Callable[[int, int], None] | None = None
) -> list[InputRecord]:
    """The records of a topic range, read with no consumer group: nothing of the live pipeline's is touched."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **settings.kafka_options())
    await consumer.start()
    try:
        found = consumer.partitions_for_topic(source.topic) or await _partitions(consumer, source.topic)
        tps = [TopicPartition(source.topic, p) for p in sorted(found)]
        firsts = await consumer.beginning_offsets(tps)
        ends = await true_end_offsets(settings.kafka_options(), tps)
        start = {tp: max(firsts[tp], source.from_offset or 0) for tp in tps}
        stop = {tp: ends[tp] if source.to_offset is None else min(ends[tp], source.to_offset) for tp in tps}
        total = sum(max(0, stop[tp] - start[tp]) for tp in tps)
        pending = [tp for tp in tps if start[tp] < stop[tp]]
        consumer.assign(pending)
        for tp in pending:
            consumer.seek(tp, start[tp])
        records: list[InputRecord] = []
        read = 0
        while pending:
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=500)).items():
                for r in batch:
                    if r.offset >= stop[tp]:
                        break
                    read += 1
                    if (source.since_ms is None or r.timestamp >= source.since_ms) and (
                        source.until_ms is None or r.timestamp < source.until_ms
                    ):
                        records.append(InputRecord(r.topic, r.partition, r.offset, r.key, r.value))
                if await consumer.position(tp) >= stop[tp]:  # offsets may skip (compaction, markers)
                    pending.remove(tp)
                    consumer.pause(tp)
            if progress is not None:
                progress(read, total)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    topics = await consumer.topics()
    if topic not in topics:
        raise LookupError(f"topic {topic} does not exist")
    return consumer.partitions_for_topic(topic) or set()


def parse_time(value: str) -> int:
    """Epoch milliseconds, or an RFC 3339 time with its offset (``2026-11-30T08:00:00Z``)."""
    if value.isdigit():
        return int(value)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is neither epoch milliseconds nor an RFC 3339 time") from None
    if at.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset: add Z or +08:00")
    return int(at.timestamp() * 1000)


class Progress:
    """A one-line progress bar on standard error; a line every ten seconds when it is not a terminal."""

    def __init__(self, label: str) -> None:
        self.label, self._tty, self._last = label, sys.stderr.isatty(), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self._tty else 10.0) and done < total:
            return
        self._last = now
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        line = f"{self.label} [{bar:<30}] {done:,}/{total:,} ({share:.0%})"
        sys.stderr.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self._tty:
            sys.stderr.write("\n")


def read_source(settings: Settings, file: str | None, source: TopicRange | None) -> list[InputRecord]:
    """A replay's input, from a JSONL file (``-``: standard input) or a topic range."""
    if source is not None:
        bar = Progress("read")
        records = asyncio.run(topic_records(settings, source, bar))
        bar.done()
        return records
    assert file is not None
    if file == "-":
        return list(file_records("-", sys.stdin.buffer))
    with Path(file).open("rb") as f:
        return list(file_records(file, f))
