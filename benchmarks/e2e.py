"""End-to-end throughput and latency on the embedded broker, against a per-event Faust passthrough in the same run.

    python -m benchmarks.e2e [--messages 200000]

One embedded broker (Tansu), 8 partitions a topic; each step has its own topics and consumer group:

1. baseline: N demo messages published first, then a per-event Faust passthrough worker
   (benchmarks/passthrough_app.py) copies them to an output topic;
2. groupwarden: the same N messages published first, then `python -m streams worker`; every message must come out
   as exactly one verdict or dead letter;
3. latency: for each of 10%, 50% and 80% of the rate of step 2, a fresh worker fed at that rate for 15 s; latency is
   the time a verdict reaches this process minus the message's `sent_at`.

Throughput counts from the first output record's timestamp to the last one's, so worker start-up and the broker's
JoinGroup wait are left out (the time with start-up is reported separately). The last line sums it up:

    e2e: <n> msgs/s, <x>x passthrough, p99 at half load <ms> ms
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams import demo, process
from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.produce import OutRecord, send_batched
from streams.metrics import CLASSIFY_STEPS
from streams.records import InvalidMessage, parse_message
from streams.topics import DEADLETTER, MESSAGES, VERDICTS, TopicSpec, create_topics

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8  # passthrough_app.py declares its topics with the same count
FIRST_OUTPUT_WAIT = 90.0  # worker start-up plus the broker's hold on a new group's first join
STALL_WAIT = 30.0  # no new output for this long after the first: the worker is stuck
GRACE = 2.0  # keep reading this long after the expected count, so duplicates are seen
PUBLISH_CHUNK = 50_000
LATENCY_SECONDS = 15.0
TICK = 0.02
LOADS = (0.1, 0.5, 0.8)  # shares of the measured peak the latency steps run at
HALF = 0.5
# Targets: peak throughput against the passthrough, and latency at half the peak.
TARGET_RATIO = 15.0
TARGET_P99_MS = 50.0
TARGET_P50_MS = 15.0


def fmt(n: float) -> str:
    return f"{n:,.0f}"


def progress(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", flush=True)


class Process:
    """A worker subprocess in its own session, so Ctrl-C reaches only us and we stop it in order."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env
        self.started = time.time()
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, env=os.environ | env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; log: {self.log_path}")

    def stop(self) -> None:
        process.stop(self.process)

    def kill(self) -> None:
        """SIGKILL: no batch finished, nothing committed or flushed."""
        self.process.kill()
        self.process.wait()


def groupwarden_worker(settings: Settings, log_path: Path) -> Process:
    env = {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
        "GROUPWARDEN_GROUP_ID": settings.group_id,
        "GROUPWARDEN_PARTITIONS": str(settings.partitions),
        "GROUPWARDEN_DATA_DIR": str(log_path.parent / f"{settings.group_id}-data"),  # RocksDB, as in production
        "GROUPWARDEN_METRICS_PORT": str(free_port()),
    }
    args = [sys.executable, "-m", "streams", "worker", "--loglevel", "warning"]
    return Process("groupwarden worker", args, env, log_path)


def stage_split(worker: Process) -> str:
    """The worker's own account of a classify batch: mean batch size and mean time of each step, from its metrics."""
    port = worker.env["GROUPWARDEN_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    sums: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                sums[sample.name, sample.labels.get("step", "")] = sample.value
    batches = sums.get(("groupwarden_classify_batch_messages_count", ""), 0.0)
    if not batches:
        return "no batch measured"
    parts = [f"{sums['groupwarden_classify_batch_messages_sum', ''] / batches:,.0f} msgs a batch"]
    for step in CLASSIFY_STEPS:
        count = sums.get(("groupwarden_classify_stage_seconds_count", step), 0.0)
        mean = sums.get(("groupwarden_classify_stage_seconds_sum", step), 0.0) / count if count else 0.0
        parts.append(f"{step} {mean * 1000:.1f} ms")
    return "worker, per batch: " + ", ".join(parts)


def passthrough_worker(settings: Settings, app_id: str, logs: Path) -> Process:
    """benchmarks/passthrough_app.py copying settings' "in" topic to its "out" topic; its data folder goes in logs."""
    env = {
        "PASSTHROUGH_BOOTSTRAP": settings.bootstrap_servers,
        "PASSTHROUGH_APP_ID": app_id,
        "PASSTHROUGH_SOURCE": settings.topic("in"),
        "PASSTHROUGH_SINK": settings.topic("out"),
        "PASSTHROUGH_DATA_DIR": str(logs / f"{app_id}-data"),
    }
    args = [sys.executable, "-m", "faust", "-A", "benchmarks.passthrough_app", "worker", "--without-web", "-l", "warn"]
    return Process("passthrough worker", args, env, logs / "passthrough.log")


def producer(bootstrap_servers: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, max_batch_size=1 << 20, max_request_size=4 << 20
    )


def consumer(bootstrap_servers: str, *topics: str, fetch_max_wait_ms: int = 500) -> AIOKafkaConsumer:
    # No group: reads every partition from the start, with no JoinGroup wait of its own.
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def publish(bootstrap_servers: str, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    started = time.perf_counter()
    client = producer(bootstrap_servers)
    await client.start()
    try:
        for i in range(0, len(pairs), PUBLISH_CHUNK):
            await send_batched(client, (OutRecord(topic, k, v) for k, v in pairs[i : i + PUBLISH_CHUNK]))
    finally:
        await client.stop()
    progress(f"published {fmt(len(pairs))} messages to {topic} in {time.perf_counter() - started:.1f} s")


async def plain_read(settings: Settings, topic: str, count: int, wait: float, **options: Any) -> float:
    """Seconds for a plain aiokafka consumer with no consumer group to read ``count`` records of every partition of
    ``topic`` from the start: what reading a topic costs before any work on it."""
    reader = AIOKafkaConsumer(enable_auto_commit=False, **options, **settings.kafka_options())
    started = time.perf_counter()
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        seen = 0
        while seen < count:
            for records in (await reader.getmany(timeout_ms=500, max_records=50_000)).values():
                seen += len(records)
            if time.perf_counter() - started > wait:
                raise TimeoutError(f"plain read: {fmt(seen)} of {fmt(count)} records")
    finally:
        await reader.stop()
    return time.perf_counter() - started


@dataclass
class Outputs:
    """Output records counted per topic, with the first and last record timestamps (the producer's clock)."""

    per_topic: Counter[str] = field(default_factory=Counter)
    first_ms: int | None = None
    last_ms: int = 0
    kept: list[tuple[int, bytes]] = field(default_factory=list)  # (timestamp, value) of the records of keep_topic

    @property
    def count(self) -> int:
        return sum(self.per_topic.values())

    @property
    def seconds(self) -> float:
        assert self.first_ms is not None
        return (self.last_ms - self.first_ms) / 1000

    @property
    def rate(self) -> float:
        return self.count / max(self.seconds, 0.001)

    def add(self, record: ConsumerRecord[bytes, bytes], keep_topic: str | None) -> None:
        self.per_topic[record.topic] += 1
        if self.first_ms is None or record.timestamp < self.first_ms:
            self.first_ms = record.timestamp
        self.last_ms = max(self.last_ms, record.timestamp)
        if record.topic == keep_topic:
            self.kept.append((record.timestamp, record.value or b""))


async def read_outputs(
    reader: AIOKafkaConsumer, expected: int, worker: Process, keep_topic: str | None = None
) -> Outputs:
    """Reads until `expected` records have arrived and then GRACE seconds more; fails if the worker stalls or dies."""
    out = Outputs()
    last_new = last_report = time.monotonic()
    reached: float | None = None
    while True:
        worker.check()
        batches = await reader.getmany(timeout_ms=200, max_records=20_000)
        now = time.monotonic()
        for records in batches.values():
            for record in records:
                out.add(record, keep_topic)
        if batches:
            if out.count == sum(len(r) for r in batches.values()):
                progress(f"first output {time.time() - worker.started:.1f} s after the worker started")
                last_report = now
            last_new = now
        if out.count >= expected:
            reached = reached or now
            if now - reached >= GRACE:
                return out
        elif now - last_new > (STALL_WAIT if out.count else FIRST_OUTPUT_WAIT):
            raise TimeoutError(f"{worker.name}: {fmt(out.count)} of {fmt(expected)} outputs; log: {worker.log_path}")
        if now - last_report >= 5 and 0 < out.count < expected:
            progress(f"{fmt(out.count)} / {fmt(expected)} outputs")
            last_report = now


@dataclass
class Throughput:
    rate: float
    with_startup: float


@asynccontextmanager
async def passthrough_running(
    bootstrap_servers: str, tag: str, pairs: list[tuple[bytes, bytes]], logs: Path
) -> AsyncIterator[tuple[Process, AIOKafkaConsumer]]:
    """The pairs published to a fresh "in" topic, the passthrough worker started on it, and a reader of its "out"
    topic; the worker is stopped on leaving."""
    settings = Settings(bootstrap_servers=bootstrap_servers, topic_prefix=f"bench-{tag}-pt.", partitions=PARTITIONS)
    await create_topics(settings, (TopicSpec("in"), TopicSpec("out")))
    await publish(bootstrap_servers, settings.topic("in"), pairs)
    reader = consumer(bootstrap_servers, settings.topic("out"))
    await reader.start()
    worker: Process | None = None
    try:
        worker = passthrough_worker(settings, f"bench-{tag}-pt", logs)
        progress("passthrough worker started")
        yield worker, reader
    finally:
        if worker:
            worker.stop()
        await reader.stop()


def copied_all(out: Outputs, messages: int, worker: Process) -> float:
    """Fails unless the passthrough copied every message; its seconds from start to the last copy."""
    if out.count != messages:
        raise AssertionError(f"passthrough: {fmt(out.count)} outputs for {fmt(messages)} messages")
    return out.last_ms / 1000 - worker.started


async def baseline(bootstrap_servers: str, tag: str, pairs: list[tuple[bytes, bytes]], logs: Path) -> Throughput:
    print(f"1. per-event Faust passthrough, {fmt(len(pairs))} messages", flush=True)
    async with passthrough_running(bootstrap_servers, tag, pairs, logs) as (worker, reader):
        out = await read_outputs(reader, len(pairs), worker)
    with_startup = copied_all(out, len(pairs), worker)
    progress(f"{fmt(out.rate)} msgs/s ({out.seconds:.1f} s first to last output, {with_startup:.1f} s with start-up)")
    return Throughput(out.rate, with_startup)


async def groupwarden(bootstrap_servers: str, tag: str, pairs: list[tuple[bytes, bytes]], logs: Path) -> Throughput:
    print(f"2. groupwarden worker, {fmt(len(pairs))} messages", flush=True)
    settings = Settings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"bench-{tag}-gw.", group_id=f"bench-{tag}-gw"
    )
    await create_topics(settings)
    expected_dead = sum(1 for _, value in pairs if not valid(value))
    await publish(bootstrap_servers, settings.topic(MESSAGES), pairs)
    verdicts, dead_letters = settings.topic(VERDICTS), settings.topic(DEADLETTER)
    reader = consumer(bootstrap_servers, verdicts, dead_letters)
    await reader.start()
    worker: Process | None = None
    try:
        worker = groupwarden_worker(settings, logs / "groupwarden.log")
        progress("groupwarden worker started")
        out = await read_outputs(reader, len(pairs), worker, keep_topic=verdicts)
    finally:
        if worker:
            worker.stop()
        await reader.stop()
    ids = {orjson.loads(value)["message_id"] for _, value in out.kept}
    counts = (
        f"{fmt(out.per_topic[verdicts])} verdicts ({fmt(len(ids))} distinct message ids) + "
        f"{fmt(out.per_topic[dead_letters])} dead letters (expected {fmt(expected_dead)}) = {fmt(out.count)}"
    )
    progress(counts)
    if out.count != len(pairs):
        raise AssertionError(f"groupwarden: {counts}, for {fmt(len(pairs))} messages")
    with_startup = out.last_ms / 1000 - worker.started
    progress(f"{fmt(out.rate)} msgs/s ({out.seconds:.1f} s first to last output, {with_startup:.1f} s with start-up)")
    return Throughput(out.rate, with_startup)


def valid(value: bytes) -> bool:
    try:
        parse_message(value)
    except InvalidMessage:
        return False
    return True


@dataclass
class Latency:
    rate: float = 0.0
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    to_classify_ms: list[float] = field(default_factory=list)  # sent_at to the worker's classified_at_ms
    dead_letters: int = 0

    def percentile(self, q: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.latencies_ms if values is None else values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def templates(count: int) -> list[tuple[bytes, bytes]]:
    """Valid demo messages as (key, JSON object body without message_id and sent_at), to be completed at send time."""
    out = []
    for key, value in demo.messages(count, seed=11):
        if valid(value):
            doc = orjson.loads(value)
            del doc["message_id"], doc["sent_at"]
            out.append((key, orjson.dumps(doc)[1:]))
    return out


async def latency(bootstrap_servers: str, tag: str, share: float, rate: float, logs: Path) -> Latency:
    name = f"lat{share * 100:.0f}"
    print(
        f"3. latency at {share:.0%} of the peak, {fmt(rate)} msgs/s for {LATENCY_SECONDS:.0f} s, "
        "fresh topics and worker",
        flush=True,
    )
    settings = Settings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"bench-{tag}-{name}.", group_id=f"bench-{tag}-{name}"
    )
    await create_topics(settings)
    bodies = templates(20_000)
    topic, verdicts = settings.topic(MESSAGES), settings.topic(VERDICTS)
    result = Latency()

    def chat(first: int, last: int) -> Iterable[OutRecord]:
        now_ms = int(time.time() * 1000)
        for n in range(first, last):
            key, body = bodies[n % len(bodies)]
            yield OutRecord(topic, key, b'{"message_id":"lat-%d","sent_at":%d,%b' % (n, now_ms, body))

    writer = producer(bootstrap_servers)
    # The embedded broker answers a fetch that waits for data only after half its max wait, even when data arrives
    # sooner: aiokafka's default (500 ms) would add up to 250 ms of this reader's own to every latency.
    reader = consumer(bootstrap_servers, verdicts, settings.topic(DEADLETTER), fetch_max_wait_ms=10)
    await writer.start()
    await reader.start()
    worker: Process | None = None
    sender: asyncio.Task[None] | None = None
    try:
        worker = groupwarden_worker(settings, logs / f"latency-{name}.log")
        progress("groupwarden worker started; waiting for the verdict of a warm-up message")
        key, body = bodies[0]
        await send_batched(writer, [OutRecord(topic, key, b'{"message_id":"warm-up","sent_at":0,%b' % body)])
        await read_outputs(reader, 1, worker)  # GRACE also lets the worker settle after its first batch
        progress("worker is consuming; sending")

        async def send() -> None:
            started = time.monotonic()
            tick = started
            while (elapsed := time.monotonic() - started) < LATENCY_SECONDS:
                due = int(rate * elapsed)  # paced by the clock, so a slow send is caught up next tick
                result.sent += await send_batched(writer, chat(result.sent, due))
                tick += TICK
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
            result.rate = result.sent / (time.monotonic() - started)

        sender = asyncio.create_task(send())
        received, last_new = 0, time.monotonic()
        while not sender.done() or (received < result.sent and not sender.exception()):
            worker.check()
            batches = await reader.getmany(timeout_ms=50, max_records=20_000)
            received_ms = time.time() * 1000
            for records in batches.values():
                for record in records:
                    received += 1
                    if record.topic == verdicts:
                        verdict = orjson.loads(record.value or b"")
                        result.latencies_ms.append(received_ms - verdict["sent_at_ms"])
                        result.to_classify_ms.append(verdict["classified_at_ms"] - verdict["sent_at_ms"])
                    else:
                        result.dead_letters += 1
            now = time.monotonic()
            if batches:
                last_new = now
            elif now - last_new > STALL_WAIT:
                raise TimeoutError(f"latency: {fmt(received)} of {fmt(result.sent)} outputs; log: {worker.log_path}")
        await sender  # raises what the sender raised
        progress(stage_split(worker))
    finally:
        if sender:
            sender.cancel()
        if worker:
            worker.stop()
        await reader.stop()
        await writer.stop()
    if result.dead_letters or len(result.latencies_ms) != result.sent:
        raise AssertionError(
            f"latency: {fmt(len(result.latencies_ms))} verdicts and {result.dead_letters} dead letters "
            f"for {fmt(result.sent)} valid messages"
        )
    progress(
        f"{fmt(result.sent)} messages at {fmt(result.rate)} msgs/s: p50 {result.percentile(0.5):.0f} ms, "
        f"p99 {result.percentile(0.99):.0f} ms, max {max(result.latencies_ms):.0f} ms "
        f"(sent to classified: p50 {result.percentile(0.5, result.to_classify_ms):.0f} ms, "
        f"p99 {result.percentile(0.99, result.to_classify_ms):.0f} ms)"
    )
    return result


async def run(bootstrap_servers: str, count: int, logs: Path) -> tuple[Throughput, Throughput, dict[float, Latency]]:
    tag = uuid.uuid4().hex[:6]
    pairs = list(demo.messages(count))
    passthrough = await baseline(bootstrap_servers, tag, pairs, logs)
    worker = await groupwarden(bootstrap_servers, tag, pairs, logs)
    lats = {share: await latency(bootstrap_servers, tag, share, worker.rate * share, logs) for share in LOADS}
    return passthrough, worker, lats


def missed(*, met: bool) -> str:
    return "" if met else ": MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages for the throughput steps")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="groupwarden-e2e-"))
    with EmbeddedBroker(log_path=logs / "tansu.log") as broker:
        print(f"embedded broker (Tansu) on {broker.bootstrap_servers}; logs in {logs}", flush=True)
        passthrough, worker, lats = asyncio.run(run(broker.bootstrap_servers, args.messages, logs))
    ratio = worker.rate / passthrough.rate
    print()
    print(f"end-to-end on the embedded broker (Tansu), {fmt(args.messages)} messages, {PARTITIONS} partitions")
    print(
        f"  per-event Faust passthrough  {fmt(passthrough.rate):>8} msgs/s   "
        f"(first to last output; {passthrough.with_startup:.1f} s with start-up)"
    )
    print(
        f"  groupwarden worker           {fmt(worker.rate):>8} msgs/s   {ratio:.1f}x the passthrough   "
        f"(target >= {TARGET_RATIO:.0f}x{missed(met=ratio >= TARGET_RATIO)}; {worker.with_startup:.1f} s with start-up)"
    )
    for share, lat in lats.items():
        p50, p99 = lat.percentile(0.5), lat.percentile(0.99)
        target = ""
        if share == HALF:
            met = p99 <= TARGET_P99_MS and p50 <= TARGET_P50_MS
            target = f"   (target p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms{missed(met=met)})"
        print(
            f"  latency at {share:>4.0%} {fmt(lat.rate):>7} msgs/s   p50 {p50:.0f} ms   p99 {p99:.0f} ms   "
            f"max {max(lat.latencies_ms):.0f} ms{target}"
        )
    half = lats[HALF].percentile(0.99)
    print(f"e2e: {fmt(worker.rate)} msgs/s, {ratio:.1f}x passthrough, p99 at half load {half:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
