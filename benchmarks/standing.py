"""The standing tables (streams/agents/standing.py): throughput, store footprint and recovery, against baselines.

    python -m benchmarks.standing [--quick] [--violations 20000] [--store-users 200000] [--recovery-users 1000000]
        [--no-faust-restarts]

1. throughput: N violations published first to moderation.violations.v1 (keyed by sender, many users and groups),
   then one `python -m streams worker`; the rate counts from the first audit record to the last, when every
   violation has been applied to both the user and the group table (one audit record each). Baselines of the same
   run: the per-event Faust passthrough (benchmarks/passthrough_app.py) over the same records, and the standing
   agents with the memory:// store instead of RocksDB.
2. store footprint, without Faust or a broker (in a fresh process, so its RSS is the store's): user records built by
   the real pure code (most users 1 strike, some 2-4), every version written as the worker writes it (one put per
   violation) into per-partition RocksDB databases opened with Faust's own options; disk after flush and after
   compaction, RSS growth, scaled to 1M users. Baselines: the raw size of the encoded records, and a plain dict of
   the same records (what the memory:// store holds), measured with tracemalloc.
3. recovery: a users changelog of M records (the final record of each user, with the headers the standing stage
   writes, in the order users last changed) produced straight to "<app id>-users-changelog", then a worker started
   with an empty data dir (cold) and again with its data dir kept (warm); times come from the worker's log and from
   the audit of a violation, published once the worker is ready, of a user whose strikes are only in the changelog
   (its sanction shows whether the record was recovered), and from the verdict of a chat message published before
   the start (the classify stage does not wait for the tables).
   Before the workers, the same changelog restored into the standing stage's own stores (streams/state/store.py,
   RocksDB, one per partition) in this process: cold (empty stores: the whole changelog, a write batch per fetch),
   then warm (the stores reopened: only the tail after their checkpoint), and the stores compared with the
   changelog (values and due times); their disk and this process's RSS growth. Baseline: reading the same changelog
   with a plain aiokafka consumer, in the same run; wall and CPU time of both, with the machine's load average.
   Below 1M records the figures are scaled to 1M.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

import orjson
import rocksdict
from aiokafka import TopicPartition
from faust.stores.rocksdb import RocksDBOptions

from benchmarks.e2e import (
    PUBLISH_CHUNK,
    Process,
    consumer,
    copied_all,
    fmt,
    passthrough_running,
    plain_read,
    producer,
    progress,
    publish,
    read_outputs,
)
from streams.config import DEFAULT_RULES, Settings
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.produce import OutRecord, partition_for, send_batched
from streams.policy import standing
from streams.policy.ladder import Violation
from streams.policy.rules import Severity, load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions
from streams.state import codec
from streams.state.restore import restore as restore_stores
from streams.state.store import PartitionStore, changelog_headers, open_store
from streams.topics import AUDIT, MESSAGES, SANCTIONS, VERDICTS, VIOLATIONS, TopicSpec, create_topics

PARTITIONS = 8  # passthrough_app.py declares its topics with the same count
STRIKE_MIX = ((1, 0.80), (2, 0.12), (3, 0.05), (4, 0.03))  # strikes per user: most users are caught once
VIOLATIONS_PER_GROUP = 8  # enough for groups to reach their warning and suspension steps
GROUPS = 50_000
DAY_MS = 24 * 3600 * 1000
OFFSET_KEY = b"__faust\0offset__"  # Faust's own bookkeeping key in every partition database
RECOVERY_WAIT = 600.0
LOGLEVEL = "info"  # recovery is timed from INFO lines; at "warning" Faust's spinner turns every logger up to DEBUG
MiB = 1 << 20
DISTINCT_USERS = 10_000  # user records built for the recovery changelog; more users repeat them under their own ids


def _policy() -> tuple[SanctionPolicy, str, list[str]]:
    pack = load_pack(DEFAULT_RULES)
    policy = load_sanctions(DEFAULT_RULES / "sanctions.toml", pack.ids())
    # Rules without a severe floor, so the ladder, not the rule, decides each sanction.
    rules = sorted(
        i for i in pack.ids() if "." in i and i not in policy.user.severe and i.split(".")[0] not in policy.user.severe
    )
    return policy, pack.version, rules


def _strikes(rng: random.Random, count: int) -> list[int]:
    return rng.choices([n for n, _ in STRIKE_MIX], weights=[w for _, w in STRIKE_MIX], k=count)


def _user(n: int) -> str:
    return f"u{n:09d}"


# -- 1. throughput -----------------------------------------------------------------------------------------------


@dataclass
class Workload:
    pairs: list[tuple[bytes, bytes]]
    users: int
    groups: int


def violations(count: int, rules: list[str], version: str, seed: int = 7, start_ms: int | None = None) -> Workload:
    """`count` violations keyed by sender, in shuffled order, each user's strikes drawn from STRIKE_MIX, one
    millisecond apart from ``start_ms`` (default: so that the last is now)."""
    rng = random.Random(seed)
    senders: list[str] = []
    users = 0
    while len(senders) < count:
        users += 1
        senders.extend([_user(users)] * _strikes(rng, 1)[0])
    del senders[count:]
    rng.shuffle(senders)
    groups = max(1, count // VIOLATIONS_PER_GROUP)
    if start_ms is None:
        start_ms = int(time.time() * 1000) - count
    pairs = []
    for n, sender in enumerate(senders):
        rule = rng.choice(rules)
        doc = {
            "schema": "moderation.violation.v1",
            "message_id": f"msg-{n:09d}",
            "sender_id": sender,
            "group_id": f"g{rng.randrange(groups):06d}",
            "at_ms": start_ms + n,
            "severity": "high",
            "categories": [rule.split(".")[0]],
            "rule_ids": [rule],
            "domains": [],
            "rules_version": version,
        }
        pairs.append((sender.encode(), orjson.dumps(doc)))
    return Workload(pairs, users, groups)


def worker(settings: Settings, store: str, data_dir: Path, log_path: Path, metrics_port: int | None = None) -> Process:
    """A `python -m streams worker`; its metrics on ``metrics_port``, or $GROUPWARDEN_METRICS_PORT, or any free port."""
    env = {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
        "GROUPWARDEN_GROUP_ID": settings.group_id,
        "GROUPWARDEN_PARTITIONS": str(settings.partitions),
        "GROUPWARDEN_STORE": store,
        "GROUPWARDEN_DATA_DIR": str(data_dir),
        "GROUPWARDEN_METRICS_PORT": str(metrics_port)
        if metrics_port is not None
        else os.environ.get("GROUPWARDEN_METRICS_PORT", "0"),  # others may hold the default
    }
    args = [sys.executable, "-m", "streams", "worker", "--loglevel", LOGLEVEL]
    return Process(f"groupwarden worker ({store})", args, env, log_path)


@dataclass
class Throughput:
    rate: float
    seconds: float
    with_startup: float
    cpu: dict[str, float]  # cores used between first and last output: worker, broker, and "machine" (share busy)
    early: float = 0.0  # rate over the first quarter of the outputs
    late: float = 0.0  # and over the last quarter
    note: str = ""


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of all cores since boot."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def broker_pid(broker: EmbeddedBroker) -> int | None:
    """The embedded broker's process, found by its listener URL, so its CPU can be told apart from the worker's."""
    needle = f"tcp://127.0.0.1:{broker.port}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return None


class CpuSampler:
    """Samples the CPU time of the worker, the broker and the machine, so a rate can be read as CPU-bound or not."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        busy, total = machine_cpu()
        cpu = {"machine busy": busy, "machine total": total}
        for name, pid in self.pids.items():
            try:
                cpu[name] = process_cpu(pid)
            except OSError:
                return  # the process has gone: keep the samples taken while it ran
        self.samples.append((time.time(), cpu))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.25)

    def __enter__(self) -> CpuSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()

    def between(self, start: float, end: float) -> dict[str, float]:
        """Cores each process used between two epoch times (to the nearest samples), and the machine's busy share."""
        inside = [s for s in self.samples if start - 0.25 <= s[0] <= end + 0.25]
        if len(inside) < 2:
            return {}
        (t0, a), (t1, b) = inside[0], inside[-1]
        cores = {name: (b[name] - a[name]) / (t1 - t0) for name in self.pids}
        cores["machine"] = (b["machine busy"] - a["machine busy"]) / max(b["machine total"] - a["machine total"], 1e-9)
        return cores


def cpu_text(cpu: dict[str, float]) -> str:
    parts = [f"{name} {cores:.2f} cores" for name, cores in cpu.items() if name != "machine"]
    if "machine" in cpu:
        parts.append(f"machine {cpu['machine']:.0%} busy")
    return ", ".join(parts)


async def passthrough(
    bootstrap_servers: str, tag: str, pairs: list[tuple[bytes, bytes]], logs: Path, broker: int | None
) -> Throughput:
    async with passthrough_running(bootstrap_servers, tag, pairs, logs) as (process, reader):
        with CpuSampler({"worker": process.process.pid, "broker": broker}) as sampler:
            out = await read_outputs(reader, len(pairs), process)
    with_startup = copied_all(out, len(pairs), process)
    assert out.first_ms is not None
    cpu = sampler.between(out.first_ms / 1000, out.last_ms / 1000)
    progress(
        f"{fmt(out.rate)} msgs/s ({out.seconds:.1f} s first to last output, {with_startup:.1f} s with start-up; "
        f"{cpu_text(cpu)})"
    )
    return Throughput(out.rate, out.seconds, with_startup, cpu)


async def standing_agents(
    bootstrap_servers: str, tag: str, store: str, work: Workload, root: Path, broker: int | None
) -> Throughput:
    label = store.removesuffix("://")
    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"bench-{tag}-{label}.",
        group_id=f"bench-{tag}-{label}",
        partitions=PARTITIONS,
    )
    await create_topics(settings)
    await publish(bootstrap_servers, settings.topic(VIOLATIONS), work.pairs)
    reader = consumer(bootstrap_servers, settings.topic(AUDIT))
    await reader.start()
    process: Process | None = None
    data_dir = root / f"{label}-data"
    expected = 2 * len(work.pairs)  # each violation is decided by user-standing, then (forwarded) by group-standing
    try:
        process = worker(settings, store, data_dir, root / f"standing-{label}.log")
        progress(f"worker started ({store} store)")
        with CpuSampler({"worker": process.process.pid, "broker": broker}) as sampler:
            audits = (await read_outputs(reader, expected, process, keep_topic=settings.topic(AUDIT))).kept
    finally:
        if process:
            process.stop()
        await reader.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    applied: dict[str, set[str]] = {"user": set(), "group": set()}
    for _, value in audits:
        doc = orjson.loads(value)
        applied[doc["subject"].partition(":")[0]].add(doc["input"]["message_id"])
    counts = (
        f"{fmt(len(audits))} audit records: {fmt(len(applied['user']))} violations applied to users, "
        f"{fmt(len(applied['group']))} to groups"
    )
    progress(counts)
    if len(applied["user"]) != len(work.pairs) or len(applied["group"]) != len(work.pairs):
        raise AssertionError(f"{store}: {counts}, for {fmt(len(work.pairs))} violations")
    times = sorted(ms for ms, _ in audits)
    seconds = (times[-1] - times[0]) / 1000
    quarter = len(times) // 4

    def rate(first: int, last: int) -> float:  # violations/s between two audits: two audits a violation
        return (last - first) / 2 / max((times[last] - times[first]) / 1000, 0.001)

    cpu = sampler.between(times[0] / 1000, times[-1] / 1000)
    result = Throughput(
        rate=len(work.pairs) / max(seconds, 0.001),
        seconds=seconds,
        with_startup=times[-1] / 1000 - process.started,
        cpu=cpu,
        early=rate(0, quarter),
        late=rate(len(times) - 1 - quarter, len(times) - 1),
        note=f"{fmt(len(audits) - expected)} duplicate audit records" if len(audits) > expected else "",
    )
    progress(
        f"{fmt(result.rate)} violations/s ({seconds:.1f} s first to last audit, {result.with_startup:.1f} s with "
        f"start-up; first quarter {fmt(result.early)}/s, last quarter {fmt(result.late)}/s; {cpu_text(cpu)})"
    )
    return result


# -- 2. store footprint ------------------------------------------------------------------------------------------


def user_versions(
    n: int, strikes: int, policy: SanctionPolicy, rules: list[str], rng: random.Random, now_ms: int
) -> list[bytes]:
    """Every version of one user's record, as the worker writes it: one per violation (strikes over the last 30
    days), and one when its restrictions were last brought up to date."""
    user = _user(n)
    record = standing.new_user_record(policy)
    out = []
    for k, at_ms in enumerate(sorted(now_ms - rng.randrange(30 * DAY_MS) for _ in range(strikes))):
        rule = rng.choice(rules)
        violation = Violation(
            f"msg-{n:09d}-{k}",
            user,
            f"g{rng.randrange(GROUPS):06d}",
            at_ms,
            Severity.HIGH,
            (rule.split(".")[0],),
            (rule,),
        )
        record, _ = standing.user_violation(record, violation, policy)
        out.append(codec.dump_user(record))
    # The worker ticks a record when a restriction ends: without that, every mute that has ended since would be
    # due at once after a restart, which a running system never has.
    ticked = codec.dump_user(standing.user_tick(record, policy, now_ms)[0])
    if ticked != out[-1]:
        out.append(ticked)
    return out


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def disk(path: Path) -> tuple[int, int]:
    """Bytes in SST files (they grow with the table) and in every other file (logs, manifests: per database)."""
    sst = other = 0
    for file in path.rglob("*"):
        if file.is_file():
            size = file.stat().st_size
            if file.suffix == ".sst":
                sst += size
            else:
                other += size
    return sst, other


@dataclass
class Footprint:
    users: int
    versions: int
    raw_bytes: int  # sum of len(dump_user(final record))
    key_bytes: int
    generate_seconds: float
    write_seconds: float
    wal_only: tuple[int, int]  # disk after the puts, before any flush
    flushed: tuple[int, int]
    compacted: tuple[int, int]
    rss_writes: int
    rss_flushed: int
    rss_read: int
    dict_bytes: int  # {key: value}, as memory:// holds the table
    index_bytes: int  # memory:// also keeps {key: partition}
    strikes: Counter[int] = field(default_factory=Counter)


def store_footprint(users: int, folder: str, seed: int = 11) -> Footprint:
    """Runs in a fresh process: its RSS growth is the RocksDB store's, not the leftovers of earlier steps."""
    policy, _, rules = _policy()
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    strikes = _strikes(rng, users)
    versions = [(_user(n).encode(), user_versions(n, s, policy, rules, rng, now_ms)) for n, s in enumerate(strikes)]
    generate_seconds = time.perf_counter() - started
    path = Path(folder)
    options = RocksDBOptions()  # Faust's defaults, as the groupwarden app leaves them
    before = rss()
    # One database per changelog partition, named as Faust names them; the key picks it as Kafka's partitioner does.
    dbs = [options.open(path / f"users-{p}.db") for p in range(PARTITIONS)]
    started = time.perf_counter()
    for key, values in versions:
        db = dbs[partition_for(key, PARTITIONS)]
        for value in values:
            db.put(key, value)
    write_seconds = time.perf_counter() - started
    for p, db in enumerate(dbs):
        db.put(OFFSET_KEY, str(p).encode())
    rss_writes = rss() - before
    wal_only = disk(path)
    for db in dbs:
        db.flush()
    flushed = disk(path)
    for db in dbs:
        db.compact_range(None, None)
    compacted = disk(path)
    rss_flushed = rss() - before
    for key, _ in versions:  # a worker that has seen every user once: the block cache holds the table
        assert dbs[partition_for(key, PARTITIONS)].get(key) is not None
    rss_read = rss() - before
    for db in dbs:
        db.close()
    del dbs

    final = [(key, values[-1]) for key, values in versions]
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    data = {bytes(memoryview(key)): bytes(memoryview(value)) for key, value in final}  # fresh objects, as decoded
    with_data, _ = tracemalloc.get_traced_memory()
    index = {key: partition_for(key, PARTITIONS) for key in data}
    with_index, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(data) == len(index) == users
    return Footprint(
        users=users,
        versions=sum(len(values) for _, values in versions),
        raw_bytes=sum(len(value) for _, value in final),
        key_bytes=sum(len(key) for key, _ in final),
        generate_seconds=generate_seconds,
        write_seconds=write_seconds,
        wal_only=wal_only,
        flushed=flushed,
        compacted=compacted,
        rss_writes=rss_writes,
        rss_flushed=rss_flushed,
        rss_read=rss_read,
        dict_bytes=with_data - base,
        index_bytes=with_index - with_data,
        strikes=Counter(strikes),
    )


def footprint_in_fresh_process(users: int, root: Path) -> Footprint:
    folder = root / "store-footprint"
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(store_footprint, users, str(folder)).result()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- 3. recovery -------------------------------------------------------------------------------------------------

_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
MARKERS = {
    "reading": "Restoring state from changelog topics",
    "read": "Done reading from changelog topics",
    "restored": "Restore complete!",
    "ready": "Worker ready",
}


def log_marks(log_path: Path) -> dict[str, list[float]]:
    """When each recovery marker appears in a worker log (epoch seconds), every time: a rebalance repeats them."""
    found: dict[str, list[float]] = {name: [] for name in MARKERS}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if match:
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for name, text in MARKERS.items():
                if text in line:
                    found[name].append(at)
    return found


def worker_ready(log_path: Path) -> bool:
    return MARKERS["ready"] in log_path.read_text(errors="replace")


@dataclass
class Probe:
    """A violation of a user whose strikes are only in the changelog: its sanction shows they were recovered."""

    user: str
    message_id: str
    pair: tuple[bytes, bytes]
    expected: list[str]  # sanction kinds with the recovered record
    fresh: list[str]  # sanction kinds had the record been lost


def probe(user: str, record: bytes, policy: SanctionPolicy, version: str, n: int) -> Probe:
    at_ms = int(time.time() * 1000)
    violation = Violation(f"probe-{n}", user, "g-probe", at_ms, Severity.HIGH, ("scam",), ("scam.phishing",))
    doc = codec.violation_to_dict(violation) | {
        "schema": "moderation.violation.v1",
        "domains": [],
        "rules_version": version,
    }
    expected = [s.kind for s in standing.user_violation(codec.load_user(record), violation, policy)[1].sanctions]
    fresh = [s.kind for s in standing.user_violation(standing.new_user_record(policy), violation, policy)[1].sanctions]
    assert expected != fresh, f"a violation of {user} is decided the same with or without its record"
    return Probe(user, violation.message_id, (user.encode(), orjson.dumps(doc)), expected, fresh)


@dataclass
class Restart:
    label: str
    to_decision: float | None  # worker start to the probe's audit record; None: no decision in RECOVERY_WAIT
    to_verdict: float | None  # worker start to the verdict of a chat message published before it; None: none came
    marks: dict[str, list[float]]  # marker -> seconds after the worker started, each time it was logged
    sanctions: list[str]
    recovered: bool
    reading_cpu: dict[str, float]  # cores used while the changelog was read

    def first(self, name: str) -> float | None:
        return self.marks[name][0] if self.marks.get(name) else None


async def restart(
    label: str, settings: Settings, data_dir: Path, log_path: Path, check: Probe, broker: int | None
) -> Restart:
    """Start a worker on `data_dir`; once it logs "Worker ready", publish the probe's violation and wait for the
    decision. Published before the start, it could be lost: Faust drops records fetched while a partition is paused
    for recovery and seeks back only to a committed offset, which a new consumer group has none of.
    A chat message published before the start times the classify stage, which keeps no table: its verdict."""
    subject = f"user:{check.user}"
    topics = settings.topic(AUDIT), settings.topic(SANCTIONS), settings.topic(VERDICTS)
    reader = consumer(settings.bootstrap_servers, *topics, fetch_max_wait_ms=100)
    writer = producer(settings.bootstrap_servers)
    await reader.start()
    await writer.start()
    chat_id = f"waiting-{uuid.uuid4().hex[:8]}"
    chat = {
        "message_id": chat_id,
        "group_id": "g0",
        "sender_id": "u0",
        "sent_at": int(time.time() * 1000),
        "text": "早",
    }
    await send_batched(writer, [OutRecord(settings.topic(MESSAGES), b"g0", orjson.dumps(chat))])
    process = worker(settings, "rocksdb://", data_dir, log_path)
    progress(f"{label}: worker started; a violation of {check.user} goes out when it is ready")
    published = False
    decided_ms: int | None = None
    verdict_ms: int | None = None
    sanctions: list[str] = []
    last_report = time.monotonic()
    try:
        with CpuSampler({"worker": process.process.pid, "broker": broker}) as sampler:
            # Until both are in, and a second more: the sanctions come with the audit.
            while verdict_ms is None or decided_ms is None or time.time() - decided_ms / 1000 < 1:
                process.check()
                if not published and worker_ready(log_path):
                    await send_batched(writer, [OutRecord(settings.topic(VIOLATIONS), *check.pair)])
                    published = True
                for records in (await reader.getmany(timeout_ms=200)).values():
                    for record in records:
                        doc = orjson.loads(record.value or b"")
                        if record.topic == topics[2]:
                            if doc["message_id"] == chat_id:
                                verdict_ms = record.timestamp
                            continue
                        if doc.get("subject") != subject:
                            continue
                        if record.topic == topics[1]:
                            sanctions.append(doc["kind"])
                        elif doc["input"].get("message_id") == check.message_id:
                            decided_ms = record.timestamp
                now = time.monotonic()
                if (decided_ms is None or verdict_ms is None) and time.time() - process.started > RECOVERY_WAIT:
                    progress(f"{label}: no decision after {RECOVERY_WAIT:.0f} s; log: {log_path}")
                    break
                if now - last_report >= 15 and decided_ms is None:
                    state = "waiting for the decision" if published else "not ready yet"
                    progress(f"{label}: {time.time() - process.started:.0f} s, {state}")
                    last_report = now
    finally:
        await writer.stop()
        await reader.stop()
        process.stop()
    started = process.started
    logged = log_marks(log_path)
    marks = {name: [at - started for at in times if at >= started - 1] for name, times in logged.items()}
    reading: dict[str, float] = {}
    if logged["reading"] and logged["read"]:
        reading = sampler.between(logged["reading"][0], logged["read"][0])
    to_decision = None if decided_ms is None else decided_ms / 1000 - started
    to_verdict = None if verdict_ms is None else verdict_ms / 1000 - started
    result = Restart(label, to_decision, to_verdict, marks, sanctions, sanctions == check.expected, reading)
    progress(
        f"{label}: "
        + ("no decision" if to_decision is None else f"decided {to_decision:.1f} s after the start")
        + ("; no verdict" if to_verdict is None else f"; the waiting chat message's verdict {to_verdict:.1f} s")
        + f"; sanctions {sanctions} (a recovered record gives {check.expected}, a lost one {check.fresh}); log: "
        + ", ".join(f"{name} at {', '.join(f'{t:.1f}' for t in times)} s" for name, times in marks.items() if times)
    )
    return result


def count_rocksdb_keys(data_dir: Path) -> int:
    """Users in the worker's RocksDB files, read after it stopped."""
    total = 0
    for path in sorted(data_dir.rglob("users-*.db")):
        db = rocksdict.Rdict(
            str(path), options=rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only()
        )
        total += sum(1 for key in db.keys() if key != OFFSET_KEY)  # noqa: SIM118 - Rdict has no __iter__
        db.close()
    return total


@dataclass
class StoreRestore:
    """The standing stage's own stores (streams/state/store.py) restored from the changelog, in this process."""

    cold_seconds: float  # empty stores: the whole changelog read into RocksDB, the stores made durable
    warm_seconds: float  # the stores reopened from their files: only the tail after the checkpoint is read
    cold_read: int
    warm_read: int
    exact: bool  # the stores hold exactly the changelog's last record of each key, and its due time
    cpu_seconds: float  # this process's CPU while restoring cold
    disk: tuple[int, int]  # bytes in SST files and in other files, after the cold restore
    rss_growth: int  # this process's RSS growth from opening the stores to the end of the cold restore


def changelog_records(
    users: int, policy: SanctionPolicy, rules: list[str], rng: random.Random
) -> tuple[list[int], list[tuple[bytes, bytes, int | None]]]:
    """Each user's strikes and final record with its due time, in a shuffled order: a changelog holds users in the
    order they last changed, not by id. Records are built by the real pure code for up to DISTINCT_USERS users;
    further users repeat one of them under their own id (building each costs ~0.3 ms)."""
    now_ms = int(time.time() * 1000)
    built = min(users, DISTINCT_USERS)
    strikes = _strikes(rng, built)
    templates = []
    for n, count in enumerate(strikes):
        record = user_versions(n, count, policy, rules, rng, now_ms)[-1]
        listed = codec.load_user(record).listed
        due = min((r.until_ms for r in listed if r.until_ms is not None), default=None)  # as the stage finds it
        templates.append((record, due))
    records = []
    for n in range(users):
        record, due = templates[n % built]
        if n >= built:
            record = record.replace(_user(n % built).encode(), _user(n).encode())
        records.append((_user(n).encode(), record, due))
    rng.shuffle(records)
    return [strikes[n % built] for n in range(users)], records


async def publish_changelog(bootstrap_servers: str, topic: str, records: list[tuple[bytes, bytes, int | None]]) -> None:
    """The records with the headers the standing stage writes: the due time, and the input record each came from."""
    started = time.perf_counter()
    client = producer(bootstrap_servers)
    await client.start()
    try:
        for i in range(0, len(records), PUBLISH_CHUNK):
            chunk = records[i : i + PUBLISH_CHUNK]
            await send_batched(
                client,
                (
                    OutRecord(topic, key, value, changelog_headers(due, VIOLATIONS, i + n))
                    for n, (key, value, due) in enumerate(chunk)
                ),
            )
    finally:
        await client.stop()
    progress(f"published {fmt(len(records))} changelog records to {topic} in {time.perf_counter() - started:.1f} s")


async def own_store_restore(
    settings: Settings, changelog: str, records: list[tuple[bytes, bytes, int | None]], folder: Path
) -> StoreRestore:
    tps = [TopicPartition(changelog, p) for p in range(settings.partitions)]

    def open_all() -> dict[TopicPartition, PartitionStore]:
        return {tp: open_store("rocksdb://", folder / f"users-{tp.partition}") for tp in tps}

    def close_all(stores: dict[TopicPartition, PartitionStore]) -> None:
        for store in stores.values():
            store.close()

    try:
        before = rss()
        started, cpu = time.perf_counter(), time.process_time()
        stores = open_all()
        cold = await restore_stores(settings.kafka_options(), stores)
        cold_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        rss_growth = rss() - before
        close_all(stores)
        on_disk = disk(folder)
        progress(f"own stores, cold: {fmt(cold.records)} records restored in {cold_seconds:.1f} s")
        started = time.perf_counter()
        stores = open_all()
        warm = await restore_stores(settings.kafka_options(), stores)
        warm_seconds = time.perf_counter() - started
        progress(f"own stores, warm: {fmt(warm.records)} records read in {warm_seconds:.1f} s")

        def store_of(key: bytes) -> PartitionStore:
            return stores[TopicPartition(changelog, partition_for(key, settings.partitions))]

        dues = {key: due for key, _, due in records if due is not None}
        exact = (
            sum(1 for store in stores.values() for _ in store.items()) == len(records)
            and all(store_of(key).get(key) == value for key, value, _ in records)
            and {key: due for store in stores.values() for key, due in store.expiries()} == dues
        )
        close_all(stores)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return StoreRestore(cold_seconds, warm_seconds, cold.records, warm.records, exact, cpu_seconds, on_disk, rss_growth)


@dataclass
class Recovery:
    users: int
    record_bytes: int
    plain_seconds: float
    plain_cpu: float  # this process's CPU while reading plainly
    own: StoreRestore
    cold: Restart | None
    warm: Restart | None
    stored_users: int
    load: tuple[float, float]  # the machine's 1-minute load average before and after the plain read and restores


async def recovery(
    bootstrap_servers: str, tag: str, users: int, root: Path, broker: int | None, *, faust_restarts: bool
) -> Recovery:
    policy, version, rules = _policy()
    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"bench-{tag}-rec.",
        group_id=f"bench-{tag}-rec",
        partitions=PARTITIONS,
    )
    await create_topics(settings)
    changelog = f"{settings.group_id}-users-changelog"  # Faust's name: "<app id>-<table>-changelog"
    await create_topics(replace(settings, topic_prefix=""), (TopicSpec(changelog, {"cleanup.policy": "compact"}),))

    started = time.perf_counter()
    strikes, records = changelog_records(users, policy, rules, random.Random(13))
    progress(f"built {fmt(users)} user records in {time.perf_counter() - started:.1f} s")
    await publish_changelog(bootstrap_servers, changelog, records)
    pairs = {key: value for key, value, _ in records}
    record_bytes = sum(len(value) for value in pairs.values())

    load_before = os.getloadavg()[0]
    cpu = time.process_time()
    plain_seconds = await plain_read(settings, changelog, users, RECOVERY_WAIT, max_partition_fetch_bytes=4 * MiB)
    plain_cpu = time.process_time() - cpu
    progress(f"a plain aiokafka consumer read the changelog in {plain_seconds:.1f} s")
    own = await own_store_restore(settings, changelog, records, root / "own-stores")
    load = (load_before, os.getloadavg()[0])
    if not faust_restarts:
        return Recovery(users, record_bytes, plain_seconds, plain_cpu, own, None, None, 0, load)

    def pick(wanted: int, n: int) -> Probe:
        index = next(i for i, s in enumerate(strikes) if s == wanted)
        return probe(_user(index), pairs[_user(index).encode()], policy, version, n)

    data_dir = root / "recovery-data"
    try:
        cold = await restart("cold restart", settings, data_dir, root / "recovery-cold.log", pick(3, 1), broker)
        warm = await restart("warm restart", settings, data_dir, root / "recovery-warm.log", pick(2, 2), broker)
        stored = count_rocksdb_keys(data_dir)
        progress(f"the worker's RocksDB holds {fmt(stored)} users")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return Recovery(users, record_bytes, plain_seconds, plain_cpu, own, cold, warm, stored, load)


# -- report ------------------------------------------------------------------------------------------------------


def per_million(value: float, users: int) -> float:
    return value * 1_000_000 / users


def mb(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def report_throughput(work: Workload, base: Throughput, memory: Throughput, rocksdb: Throughput) -> None:
    print()
    print(
        f"1. standing agents, {fmt(len(work.pairs))} violations ({fmt(work.users)} users, {fmt(work.groups)} groups), "
        f"{PARTITIONS} partitions, one worker (--loglevel {LOGLEVEL})"
    )
    print(
        f"  per-event Faust passthrough (baseline)      {fmt(base.rate):>7} msgs/s         "
        f"({base.seconds:.1f} s first to last output; {cpu_text(base.cpu)})"
    )
    for name, run in (("memory:// store", memory), ("rocksdb:// store", rocksdb)):
        print(
            f"  standing agents, {name:<27}{fmt(run.rate):>7} violations/s   "
            f"{run.rate / base.rate:4.2f}x passthrough   "
            f"({run.seconds:.1f} s first to last audit, {run.with_startup:.1f} s with start-up)"
            + (f"  {run.note}" if run.note else "")
        )
        print(f"    first quarter {fmt(run.early)}/s, last quarter {fmt(run.late)}/s; {cpu_text(run.cpu)}")
    print(f"  rocksdb / memory                            {rocksdb.rate / memory.rate:4.2f}x")
    print("  (a violation is two Faust events, user then group; each batch of events waits for its records' acks once)")


def report_footprint(f: Footprint) -> None:
    def line(label: str, value: float) -> str:
        per = mb(per_million(value, f.users))
        return f"  {label:<44}{mb(value):>12}   {per:>12} per 1M users   {value / f.raw_bytes:5.2f}x raw"

    print()
    mix = ", ".join(f"{f.strikes[n] / f.users:.0%} {n}" for n, _ in STRIKE_MIX)
    print(
        f"2. users table store, {fmt(f.users)} users (strikes: {mix}), {fmt(f.versions)} record versions written, "
        f"{PARTITIONS} RocksDB partition databases with Faust's options"
    )
    print(line("encoded records, sum of len (baseline)", f.raw_bytes))
    print(line("keys, sum of len", f.key_bytes))
    print(line("disk: WAL only, before any flush", sum(f.wal_only)))
    print(line("disk: SST files after flush", f.flushed[0]))
    print(line("disk: SST files after full compaction", f.compacted[0]))
    print(f"  {'disk: other files (logs, manifests)':<44}{mb(f.compacted[1]):>12}   fixed, per partition database")
    print(line("RSS growth after the puts (memtables)", f.rss_writes))
    print(line("RSS growth after flush and compaction", f.rss_flushed))
    print(line("RSS growth after reading every user once", f.rss_read))
    print(line("memory://: dict of the records", f.dict_bytes))
    print(line("memory://: dict + key->partition index", f.dict_bytes + f.index_bytes))
    print(
        "  (RocksDB memory is bounded by Faust's defaults, per partition database: 3 x 64 MiB memtables and a 2 GiB\n"
        "  block cache; memory:// grows with the table. "
        f"Records built in {f.generate_seconds:.1f} s; {fmt(f.versions / f.write_seconds)} puts/s)"
    )


def report_recovery(r: Recovery) -> None:
    scale = 1_000_000 / r.users
    note = "" if r.users == 1_000_000 else f"  (measured at {fmt(r.users)}; 'per 1M' scales it x{scale:g})"
    print()
    print(
        f"3. users table recovery, changelog of {fmt(r.users)} records ({mb(r.record_bytes)} of values), "
        f"{PARTITIONS} partitions, one worker, RocksDB store{note}"
    )
    print(
        f"  machine load (1-minute average) {r.load[0]:.1f} before the plain read, {r.load[1]:.1f} after the restores, "
        f"on {os.cpu_count()} cores"
    )
    print(
        f"  plain aiokafka read of the changelog (baseline)  {r.plain_seconds:6.1f} s  "
        f"{fmt(r.users / r.plain_seconds):>9} records/s   per 1M: {r.plain_seconds * scale:6.1f} s   "
        f"CPU {r.plain_cpu:.1f} s"
    )
    own = r.own
    # The warm restore reads nothing: its time is the fixed part (end offsets, opening the databases); the rest of a
    # cold restore grows with the changelog.
    own_1m = own.warm_seconds + (own.cold_seconds - own.warm_seconds) * scale
    print(
        f"  own stores (streams/state/store.py), cold     {own.cold_seconds:6.1f} s  "
        f"{fmt(own.cold_read / max(own.cold_seconds, 0.001)):>9} records/s   "
        f"per 1M: {own_1m:6.1f} s   "
        f"{own.cold_seconds / r.plain_seconds:5.1f}x the plain read; CPU {own.cpu_seconds:.1f} s, "
        f"{own.cpu_seconds / max(r.plain_cpu, 0.001):.1f}x the plain read's"
    )
    print(
        f"  own stores, warm (files kept)                {own.warm_seconds:6.1f} s  "
        f"{fmt(own.warm_read):>9} records read (the tail after the checkpoint); "
        f"stores {'equal' if own.exact else 'NOT EQUAL'} to the changelog (values and due times)"
    )
    sst, other = own.disk
    print(
        f"  own stores' footprint: disk {mb(sst + other)} ({mb(sst)} SST files), per 1M users "
        f"{mb(per_million(sst + other, r.users))}; RSS growth while restoring {mb(own.rss_growth)}, "
        f"per 1M users {mb(per_million(own.rss_growth, r.users))}"
        + ("" if scale == 1 else " (fixed memory of 8 databases included)")
    )
    for run in (r.cold, r.warm):
        if run is None:
            continue
        reading, read = run.first("reading"), run.first("read")
        restored, ready = run.first("restored"), run.first("ready")
        # Reading the changelog and the on_recover scan grow with the table; start-up and the decision do not.
        spans = [b - a for a, b in ((reading, read), (restored, ready)) if a is not None and b is not None]
        logged = restored is not None and ready is not None and (reading is None) == (read is None)
        if run.to_decision is None:
            print(f"  {run.label}: NO DECISION within {RECOVERY_WAIT:.0f} s of the start (sanctions {run.sanctions})")
        else:
            state = "recovered" if run.recovered else "NOT recovered"
            if scale == 1:
                to_1m = f"{run.to_decision / r.plain_seconds:5.1f}x the plain read"
            elif logged:
                per_1m = run.to_decision + sum(spans) * (scale - 1)
                to_1m = f"per 1M: {per_1m:6.1f} s, {per_1m / (r.plain_seconds * scale):5.1f}x the plain read"
            else:
                to_1m = "per 1M: not scaled (recovery markers missing from the worker log)"
            print(
                f"  {run.label}: start to the decision {run.to_decision:6.1f} s   {to_1m}; "
                f"record {state} (sanctions {run.sanctions})"
            )
        if reading is not None and read is not None:
            took = read - reading
            cpu = f"; {cpu_text(run.reading_cpu)}" if run.reading_cpu else ""
            print(
                f"    reading the changelog into RocksDB           {took:6.1f} s  "
                f"{fmt(r.users / max(took, 0.001)):>9} records/s   per 1M: {took * scale:6.1f} s   "
                f"{took / r.plain_seconds:5.1f}x the plain read{cpu}"
            )
        if restored is not None and ready is not None:
            took = ready - restored
            print(
                f"    'Restore complete!' to 'Worker ready'        {took:6.1f} s"
                f"{'':>21}per 1M: {took * scale:6.1f} s   (on_recover callbacks scan the table)"
            )
        if reading is not None:
            print(f"    start to reading (start-up, join, offsets)   {reading:6.1f} s   fixed")
        elif restored is not None:
            print(f"    start to 'Restore complete!' (nothing to read) {restored:4.1f} s")
        if ready is not None and run.to_decision is not None:
            took = run.to_decision - ready
            print(f"    'Worker ready' to the decision               {took:6.1f} s   (the violation is published then)")
        if run.to_verdict is not None:
            verdict = f"    start to a waiting chat message's verdict    {run.to_verdict:6.1f} s"
            print(f"{verdict}   (the classify stage keeps no table)")
        repeats = max(len(times) for times in run.marks.values())
        if repeats > 1:
            print(f"    recovery ran {repeats} times (rebalances): {run.marks}")
    if r.cold is not None:
        print(f"  users in the worker's RocksDB afterwards: {fmt(r.stored_users)} of {fmt(r.users)}")
    print(
        f"own stores: recovery 1M users {own_1m:.1f} s{'' if scale == 1 else ' (scaled)'}, "
        f"{own.cold_seconds / r.plain_seconds:.2f}x plain read, warm {own.warm_seconds:.1f} s"
    )


async def run(args: argparse.Namespace, root: Path) -> None:
    """Sections 1 and 3 share one broker; each prints its figures as soon as they are in."""
    tag = uuid.uuid4().hex[:6]
    with EmbeddedBroker(log_path=root / "tansu.log") as broker:
        pid = broker_pid(broker)
        print(f"embedded broker (Tansu) on {broker.bootstrap_servers}", flush=True)
        if args.violations:
            _, version, rules = _policy()
            work = violations(args.violations, rules, version)
            print(f"\n1. throughput: {fmt(len(work.pairs))} violations of {fmt(work.users)} users", flush=True)
            base = await passthrough(broker.bootstrap_servers, tag, work.pairs, root, pid)
            memory = await standing_agents(broker.bootstrap_servers, tag, "memory://", work, root, pid)
            rocksdb = await standing_agents(broker.bootstrap_servers, tag, "rocksdb://", work, root, pid)
            report_throughput(work, base, memory, rocksdb)
        if args.recovery_users:
            print(f"\n3. recovery: {fmt(args.recovery_users)} user records in the changelog", flush=True)
            report_recovery(
                await recovery(
                    broker.bootstrap_servers, tag, args.recovery_users, root, pid, faust_restarts=args.faust_restarts
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of about two minutes")
    parser.add_argument("--violations", type=int, help="violations for the throughput step (default 20000; 0 skips)")
    parser.add_argument("--store-users", type=int, help="users for the store footprint (default 200000; 0 skips)")
    parser.add_argument("--recovery-users", type=int, help="changelog records to recover (default 1000000; 0 skips)")
    parser.add_argument(
        "--faust-restarts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time Faust workers restarting on the changelog, cold and warm (default: yes)",
    )
    args = parser.parse_args(argv)
    sizes = {"violations": 20_000, "store_users": 200_000, "recovery_users": 1_000_000}
    if args.quick:
        sizes = {"violations": 2_000, "store_users": 20_000, "recovery_users": 20_000}
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    root = Path(tempfile.mkdtemp(prefix="groupwarden-standing-"))
    print(f"{os.cpu_count()} cores; logs in {root}", flush=True)
    if args.store_users:  # first, while nothing else runs: it measures memory
        print(f"\n2. store footprint: {fmt(args.store_users)} users, RocksDB in a fresh process", flush=True)
        report_footprint(footprint_in_fresh_process(args.store_users, root))
    if args.violations or args.recovery_users:
        asyncio.run(run(args, root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
