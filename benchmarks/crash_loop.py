"""Crash loop: one of two workers killed (SIGKILL) again and again while violations flow, then compared with a replay.

    python -m benchmarks.crash_loop [--runs 10] [--violations 100000] [--store rocksdb://|memory://] [--kills 4]
    python -m benchmarks.crash_loop --quick     # one run of 5,000 violations, two kills: about two minutes

Each run: an embedded broker on a free port and its topics; two `python -m streams worker` processes with data dirs of
their own; demo chat (streams/demo.py, with a larger spam share, so about --violations messages are blocked, links
included, so link campaigns happen) published at --rate; worker "a" killed with SIGKILL --kills times as the
standing tables progress, each time restarted on its own data dir after --down seconds. Once the input is published,
`groupwarden replay` runs the same topic into topics of its own; the run ends when the live outputs equal the
replay's, or when they have not changed for --settle seconds. Compared (see ``compare``):

- verdicts: every message id has one, with the replay's decision;
- strikes: each user's strike count in the user table's changelog (its final record, as recovery rebuilds it),
  against the replay's (one warning, mute or ban a strike);
- group windows: each group's violation count in the group table's changelog, against the replay's violations;
- sanctions: by subject, kind and revocation, and by the message that caused one when a single message did;
- the blacklist as compaction leaves it (the last record of each key), without its end times.

Left out, because the live pipeline and a replay legitimately differ there: every time of decision (a live violation
is dated when it was classified, a replayed one at its message's sent_at: start and end times of sanctions and
blacklist lines, the sanction ids that hash them, audit times), and the evidence of sanctions that a count of
violations reached (a group's steps, a link campaign): which violation crossed the threshold, and so the window it
names, depends on arrival order, which the replay makes event order. Each sender posts in one group only, so each
user's violations are classified in the order they were sent, as the replay takes them, and a user's ladder must
match exactly. Where a user's violations still reach moderation.violations.v1 in another order (first copies, as
they arrived), the ladder decides in that order and may differ with nothing lost: that user's sanctions and blacklist
entry are counted apart, not as loss (their strike count still counts), and the run's line says how many.

Progress goes to standard error, one line a run to standard output, and last:

    crash_loop: <runs> runs, <k> with loss

where a run with loss is one whose live outputs differ from its replay's in anything compared (a verdict, strike
count, group window, sanction or blacklist entry missing, or decided otherwise) beyond what arrival order explains;
exit 1 if k > 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from benchmarks.e2e import Process, fmt, producer
from benchmarks.standing import scraped, worker
from streams import demo
from streams.config import DEFAULT_RULES, Settings
from streams.kafka.broker import BrokerError, EmbeddedBroker, free_port
from streams.kafka.produce import OutRecord, send_batched
from streams.policy.classify import Classifier
from streams.policy.rules import load_pack
from streams.records import InvalidMessage, parse_message
from streams.replay import Progress
from streams.state.codec import load_group, load_user
from streams.state.recovery import true_end_offsets
from streams.topics import AUDIT, BLACKLIST, MESSAGES, SANCTIONS, VERDICTS, VIOLATIONS, create_topics

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


def workload(violations: int, groups: int, spam_ratio: float, seed: int) -> Workload:
    """Demo chat until ``violations`` messages are blocked. Senders are renamed per group (``u123@g00042``): a user
    posting in one group has all their messages on one partition of the chat topic, which the classify stage reads in
    order, so the user table can take their violations in the order sent, as the replay does."""
    classifier = Classifier(load_pack(DEFAULT_RULES))
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


def say(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def publish_paced(settings: Settings, pairs: list[tuple[bytes, bytes]], rate: int) -> None:
    """The messages at about ``rate`` a second, so the kills fall while they are being moderated."""
    client = producer(settings.bootstrap_servers)
    await client.start()
    try:
        started = time.monotonic()
        for start in range(0, len(pairs), PUBLISH_CHUNK):
            chunk = pairs[start : start + PUBLISH_CHUNK]
            await send_batched(client, (OutRecord(settings.topic(MESSAGES), k, v) for k, v in chunk))
            await asyncio.sleep(max(0.0, started + (start + len(chunk)) / rate - time.monotonic()))
    finally:
        await client.stop()


class RunError(RuntimeError):
    """A run that could not be carried out (a replay that failed, a broker that went away): no finding either way."""


async def run_replay(settings: Settings, folder: Path) -> Decided:
    """`groupwarden replay` of the run's chat topic into topics of its own, and what it decided."""
    out = Settings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=f"{settings.topic_prefix}replay.",
        partitions=settings.partitions,
    )
    env = os.environ | {"GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    command = ["-m", "streams", "replay", "--topic", settings.topic(MESSAGES), "--output-prefix", out.topic_prefix]
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
    live: Decided
    replay: Decided
    kills: int
    unasked: int  # workers that exited without being killed, and were restarted
    seconds: float

    def line(self, index: int) -> str:
        replay, live = self.replay, self.live
        strikes = replay.strikes_from_sanctions()
        differences = self.differences
        outcome = f"LOSS: {differences.text()}" if differences else "equal to the replay"
        if differences.reordered:
            outcome += f"; {differences.reordering()}"
        facts = (
            f"{fmt(len(replay.verdicts))} verdicts ({fmt(live.verdict_records - len(live.verdicts))} repeated), "
            f"{fmt(strikes.total())} strikes of {fmt(len(strikes))} users, {fmt(len(replay.sanctions))} sanctions, "
            f"{fmt(len(replay.blacklist))} blacklist entries; {self.kills} kills"
        )
        if self.unasked:
            facts += f", {self.unasked} exits of their own"
        return f"run {index}: {outcome}; {facts}; {self.seconds:.0f} s"


class Workers:
    """The run's two workers, each on a data dir of its own; "a" is the one killed and restarted."""

    def __init__(self, settings: Settings, store: str, folder: Path) -> None:
        self.settings, self.store, self.folder = settings, store, folder
        self.ports: dict[str, int] = {}
        self.running = {name: self.start(name) for name in ("a", "b")}

    def start(self, name: str) -> Process:
        self.ports[name] = free_port()
        data, log = self.folder / f"data-{name}", self.folder / f"worker-{name}.log"
        return worker(self.settings, self.store, data, log, metrics_port=self.ports[name])

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

    def stop(self) -> None:
        for running in self.running.values():
            running.stop()


async def crash_run(index: int, args: argparse.Namespace, folder: Path, bootstrap: str, work: Workload) -> RunResult:
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"crash{index}.",
        group_id=f"crash{index}",
        partitions=args.partitions,
        store=args.store,
    )
    await create_topics(settings)
    started = time.monotonic()
    workers = Workers(settings, args.store, folder)
    # Kill at even steps of the violations applied, each time once the restarted worker has had time to join.
    thresholds = [work.blocked * (n + 1) / (args.kills + 1) for n in range(args.kills)]
    kills = unasked = 0
    down_until: float | None = None
    assigned_at: float | None = None  # when worker a's standing stage was first seen with partitions since its start
    publishing = asyncio.create_task(publish_paced(settings, work.pairs, args.rate))
    replaying: asyncio.Task[Decided] | None = None
    replay: Decided | None = None
    bar = Progress(f"run {index}: violations applied")
    try:
        async with Reader(settings, live_topics(settings)) as live:
            last_new = last_check = time.monotonic()
            while True:
                if await live.poll():
                    last_new = time.monotonic()
                now = time.monotonic()
                applied = len(live.decided.applied)
                bar(min(applied, work.blocked), work.blocked)
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
                    and applied >= thresholds[kills]
                    and now - assigned_at >= args.min_uptime
                ):
                    workers.running["a"].kill()
                    kills += 1
                    down_until = now + args.down
                    say(f"kill -9 of worker a ({kills} of {args.kills}) at {fmt(applied)} violations applied")
                if replaying is None and publishing.done():
                    publishing.result()  # raises what publishing raised
                    say(f"{fmt(len(work.pairs))} messages published; replaying them")
                    replaying = asyncio.create_task(run_replay(settings, folder))
                if replay is None and replaying is not None and replaying.done():
                    replay = replaying.result()
                    say(f"replayed: {fmt(len(replay.verdicts))} verdicts, {fmt(len(replay.sanctions))} sanctions")
                if now - started >= args.timeout:
                    if replay is None:
                        raise RunError(f"no replay to compare with after {args.timeout:.0f} s; logs: {folder}")
                    say(f"still changing after {args.timeout:.0f} s: comparing as it is")
                    break
                if replay is None or down_until is not None:
                    continue
                if now - last_check >= CHECK_SECONDS:
                    last_check = now
                    if not compare(live.decided, replay):
                        await drain(live, GRACE_SECONDS)  # repeats still on their way change nothing; more would
                        break
                if now - last_new >= args.settle:
                    say(f"no new output for {args.settle:.0f} s: comparing as it is")
                    break
            bar.done()
            return RunResult(
                compare(live.decided, replay), live.decided, replay, kills, unasked, time.monotonic() - started
            )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="runs, each with a broker and workers of its own (default 10)")
    parser.add_argument("--violations", type=int, help="blocked messages a run (default 100000)")
    parser.add_argument("--kills", type=int, help="how many times a run kills worker a (default 4)")
    parser.add_argument(
        "--quick", action="store_true", help="a small run: 1 run, 5000 violations, 2 kills (about two minutes)"
    )
    parser.add_argument(
        "--store",
        choices=("rocksdb://", "memory://"),
        default="rocksdb://",
        help="the workers' table store (default rocksdb://)",
    )
    parser.add_argument("--partitions", type=int, default=8, help="of every topic (default 8)")
    parser.add_argument("--groups", type=int, default=200, help="chat groups (default 200); senders are per group")
    parser.add_argument("--spam-ratio", type=float, default=0.3, help="share of spam in the chat (default 0.3)")
    parser.add_argument("--rate", type=int, default=5000, help="messages published a second (default 5000)")
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

    root = Path(tempfile.mkdtemp(prefix="groupwarden-crash-"))
    print(f"crash_loop: logs in {root}", file=sys.stderr, flush=True)
    lossy = 0
    for index in range(1, args.runs + 1):
        work = workload(args.violations, args.groups, args.spam_ratio, args.seed + index - 1)
        say(f"run {index}: {fmt(len(work.pairs))} messages, {fmt(work.blocked)} of them blocked; {args.store} store")
        folder = root / f"run-{index}"
        folder.mkdir()
        try:
            with EmbeddedBroker(log_path=folder / "tansu.log") as broker:
                result = asyncio.run(crash_run(index, args, folder, broker.bootstrap_servers, work))
        except (BrokerError, RunError, KafkaError, OSError) as exc:
            print(f"crash_loop: run {index} could not be carried out: {exc}", file=sys.stderr)
            return 2
        finally:
            for data in folder.glob("data-*"):
                shutil.rmtree(data, ignore_errors=True)  # logs stay
        for example in result.differences.examples:
            say(example)
        print(result.line(index), flush=True)
        lossy += bool(result.differences)
    print(f"crash_loop: {args.runs} runs, {lossy} with loss", flush=True)
    return 1 if lossy else 0


if __name__ == "__main__":
    raise SystemExit(main())
