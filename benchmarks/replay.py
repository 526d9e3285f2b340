"""Replay throughput and memory (`groupwarden replay`, streams/replay.py), against baselines measured in the same run.

    python -m benchmarks.replay [--messages 200000] [--rounds 5] [--days 60] [--no-broker]

The input is the demo traffic benchmarks/e2e.py publishes (streams/demo.py: chat, ~3% spam, some of it with links,
~0.2% malformed), stamped as sent over --days in the order made, each at its own millisecond, so the standing
tables work as on a real range: users are warned, muted and banned, groups escalate, link campaigns are blacklisted,
and mutes, suspensions and blacklist entries expire on the replay's clock. Each group's first sender owns it and its
second manages it (group events given with --group-events), so owners answer for their groups.

1. throughput from a JSONL file, in this process: what the CLI does between loading the pack and publishing
   (read_source, Pipeline.run, output records built and counted in the CLI's chunks), with each chunk dropped where
   the CLI would send it, so the figure is the replay's own cost. Baselines: the classifier alone
   (Classifier.classify_batch over the same messages, parsed beforehand, in batches of 2,000) and the classify stage
   (bytes in: parse, classify, verdict bytes out). The ratio to the stage is what the replay adds on top of
   classifying: reading the file, putting messages in order, and the standing decisions (strikes, escalation,
   campaigns, expiries). The three take turns, round after round, and the figures are medians (each round's ratios
   against that round's baselines). The messages the baselines classify are frozen out of the garbage collector's
   sight (``gc.freeze``); the replay's own input is read inside its timing and is not, as in the CLI.
2. memory: a replay holds its whole input, so one replay of the file's first half and one of all of it, each in a
   fresh process: the RSS growth once the input is read and its peak during the replay (VmHWM, reset before
   reading). The difference between the two is what a longer range costs, per 100k messages and against the file's
   size; the rest of the peak does not grow with the range (mostly the chunk of outputs the CLI builds before each
   send). Records read from a topic also hold their key.
3. unless --no-broker: the N messages published to a topic of the embedded broker (Tansu, 8 partitions), then
   `python -m streams replay --topic ... --group-events ... --output-prefix ...` as a subprocess, timed from start
   to exit and by its own summary (reading the topic to the last acknowledged output); its output counts must equal
   step 1's. Baseline: a plain aiokafka read of the same topic with the replay's consumer options and no consumer
   group, once before the replay and once after (the mean).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import orjson

from benchmarks.e2e import PARTITIONS, ROOT, fmt, plain_read, progress, publish
from streams import demo, process
from streams.config import DEFAULT_RULES, Settings
from streams.kafka.broker import EmbeddedBroker
from streams.policy.classify import Classifier
from streams.policy.rules import RulePack, load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions
from streams.records import ChatMessage, InvalidMessage, parse_message
from streams.replay import SEND_CHUNK, Emitted, Pipeline, read_source, send_chunks
from streams.topics import (
    AUDIT,
    BLACKLIST,
    DEADLETTER,
    MESSAGES,
    SANCTIONS,
    TOPICS,
    VERDICTS,
    VIOLATIONS,
    create_topics,
)

BATCH = 2000  # the replay classifies in chunks of this size too
DAY_MS = 24 * 3600 * 1000
T0 = 1_790_000_000_000  # a fixed start: every run replays the same days
SETTINGS = Settings(topic_prefix="bench-replay.")  # names output records as the CLI does; nothing is sent
REPLAY_WAIT = 900.0
MiB = 1 << 20
SUMMARY = {  # lines of the CLI's summary, and the topics they count
    "verdicts": VERDICTS,
    "dead letters": DEADLETTER,
    "violations": VIOLATIONS,
    "sanctions": SANCTIONS,
    "blacklist": BLACKLIST,
    "audit": AUDIT,
}


# -- workload ----------------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    pairs: list[tuple[bytes, bytes]]  # (group id, value), as published to chat.messages.v1
    events: list[bytes]  # chat.group-events.v1 values
    messages: list[ChatMessage]  # the valid values, parsed, for the classifier baseline
    groups: int


def recorded(count: int, days: float) -> Recorded:
    """The e2e benchmark's demo messages, sent over ``days`` in their order, each at its own millisecond (so a topic
    and a file replay in the same order); each group's first sender created it and its second manages it."""
    step = max(1, int(days * DAY_MS) // max(count, 1))
    pairs: list[tuple[bytes, bytes]] = []
    leaders: dict[str, list[str]] = {}
    for n, (key, value) in enumerate(demo.messages(count)):
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and "sent_at" in doc:
            doc["sent_at"] = T0 + n * step
            group = leaders.setdefault(doc["group_id"], [])
            if len(group) < 2 and doc["sender_id"] not in group:
                group.append(doc["sender_id"])
            pairs.append((key, orjson.dumps(doc)))
        else:
            pairs.append((key, value))  # malformed on purpose: a dead letter
    events = []
    for group_id, (owner, *managers) in sorted(leaders.items()):
        steps = [("created", owner)] + [(kind, m) for m in managers for kind in ("member_joined", "manager_added")]
        for n, (kind, user) in enumerate(steps):
            event = {"event_id": f"{group_id}-{n}", "group_id": group_id, "kind": kind, "user_id": user, "at_ms": T0}
            events.append(orjson.dumps(event))
    messages = []
    for _, value in pairs:
        try:
            messages.append(parse_message(value))
        except InvalidMessage:
            continue
    return Recorded(pairs, events, messages, len(leaders))


def write_lines(path: Path, values: list[bytes]) -> int:
    data = b"".join(value + b"\n" for value in values)
    path.write_bytes(data)
    return len(data)


# -- 1. throughput -----------------------------------------------------------------------------------------------


def classifier_alone(classifier: Classifier, messages: list[ChatMessage]) -> float:
    start = time.perf_counter()
    for i in range(0, len(messages), BATCH):
        classifier.classify_batch(messages[i : i + BATCH], 0)
    return len(messages) / (time.perf_counter() - start)


def classify_stage(classifier: Classifier, values: list[bytes]) -> float:
    """Bytes in, verdict bytes out, as the worker's classify stage runs between fetch and produce."""
    start = time.perf_counter()
    for i in range(0, len(values), BATCH):
        messages = []
        for value in values[i : i + BATCH]:
            try:
                messages.append(parse_message(value))
            except InvalidMessage:
                continue
        for verdict in classifier.classify_batch(messages, 0):
            orjson.dumps(verdict)
    return len(values) / (time.perf_counter() - start)


def drain(outputs: Iterator[Emitted]) -> Counter[str]:
    """What streams/cli.py's _publish_replay does with the outputs, except that each chunk is dropped instead of
    sent and acknowledged."""
    sent: Counter[str] = Counter()
    for _ in send_chunks(SETTINGS, outputs, sent):
        pass
    return sent


def replay_file(pack: RulePack, policy: SanctionPolicy, path: Path, events: Path) -> tuple[float, Counter[str]]:
    """Messages/s of one replay of the file, from reading it to the last output; and the outputs by topic."""
    pipeline = Pipeline(Classifier(pack), policy)  # fresh tables and blacklist, as every CLI run starts with
    start = time.perf_counter()
    records = read_source(SETTINGS, str(path), None)
    group_events = read_source(SETTINGS, str(events), None)
    sent = drain(pipeline.run(records, group_events))
    return len(records) / (time.perf_counter() - start), sent


# -- 2. memory ---------------------------------------------------------------------------------------------------


@dataclass
class Footprint:
    messages: int
    file_bytes: int
    held: int  # RSS growth once the input is read
    peak: int  # peak RSS growth during the replay
    peak_reset: bool  # False: VmHWM could not be reset, so the peak counts from the process's start
    ticks: Counter[str] = field(default_factory=Counter)  # expiries applied, by table
    sanctions: Counter[str] = field(default_factory=Counter)  # by kind


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_hwm(status: str) -> int:
    """The peak RSS in bytes from a /proc/<pid>/status text."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def peak_rss() -> int:
    return _vm_hwm(Path("/proc/self/status").read_text())


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from the current RSS
    except OSError:
        return False
    return True


def footprint(path: str, events: str) -> Footprint:
    """Runs in a fresh process, so its RSS growth is the replay's alone. Sanctions and expiries are counted on the
    way, for the report: counting keeps nothing."""
    pack = load_pack(DEFAULT_RULES)
    pipeline = Pipeline(Classifier(pack), load_sanctions(DEFAULT_RULES / "sanctions.toml", pack.ids()))
    gc.collect()
    before = rss()
    reset = reset_peak_rss()
    records = read_source(SETTINGS, path, None)
    group_events = read_source(SETTINGS, events, None)
    held = rss() - before
    ticks: Counter[str] = Counter()
    sanctions: Counter[str] = Counter()

    def counted(outputs: Iterator[Emitted]) -> Iterator[Emitted]:
        for output in outputs:
            if output.topic == AUDIT:
                doc = orjson.loads(output.value or b"{}")
                if (doc.get("input") or {}).get("action") == "tick":
                    ticks[doc["subject"].partition(":")[0]] += 1
            elif output.topic == SANCTIONS:
                sanctions[orjson.loads(output.value or b"{}")["kind"]] += 1
            yield output

    drain(counted(pipeline.run(records, group_events)))
    peak = peak_rss() - before
    return Footprint(len(records), Path(path).stat().st_size, held, peak, reset, ticks, sanctions)


def footprint_in_fresh_process(path: Path, events: Path) -> Footprint:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(footprint, str(path), str(events)).result()


# -- 3. on the embedded broker -----------------------------------------------------------------------------------


@dataclass
class OnBroker:
    plain: list[float]  # seconds of the plain reads, before and after the replay
    wall: float  # the replay process, from start to exit
    own: float  # the replay's own figure: reading the topic to the last acknowledged output
    peak_rss: int  # of the replay process
    counts: dict[str, int]  # from its summary, by topic


async def publish_messages(settings: Settings, pairs: list[tuple[bytes, bytes]]) -> None:
    await create_topics(settings, tuple(spec for spec in TOPICS if spec.name == MESSAGES))
    await publish(settings.bootstrap_servers, settings.topic(MESSAGES), pairs)


def reap(child: subprocess.Popen[bytes], started: float, log: Path) -> tuple[int, int]:
    """Wait for the child and reap it; its exit status and peak RSS in bytes.

    The peak is the child's VmHWM, read while it runs: its rusage would count the pages it shared with this process
    when it was forked, and this process holds the whole workload."""
    peak = 0
    while True:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            peak = max(peak, _vm_hwm(Path(f"/proc/{child.pid}/status").read_text()))
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            return status, peak
        if time.perf_counter() - started > REPLAY_WAIT:
            raise TimeoutError(f"the replay did not finish in {REPLAY_WAIT:.0f} s; log: {log}")
        time.sleep(0.02)


def run_cli(command: list[str], logs: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS and standard output of a command; fails unless it exits with 0."""
    stdout, stderr = logs / "replay.out", logs / "replay.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        try:
            status, peak = reap(child, started, stderr)
        except BaseException:
            process.stop(child)
            raise
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"the replay exited with code {child.returncode}; log: {stderr}")
    return wall, peak, stdout.read_text()


def on_broker(work: Recorded, events: Path, logs: Path) -> OnBroker:
    tag = uuid.uuid4().hex[:6]
    with EmbeddedBroker(log_path=logs / "tansu.log") as broker:
        bootstrap = broker.bootstrap_servers
        progress(f"embedded broker (Tansu) on {bootstrap}")
        settings = Settings(bootstrap_servers=bootstrap, topic_prefix=f"bench-{tag}.", partitions=PARTITIONS)
        topic = settings.topic(MESSAGES)
        asyncio.run(publish_messages(settings, work.pairs))
        plain = [asyncio.run(plain_read(settings, topic, len(work.pairs), REPLAY_WAIT))]
        progress(f"plain aiokafka read of the topic: {plain[0]:.1f} s")
        command = [
            sys.executable,
            "-m",
            "streams",
            "replay",
            "--topic",
            topic,
            "--group-events",
            str(events),
            "--output-prefix",
            f"bench-{tag}-replay.",
            "--bootstrap-servers",
            bootstrap,
            "--partitions",
            str(PARTITIONS),
            "--rules",
            str(DEFAULT_RULES),
        ]
        wall, peak, summary = run_cli(command, logs)
        own = re.search(r" in ([\d.]+) s", summary)
        if own is None:
            raise RuntimeError(f"no time in the replay's summary: {summary!r}")
        progress(f"groupwarden replay --topic: {wall:.1f} s from start to exit, {own.group(1)} s by its summary")
        plain.append(asyncio.run(plain_read(settings, topic, len(work.pairs), REPLAY_WAIT)))
        progress(f"plain aiokafka read of the topic again: {plain[1]:.1f} s")
    counts = {
        SUMMARY[m.group(1)]: int(m.group(2))
        for m in re.finditer(r"^\s+(verdicts|dead letters|violations|sanctions|blacklist|audit)\s+(\d+)", summary, re.M)
    }
    return OnBroker(plain, wall, float(own.group(1)), peak, counts)


# -- report ------------------------------------------------------------------------------------------------------


def report_memory(half: Footprint, full: Footprint) -> None:
    """Two range lengths tell what grows with the range (per 100k messages) from what does not."""
    more = full.messages - half.messages

    def per_message(a: int, b: int) -> float:
        return (b - a) / more

    file_per = per_message(half.file_bytes, full.file_bytes)
    held_per, peak_per = per_message(half.held, full.held), per_message(half.peak, full.peak)
    fixed = full.peak - peak_per * full.messages
    print(
        "memory: replays of the file's first half and of all of it, each in a fresh process; RSS growth from before "
        "reading" + ("" if full.peak_reset else " (peaks: since the process started)")
    )
    print("    messages        file   once read   peak during the replay")
    for f in (half, full):
        sizes = (f.file_bytes, f.held, f.peak)
        print(f"  {fmt(f.messages):>10}" + "".join(f" {size / MiB:>7,.1f} MiB" for size in sizes))
    print(
        f"  per 100k messages more: file {file_per * 1e5 / MiB:,.1f} MiB, once read {held_per * 1e5 / MiB:,.1f} MiB "
        f"({held_per / file_per:.2f}x the file), peak {peak_per * 1e5 / MiB:,.1f} MiB ({peak_per / file_per:.2f}x)"
    )
    fits = f"about {fmt(((1 << 30) - fixed) / peak_per)}" if peak_per > 0 else "(no growth measured)"
    print(
        f"  the rest of the peak, {fixed / MiB:,.0f} MiB, does not grow with the range (mostly the outputs built "
        f"before a send, {fmt(SEND_CHUNK)} at a time);\n  {fits} messages fit in a GiB of growth"
    )
    if half.messages < 2 * SEND_CHUNK:  # the chunk then fills as the range grows: it lands in the slope
        print(f"  (too few messages to tell the two apart: use at least {fmt(4 * SEND_CHUNK)})")


def report_broker(b: OnBroker, messages: int) -> None:
    plain = statistics.mean(b.plain)
    print(f"on the embedded broker (Tansu), {fmt(messages)} messages in one topic of {PARTITIONS} partitions")
    print(
        f"  plain aiokafka read of the topic (baseline)     {plain:6.1f} s   {fmt(messages / plain):>8} msgs/s   "
        f"(before the replay {b.plain[0]:.1f} s, after {b.plain[1]:.1f} s)"
    )
    print(
        f"  groupwarden replay --topic, by its summary      {b.own:6.1f} s   {fmt(messages / b.own):>8} msgs/s   "
        f"{b.own / plain:5.1f}x the time   (from reading to the last output acknowledged)"
    )
    print(
        f"  the same, process start to exit                 {b.wall:6.1f} s   {fmt(messages / b.wall):>8} msgs/s   "
        f"{b.wall / plain:5.1f}x   (with start-up and loading the pack)"
    )
    print(f"  peak RSS of the replay process                  {b.peak_rss / MiB:6.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5, help="in-process rounds; medians are reported")
    parser.add_argument("--days", type=float, default=60.0, help="the time the messages were sent over")
    parser.add_argument(
        "--broker", action=argparse.BooleanOptionalAction, default=True, help="also time the CLI on a topic"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()

    print(f"building the workload: {fmt(args.messages)} demo messages over {args.days:g} days ...", flush=True)
    work = recorded(args.messages, args.days)
    logs = Path(tempfile.mkdtemp(prefix="groupwarden-replay-"))
    path, events = logs / "recorded.jsonl", logs / "group-events.jsonl"
    size = write_lines(path, [value for _, value in work.pairs])
    write_lines(events, work.events)
    print(
        f"  {fmt(len(work.messages))} valid, {fmt(len(work.pairs) - len(work.messages))} malformed, "
        f"{work.groups} groups, {fmt(len(work.events))} group events; {size / MiB:,.1f} MiB in {path}",
        flush=True,
    )

    half = logs / "recorded-first-half.jsonl"
    write_lines(half, [value for _, value in work.pairs[: len(work.pairs) // 2]])
    print("memory: replays of the first half and of all of it, in fresh processes ...", flush=True)
    memories = []
    for source in (half, path):  # first, while nothing else runs
        memories.append(footprint_in_fresh_process(source, events))
        peak = memories[-1]
        print(f"  {fmt(peak.messages)} messages: peak RSS growth {peak.peak / MiB:,.1f} MiB", flush=True)
    memory = memories[1]

    start = time.perf_counter()
    pack = load_pack(DEFAULT_RULES)
    policy = load_sanctions(DEFAULT_RULES / "sanctions.toml", pack.ids())
    classifier = Classifier(pack)
    print(f"  rule pack and sanctions loaded in {time.perf_counter() - start:.2f} s", flush=True)
    values = [value for _, value in work.pairs]
    gc.freeze()
    print(f"measuring, {args.rounds} rounds ...", flush=True)
    rounds: list[dict[str, float]] = []
    outputs: Counter[str] = Counter()
    for number in range(1, args.rounds + 1):
        alone = classifier_alone(classifier, work.messages)
        stage = classify_stage(classifier, values)
        replayed, outputs = replay_file(pack, policy, path, events)
        gc.collect()  # the replay's garbage is not the next round's
        rounds.append(
            {"alone": alone, "stage": stage, "replay": replayed}
            | {"stage_x": stage / alone, "replay_x": replayed / alone, "replay_stage_x": replayed / stage}
        )
        print(
            f"  round {number}: classifier {alone:,.0f}, stage {stage:,.0f} ({stage / alone:.2f}x), "
            f"replay {replayed:,.0f} ({replayed / alone:.2f}x) msgs/s",
            flush=True,
        )

    broker: OnBroker | None = None
    if args.broker:
        print(f"on the embedded broker: {fmt(args.messages)} messages to a topic, then the replay command", flush=True)
        broker = on_broker(work, events, logs)
        if broker.counts != {topic: outputs[topic] for topic in SUMMARY.values()}:
            raise AssertionError(f"the replay of the topic counted {broker.counts}, of the file {dict(outputs)}")

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    alone, stage, replayed = median("alone"), median("stage"), median("replay")
    kinds = ", ".join(f"{fmt(n)} {kind}" for kind, n in memory.sanctions.most_common())
    ticks = ", ".join(f"{table} {fmt(n)}" for table, n in memory.ticks.most_common())
    print()
    print(
        f"replay, {fmt(args.messages)} demo messages over {args.days:g} days, {work.groups} groups, default rule pack, "
        f"one core; medians of {args.rounds}"
    )
    print(f"  classifier alone, batches of {BATCH} (baseline)   {alone:>9,.0f} msgs/s")
    print(f"  classify stage: bytes in, verdict bytes out     {stage:>9,.0f} msgs/s   {median('stage_x'):4.2f}x")
    print(
        f"  replay from a file, outputs built, not sent     {replayed:>9,.0f} msgs/s   {median('replay_x'):4.2f}x   "
        f"{median('replay_stage_x'):4.2f}x the stage"
    )
    print(
        f"  its outputs: {fmt(outputs[VERDICTS])} verdicts, {fmt(outputs[DEADLETTER])} dead letters, "
        f"{fmt(outputs[VIOLATIONS])} violations, {fmt(outputs[BLACKLIST])} blacklist and {fmt(outputs[AUDIT])} audit "
        f"records;\n  {fmt(outputs[SANCTIONS])} sanctions ({kinds}); expiries applied: {ticks or 'none'}"
    )
    print()
    report_memory(*memories)
    if broker is not None:
        print()
        report_broker(broker, args.messages)
    print(f"\n{time.monotonic() - began:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
