"""The standing stage (streams/agents/standing.py): throughput, two workers, store footprint and recovery.

    python -m benchmarks.standing [--quick] [--violations 100000] [--users 20000] [--groups 2000]
        [--two-workers N] [--store-users N] [--recovery-users 1000000]

Every rate is set beside a baseline measured in the same run, on the same embedded broker:
1. throughput: N violations of U users in G groups, a share of them with linked domains drawn from a skewed pool (so
   that some domains spread to enough groups to become campaigns), published to moderation.violations.v1 first; then
   one `python -m streams worker` running the standing stage alone (GROUPWARDEN_STAGES=standing: it reads the pack's
   version and the sanction policy, not its classifier, as where the stages scale apart). The rate counts from the
   first audit record to the last, once every violation has been applied to its user, its group and each of its
   domains (one audit record each, counted from the workload). Baselines: the per-event Faust passthrough
   (benchmarks/passthrough_app.py) over the same records; the same stage with the memory:// store beside RocksDB.
2. two workers on the same topics (one consumer group, a data dir each, RocksDB): the total rate, and each
   worker's share of the events applied (from its groupwarden_table_events_total) and of the partitions it owns
   (from its log); the CPU of the broker and of each worker says what limits them.
3. store footprint, without a worker or a broker, in a fresh process (so its RSS is the stores'): user records
   built by the real pure code (most users 1 strike, some 2-4), every version written through the project's own
   store (streams/state/store.py, open_store("rocksdb://"), one store per partition, PartitionStore.write in
   batches as the stage writes them); disk before and after the stores are reopened (the WAL flushed) and after a
   full compaction, RSS growth, per 1M users. Baselines: the raw size of the encoded records, and the memory://
   store holding the same records (tracemalloc).
4. recovery: a users changelog of M records (the last record of each user, with its due-time header) produced
   straight to "<group id>-users-changelog"; read first with a plain aiokafka getmany loop (the baseline), then
   restored into the stage's stores in this process (own_store_restore: cold, then warm); then a worker started
   with an empty data dir (cold) and again with its data dir kept (warm). A violation of a user whose strikes are
   only in the changelog is published before each start (the stage reads its inputs from the committed offsets,
   or the earliest): the time from the process start to its audit record is the time to the first decision on
   recovered state, and its sanctions show whether the record was recovered. One process classifies a message
   first, so the workers find the pack's summary (cached beside its classifier) in the cache, as every start after a
   machine's first does. The
   restore time is the worker's own ("standing stage restored N partitions from M changelog records in S s", part
   of it while the consumer group was joined), and the worker's log splits its way to the decision into phases.
   Below 1M records the figures are scaled to 1M (the fixed start-up plus the restore times the scale).
The last line sums it up: `standing: <n> violations/s, <x>x passthrough, recovery 1M users <s> s, <y>x plain read`
(RocksDB on one worker; the cold worker restart, start to decision, and its ratio to the plain read).
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
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

import orjson
import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.e2e import (
    FIRST_OUTPUT_WAIT,
    GRACE,
    STALL_WAIT,
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
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.produce import OutRecord, partition_for, send_batched
from streams.policy import standing
from streams.policy.ladder import Violation
from streams.policy.rules import Severity, load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions
from streams.state import codec
from streams.state.restore import restore as restore_stores
from streams.state.store import DUE_HEADER, Change, Checkpoint, PartitionStore, open_store
from streams.topics import AUDIT, SANCTIONS, VIOLATIONS, changelog_topic, create_topics

PARTITIONS = 8  # passthrough_app.py declares its topics with the same count
STRIKE_MIX = ((1, 0.80), (2, 0.12), (3, 0.05), (4, 0.03))  # strikes per user: most users are caught once
LINK_SHARE = 0.15  # violations that carry linked domains (one or two)
GROUPS = 50_000  # groups the footprint's and the changelog's strikes are spread over
DAY_MS = 24 * 3600 * 1000
RECOVERY_WAIT = 600.0
LOGLEVEL = "info"  # the stage's partition and restore lines are at INFO
WRITE_BATCH = 1_000  # changes per store write in the footprint: the stage writes a batch's changes at once
MiB = 1 << 20
DISTINCT_USERS = 10_000  # user records built for the recovery changelog; more users repeat them under their own ids
# Targets of the issue, printed beside the figures.
TARGET_RATE = 15_000
TARGET_RATIO = 4.0
TARGET_COLD_SECONDS = 15.0
TARGET_COLD_RATIO = 3.0
TARGET_WARM_SECONDS = 3.0


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


def met(ok: bool) -> str:  # noqa: FBT001 - reads as a sentence
    return "met" if ok else "NOT met"


# -- 1. throughput -----------------------------------------------------------------------------------------------


@dataclass
class Workload:
    pairs: list[tuple[bytes, bytes]]
    users: int
    groups: int
    domains: int  # the pool linked domains are drawn from
    links: int  # (violation, domain) pairs: one audit record each

    @property
    def audits(self) -> int:
        """Audit records once every violation is applied to its user, its group and each of its domains."""
        return 2 * len(self.pairs) + self.links


def violations(
    count: int, users: int, groups: int, rules: list[str], version: str, seed: int = 7, start_ms: int | None = None
) -> Workload:
    """``count`` violations keyed by sender, uniformly over ``users`` users and ``groups`` groups, one millisecond
    apart from ``start_ms`` (default: so that the last is now). A share carries one or two domains from a pool where
    a few domains are common (they spread to many groups: campaigns) and most are rare."""
    rng = random.Random(seed)
    pool = [f"d{n:05d}.example" for n in range(max(20, count // 100))]
    weights = [1 / (n + 1) for n in range(len(pool))]
    if start_ms is None:
        start_ms = int(time.time() * 1000) - count
    pairs = []
    links = 0
    for n in range(count):
        sender = _user(rng.randrange(users))
        rule = rng.choice(rules)
        domains: list[str] = []
        if rng.random() < LINK_SHARE:
            domains = sorted(set(rng.choices(pool, weights=weights, k=rng.choice((1, 2)))))
        links += len(domains)
        doc = {
            "schema": "moderation.violation.v1",
            "message_id": f"msg-{n:09d}",
            "sender_id": sender,
            "group_id": f"g{rng.randrange(groups):06d}",
            "at_ms": start_ms + n,
            "severity": "high",
            "categories": [rule.split(".")[0]],
            "rule_ids": [rule],
            "domains": domains,
            "rules_version": version,
        }
        pairs.append((sender.encode(), orjson.dumps(doc)))
    return Workload(pairs, users, groups, len(pool), links)


# The stage measured, alone: the pack's version and policy, no classifier.
STANDING_ALONE = "standing"


def worker(
    settings: Settings,
    store: str,
    data_dir: Path,
    log_path: Path,
    metrics_port: int = 0,
    *,
    stages: str = "classify,standing",
) -> Process:
    env = {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
        "GROUPWARDEN_GROUP_ID": settings.group_id,
        "GROUPWARDEN_PARTITIONS": str(settings.partitions),
        "GROUPWARDEN_STORE": store,
        "GROUPWARDEN_DATA_DIR": str(data_dir),
        "GROUPWARDEN_METRICS_PORT": str(metrics_port),  # 0: any free port (others may hold the default)
        "GROUPWARDEN_STAGES": stages,
    }
    args = [sys.executable, "-m", "streams", "worker", "--loglevel", LOGLEVEL]
    return Process(f"groupwarden worker ({store}, {log_path.name})", args, env, log_path)


@dataclass
class Throughput:
    rate: float
    seconds: float
    with_startup: float
    cpu: dict[str, float]  # cores used between first and last output: each process, and "machine" (share busy)
    early: float = 0.0  # rate over the first quarter of the outputs
    late: float = 0.0  # and over the last quarter
    note: str = ""
    campaigns: int = 0  # domains blacklisted as campaigns
    shares: list[WorkerShare] = field(default_factory=list)  # with more than one worker


@dataclass
class WorkerShare:
    name: str
    events: float | None  # events its tables applied (groupwarden_table_events_total); None: not scraped
    owned: int | None  # input partitions it owned at the end, from its log


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
    """Samples the CPU time of the workers, the broker and the machine, so a rate can be read as CPU-bound or not."""

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


def cpu_text(cpu: dict[str, float], rate: float | None = None, unit: str = "violation") -> str:
    """Cores each process used; with ``rate`` (units/s), also its CPU time a unit, which the machine's load moves
    less than the rate."""
    parts = [
        f"{name} {cores:.2f} cores" + (f" ({cores / rate * 1e6:,.0f} us a {unit})" if rate else "")
        for name, cores in cpu.items()
        if name != "machine"
    ]
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


@dataclass
class Audits:
    """The audit records of the workload's violations: when each (subject, message) was first decided."""

    first: dict[tuple[str, str], int] = field(default_factory=dict)  # -> the audit record's timestamp
    duplicates: int = 0
    campaigns: set[str] = field(default_factory=set)  # domains whose audit carries a blacklist entry

    def add(self, timestamp: int, value: bytes) -> None:
        doc = orjson.loads(value)
        given = doc["input"]
        if given.get("action", "violation") != "violation" or not str(given.get("message_id", "")).startswith("msg-"):
            return  # a leader's liability, a tick: not one of the workload's violations
        key = doc["subject"], given["message_id"]
        if key in self.first:
            self.duplicates += 1
            return
        self.first[key] = timestamp
        if doc["subject"].startswith("link:") and doc["blacklist"]:
            self.campaigns.add(doc["subject"])

    def applied(self, kind: str) -> int:
        return sum(1 for subject, _ in self.first if subject.startswith(f"{kind}:"))


async def read_audits(reader: AIOKafkaConsumer, expected: int, processes: list[Process]) -> Audits:
    """Reads audit records until ``expected`` distinct ones are in, and GRACE seconds more (duplicates show)."""
    audits = Audits()
    last_new = last_report = time.monotonic()
    reached: float | None = None
    while True:
        for process in processes:
            process.check()
        batches = await reader.getmany(timeout_ms=200, max_records=20_000)
        now = time.monotonic()
        before = len(audits.first)
        for records in batches.values():
            for record in records:
                audits.add(record.timestamp, record.value or b"")
        if len(audits.first) > before:
            if before == 0:
                progress(f"first audit record {time.time() - processes[0].started:.1f} s after the start")
            last_new = now
        if len(audits.first) >= expected:
            reached = reached or now
            if now - reached >= GRACE:
                return audits
        elif now - last_new > (STALL_WAIT if audits.first else FIRST_OUTPUT_WAIT):
            raise TimeoutError(
                f"{fmt(len(audits.first))} of {fmt(expected)} audit records; logs: "
                + ", ".join(str(p.log_path) for p in processes)
            )
        if now - last_report >= 5 and 0 < len(audits.first) < expected:
            progress(f"{fmt(len(audits.first))} / {fmt(expected)} audit records")
            last_report = now


def scraped(port: int, timeout: float = 5) -> list[Metric] | None:
    """A worker's metrics, from its endpoint; None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
            return list(text_string_to_metric_families(response.read().decode()))
    except OSError:
        return None


def table_events(port: int) -> float | None:
    """Events a worker's tables applied, from its metrics endpoint; None if it does not answer."""
    if (families := scraped(port)) is None:
        return None
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "groupwarden_table_events_total"
    )


_OWNS = re.compile(r"standing stage owns (\d+) partitions")


def owned_partitions(log_path: Path) -> int | None:
    """Input partitions the worker's standing stage owned after its last rebalance."""
    found = _OWNS.findall(log_path.read_text(errors="replace"))
    return int(found[-1]) if found else None


async def standing_stage(
    bootstrap_servers: str,
    tag: str,
    store: str,
    work: Workload,
    root: Path,
    broker: int | None,
    *,
    workers: int = 1,
) -> Throughput:
    label = f"{store.removesuffix('://')}-x{workers}"
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
    processes: list[Process] = []
    ports = [free_port() for _ in range(workers)]
    shares: list[WorkerShare] = []
    try:
        for n, port in enumerate(ports, 1):
            log_path = root / f"standing-{label}-{n}.log"
            processes.append(worker(settings, store, root / f"{label}-data-{n}", log_path, port, stages=STANDING_ALONE))
        progress(f"{workers} worker{'s' if workers > 1 else ''} started ({store} store)")
        names = ["worker"] if workers == 1 else [f"worker {n}" for n in range(1, workers + 1)]
        pids: dict[str, int | None] = {name: p.process.pid for name, p in zip(names, processes, strict=True)}
        with CpuSampler(pids | {"broker": broker}) as sampler:
            audits = await read_audits(reader, work.audits, processes)
        shares = [
            WorkerShare(f"worker {n}", table_events(port), owned_partitions(p.log_path))
            for n, (p, port) in enumerate(zip(processes, ports, strict=True), 1)
        ]
    finally:
        for process in processes:
            process.stop()
        await reader.stop()
        for n in range(1, workers + 1):
            shutil.rmtree(root / f"{label}-data-{n}", ignore_errors=True)
    counts = (
        f"{fmt(len(audits.first))} audit records: {fmt(audits.applied('user'))} violations applied to users, "
        f"{fmt(audits.applied('group'))} to groups, {fmt(audits.applied('link'))} (violation, domain) pairs to links"
    )
    progress(counts)
    wanted = (len(work.pairs), len(work.pairs), work.links)
    if (audits.applied("user"), audits.applied("group"), audits.applied("link")) != wanted:
        raise AssertionError(f"{store}: {counts}, for {fmt(len(work.pairs))} violations and {fmt(work.links)} links")
    times = sorted(audits.first.values())
    seconds = (times[-1] - times[0]) / 1000
    quarter = len(times) // 4
    per_violation = len(times) / len(work.pairs)  # audit records a violation

    def rate(first: int, last: int) -> float:
        return (last - first) / per_violation / max((times[last] - times[first]) / 1000, 0.001)

    cpu = sampler.between(times[0] / 1000, times[-1] / 1000)
    result = Throughput(
        rate=len(work.pairs) / max(seconds, 0.001),
        seconds=seconds,
        with_startup=times[-1] / 1000 - processes[0].started,
        cpu=cpu,
        early=rate(0, quarter),
        late=rate(len(times) - 1 - quarter, len(times) - 1),
        note=f"{fmt(audits.duplicates)} duplicate audit records" if audits.duplicates else "",
        campaigns=len(audits.campaigns),
        shares=shares if workers > 1 else [],
    )
    progress(
        f"{fmt(result.rate)} violations/s ({seconds:.1f} s first to last audit, {result.with_startup:.1f} s with "
        f"start-up; first quarter {fmt(result.early)}/s, last quarter {fmt(result.late)}/s; {cpu_text(cpu)})"
    )
    return result


# -- 3. store footprint ------------------------------------------------------------------------------------------


def user_versions(
    n: int, strikes: int, policy: SanctionPolicy, rules: list[str], rng: random.Random, now_ms: int
) -> list[Change]:
    """Every version of one user's record, as the stage writes it: one per violation (strikes over the last 30
    days), and one when its restrictions were last brought up to date; each with when it next changes by itself."""
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
        record, outcome = standing.user_violation(record, violation, policy)
        out.append(Change(codec.dump_user(record), outcome.due_ms))
    # The stage ticks a record when a restriction ends: without that, every mute that has ended since would be
    # due at once after a restart, which a running system never has.
    record, outcome = standing.user_tick(record, policy, now_ms)
    ticked = Change(codec.dump_user(record), outcome.due_ms)
    if ticked != out[-1]:
        out.append(ticked)
    return out


def final_records(
    users: int, policy: SanctionPolicy, rules: list[str], rng: random.Random
) -> tuple[list[int], list[tuple[bytes, Change]]]:
    """Each user's strikes and final record, by id. Records are built by the real pure code for up to
    DISTINCT_USERS users; further users repeat one of them under their own id (building each costs ~0.3 ms)."""
    now_ms = int(time.time() * 1000)
    built = min(users, DISTINCT_USERS)
    strikes = _strikes(rng, built)
    templates = [user_versions(n, count, policy, rules, rng, now_ms)[-1] for n, count in enumerate(strikes)]
    finals = []
    for n in range(users):
        template = templates[n % built]
        value = template.value or b""
        if n >= built:
            value = value.replace(_user(n % built).encode(), _user(n).encode())
        finals.append((_user(n).encode(), Change(value, template.due_ms)))
    return [strikes[n % built] for n in range(users)], finals


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def disk(path: Path) -> tuple[int, int]:
    """Bytes in SST files (they grow with the table) and in every other file (WAL, logs, manifests)."""
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
    writes: int  # PartitionStore.write calls
    raw_bytes: int  # sum of len(dump_user(final record))
    key_bytes: int
    generate_seconds: float
    write_seconds: float
    written: tuple[int, int]  # disk after the writes, the stores still open (mostly WAL)
    reopened: tuple[int, int]  # after closing and reopening them: the WAL flushed to SST files
    compacted: tuple[int, int]
    rss_writes: int
    rss_read: int
    memory_bytes: int  # the memory:// stores holding the final records
    strikes: Counter[int] = field(default_factory=Counter)


def write_in_batches(stores: list[PartitionStore], versions: list[tuple[bytes, list[Change]]]) -> int:
    """Every version through PartitionStore.write, round by round (a user's k-th version in round k), WRITE_BATCH
    changes of a partition to a write, each with a checkpoint as the stage writes it; how many writes."""
    writes = 0
    offsets = [0] * len(stores)
    for round_ in range(max(len(changes) for _, changes in versions)):
        pending: list[dict[bytes, Change]] = [{} for _ in stores]
        for key, changes in versions:
            if round_ < len(changes):
                p = partition_for(key, len(stores))
                pending[p][key] = changes[round_]
                if len(pending[p]) >= WRITE_BATCH:
                    offsets[p] += len(pending[p])
                    stores[p].write(pending[p], Checkpoint(offsets[p], {VIOLATIONS: offsets[p]}))
                    pending[p] = {}
                    writes += 1
        for p, left in enumerate(pending):
            if left:
                offsets[p] += len(left)
                stores[p].write(left, Checkpoint(offsets[p], {VIOLATIONS: offsets[p]}))
                writes += 1
    return writes


def store_footprint(users: int, folder: str, seed: int = 11) -> Footprint:
    """Runs in a fresh process: its RSS growth is the stores', not the leftovers of earlier steps."""
    policy, _, rules = _policy()
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    strikes = _strikes(rng, users)
    versions = [(_user(n).encode(), user_versions(n, s, policy, rules, rng, now_ms)) for n, s in enumerate(strikes)]
    generate_seconds = time.perf_counter() - started
    paths = [Path(folder) / f"users-{p}" for p in range(PARTITIONS)]  # as the stage names them, one per partition
    before = rss()
    stores = [open_store("rocksdb://", path) for path in paths]
    started = time.perf_counter()
    writes = write_in_batches(stores, versions)
    write_seconds = time.perf_counter() - started
    rss_writes = rss() - before
    written = disk(Path(folder))
    for store in stores:
        store.close()
    stores = [open_store("rocksdb://", path) for path in paths]  # opening flushes the WAL it replays
    reopened = disk(Path(folder))
    for store in stores:
        store.close()
    for path in paths:  # the same files, opened with rocksdict itself for a full compaction
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
        db.compact_range(None, None)
        db.close()
    compacted = disk(Path(folder))
    stores = [open_store("rocksdb://", path) for path in paths]
    for key, changes in versions:  # a stage that has seen every user once: the block cache holds the table
        assert stores[partition_for(key, PARTITIONS)].get(key) == changes[-1].value
    rss_read = rss() - before
    for store in stores:
        store.close()
    del stores

    final = [(key, changes[-1]) for key, changes in versions]
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    memory = [open_store("memory://", Path()) for _ in range(PARTITIONS)]
    fresh = [
        (bytes(memoryview(key)), [replace(change, value=bytes(memoryview(change.value or b"")))])
        for key, change in final
    ]
    write_in_batches(memory, fresh)  # fresh objects, as decoded from the changelog: counted as the store's
    del fresh  # what the stores do not hold
    with_data, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(1 for store in memory for _ in store.items()) == users
    return Footprint(
        users=users,
        versions=sum(len(changes) for _, changes in versions),
        writes=writes,
        raw_bytes=sum(len(change.value or b"") for _, change in final),
        key_bytes=sum(len(key) for key, _ in final),
        generate_seconds=generate_seconds,
        write_seconds=write_seconds,
        written=written,
        reopened=reopened,
        compacted=compacted,
        rss_writes=rss_writes,
        rss_read=rss_read,
        memory_bytes=with_data - base,
        strikes=Counter(strikes),
    )


def footprint_in_fresh_process(users: int, root: Path) -> Footprint:
    folder = root / "store-footprint"
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(store_footprint, users, str(folder)).result()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- 4. recovery -------------------------------------------------------------------------------------------------

_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_RESTORED = re.compile(
    r"standing stage restored (\d+) partitions from (\d+) changelog records in ([\d.]+) s"
    r"(?: \((\d+) of them, in ([\d.]+) s, while its consumer group was joined\))?"
)


@dataclass
class Restored:
    """One "standing stage restored ..." line of a worker log."""

    after: float  # seconds after the worker started
    partitions: int
    records: int
    seconds: float
    ahead_records: int = 0  # of them, restored while the consumer group was joined
    ahead_seconds: float = 0.0


MARKERS = {  # first lines of a worker log that mark its way to the first decision
    "starting": "[^Worker]: Starting...",  # after the imports and the rule pack
    "standing": "[^--Standing]: Starting...",  # the standing stage starts: its group join and restore begin
    "owns": "standing stage owns",  # the standing consumer group joined
    "restored": "standing stage restored",  # its tables restored: it reads its inputs
}


def log_lines(log_path: Path, started: float) -> tuple[dict[str, float], list[Restored]]:
    """When each marker first appears in a worker log (seconds after ``started``), and every restore line."""
    marks: dict[str, float] = {}
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        stamp = _LOG_TIME.match(line)
        if not stamp:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - started
        for name, text in MARKERS.items():
            if text in line:
                marks.setdefault(name, at)
        if restored := _RESTORED.search(line):
            partitions, records, seconds, ahead_records, ahead_seconds = restored.groups()
            found.append(
                Restored(
                    at,
                    int(partitions),
                    int(records),
                    float(seconds),
                    int(ahead_records or 0),
                    float(ahead_seconds or 0.0),
                )
            )
    return marks, found


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
    restored: list[Restored]  # the worker's restore lines (more than one: a rebalance)
    marks: dict[str, float]  # MARKERS: seconds after the start
    sanctions: list[str]
    recovered: bool
    cpu: dict[str, float]  # cores used from the start to the decision

    @property
    def restore_seconds(self) -> float | None:
        return sum(r.seconds for r in self.restored) if self.restored else None


def heard_all(decided_ms: int | None, sanctions: list[str], expected: list[str], now: float) -> bool:
    """Whether a restart's decision is in with its sanctions (sent beside the audit record), or a second has passed
    since it came without them: waiting longer for sanctions already in would only make the benchmark slower."""
    return decided_ms is not None and (sanctions == expected or now - decided_ms / 1000 >= 1)


async def restart(
    label: str, settings: Settings, data_dir: Path, log_path: Path, check: Probe, broker: int | None
) -> Restart:
    """Publish the probe's violation, then start a worker on ``data_dir`` and wait for its decision: the stage reads
    its inputs from the committed offsets (the earliest for a new group) once the tables are restored."""
    subject = f"user:{check.user}"
    topics = settings.topic(AUDIT), settings.topic(SANCTIONS)
    reader = consumer(settings.bootstrap_servers, *topics, fetch_max_wait_ms=100)
    await reader.start()
    await publish(settings.bootstrap_servers, settings.topic(VIOLATIONS), [check.pair])
    process = worker(settings, "rocksdb://", data_dir, log_path, stages=STANDING_ALONE)
    progress(f"{label}: worker started; a violation of {check.user} waits for it")
    decided_ms: int | None = None
    sanctions: list[str] = []
    last_report = time.monotonic()
    try:
        with CpuSampler({"worker": process.process.pid, "broker": broker}) as sampler:
            while not heard_all(decided_ms, sanctions, check.expected, time.time()):
                process.check()
                for records in (await reader.getmany(timeout_ms=200)).values():
                    for record in records:
                        doc = orjson.loads(record.value or b"")
                        if doc.get("subject") != subject:
                            continue
                        if record.topic == topics[1]:
                            sanctions.append(doc["kind"])
                        elif doc["input"].get("message_id") == check.message_id:
                            decided_ms = record.timestamp
                if decided_ms is None and time.time() - process.started > RECOVERY_WAIT:
                    progress(f"{label}: no decision after {RECOVERY_WAIT:.0f} s; log: {log_path}")
                    break
                if time.monotonic() - last_report >= 15 and decided_ms is None:
                    progress(f"{label}: {time.time() - process.started:.0f} s, waiting for the decision")
                    last_report = time.monotonic()
    finally:
        await reader.stop()
        process.stop()
    started = process.started
    to_decision = None if decided_ms is None else decided_ms / 1000 - started
    cpu = sampler.between(started, decided_ms / 1000) if decided_ms is not None else {}
    marks, restored = log_lines(log_path, started)
    result = Restart(label, to_decision, restored, marks, sanctions, sanctions == check.expected, cpu)
    progress(
        f"{label}: "
        + ("no decision" if to_decision is None else f"decided {to_decision:.1f} s after the start")
        + f"; sanctions {sanctions} (a recovered record gives {check.expected}, a lost one {check.fresh}); "
        + "; ".join(f"restored {r.records} records in {r.seconds:.1f} s, logged at {r.after:.1f} s" for r in restored)
    )
    return result


def count_users(data_dir: Path) -> int:
    """Users in the worker's stores, read after it stopped."""
    total = 0
    for p in range(PARTITIONS):
        store = open_store("rocksdb://", data_dir / "stores" / f"users-{p}")
        total += sum(1 for _ in store.items())
        store.close()
    return total


@dataclass
class StoreRestore:
    """The standing stage's own stores (streams/state/store.py) restored from the changelog, in this process."""

    cold_seconds: float  # empty stores: the whole changelog read into RocksDB
    warm_seconds: float  # the stores reopened from their files: only the tail after the checkpoint is read
    cold_read: int
    warm_read: int
    exact: bool  # the stores hold exactly the changelog's last record of each key
    cpu_seconds: float  # this process's CPU while restoring cold


async def own_store_restore(
    settings: Settings, changelog: str, pairs: list[tuple[bytes, bytes]], folder: Path
) -> StoreRestore:
    tps = [TopicPartition(changelog, p) for p in range(settings.partitions)]

    def open_all() -> dict[TopicPartition, PartitionStore]:
        return {tp: open_store("rocksdb://", folder / f"users-{tp.partition}") for tp in tps}

    def close_all(stores: dict[TopicPartition, PartitionStore]) -> None:
        for store in stores.values():
            store.close()

    try:
        started, cpu = time.perf_counter(), time.process_time()
        stores = open_all()
        cold = await restore_stores(settings.kafka_options(), stores)
        cold_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        close_all(stores)
        progress(f"own stores, cold: {fmt(cold.records)} records restored in {cold_seconds:.1f} s")
        started = time.perf_counter()
        stores = open_all()
        warm = await restore_stores(settings.kafka_options(), stores)
        warm_seconds = time.perf_counter() - started
        progress(f"own stores, warm: {fmt(warm.records)} records read in {warm_seconds:.1f} s")
        expected = dict(pairs)
        exact = sum(1 for store in stores.values() for _ in store.items()) == len(expected) and all(
            stores[TopicPartition(changelog, partition_for(key, settings.partitions))].get(key) == value
            for key, value in expected.items()
        )
        close_all(stores)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return StoreRestore(cold_seconds, warm_seconds, cold.records, warm.records, exact, cpu_seconds)


@dataclass
class Recovery:
    users: int
    record_bytes: int
    plain_seconds: float
    own: StoreRestore
    cold: Restart | None
    warm: Restart | None
    stored_users: int

    @property
    def scale(self) -> float:
        return 1_000_000 / self.users

    def per_million(self, run: Restart) -> float | None:
        """Start to decision at 1M users: the fixed part as measured, the worker's restore after its group join times
        the scale for the share of the changelog it read (all of it cold; a warm restart reads only the tail, a
        fixed cost). What it restored while the group was joined is left out: the join took as long either way."""
        if run.to_decision is None or run.restore_seconds is None:
            return None
        share = min(1.0, sum(r.records for r in run.restored) / self.users)
        after_join = sum(r.seconds - r.ahead_seconds for r in run.restored)
        return run.to_decision + after_join * share * (self.scale - 1)


async def recovery(
    bootstrap_servers: str,
    tag: str,
    users: int,
    root: Path,
    broker: int | None,
    *,
    worker_restarts: bool,
    pack_built: bool,
) -> Recovery:
    """``pack_built``: a worker has run on this machine's code already, so the rule pack is in its cache."""
    policy, version, rules = _policy()
    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"bench-{tag}-rec.",
        group_id=f"bench-{tag}-rec",
        partitions=PARTITIONS,
    )
    await create_topics(settings)  # the changelogs too
    changelog = changelog_topic(settings, "users")

    rng = random.Random(13)
    started = time.perf_counter()
    strikes, finals = final_records(users, policy, rules, rng)
    pairs = [(key, change.value or b"") for key, change in finals]
    progress(f"built {fmt(users)} user records in {time.perf_counter() - started:.1f} s")
    # As the stage writes them, with the due-time header, in the order users last changed (not by id); no source
    # header: these records came from no input this consumer group has read, so none is left out as uncommitted.
    published = [
        OutRecord(changelog, key, change.value, [] if change.due_ms is None else [(DUE_HEADER, b"%d" % change.due_ms)])
        for key, change in finals
    ]
    rng.shuffle(published)
    await publish_changelog(bootstrap_servers, published)

    plain_seconds = await plain_read(settings, changelog, users, RECOVERY_WAIT, max_partition_fetch_bytes=4 * MiB)
    progress(f"a plain aiokafka consumer read the changelog in {plain_seconds:.1f} s")
    own = await own_store_restore(settings, changelog, pairs, root / "own-stores")
    if not worker_restarts:
        return Recovery(users, sum(len(v) for _, v in pairs), plain_seconds, own, None, None, 0)

    def pick(wanted: int, n: int) -> Probe:
        index = [i for i, s in enumerate(strikes) if s == wanted][n]
        return probe(_user(index), pairs[index][1], policy, version, n)

    if not pack_built:
        await pack_cached(root)
    data_dir = root / "recovery-data"
    try:
        cold = await restart("cold restart", settings, data_dir, root / "recovery-cold.log", pick(3, 0), broker)
        warm = await restart("warm restart", settings, data_dir, root / "recovery-warm.log", pick(3, 1), broker)
        stored = count_users(data_dir)
        progress(f"the worker's stores hold {fmt(stored)} users")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return Recovery(users, sum(len(v) for _, v in pairs), plain_seconds, own, cold, warm, stored)


async def pack_cached(root: Path) -> None:
    """Classify one message in a process of its own first, so the workers read the pack's summary (cached beside the
    built classifier) and the compiled passes from their caches (streams/policy/cache.py, numba's), as every start
    after a machine's first does."""
    message = orjson.dumps({"message_id": "m", "group_id": "g", "sender_id": "u", "sent_at": 0, "text": "hi"})
    started = time.perf_counter()
    with (root / "pack-cache.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "streams", "classify", "-"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        await process.communicate(message + b"\n")
    progress(f"rule pack cached: a process classified one message in {time.perf_counter() - started:.1f} s")


async def publish_changelog(bootstrap_servers: str, records: list[OutRecord]) -> None:
    started = time.perf_counter()
    writer = producer(bootstrap_servers)
    await writer.start()
    try:
        for i in range(0, len(records), 50_000):
            await send_batched(writer, records[i : i + 50_000])
    finally:
        await writer.stop()
    progress(f"published {fmt(len(records))} changelog records in {time.perf_counter() - started:.1f} s")


# -- report ------------------------------------------------------------------------------------------------------


def per_million(value: float, users: int) -> float:
    return value * 1_000_000 / users


def mb(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def report_throughput(work: Workload, base: Throughput, memory: Throughput, rocksdb: Throughput) -> None:
    print()
    print(
        f"1. standing stage, {fmt(len(work.pairs))} violations ({fmt(work.users)} users, {fmt(work.groups)} groups, "
        f"{fmt(work.links)} links to {fmt(work.domains)} domains; {fmt(work.audits)} audit records), "
        f"{PARTITIONS} partitions, one worker"
    )
    print(
        f"  per-event Faust passthrough (baseline)      {fmt(base.rate):>7} msgs/s         "
        f"({base.seconds:.1f} s first to last output; {cpu_text(base.cpu, base.rate, 'message')})"
    )
    for name, run in (("memory:// store", memory), ("rocksdb:// store", rocksdb)):
        print(
            f"  standing stage, {name:<28}{fmt(run.rate):>7} violations/s   "
            f"{run.rate / base.rate:5.2f}x passthrough   "
            f"({run.seconds:.1f} s first to last audit, {run.with_startup:.1f} s with start-up; "
            f"{fmt(run.campaigns)} campaigns)" + (f"  {run.note}" if run.note else "")
        )
        print(f"    first quarter {fmt(run.early)}/s, last quarter {fmt(run.late)}/s; {cpu_text(run.cpu, run.rate)}")
    print(f"  rocksdb / memory                            {rocksdb.rate / memory.rate:5.2f}x")
    print(
        f"  targets (RocksDB): >= {fmt(TARGET_RATE)} violations/s: {met(rocksdb.rate >= TARGET_RATE)}; "
        f">= {TARGET_RATIO:g}x passthrough: {met(rocksdb.rate / base.rate >= TARGET_RATIO)}"
    )


def report_two_workers(work: Workload, one: Throughput, two: Throughput) -> None:
    print()
    print(f"2. two workers, {fmt(len(work.pairs))} violations, RocksDB, a data dir each")
    print(
        f"  total {fmt(two.rate):>7} violations/s   {two.rate / one.rate:4.2f}x one worker   "
        f"({two.seconds:.1f} s first to last audit, {two.with_startup:.1f} s with start-up)"
        + (f"  {two.note}" if two.note else "")
    )
    events = [s.events for s in two.shares]
    total = sum(e for e in events if e is not None)
    for share in two.shares:
        applied = (
            "not scraped"
            if share.events is None
            else f"{fmt(share.events)} events ({share.events / max(total, 1):.0%})"
        )
        owned = "?" if share.owned is None else str(share.owned)
        print(f"  {share.name}: {applied} applied; owned {owned} input partitions at the end")
    print(f"  CPU: {cpu_text(two.cpu, two.rate)}")
    busy = two.cpu.get("machine", 0.0)
    used = sum(cores for name, cores in two.cpu.items() if name != "machine")
    cores = os.cpu_count() or 1
    if busy < 0.85:
        limit = f"not the CPU ({busy:.0%} of the machine busy): the workers wait for the broker's acknowledgements"
    elif used < 0.8 * busy * cores:
        limit = (
            f"the CPU, taken by other work: the machine was {busy:.0%} busy, the broker and the workers had "
            f"{used:.2f} of its {cores} cores"
        )
    else:
        limit = (
            f"the {cores} cores, shared by the broker and the workers ({used:.2f} cores, the machine {busy:.0%} busy): "
            "a second worker takes CPU from the first and from the broker"
        )
    print(f"  what limits it: {limit}")


def report_footprint(f: Footprint) -> None:
    def line(label: str, value: float) -> str:
        per = mb(per_million(value, f.users))
        return f"  {label:<48}{mb(value):>12}   {per:>12} per 1M users   {value / f.raw_bytes:5.2f}x raw"

    print()
    mix = ", ".join(f"{f.strikes[n] / f.users:.0%} {n}" for n, _ in STRIKE_MIX)
    print(
        f"3. users table stores, {fmt(f.users)} users (strikes: {mix}), {fmt(f.versions)} record versions in "
        f"{fmt(f.writes)} writes, {PARTITIONS} stores (open_store('rocksdb://'), PartitionStore.write)"
    )
    print(line("encoded records, sum of len (baseline)", f.raw_bytes))
    print(line("keys, sum of len", f.key_bytes))
    print(line("disk after the writes (stores open: WAL)", sum(f.written)))
    print(line("disk: SST files after close and reopen", f.reopened[0]))
    print(line("disk: SST files after a full compaction", f.compacted[0]))
    print(f"  {'disk: other files (WAL, logs, manifests)':<48}{mb(f.compacted[1]):>12}   fixed, per store")
    print(line("RSS growth after the writes", f.rss_writes))
    print(line("RSS growth after reading every user once", f.rss_read))
    print(line("memory:// stores of the records (tracemalloc)", f.memory_bytes))
    print(
        f"  (records built in {f.generate_seconds:.1f} s; {fmt(f.versions / f.write_seconds)} versions/s written; "
        "a value, its due time and the checkpoint per store: RocksDB's memory is bounded by its caches, memory://\n"
        "  grows with the table)"
    )


def report_recovery(r: Recovery) -> float | None:
    """Prints the recovery figures; returns the cold worker restart's start to decision at 1M users."""
    scale = r.scale
    note = "" if r.users == 1_000_000 else f"  (measured at {fmt(r.users)}; 'per 1M' scales it x{scale:g})"
    plain_1m = r.plain_seconds * scale
    print()
    print(
        f"4. users table recovery, changelog of {fmt(r.users)} records ({mb(r.record_bytes)} of values), "
        f"{PARTITIONS} partitions, RocksDB{note}"
    )
    print(
        f"  plain aiokafka read of the changelog (baseline)  {r.plain_seconds:6.1f} s  "
        f"{fmt(r.users / r.plain_seconds):>9} records/s   per 1M: {plain_1m:6.1f} s"
    )
    own = r.own
    # The warm restore reads nothing: its time is the fixed part (end offsets, opening the databases); the rest of a
    # cold restore grows with the changelog.
    own_1m = own.warm_seconds + (own.cold_seconds - own.warm_seconds) * scale
    print(
        f"  own stores in this process, cold              {own.cold_seconds:6.1f} s  "
        f"{fmt(own.cold_read / max(own.cold_seconds, 0.001)):>9} records/s   per 1M: {own_1m:6.1f} s   "
        f"{own.cold_seconds / r.plain_seconds:5.1f}x the plain read; {own.cpu_seconds / own.cold_seconds:.2f} cores"
    )
    print(
        f"  own stores in this process, warm              {own.warm_seconds:6.1f} s  "
        f"{fmt(own.warm_read):>9} records read (the tail after the checkpoint); "
        f"stores {'equal' if own.exact else 'NOT EQUAL'} to the changelog"
    )
    cold_1m: float | None = None
    for run in (r.cold, r.warm):
        if run is None:
            continue
        if run.to_decision is None:
            print(f"  worker, {run.label}: NO DECISION within {RECOVERY_WAIT:.0f} s of the start")
            continue
        state = "recovered" if run.recovered else "NOT recovered"
        at_1m = r.per_million(run) if scale != 1 else run.to_decision
        scaled = "per 1M: not scaled (no restore line in the log)" if at_1m is None else f"per 1M: {at_1m:6.1f} s"
        ratio = "" if at_1m is None else f", {at_1m / plain_1m:5.1f}x the plain read"
        print(
            f"  worker, {run.label}: start to the decision {run.to_decision:6.1f} s   {scaled}{ratio}; "
            f"record {state} (sanctions {run.sanctions}); {cpu_text(run.cpu)}"
        )
        for line in run.restored:
            print(
                f"    restored {line.partitions} partitions from {fmt(line.records)} changelog records in "
                f"{line.seconds:.1f} s ({line.seconds / r.plain_seconds:.1f}x the plain read; "
                f"{fmt(line.ahead_records)} of them in {line.ahead_seconds:.1f} s while the group was joined), "
                f"logged {line.after:.1f} s after the start"
            )
        if len(run.restored) > 1:
            print("    (restored more than once: a rebalance)")
        steps = [
            ("start to Faust's 'Starting...' (imports, rule pack)", None, "starting"),
            ("to the standing stage's start", "starting", "standing"),
            ("to 'standing stage owns' (group join; restore meanwhile)", "standing", "owns"),
            ("to 'standing stage restored' (the rest of the restore)", "owns", "restored"),
        ]
        for text, since, until in steps:
            if until in run.marks and (since is None or since in run.marks):
                took = run.marks[until] - (run.marks[since] if since else 0.0)
                print(f"    {text:<56}{took:6.1f} s")
        if "restored" in run.marks:
            print(f"    {'to the decision':<56}{run.to_decision - run.marks['restored']:6.1f} s")
        if run is r.cold:
            cold_1m = at_1m
            if at_1m is not None:
                print(
                    f"    targets: <= {TARGET_COLD_SECONDS:g} s: {met(at_1m <= TARGET_COLD_SECONDS)}; "
                    f"<= {TARGET_COLD_RATIO:g}x the plain read: {met(at_1m / plain_1m <= TARGET_COLD_RATIO)}"
                )
        elif at_1m is not None:
            print(f"    target: <= {TARGET_WARM_SECONDS:g} s: {met(at_1m <= TARGET_WARM_SECONDS)}")
    if r.cold is not None:
        print(f"  users in the worker's stores afterwards: {fmt(r.stored_users)} of {fmt(r.users)}")
    return cold_1m


async def run(args: argparse.Namespace, root: Path) -> tuple[Throughput | None, Throughput | None, Recovery | None]:
    """The steps that need a broker share one; each prints its figures as soon as they are in."""
    tag = uuid.uuid4().hex[:6]
    base = rocksdb = None
    rec = None
    with EmbeddedBroker(log_path=root / "tansu.log") as broker:
        pid = broker_pid(broker)
        print(f"embedded broker (Tansu) on {broker.bootstrap_servers}", flush=True)
        _, version, rules = _policy()
        if args.violations:
            work = violations(args.violations, args.users, args.groups, rules, version)
            print(
                f"\n1. throughput: {fmt(len(work.pairs))} violations of {fmt(work.users)} users in "
                f"{fmt(work.groups)} groups, {fmt(work.links)} links",
                flush=True,
            )
            base = await passthrough(broker.bootstrap_servers, tag, work.pairs, root, pid)
            memory = await standing_stage(broker.bootstrap_servers, tag, "memory://", work, root, pid)
            rocksdb = await standing_stage(broker.bootstrap_servers, tag, "rocksdb://", work, root, pid)
            report_throughput(work, base, memory, rocksdb)
            if args.two_workers:
                work2 = (
                    work
                    if args.two_workers == args.violations
                    else violations(args.two_workers, args.users, args.groups, rules, version)
                )
                print(f"\n2. two workers: {fmt(len(work2.pairs))} violations", flush=True)
                one = (
                    rocksdb
                    if work2 is work
                    else await standing_stage(broker.bootstrap_servers, tag, "rocksdb://", work2, root, pid)
                )
                two = await standing_stage(broker.bootstrap_servers, tag, "rocksdb://", work2, root, pid, workers=2)
                report_two_workers(work2, one, two)
        if args.recovery_users:
            print(f"\n4. recovery: {fmt(args.recovery_users)} user records in the changelog", flush=True)
            rec = await recovery(
                broker.bootstrap_servers,
                tag,
                args.recovery_users,
                root,
                pid,
                worker_restarts=args.worker_restarts,
                pack_built=bool(args.violations),
            )
    return base, rocksdb, rec


def summary(base: Throughput | None, rocksdb: Throughput | None, rec: Recovery | None, cold_1m: float | None) -> str:
    rate = f"{fmt(rocksdb.rate)} violations/s" if rocksdb else "- violations/s"
    ratio = f"{rocksdb.rate / base.rate:.2f}x passthrough" if rocksdb and base else "-x passthrough"
    seconds = f"{cold_1m:.1f} s" if cold_1m is not None else "- s"
    plain = f"{cold_1m / (rec.plain_seconds * rec.scale):.2f}x plain read" if rec and cold_1m else "-x plain read"
    return f"standing: {rate}, {ratio}, recovery 1M users {seconds}, {plain}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standing", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (2,000 violations, 20,000 users to recover): a smoke run"
    )
    parser.add_argument("--violations", type=int, help="violations for the throughput step (default 100000; 0 skips)")
    parser.add_argument("--users", type=int, help="users the violations come from (default 20000)")
    parser.add_argument("--groups", type=int, help="groups the violations are posted in (default 2000)")
    parser.add_argument(
        "--two-workers",
        type=int,
        help="violations for the two-worker step (default: --violations from 20000 up, else 0; 0 skips)",
    )
    parser.add_argument(
        "--store-users",
        type=int,
        help="users for the store footprint (default: --recovery-users up to 200000, 0 below 100000; 0 skips)",
    )
    parser.add_argument("--recovery-users", type=int, help="changelog records to recover (default 1000000; 0 skips)")
    parser.add_argument(
        "--worker-restarts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time workers restarting on the changelog, cold and warm (default: yes)",
    )
    args = parser.parse_args(argv)
    sizes = {"violations": 100_000, "users": 20_000, "groups": 2_000, "recovery_users": 1_000_000}
    if args.quick:
        sizes = {"violations": 2_000, "users": 1_000, "groups": 200, "recovery_users": 20_000}
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.two_workers is None:
        args.two_workers = args.violations if args.violations >= 20_000 else 0
    if args.store_users is None:  # too few users say little about a store, and take time
        args.store_users = min(args.recovery_users, 200_000) if args.recovery_users >= 100_000 else 0
    for name in ("violations", "two_workers", "store_users", "recovery_users"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.users < 1 or args.groups < 1:
        parser.error("--users and --groups must be 1 or more")
    root = Path(tempfile.mkdtemp(prefix="groupwarden-standing-"))
    print(f"{os.cpu_count()} cores; logs in {root}", flush=True)
    if args.store_users:  # first, while nothing else runs: it measures memory
        print(f"\n3. store footprint: {fmt(args.store_users)} users, RocksDB in a fresh process", flush=True)
        report_footprint(footprint_in_fresh_process(args.store_users, root))
    base = rocksdb = rec = None
    if args.violations or args.recovery_users:
        base, rocksdb, rec = asyncio.run(run(args, root))
    cold_1m = report_recovery(rec) if rec else None
    print(summary(base, rocksdb, rec, cold_1m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
