"""Crash loop: one of two workers killed (SIGKILL) again and again while violations flow, then compared with a replay.

    python -m benchmarks.crash_loop [--runs 10] [--violations 100000] [--store rocksdb://|memory://] [--kills 4]
    python -m benchmarks.crash_loop --quick     # one run of 5,000 violations, two kills: a few minutes

Each run: an embedded broker on a free port and its topics; two `python -m streams worker` processes on the same
topics, with data dirs of their own; demo chat (streams/demo.py, with a larger spam share) until --violations of its
messages are ones the shipped pack blocks, links included, so link campaigns happen, published at --rate in
--kills + 1 parts; worker "a" killed with SIGKILL --kills times while the standing stage applies the input, and
restarted on its own data dir after --down seconds. Kill n falls once half of part n's violations are applied and
worker a has had partitions for --min-uptime seconds; part n + 1 is published after it, so every kill falls during
the input however fast the workers take it. Meanwhile `groupwarden replay` runs a copy of the input, published at
once to a topic of its own keyed and partitioned alike, into topics of its own (--same-input: every run the first
run's input, replayed once). The live outputs are then compared with the replay's until they are equal, or have not
changed for --settle seconds.

Compared with the replay (see ``compare``), as each topic's final state per key, not in delivery order (repeats are
no difference, a missing record is):

- verdicts: every message id has one, with the replay's decision;
- strikes: each user's strike count in the user table's changelog (its final record), against the replay's (one
  warning, mute or ban a strike);
- group windows: each group's violation count in the group table's changelog, against the replay's violations;
- sanctions: by subject, kind and revocation, and by the message that caused one when a single message did (a strike,
  a fall in credit);
- the blacklist as compaction leaves it (the last record of each key), without its end times.

Then the store against its changelog (rocksdb:// only; memory:// stores go with their workers): once neither worker
has input left and each standing partition has had the same single owner (the worker reporting its lag) for two looks
in a row, both workers are killed at once, so neither takes the other's partitions over, and each table partition's
store on the data dir of its last owner is read back (streams/state/store.py) and compared key by key, value and due
time, with the last record of each key in its changelog partition, read to the Fetch high watermark.

Left out, because the live pipeline and a replay legitimately differ there: every time of decision (a live violation
is dated when it was classified, a replayed one at its message's sent_at: credit, which recovers with time, start and
end times of sanctions and blacklist lines, the sanction ids that hash them, audit times), and the evidence of
sanctions that a count of violations reached (a group's steps, a link campaign): which violation crossed the
threshold, and so the window it names, depends on arrival order, which the replay makes event order. Each sender
posts in one group only, so each user's violations are classified in the order they were sent, as the replay takes
them, and a user's ladder must match exactly. Where a user's violations still reach moderation.violations.v1 in
another order (first copies, as they arrived), the ladder decides in that order and may differ with nothing lost:
that user's sanctions and blacklist entry are counted apart, not as loss (their strike count still counts), and the
run's line says how many.

Progress goes to standard error, and to standard output one line a run (kills, violations, losses by kind, seconds,
then what was compared), and last:

    crash_loop: <runs> runs, <k> with loss

where a run with loss is one whose live outputs differ from its replay's in anything compared beyond what arrival
order explains, or whose stores differ from their changelogs. Exit 1 if k > 0, or if a run killed worker a fewer
times than asked (the last line says how many); 2 for a bad argument; 3 if a run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client.metrics_core import Metric
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.e2e import Process, fmt, producer
from benchmarks.standing import scraped, worker
from streams import demo
from streams.config import DEFAULT_RULES, Settings
from streams.kafka.broker import BrokerError, EmbeddedBroker, free_port
from streams.kafka.produce import OutRecord, send_batched
from streams.policy.classify import Classifier
from streams.policy.rules import load_pack
from streams.records import InvalidMessage, parse_message
from streams.state.codec import load_group, load_user
from streams.state.recovery import true_end_offsets
from streams.state.stage import INBOX_OF
from streams.state.store import DUE_HEADER, ChangelogRecord, open_store
from streams.topics import (
    AUDIT,
    BLACKLIST,
    MESSAGES,
    SANCTIONS,
    VERDICTS,
    VIOLATIONS,
    TopicSpec,
    changelog_topic,
    create_topics,
)

LADDER_KINDS = frozenset({"warning", "mute", "ban"})  # one for every strike
PUBLISH_CHUNK = 2000
QUICK = {"runs": 1, "violations": 5000, "kills": 2}
CHECK_SECONDS = 5.0  # how often the live outputs are compared with the replay's once it is in
GRACE_SECONDS = 5.0  # read on this long once they are equal: a late record would still show


# -- the workload --------------------------------------------------------------------------------------------------


@dataclass
class Workload:
    pairs: list[tuple[bytes, bytes]]
    blocked: int  # messages the shipped pack blocks: the violations to expect


@functools.cache
def shipped_classifier() -> Classifier:
    """Built once for every run: building the shipped pack takes seconds."""
    return Classifier(load_pack(DEFAULT_RULES))


def workload(violations: int, groups: int, spam_ratio: float, seed: int) -> Workload:
    """Demo chat until ``violations`` messages are blocked. Senders are renamed per group (``u123@g00042``): a user
    posting in one group has all their messages on one partition of the chat topic, which the classify stage reads in
    order, so the user table can take their violations in the order sent, as the replay does."""
    classifier = shipped_classifier()
    blocked_texts: dict[str, bool] = {}  # the demo repeats a few hundred texts
    pairs: list[tuple[bytes, bytes]] = []
    blocked = 0
    for key, value in demo.messages(sys.maxsize, seed=seed, groups=groups, spam_ratio=spam_ratio):
        if blocked >= violations:
            break
        try:
            message = parse_message(value)
        except InvalidMessage:
            pairs.append((key, value))  # malformed input stays: it must become a dead letter, not a verdict
            continue
        doc = orjson.loads(value)
        doc["sender_id"] = f"{message.sender_id}@{message.group_id}"
        pairs.append((key, orjson.dumps(doc)))
        if message.text not in blocked_texts:
            blocked_texts[message.text] = classifier.classify(message, 0)["decision"] == "block"
        blocked += blocked_texts[message.text]
    return Workload(pairs, blocked)


# -- what a pipeline decided, and how it compares with a replay ----------------------------------------------------


def sanction_identity(doc: dict[str, Any]) -> tuple[str, str, bool, tuple[str, ...]]:
    """What must match between a live sanction and a replayed one: subject, kind, revocation, and the evidence when
    it is the one message that caused the sanction (a strike, a fall in credit). Evidence of more (a group's window,
    a campaign's sightings) depends on the order violations arrived in; times depend on when they were decided."""
    evidence = tuple(doc["evidence"])
    return doc["subject"], doc["kind"], bool(doc["revoked"]), evidence if len(evidence) == 1 else ()


def blacklist_entry(value: bytes) -> bytes:
    """A blacklist entry without its end times (a live mute ends a week after it was decided, a replayed one a week
    after its message was sent), its restrictions in one order; as canonical JSON, so entries compare as bytes."""
    doc = orjson.loads(value)
    doc.pop("until_ms", None)
    doc["restrictions"] = sorted(({"kind": r["kind"], "reason": r["reason"]} for r in doc["restrictions"]), key=str)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


@dataclass
class Decided:
    """What a pipeline decided, folded from its output topics one record at a time; repeats change nothing."""

    verdicts: dict[str, str] = field(default_factory=dict)  # message id -> decision
    sanctions: dict[str, tuple[str, str, bool, tuple[str, ...]]] = field(default_factory=dict)  # id -> identity
    blacklist: dict[bytes, bytes] = field(default_factory=dict)  # key -> blacklist_entry(); a tombstone deletes
    violations: dict[str, set[str]] = field(default_factory=dict)  # group id -> message ids (the replay's)
    users: dict[bytes, bytes] = field(default_factory=dict)  # user table changelog: key -> last value (live)
    groups: dict[bytes, bytes] = field(default_factory=dict)  # group table changelog (live)
    applied: set[str] = field(default_factory=set)  # violations applied to the user table (audit): progress
    # Each user's violations (message id, at_ms) in the order they arrived on their partition, repeats too; and in
    # the order the user table decided them (the first audit record of each).
    arrived: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    decided: dict[str, list[str]] = field(default_factory=dict)
    verdict_records: int = 0  # repeats included

    def add(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """One record of ``topic``, named without the deployment's prefix (changelogs: ``users``, ``groups``)."""
        if topic == BLACKLIST:
            if key is not None:
                if value is None:
                    self.blacklist.pop(key, None)
                else:
                    self.blacklist[key] = blacklist_entry(value)
        elif topic in ("users", "groups"):
            table = self.users if topic == "users" else self.groups
            if key is not None:
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        elif value is None:
            return
        elif topic == VERDICTS:
            self.verdict_records += 1
            verdict = orjson.loads(value)
            self.verdicts[verdict["message_id"]] = verdict["decision"]
        elif topic == SANCTIONS:
            sanction = orjson.loads(value)
            self.sanctions[sanction["sanction_id"]] = sanction_identity(sanction)
        elif topic == VIOLATIONS:
            violation = orjson.loads(value)
            self.violations.setdefault(violation["group_id"], set()).add(violation["message_id"])
            arrival = (violation["message_id"], violation["at_ms"])
            self.arrived.setdefault(violation["sender_id"], []).append(arrival)
        elif topic == AUDIT and key is not None and key.startswith(b"user:"):
            audit = orjson.loads(value)
            message_id = audit["input"].get("message_id")
            if audit["input"].get("action", "violation") == "violation" and message_id not in self.applied:
                self.applied.add(message_id)
                self.decided.setdefault(key.decode().removeprefix("user:"), []).append(message_id)

    def arrival_order(self, user: str) -> list[str]:
        """The user's violations in the order they first arrived."""
        return list(dict.fromkeys(message_id for message_id, _ in self.arrived.get(user, [])))

    def sanction_counts(self) -> Counter[tuple[str, str, bool, tuple[str, ...]]]:
        """Sanctions by identity, each sanction id once: a repeated output is the same sanction, a decision taken
        again (after state was lost) is another."""
        return Counter(self.sanctions.values())

    def strikes_from_sanctions(self) -> Counter[str]:
        """Each user's strikes, as its ladder sanctions tell them (one a strike)."""
        return Counter(
            subject.removeprefix("user:")
            for subject, kind, revoked, _ in self.sanctions.values()
            if kind in LADDER_KINDS and not revoked
        )

    def strikes_from_table(self) -> Counter[str]:
        return +Counter({k.decode(): len(load_user(v).state.strikes) for k, v in self.users.items()})

    def group_counts_from_table(self) -> Counter[str]:
        return +Counter({k.decode(): len(load_group(v).state.violations) for k, v in self.groups.items()})

    def group_counts_from_violations(self) -> Counter[str]:
        return Counter({group: len(ids) for group, ids in self.violations.items()})


@dataclass
class Differences:
    """What the live pipeline decided otherwise than its replay.

    The sanctions and blacklist entries of users whose violations reached the user table in another order than sent
    are counted apart, not as loss: the ladder decides in arrival order and the replay in event order, so these may
    differ with nothing lost. Their strike counts still count."""

    verdicts_lost: int = 0
    verdicts_extra: int = 0
    decisions: int = 0  # message ids with another decision than the replay's
    strikes: int = 0  # users whose strike count differs
    strikes_live: int = 0
    strikes_replay: int = 0
    groups: int = 0  # groups whose violation count differs
    sanctions_missing: int = 0
    sanctions_extra: int = 0
    blacklist_missing: int = 0
    blacklist_extra: int = 0
    blacklist_changed: int = 0
    reordered: int = 0  # users whose violations arrived out of the order sent
    reordered_sanctions: int = 0  # their sanctions missing or extra
    reordered_blacklist: int = 0  # their blacklist entries that differ
    examples: list[str] = field(default_factory=list)  # a few of each kind, for the log

    def __bool__(self) -> bool:
        """Whether anything was lost or decided otherwise, beyond what arrival order explains."""
        apart = ("strikes_live", "strikes_replay", "reordered", "reordered_sanctions", "reordered_blacklist")
        return any(v for k, v in vars(self).items() if k not in (*apart, "examples"))

    def text(self) -> str:
        parts = []
        if self.verdicts_lost or self.verdicts_extra:
            parts.append(f"verdicts {fmt(self.verdicts_lost)} lost, {fmt(self.verdicts_extra)} unknown ids")
        if self.decisions:
            parts.append(f"{fmt(self.decisions)} decisions differ")
        if self.strikes:
            parts.append(
                f"strikes of {fmt(self.strikes)} users differ ({fmt(self.strikes_live)} strikes, replay "
                f"{fmt(self.strikes_replay)})"
            )
        if self.groups:
            parts.append(f"violation counts of {fmt(self.groups)} groups differ")
        if self.sanctions_missing or self.sanctions_extra:
            parts.append(f"sanctions {fmt(self.sanctions_missing)} missing, {fmt(self.sanctions_extra)} extra")
        if self.blacklist_missing or self.blacklist_extra or self.blacklist_changed:
            parts.append(
                f"blacklist {fmt(self.blacklist_missing)} entries missing, {fmt(self.blacklist_extra)} extra, "
                f"{fmt(self.blacklist_changed)} differ"
            )
        return "; ".join(parts)

    def reordering(self) -> str:
        if not self.reordered:
            return ""
        return (
            f"{fmt(self.reordered)} users' violations arrived out of the order sent: {fmt(self.reordered_sanctions)} "
            f"of their sanctions and {fmt(self.reordered_blacklist)} of their blacklist entries differ, not counted"
        )


def _arrivals(arrivals: list[tuple[str, int]]) -> str:
    """Message ids with the time each was decided (classified) at, UTC."""
    return " ".join(
        f"{message_id}@{time.strftime('%H:%M:%S', time.gmtime(at_ms // 1000))}.{at_ms % 1000:03d}"
        for message_id, at_ms in arrivals
    )


def keys_differing(a: Counter[str], b: Counter[str]) -> set[str]:
    """Keys whose counts differ (a missing key counts 0)."""
    return {key for key in a.keys() | b.keys() if a[key] != b[key]}


def compare(live: Decided, replay: Decided) -> Differences:
    """What the live pipeline decided against what the replay of its input decided."""
    out = Differences()
    out.verdicts_lost = len(replay.verdicts.keys() - live.verdicts.keys())
    out.verdicts_extra = len(live.verdicts.keys() - replay.verdicts.keys())
    out.decisions = sum(1 for k, d in replay.verdicts.items() if k in live.verdicts and live.verdicts[k] != d)
    live_strikes, replay_strikes = live.strikes_from_table(), replay.strikes_from_sanctions()
    strikes_differ = keys_differing(live_strikes, replay_strikes)
    out.strikes = len(strikes_differ)
    out.strikes_live, out.strikes_replay = live_strikes.total(), replay_strikes.total()
    live_groups, replay_groups = live.group_counts_from_table(), replay.group_counts_from_violations()
    out.groups = len(keys_differing(live_groups, replay_groups))
    reordered = {user for user in live.arrived if live.arrival_order(user) != replay.arrival_order(user)}
    out.reordered = len(reordered)

    def counted(subject: str) -> bool:
        kind, _, name = subject.partition(":")
        return kind != "user" or name not in reordered

    live_sanctions, replay_sanctions = live.sanction_counts(), replay.sanction_counts()
    missing, extra = replay_sanctions - live_sanctions, live_sanctions - replay_sanctions
    out.sanctions_missing = sum(n for s, n in missing.items() if counted(s[0]))
    out.sanctions_extra = sum(n for s, n in extra.items() if counted(s[0]))
    out.reordered_sanctions = missing.total() + extra.total() - out.sanctions_missing - out.sanctions_extra
    lost, added = replay.blacklist.keys() - live.blacklist.keys(), live.blacklist.keys() - replay.blacklist.keys()
    changed = {k for k, v in replay.blacklist.items() if k in live.blacklist and live.blacklist[k] != v}
    out.blacklist_missing = sum(1 for k in lost if counted(k.decode()))
    out.blacklist_extra = sum(1 for k in added if counted(k.decode()))
    out.blacklist_changed = sum(1 for k in changed if counted(k.decode()))
    out.reordered_blacklist = len(lost | added | changed) - out.blacklist_missing - out.blacklist_extra
    out.reordered_blacklist -= out.blacklist_changed

    out.examples += [f"verdict lost: {k}" for k in sorted(replay.verdicts.keys() - live.verdicts.keys())[:3]]
    out.examples += [
        f"strikes of {u}: {live_strikes[u]}, replay {replay_strikes[u]}" for u in sorted(strikes_differ)[:3]
    ]
    out.examples += [f"sanction missing: {s}" for s in sorted(s for s in missing if counted(s[0]))[:3]]
    out.examples += [f"sanction extra: {s}" for s in sorted(s for s in extra if counted(s[0]))[:3]]
    out.examples += [
        f"blacklist {k.decode()}: {live.blacklist[k].decode()}, replay {replay.blacklist[k].decode()}"
        for k in sorted(k for k in changed if counted(k.decode()))[:3]
    ]
    differing = strikes_differ | {s[0].removeprefix("user:") for s in missing + extra if s[0].startswith("user:")}
    differing |= {k.decode().removeprefix("user:") for k in lost | added | changed if k.startswith(b"user:")}
    # A few users that differ, lost first, then one that arrival order explains: how their violations went.
    for user in [*sorted(differing - reordered)[:3], *sorted(differing & reordered)[:1]]:
        out.examples.append(
            f"user:{user}: violations sent {_arrivals(replay.arrived.get(user, []))}; arrived "
            f"{_arrivals(live.arrived.get(user, []))}; decided {' '.join(live.decided.get(user, []))}"
        )
    return out


# -- the stores against their changelogs ---------------------------------------------------------------------------

TABLES = tuple(INBOX_OF)  # users, groups, links: a RocksDB store per table partition, on its owner's data dir
LAG = "groupwarden_consumer_lag_messages"
OWNERS_SECONDS = 30.0  # how long the workers may take to settle (one owner a partition, nothing left to read)

Entry = tuple[bytes | None, int | None]  # a key's value (None: only an expiry time is kept) and its due time


def changelog_state(records: Iterable[ChangelogRecord]) -> dict[bytes, Entry]:
    """What one changelog partition says its store holds: each key's last record (a tombstone: no key), with the
    due time its headers carry. Records in offset order."""
    state: dict[bytes, Entry] = {}
    for record in records:
        assert record.key is not None, "a changelog record has the table's key"
        if record.value is None:
            state.pop(record.key, None)
        else:
            due = next((int(value) for name, value in record.headers if name == DUE_HEADER), None)
            state[record.key] = (record.value, due)
    return state


def read_store(path: Path) -> dict[bytes, Entry]:
    """A RocksDB partition store's keys, each with its value and due time, read through the project's store."""
    if not path.exists():
        return {}  # opening would create it
    store = open_store("rocksdb://", path)
    try:
        due = dict(store.expiries())
        entries: dict[bytes, Entry] = {key: (value, due.pop(key, None)) for key, value in store.items()}
        entries |= {key: (None, due_ms) for key, due_ms in due.items()}  # an expiry without its record
        return entries
    finally:
        store.close()


@dataclass
class StoreDifferences:
    """Where the stores of the partitions' last owners differ from their changelogs, key by key."""

    missing: int = 0  # keys whose last changelog record has a value the store lacks
    extra: int = 0  # keys the store holds that the changelog deleted or never had
    values: int = 0  # keys whose value differs
    due: int = 0  # keys whose due time differs
    unowned: int = 0  # partitions that did not end with exactly one owner: their stores could not be compared
    stores: int = 0  # stores compared
    compared: int = 0  # keys their changelogs hold
    owned: Counter[str] = field(default_factory=Counter)  # partitions each worker owned last
    examples: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.keys or self.unowned)

    @property
    def keys(self) -> int:
        return self.missing + self.extra + self.values + self.due

    def add(self, name: str, store: Mapping[bytes, Entry], changelog: Mapping[bytes, Entry]) -> None:
        """Compare one store (``name`` for the examples) with its changelog partition's state."""
        self.stores += 1
        self.compared += len(changelog)
        missing, extra = changelog.keys() - store.keys(), store.keys() - changelog.keys()
        both = store.keys() & changelog.keys()
        values = {k for k in both if store[k][0] != changelog[k][0]}
        due = {k for k in both - values if store[k][1] != changelog[k][1]}
        self.missing += len(missing)
        self.extra += len(extra)
        self.values += len(values)
        self.due += len(due)
        for what, keys in (("missing", missing), ("extra", extra), ("value differs", values), ("due differs", due)):
            self.examples += [f"store {name}: key {k!r} {what}" for k in sorted(keys)[:2]]

    def text(self) -> str:
        parts = []
        if self.keys:
            parts.append(
                f"store keys {fmt(self.missing)} missing, {fmt(self.extra)} extra, {fmt(self.values)} values and "
                f"{fmt(self.due)} due times differ"
            )
        if self.unowned:
            parts.append(f"{self.unowned} partitions without one owner")
        return "; ".join(parts)


def standing_partitions(families: Iterable[Metric], topic: str) -> set[int]:
    """The partitions of ``topic`` a worker's standing stage owns: those it reports lag for (it stops on revoke)."""
    return {
        int(sample.labels["partition"])
        for family in families
        if family.name == LAG
        for sample in family.samples
        if sample.labels.get("stage") == "standing" and sample.labels.get("topic") == topic
    }


def standing_lag(families: Iterable[Metric]) -> float:
    return sum(
        sample.value
        for family in families
        if family.name == LAG
        for sample in family.samples
        if sample.labels.get("stage") == "standing"
    )


def owners(assigned: Mapping[str, set[int]], partitions: int) -> dict[int, str]:
    """Each partition that exactly one worker owns, and that worker."""
    claims = Counter(p for owned in assigned.values() for p in owned)
    return {p: name for name, owned in assigned.items() for p in owned if claims[p] == 1 and 0 <= p < partitions}


async def read_changelogs(settings: Settings) -> dict[tuple[str, int], dict[bytes, Entry]]:
    """Every table's changelog partitions, each folded to its last record per key, read to their true ends (the Fetch
    high watermark: the embedded broker under-reports ListOffsets)."""
    topics = {changelog_topic(settings, table): table for table in TABLES}
    partitions = [TopicPartition(topic, p) for topic in topics for p in range(settings.partitions)]
    ends = await true_end_offsets(settings.kafka_options(), partitions)
    records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {tp: [] for tp in partitions}
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.kafka_options())
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            for tp, batch in (await consumer.getmany(*left, timeout_ms=500, max_records=50_000)).items():
                records[tp] += batch
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return {(topics[tp.topic], tp.partition): changelog_state(batch) for tp, batch in records.items()}


# -- reading topics ------------------------------------------------------------------------------------------------


class Reader:
    """Every record of some topics from their start, with no consumer group, folded into ``decided``."""

    def __init__(self, settings: Settings, topics: dict[str, str]) -> None:
        """``topics``: full topic name -> the name ``Decided.add`` knows it by."""
        self.settings, self.topics, self.decided = settings, topics, Decided()
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        self.consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.kafka_options())

    async def __aenter__(self) -> Reader:
        await self.consumer.start()
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self, timeout_ms: int = 500) -> int:
        """Fold what has arrived; how many records that was."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=20_000)
        self._fold(r for records in batches.values() for r in records)
        return sum(len(records) for records in batches.values())

    async def read_to_end(self) -> Decided:
        """Every record up to each partition's end (its true end: the embedded broker under-reports ListOffsets)."""
        ends = await true_end_offsets(self.settings.kafka_options(), self.partitions)
        left = {tp for tp, end in ends.items() if end > 0}
        while left:
            await self.poll()
            left = {tp for tp in left if await self.consumer.position(tp) < ends[tp]}
        return self.decided

    def _fold(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        for r in records:
            self.decided.add(self.topics[r.topic], r.key, r.value)


def live_topics(settings: Settings) -> dict[str, str]:
    """The outputs compared, and the changelogs of the user and group tables (named after the consumer group)."""
    topics = {settings.topic(name): name for name in (VERDICTS, SANCTIONS, BLACKLIST, AUDIT, VIOLATIONS)}
    return topics | {f"{settings.group_id}-{table}-changelog": table for table in ("users", "groups")}


def replay_topics(settings: Settings) -> dict[str, str]:
    return {settings.topic(name): name for name in (VERDICTS, SANCTIONS, BLACKLIST, VIOLATIONS)}


# -- one run -------------------------------------------------------------------------------------------------------


STDERR = Console(stderr=True, highlight=False)


def say(text: str) -> None:
    STDERR.print(f"  {time.strftime('%H:%M:%S')} {text}", markup=False, soft_wrap=True)


async def publish_paced(
    settings: Settings, pairs: list[tuple[bytes, bytes]], rate: int, allowed: Callable[[], int]
) -> None:
    """The messages at about ``rate`` a second, never more than ``allowed()`` of them so far: the kills fall while
    they are being moderated, however fast the workers take them."""
    client = producer(settings.bootstrap_servers)
    await client.start()
    try:
        due = time.monotonic()  # when the next chunk may go
        for start in range(0, len(pairs), PUBLISH_CHUNK):
            chunk = pairs[start : start + PUBLISH_CHUNK]
            while start + len(chunk) > allowed():
                await asyncio.sleep(0.2)
                due = time.monotonic()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await send_batched(client, (OutRecord(settings.topic(MESSAGES), k, v) for k, v in chunk))
            due += len(chunk) / rate
    finally:
        await client.stop()


def published_before_kill(messages: int, kills: int, asked: int) -> int:
    """How many messages may be published once ``kills`` of ``asked`` kills have fallen: the input in asked + 1
    equal parts, each after the kill before it."""
    return messages if kills >= asked else messages * (kills + 1) // (asked + 1)


class RunError(RuntimeError):
    """A run that could not be carried out (a replay that failed, a broker that went away): no finding either way."""


def replay_settings(settings: Settings) -> Settings:
    """Where the replay reads its copy of the input and writes its outputs: topics of its own, beside the run's."""
    return Settings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=f"{settings.topic_prefix}replay.",
        partitions=settings.partitions,
    )


async def publish_copy(out: Settings, pairs: list[tuple[bytes, bytes]]) -> None:
    """The whole input at once to the replay's own chat topic: keyed and partitioned as the paced copy the workers
    read, so the replay can start with the run instead of after it."""
    await create_topics(out, (TopicSpec(MESSAGES),))
    client = producer(out.bootstrap_servers)
    await client.start()
    try:
        await send_batched(client, (OutRecord(out.topic(MESSAGES), k, v) for k, v in pairs))
    finally:
        await client.stop()


async def run_replay(out: Settings, folder: Path) -> Decided:
    """`groupwarden replay` of the replay's copy of the input into topics of its own, and what it decided."""
    env = os.environ | {"GROUPWARDEN_BOOTSTRAP_SERVERS": out.bootstrap_servers}
    command = ["-m", "streams", "replay", "--topic", out.topic(MESSAGES), "--output-prefix", out.topic_prefix]
    log_path = folder / "replay.log"
    with log_path.open("wb") as log:
        replaying = await asyncio.create_subprocess_exec(
            sys.executable, *command, "--partitions", str(out.partitions), env=env, stdout=log, stderr=log
        )
        try:
            code = await replaying.wait()
        finally:
            if replaying.returncode is None:
                replaying.kill()
                await replaying.wait()
    if code != 0:
        raise RunError(f"groupwarden replay exited with code {code}; log: {log_path}")
    async with Reader(out, replay_topics(out)) as reader:
        return await reader.read_to_end()


@dataclass
class RunResult:
    differences: Differences
    stores: StoreDifferences | None  # None: memory:// stores, gone with their workers
    live: Decided
    replay: Decided
    violations: int
    kills: int
    unasked: int  # workers that exited without being killed, and were restarted
    seconds: float

    @property
    def lossy(self) -> bool:
        return bool(self.differences) or bool(self.stores)

    def losses(self) -> dict[str, int]:
        """Each kind of loss: how many ids, users, groups, sanctions, entries or store keys differ."""
        d = self.differences
        kinds = {
            "verdicts": d.verdicts_lost + d.verdicts_extra + d.decisions,
            "strikes": d.strikes,
            "groups": d.groups,
            "sanctions": d.sanctions_missing + d.sanctions_extra,
            "blacklist": d.blacklist_missing + d.blacklist_extra + d.blacklist_changed,
        }
        if self.stores is not None:
            kinds["store"] = self.stores.keys + self.stores.unowned
        return kinds

    def line(self, index: int, kills_asked: int) -> str:
        replay, live = self.replay, self.live
        strikes = replay.strikes_from_sanctions()
        kills = f"{self.kills} kills" + (f" (of {kills_asked} asked)" if self.kills < kills_asked else "")
        losses = ", ".join(f"{kind} {fmt(n)}" for kind, n in self.losses().items())
        if self.stores is None:
            losses += " (store: memory://, not read back)"
        facts = (
            f"{fmt(len(replay.verdicts))} verdicts ({fmt(live.verdict_records - len(live.verdicts))} repeated), "
            f"{fmt(strikes.total())} strikes of {fmt(len(strikes))} users, {fmt(len(replay.sanctions))} sanctions, "
            f"{fmt(len(replay.blacklist))} blacklist entries"
        )
        if self.stores is not None:
            owned = " and ".join(f"{n} of {name}" for name, n in sorted(self.stores.owned.items()))
            facts += f", {self.stores.stores} stores ({owned} partitions) of {fmt(self.stores.compared)} keys"
        if self.unasked:
            facts += f", {self.unasked} exits of their own"
        if self.differences.reordered:
            facts += f"; {self.differences.reordering()}"
        outcome = "LOSS" if self.lossy else "no loss"
        return (
            f"run {index}: {kills}, {fmt(self.violations)} violations, {outcome} ({losses}), {self.seconds:.0f} s; "
            f"{facts}"
        )

    def details(self) -> list[str]:
        """What differs, for the log: the totals of each kind and a few examples."""
        texts = [t for t in (self.differences.text(), self.stores.text() if self.stores else "") if t]
        return texts + self.differences.examples + (self.stores.examples if self.stores else [])


class Workers:
    """The run's two workers, each on a data dir of its own; "a" is the one killed and restarted."""

    def __init__(self, settings: Settings, store: str, folder: Path) -> None:
        self.settings, self.store, self.folder = settings, store, folder
        self.ports: dict[str, int] = {}
        self.running = {name: self.start(name) for name in ("a", "b")}

    def data_dir(self, name: str) -> Path:
        return self.folder / f"data-{name}"

    def start(self, name: str) -> Process:
        self.ports[name] = free_port()
        log = self.folder / f"worker-{name}.log"
        return worker(self.settings, self.store, self.data_dir(name), log, metrics_port=self.ports[name])

    def standing_assigned(self, name: str) -> bool:
        """Whether the worker's standing stage has had partitions assigned since it started (its metrics say so):
        killing one still starting up would prove nothing."""
        if (families := scraped(self.ports[name], timeout=2)) is None:
            return False
        return any(
            sample.labels.get("stage") == "standing" and sample.value >= 1
            for family in families
            if family.name == "groupwarden_rebalances"
            for sample in family.samples
        )

    async def settled_owners(self) -> dict[int, str]:
        """Which worker owns each partition of the standing stage, once the answer holds for two looks in a row and
        neither has input left to read; after OWNERS_SECONDS, what is known then (partitions may lack an owner)."""
        topic = self.settings.topic(VIOLATIONS)  # co-partitioned: partition p of every input goes to one worker
        deadline = time.monotonic() + OWNERS_SECONDS
        last: dict[int, str] | None = None
        while True:
            assigned: dict[str, set[int]] = {}
            idle = True
            for name, running in self.running.items():
                if running.process.poll() is not None:
                    continue
                if (families := scraped(self.ports[name], timeout=2)) is None:
                    idle = False
                    continue
                assigned[name] = standing_partitions(families, topic)
                idle = idle and standing_lag(families) == 0
            found = owners(assigned, self.settings.partitions)
            settled = idle and len(found) == self.settings.partitions and found == last
            if settled or time.monotonic() >= deadline:
                return found
            last = found
            await asyncio.sleep(2)

    def kill_all(self) -> None:
        """SIGKILL to both at once: neither lives to take over the other's partitions, so each store stays as its
        owner wrote it (written stores are in RocksDB's write-ahead log)."""
        for running in self.running.values():
            if running.process.poll() is None:
                running.process.kill()
        for running in self.running.values():
            running.process.wait()

    def stop(self) -> None:
        for running in self.running.values():
            running.stop()


async def check_stores(settings: Settings, workers: Workers) -> StoreDifferences:
    """Each table partition's store on the data dir of the partition's last owner against its changelog, key by key.
    The workers are killed first (RocksDB lets one process open a store)."""
    owned = await workers.settled_owners()
    workers.kill_all()
    out = StoreDifferences(unowned=settings.partitions - len(owned), owned=Counter(owned.values()))
    for (table, p), state in sorted((await read_changelogs(settings)).items()):
        if p in owned:
            path = workers.data_dir(owned[p]) / "stores" / f"{table}-{p}"
            out.add(f"{table}-{p} of worker {owned[p]}", await asyncio.to_thread(read_store, path), state)
    return out


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=STDERR
    )


async def crash_run(
    index: int, args: argparse.Namespace, folder: Path, bootstrap: str, work: Workload, replayed: Decided | None
) -> RunResult:
    """One run; ``replayed``: what a replay of the same input decided in an earlier run, or None to replay it."""
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"crash{index}.",
        group_id=f"crash{index}",
        partitions=args.partitions,
        store=args.store,
    )
    await create_topics(settings)
    started = time.monotonic()
    replay = replayed
    replaying: asyncio.Task[Decided] | None = None
    if replay is None:
        out = replay_settings(settings)
        await publish_copy(out, work.pairs)
        replaying = asyncio.create_task(run_replay(out, folder))  # beside the run: it takes about as long
    workers = Workers(settings, args.store, folder)
    # The input in kills + 1 parts, each published after the kill before it; kill n falls once the violations of
    # part n are half applied and the restarted worker has worked a while.
    thresholds = [work.blocked * (n + 0.5) / (args.kills + 1) for n in range(args.kills)]
    kills = unasked = 0
    down_until: float | None = None
    assigned_at: float | None = None  # when worker a's standing stage was first seen with partitions since its start
    publishing = asyncio.create_task(
        publish_paced(
            settings, work.pairs, args.rate, lambda: published_before_kill(len(work.pairs), kills, args.kills)
        )
    )
    published = False
    try:
        async with Reader(settings, live_topics(settings)) as live:
            with progress_bar() as bar:
                applying = bar.add_task(f"run {index}: violations applied", total=work.blocked)
                last_new = last_check = time.monotonic()
                while True:
                    if await live.poll():
                        last_new = time.monotonic()
                    now = time.monotonic()
                    applied = len(live.decided.applied)
                    bar.update(applying, completed=min(applied, work.blocked))
                    for name, running in workers.running.items():
                        if running.process.poll() is not None and not (name == "a" and down_until is not None):
                            unasked += 1
                            say(f"worker {name} exited with code {running.process.returncode}; restarted")
                            workers.running[name] = workers.start(name)
                    if down_until is not None and now >= down_until:
                        workers.running["a"] = workers.start("a")
                        down_until, assigned_at = None, None
                        say("worker a restarted on its data dir")
                    elif assigned_at is None and down_until is None and kills < len(thresholds):
                        if workers.standing_assigned("a"):
                            assigned_at = now
                    elif (
                        down_until is None
                        and assigned_at is not None
                        and kills < len(thresholds)
                        and thresholds[kills] <= applied < work.blocked  # while the input is being applied
                        and now - assigned_at >= args.min_uptime
                    ):
                        workers.running["a"].kill()
                        kills += 1
                        down_until = now + args.down
                        say(f"kill -9 of worker a ({kills} of {args.kills}) at {fmt(applied)} violations applied")
                    if not published and publishing.done():
                        publishing.result()  # raises what publishing raised
                        published = True
                        say(f"{fmt(len(work.pairs))} messages published")
                    if replay is None and replaying is not None and replaying.done():
                        replay = replaying.result()
                        say(f"replayed: {fmt(len(replay.verdicts))} verdicts, {fmt(len(replay.sanctions))} sanctions")
                    if now - started >= args.timeout:
                        if replay is None:
                            raise RunError(f"no replay to compare with after {args.timeout:.0f} s; logs: {folder}")
                        say(f"still changing after {args.timeout:.0f} s: comparing as it is")
                        break
                    if replay is None or down_until is not None or not published:
                        continue  # the end is for once the input is in, the replay's too, and both workers up
                    if now - last_check >= CHECK_SECONDS:
                        last_check = now
                        if not compare(live.decided, replay):
                            await drain(live, GRACE_SECONDS)  # repeats still on their way change nothing; more would
                            break
                    if now - last_new >= args.settle:
                        say(f"no new output for {args.settle:.0f} s: comparing as it is")
                        break
        differences = compare(live.decided, replay)
        stores = None
        if args.store == "rocksdb://":
            say("reading each partition's store back from its last owner's data dir")
            stores = await check_stores(settings, workers)
        seconds = time.monotonic() - started
        return RunResult(differences, stores, live.decided, replay, work.blocked, kills, unasked, seconds)
    finally:
        for task in (publishing, replaying):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RunError):
                    await task
        workers.stop()


async def drain(reader: Reader, seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await reader.poll(200)


# -- the loop ------------------------------------------------------------------------------------------------------

CANNOT_RUN = 3  # exit code: a run could not be carried out (no broker, a replay that failed): no finding either way


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crash_loop",
        description=__doc__.split("\n\n")[0],
        epilog="Exit codes: 0 no run with loss, 1 some run with loss or with fewer kills than asked, 2 a bad "
        "argument, 3 a run that could not be carried out (no broker, a failed replay).",
    )
    parser.add_argument("--runs", type=int, help="runs, each with a broker and workers of its own (default 10)")
    parser.add_argument(
        "--violations", type=int, help="violations (messages the shipped pack blocks) a run (default 100000)"
    )
    parser.add_argument("--kills", type=int, help="how many times a run kills worker a (default 4)")
    parser.add_argument(
        "--quick", action="store_true", help="a small run: 1 run, 5000 violations, 2 kills (about two minutes)"
    )
    parser.add_argument(
        "--store",
        choices=("rocksdb://", "memory://"),
        default="rocksdb://",
        help="the workers' table store (default rocksdb://; memory:// stores cannot be read back and compared)",
    )
    parser.add_argument("--partitions", type=int, default=8, help="of every topic (default 8)")
    parser.add_argument("--groups", type=int, default=200, help="chat groups (default 200); senders are per group")
    parser.add_argument("--spam-ratio", type=float, default=0.3, help="share of spam in the chat (default 0.3)")
    parser.add_argument(
        "--rate",
        type=int,
        default=4000,
        help="messages published a second (default 4000: the input lasts long enough for the kills)",
    )
    parser.add_argument("--down", type=float, default=3.0, help="seconds a killed worker stays down (default 3)")
    parser.add_argument(
        "--min-uptime",
        type=float,
        default=5.0,
        help="seconds worker a works, once its standing stage has partitions, before it is killed again (default 5)",
    )
    parser.add_argument(
        "--settle", type=float, default=30.0, help="end a run after this many seconds without new output (default 30)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="longest a run may take, in s (default 1800)")
    parser.add_argument("--seed", type=int, default=1, help="of the first run's chat; each run adds one (default 1)")
    parser.add_argument(
        "--same-input",
        action="store_true",
        help="every run the first run's chat, replayed once: the later runs take about half as long",
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"runs": 10, "violations": 100_000, "kills": 4}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("runs", "violations", "partitions", "groups", "rate"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.kills < 0 or args.down < 0 or args.min_uptime < 0 or args.settle <= 0 or args.timeout <= 0:
        parser.error("--kills, --down and --min-uptime must not be negative, --settle and --timeout positive")
    if not 0 < args.spam_ratio <= 1:
        parser.error("--spam-ratio must be above 0 and at most 1")
    try:
        return loop(args)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        return 1
    except KeyboardInterrupt:  # before the first run
        return 130


def loop(args: argparse.Namespace) -> int:
    """The runs, a line each, and the count of runs with loss; on Ctrl-C, the count of the runs finished."""
    root = Path(tempfile.mkdtemp(prefix="groupwarden-crash-"))
    say(f"logs in {root}")
    lossy = short = done = 0
    work: Workload | None = None
    replayed: Decided | None = None  # kept for the next runs when they take the same input
    try:
        for index in range(1, args.runs + 1):
            if work is None or not args.same_input:
                work = workload(args.violations, args.groups, args.spam_ratio, args.seed + index - 1)
                replayed = None
            say(f"run {index}: {fmt(len(work.pairs))} messages, {fmt(work.blocked)} blocked; {args.store} store")
            folder = root / f"run-{index}"
            folder.mkdir()
            try:
                with EmbeddedBroker(log_path=folder / "tansu.log") as broker:
                    result = asyncio.run(crash_run(index, args, folder, broker.bootstrap_servers, work, replayed))
            except (BrokerError, RunError, KafkaError, OSError) as exc:
                print(f"crash_loop: run {index} could not be carried out: {exc}", file=sys.stderr)
                return CANNOT_RUN
            finally:
                for data in folder.glob("data-*"):
                    shutil.rmtree(data, ignore_errors=True)  # logs stay
            for detail in result.details():
                say(detail)
            print(result.line(index, args.kills), flush=True)
            lossy += result.lossy
            short += result.kills < args.kills
            replayed = result.replay
            done += 1
    except KeyboardInterrupt:  # the workers and the broker are stopped on the way out
        print(f"crash_loop: interrupted in run {done + 1}", file=sys.stderr)
        print(f"crash_loop: {done} runs, {lossy} with loss", flush=True)
        return 130
    fewer = f", {short} with fewer kills than asked" if short else ""
    print(f"crash_loop: {done} runs, {lossy} with loss{fewer}", flush=True)
    return 1 if lossy or short else 0


if __name__ == "__main__":
    raise SystemExit(main())
