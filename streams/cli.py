"""The ``groupwarden`` command: classify files, run the pipeline, manage topics, produce messages."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import process, replay
from streams.config import ConfigError, Settings
from streams.console import LiveLines, ReadProgress, Standing, file_size
from streams.kafka.produce import OutRecord, send_batched
from streams.kafka.reach import require_broker
from streams.metrics import metrics_url
from streams.records import ChatMessage, InvalidMessage, parse_message
from streams.state.recovery import true_end_offsets
from streams.topics import (
    AUDIT,
    BLACKLIST,
    DEADLETTER,
    MESSAGES,
    NOTICES,
    SANCTIONS,
    TOPICS,
    VERDICTS,
    VIOLATIONS,
    TopicError,
    check_topics,
    create_topics,
)

_CHUNK = 2000
REPLAY_OUTPUTS = (VERDICTS, VIOLATIONS, SANCTIONS, BLACKLIST, AUDIT, NOTICES, DEADLETTER)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, TopicError) as exc:
        print(f"groupwarden: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        return 1
    except OSError as exc:
        if exc.filename is None:  # not a file named on the command line
            raise
        print(f"groupwarden: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groupwarden", description="Streaming moderation for group chats.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def kafka_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-servers", help="host:port[,host:port] (default: $GROUPWARDEN_BOOTSTRAP_SERVERS)")
        p.add_argument("--topic-prefix", help="prefix of every topic name (default: $GROUPWARDEN_TOPIC_PREFIX)")

    p = commands.add_parser("classify", help="classify JSONL messages without a broker: JSONL verdicts out")
    p.add_argument("--rules", type=Path, help="rule pack folder (default: rules/)")
    p.add_argument("file", nargs="?", default="-", help="JSONL messages, or - for standard input")
    p.add_argument(
        "--explain",
        action="store_true",
        help="print each verdict as a readable table (rules, evidence, spans, weights, scores) instead of JSONL",
    )
    p.set_defaults(run=_classify)

    p = commands.add_parser("validate", help="check JSONL messages against the input contract before publishing")
    p.add_argument("file", nargs="?", default="-", help="JSONL messages, or - for standard input")
    p.set_defaults(run=_validate)

    p = commands.add_parser("up", help="embedded broker + topics + worker, and a live summary; Ctrl-C stops")
    p.add_argument("--demo", action="store_true", help="also publish bounded synthetic group-chat traffic")
    p.add_argument("--rate", type=int, default=2000, help="demo messages per second (default 2000)")
    p.add_argument("--count", type=int, default=200_000, help="demo messages in all (default 200000)")
    p.add_argument("--partitions", type=int, default=8, help="of every topic it creates (default 8)")
    p.add_argument("--rules", type=Path, help="rule pack folder (default: $GROUPWARDEN_RULES or rules/)")
    p.set_defaults(run=_up)

    p = commands.add_parser("broker", help="the embedded broker alone, for a worker, produce and replay; Ctrl-C stops")
    p.add_argument("--port", type=int, default=9092, help="loopback port to listen on (default 9092, Kafka's own)")
    p.set_defaults(run=_broker)

    p = commands.add_parser("worker", help="run a worker against any Kafka cluster (settings from the environment)")
    kafka_options(p)
    p.add_argument("--rules", type=Path, help="rule pack folder (default: $GROUPWARDEN_RULES or rules/)")
    p.add_argument("--partitions", type=int, help="of every keyed topic (default: $GROUPWARDEN_PARTITIONS or 8)")
    p.add_argument(
        "--loglevel",
        default="info",
        choices=("debug", "info", "warning", "error", "critical"),
        help="least severe log lines shown, on stderr (default info)",
    )
    p.set_defaults(run=_worker)

    def replay_source(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", nargs="?", help="JSONL messages, or - for standard input (or give --topic)")
        p.add_argument("--topic", help="replay this topic instead, e.g. chat.messages.v1")
        p.add_argument("--from-offset", type=int, help="first offset of every partition (default: earliest)")
        p.add_argument("--to-offset", type=int, help="stop before this offset (default: the end at start)")
        p.add_argument("--since", help="records at or after this time (RFC 3339 or epoch ms)")
        p.add_argument("--until", help="records before this time")
        p.add_argument("--group-events", metavar="FILE", help="JSONL group events (owners, managers) to replay too")
        p.add_argument("--group-events-topic", metavar="TOPIC", help="or all of this topic, e.g. chat.group-events.v1")
        p.add_argument("--bootstrap-servers", help="host:port[,host:port] (default: $GROUPWARDEN_BOOTSTRAP_SERVERS)")

    p = commands.add_parser(
        "replay", help="replay a topic or a JSONL file through the pipeline into prefixed topics, deterministically"
    )
    replay_source(p)
    p.add_argument("--rules", type=Path, help="rule pack folder (default: rules/)")
    p.add_argument("--output-prefix", help="prefix of the output topics (default: replay-<UTC time>.)")
    p.add_argument("--partitions", type=int, help="of the output topics (default: $GROUPWARDEN_PARTITIONS or 8)")
    p.set_defaults(run=_replay)

    p = commands.add_parser("diff", help="what a candidate rule pack changes on the same input: tables or JSON")
    replay_source(p)
    p.add_argument("--rules", type=Path, help="the pack in force (default: rules/)")
    p.add_argument("--candidate", type=Path, required=True, help="the rule pack folder to compare with it")
    p.add_argument("--json", type=Path, help="also write the full report as JSON to this file (- for stdout only)")
    p.add_argument("--examples", type=int, default=5, help="example message ids per row (default 5)")
    p.set_defaults(run=_diff)

    p = commands.add_parser("topics", help="manage topics")
    topic_commands = p.add_subparsers(required=True, metavar="ACTION")
    p = topic_commands.add_parser("create", help="create every topic with explicit partitions (idempotent)")
    kafka_options(p)
    p.add_argument("--partitions", type=int, help="of every keyed topic (default: $GROUPWARDEN_PARTITIONS or 8)")
    p.set_defaults(run=_topics_create)

    p = commands.add_parser(
        "tail", help="print a topic's records readably: verdicts, sanctions with their notices, the blacklist"
    )
    kafka_options(p)
    p.add_argument("topic", metavar="TOPIC", help="e.g. moderation.sanctions.v1 (--topic-prefix is put before it)")
    p.add_argument(
        "-n", "--last", type=int, metavar="N", help="the last N records of each partition (default: all kept)"
    )
    p.add_argument("-f", "--follow", action="store_true", help="then keep printing new records until Ctrl-C")
    p.set_defaults(run=_tail)

    p = commands.add_parser("produce", help="publish JSONL messages to chat.messages.v1, keyed by group_id")
    kafka_options(p)
    p.add_argument("file", help="JSONL messages, or - for standard input")
    p.add_argument(
        "--send-invalid",
        action="store_true",
        help="publish invalid lines and repeated message ids too (the worker dead-letters invalid ones); "
        "by default they are named on stderr and not sent",
    )
    p.set_defaults(run=_produce)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
        topic_prefix=getattr(args, "topic_prefix", None),
        partitions=getattr(args, "partitions", None),
        rules_dir=getattr(args, "rules", None),
    )


@contextlib.contextmanager
def _open(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdin.buffer
    else:
        with Path(name).open("rb") as f:
            yield f


def _classify(args: argparse.Namespace) -> int:
    from streams.policy.reload import load_classifier
    from streams.policy.rules import RulePack, RulePackError
    from streams.policy.sanctions import load_sanctions

    settings = _settings(args)
    sanctions = settings.rules_dir / "sanctions.toml"

    def check_sanctions(pack: RulePack) -> None:
        if sanctions.exists():  # the worker would refuse it: say so now, before the classifier is built
            load_sanctions(sanctions, pack.ids())

    try:
        classifier = load_classifier(settings.rules_dir, vet=check_sanctions)
        check_sanctions(classifier.pack)  # read back from the cache: not built, so not vetted yet
    except RulePackError as exc:
        print(f"groupwarden: rule pack refused: {exc}", file=sys.stderr)
        return 2
    invalid, read = 0, 0
    decisions: Counter[str] = Counter()
    out = sys.stdout.buffer

    def write(chunk: list[ChatMessage]) -> None:
        verdicts = classifier.classify_batch(chunk, _now_ms())
        decisions.update(v["decision"] for v in verdicts)
        if args.explain:
            _explained(chunk, verdicts)
        else:
            out.writelines(orjson.dumps(v) + b"\n" for v in verdicts)

    started = time.monotonic()
    with _open(args.file) as source, ReadProgress("classify", file_size(source)) as progress:
        chunk = []
        for number, line in enumerate(source, start=1):
            read += len(line)
            if not line.strip():
                continue
            try:
                chunk.append(parse_message(line.rstrip(b"\r\n")))
            except InvalidMessage as exc:
                invalid += 1
                print(f"{args.file}:{number}: {exc}", file=sys.stderr)
            if len(chunk) >= _CHUNK:
                write(chunk)
                chunk = []
                progress.update(read, decisions.total())
        write(chunk)
        progress.update(read, decisions.total())
    out.flush()
    seconds, count = time.monotonic() - started, decisions.total()
    print(
        f"classified {count:,} messages in {seconds:.1f} s ({count / max(seconds, 1e-9):,.0f} msgs/s): "
        + ", ".join(f"{decisions[d]:,} {d}" for d in ("allow", "review", "block"))
        + (f"; {invalid:,} invalid lines skipped" if invalid else ""),
        file=sys.stderr,
    )
    return 1 if invalid else 0


def _explained(messages: Sequence[ChatMessage], verdicts: Sequence[dict[str, Any]]) -> None:
    from rich.console import Console

    from streams.explain import render

    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)  # a file or pipe: nothing cut
    for message, verdict in zip(messages, verdicts, strict=True):
        console.print(render(verdict, message.text))


def _validate(args: argparse.Namespace) -> int:
    """Every problem of every line, with its number; exit 1 if any. What the worker would dead-letter, said first."""
    problems, count = 0, 0
    seen: dict[str, int] = {}
    with _open(args.file) as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            count += 1
            try:
                message = parse_message(line.rstrip(b"\r\n"))
            except InvalidMessage as exc:
                problems += 1
                print(f"{args.file}:{number}: {exc.reason}: {exc.detail}")
                continue
            if (first := seen.setdefault(message.message_id, number)) != number:
                problems += 1
                print(f"{args.file}:{number}: duplicate_message_id: {message.message_id!r} is also on line {first}")
    print(f"{count} messages, {problems} problems", file=sys.stderr)
    return 1 if problems else 0


def _worker(args: argparse.Namespace) -> int:
    from streams.policy.reload import Followed, Policy, load_policy
    from streams.policy.rules import RulePackError

    settings = _settings(args)  # refuse inconsistent settings and broken rule packs before Faust starts
    active: Followed | None = None
    policy: Policy | None = None
    try:
        if "classify" in settings.stages:
            active = Followed("active", settings.rules_dir, with_policy=True)
            active.rules = active.load()
        else:  # the standing stage alone needs the policy and the pack's version, not its classifier
            policy = load_policy(settings.rules_dir)
    except RulePackError as exc:
        print(f"groupwarden: rule pack refused: {exc}", file=sys.stderr)
        return 2
    os.environ["GROUPWARDEN_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    os.environ["GROUPWARDEN_TOPIC_PREFIX"] = settings.topic_prefix
    os.environ["GROUPWARDEN_RULES"] = str(settings.rules_dir)
    os.environ["GROUPWARDEN_PARTITIONS"] = str(settings.partitions)
    try:
        asyncio.run(require_broker(settings))
        asyncio.run(check_topics(settings))
    except TopicError as exc:
        print(f"groupwarden: {exc}", file=sys.stderr)
        return 2
    from streams.app import create_app, worker

    worker(create_app(Settings.from_env(), active, policy), args.loglevel).execute_from_commandline()
    return 0


def _replay_input(
    args: argparse.Namespace, settings: Settings
) -> tuple[list[replay.InputRecord], list[replay.InputRecord]]:
    """The messages and the group events a replay or a diff runs over."""
    if (args.file is None) == (args.topic is None):
        raise ConfigError("give a JSONL file or --topic, not both")
    if args.group_events is not None and args.group_events_topic is not None:
        raise ConfigError("give --group-events or --group-events-topic, not both")
    source = None
    if args.topic is not None:
        try:
            since = replay.parse_time(args.since) if args.since else None
            until = replay.parse_time(args.until) if args.until else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        source = replay.TopicRange(args.topic, args.from_offset, args.to_offset, since, until)
    elif args.from_offset is not None or args.to_offset is not None or args.since or args.until:
        raise ConfigError("offsets and times select records of a topic: use them with --topic")
    events_source = None if args.group_events_topic is None else replay.TopicRange(args.group_events_topic)
    try:
        messages = replay.read_source(settings, args.file, source)
        if args.group_events is None and events_source is None:
            return messages, []
        return messages, replay.read_source(settings, args.group_events, events_source)
    except LookupError as exc:
        raise ConfigError(str(exc)) from None


def _pipeline(rules_dir: Path) -> replay.Pipeline:
    from streams.policy.reload import load_rules

    rules = load_rules(rules_dir, with_policy=True)
    assert rules.policy is not None
    return replay.Pipeline(rules.classifier, rules.policy)


def _replay(args: argparse.Namespace) -> int:
    from streams.policy.rules import RulePackError

    live = _settings(args)
    prefix = args.output_prefix
    if prefix is None:
        prefix = time.strftime("replay-%Y%m%dT%H%M%SZ.", time.gmtime())
    if not prefix or prefix == live.topic_prefix:
        raise ConfigError("a replay writes to topics of its own: give an --output-prefix the live topics do not use")
    out = dataclasses.replace(live, topic_prefix=prefix)
    try:
        pipeline = _pipeline(live.rules_dir)
    except RulePackError as exc:
        print(f"groupwarden: rule pack refused: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    reads_topics = args.topic is not None or args.group_events_topic is not None
    if reads_topics:
        asyncio.run(require_broker(live))
    records, events = _replay_input(args, live)  # a file that cannot be read is said before a missing broker
    if not reads_topics:
        asyncio.run(require_broker(live))  # the outputs go to topics all the same
    asyncio.run(_prepare_outputs(out))
    bar = replay.Progress("replay")
    sent = asyncio.run(_publish_replay(out, pipeline.run(records, events), len(records) + len(events), bar))
    bar.done()
    print(_replay_summary(out, sent, (len(records), len(events)), pipeline, time.monotonic() - started))
    return 0


async def _prepare_outputs(settings: Settings) -> None:
    """Create the output topics; refuse ones that already hold records, so a replay's topics hold that replay only."""
    specs = tuple(spec for spec in TOPICS if spec.name in REPLAY_OUTPUTS)
    await create_topics(settings, specs)
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        described = await admin.describe_topics([settings.topic(name) for name in REPLAY_OUTPUTS])
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t.get("partitions", [])]
    ends = await true_end_offsets(settings.kafka_options(), tps)
    used = sorted({tp.topic for tp, end in ends.items() if end > 0})
    if used:
        raise ConfigError(f"{', '.join(used)} already hold records: give the replay a new --output-prefix")


async def _publish_replay(
    settings: Settings, outputs: Iterator[replay.Emitted], total: int, progress: replay.Progress
) -> Counter[str]:
    """Publish outputs in chunks, each acknowledged before the next; count them by topic."""
    producer = AIOKafkaProducer(acks="all", linger_ms=5, max_batch_size=1 << 20, **settings.kafka_options())
    await producer.start()
    sent: Counter[str] = Counter()
    try:
        for chunk in replay.send_chunks(settings, outputs, sent):
            await send_batched(producer, chunk)
            progress(sent[VERDICTS] + sent[DEADLETTER], total)
        progress(total, total)
    finally:
        await producer.stop()
    return sent


def _replay_summary(
    settings: Settings, sent: Counter[str], inputs: tuple[int, int], pipeline: replay.Pipeline, seconds: float
) -> str:
    rows = [
        f"replayed {inputs[0]} messages and {inputs[1]} group events in {seconds:.1f} s"
        f" with rules {pipeline.classifier.version}"
        f" and sanctions {pipeline.tables.policy.version}",
        f"  verdicts      {sent[VERDICTS]}",
        f"  dead letters  {sent[DEADLETTER]}",
        f"  violations    {sent[VIOLATIONS]}",
        f"  sanctions     {sent[SANCTIONS]}",
        f"  blacklist     {sent[BLACKLIST]} records",
        f"  audit         {sent[AUDIT]} records",
        "outputs: " + ", ".join(settings.topic(name) for name in REPLAY_OUTPUTS),
    ]
    return "\n".join(rows)


def _diff(args: argparse.Namespace) -> int:
    from streams import diff
    from streams.policy.rules import RulePackError

    settings = _settings(args)
    try:
        base, candidate = _pipeline(settings.rules_dir), _pipeline(args.candidate)
    except RulePackError as exc:
        print(f"groupwarden: rule pack refused: {exc}", file=sys.stderr)
        return 2
    if args.topic is not None or args.group_events_topic is not None:
        asyncio.run(require_broker(settings))
    given, events = _replay_input(args, settings)
    records, skipped = _screen(given, "skipped")
    report = diff.compare(
        list(base.run(records, events)),
        list(candidate.run(records, events)),
        base_version=base.classifier.version,
        candidate_version=candidate.classifier.version,
        examples=args.examples,
    )
    report["skipped"] = dict(skipped)
    if args.json is None:
        sys.stdout.write(diff.render(report))
    elif str(args.json) == "-":
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.write(diff.render(report))
    return 1 if skipped else 0


def _topics_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(require_broker(settings))
    created = asyncio.run(create_topics(settings))
    print(f"created {len(created)} topics: {', '.join(created) or '(all existed)'}")
    return 0


def _produce(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _open(args.file) as source:  # a file that cannot be read is said before a missing broker
        given = list(replay.file_records(args.file, source))
    asyncio.run(require_broker(settings))
    records, refused = _screen(given, "published anyway" if args.send_invalid else "refused")
    lines = [r.value or b"" for r in (given if args.send_invalid else records)]
    sent = asyncio.run(_publish(settings, [(_group_key(line), line) for line in lines]))
    print(f"published {sent} messages to {settings.topic(MESSAGES)}")
    return 1 if refused and not args.send_invalid else 0


_SHOWN_PROBLEMS = 20  # input problems named one by one on stderr; `groupwarden validate` lists them all


def _screen(records: Sequence[replay.InputRecord], what: str) -> tuple[list[replay.InputRecord], Counter[str]]:
    """The records that are valid messages, the first of each message_id only; the others counted by reason and
    named on stderr as `validate` names them, with ``what`` happens to them."""
    kept: list[replay.InputRecord] = []
    problems: Counter[str] = Counter()
    seen: dict[str, str] = {}
    for record in records:
        where = _where(record)
        try:
            message = parse_message(record.value)
        except InvalidMessage as exc:
            problem = f"{exc.reason}: {exc.detail}"
            problems[exc.reason] += 1
        else:
            first = seen.setdefault(message.message_id, where)
            if first == where:
                kept.append(record)
                continue
            problem = f"duplicate_message_id: {message.message_id!r} is also at {first}"
            problems["duplicate_message_id"] += 1
        if problems.total() <= _SHOWN_PROBLEMS:
            print(f"{where}: {problem}", file=sys.stderr)
    if problems:
        hidden = max(0, problems.total() - _SHOWN_PROBLEMS)
        counts = ", ".join(f"{n} {reason}" for reason, n in problems.most_common())
        print(
            f"{len(records)} records, {problems.total()} {what} ({counts})"
            + (f"; {hidden} not shown: `groupwarden validate` lists every problem" if hidden else ""),
            file=sys.stderr,
        )
    return kept, problems


def _where(record: replay.InputRecord) -> str:
    """A record's place as a user finds it: file and line, or topic, partition and offset."""
    if record.topic.startswith("file:"):
        return f"{record.topic.removeprefix('file:')}:{record.offset}"
    return f"{record.topic}[{record.partition}]@{record.offset}"


def _group_key(line: bytes) -> bytes | None:
    try:
        return str(orjson.loads(line)["group_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None  # still published: the worker dead-letters it with the reason


async def _publish(settings: Settings, pairs: Sequence[tuple[bytes | None, bytes]]) -> int:
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **settings.kafka_options())
    await producer.start()
    try:
        topic = settings.topic(MESSAGES)
        return await send_batched(producer, (OutRecord(topic, key, value) for key, value in pairs))
    finally:
        await producer.stop()


def _tail(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streams import tail

    settings = _settings(args)
    if args.last is not None and args.last < 0:
        raise ConfigError("--last takes a count of records, 0 or more")
    console = Console(soft_wrap=True, highlight=False)

    async def run(stop: asyncio.Event) -> None:  # Ctrl-C is how a --follow ends: not an error
        await tail.tail(settings, args.topic, console.print, last=args.last, follow=args.follow, stop=stop)

    _run_until_stopped(run)
    return 0


def _run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """asyncio.run(main(stop)), where Ctrl-C or SIGTERM sets ``stop``. Stopping is a flag main checks, not a
    cancellation: aiokafka suppresses CancelledError in places. A signal that comes before the loop watches for it is
    held, not lost; and asyncio.run installs no Ctrl-C handler of its own, whose cancellation of a task not yet
    started escaped as a traceback."""
    early = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: early.set()) for signum in signals}

    async def run() -> None:
        stop = asyncio.Event()
        for signum in signals:
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        if early.is_set():
            stop.set()
        await main(stop)

    try:
        asyncio.run(run())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- groupwarden up ---------------------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    from streams.kafka.broker import BrokerError, EmbeddedBroker

    metrics_host, metrics_port = _metrics_address(Settings.from_env())
    try:
        broker = EmbeddedBroker().start()
    except BrokerError as exc:
        print(f"groupwarden: {exc}", file=sys.stderr)
        return 2
    with broker, tempfile.TemporaryDirectory(prefix="groupwarden-") as data_dir:
        settings = Settings.from_env(
            bootstrap_servers=broker.bootstrap_servers, partitions=args.partitions, rules_dir=args.rules
        )
        asyncio.run(create_topics(settings))
        _say(f"embedded broker (Tansu) on {broker.bootstrap_servers}, {settings.partitions} partitions a topic")
        _say(f"export GROUPWARDEN_BOOTSTRAP_SERVERS={broker.bootstrap_servers}  # for produce, replay, diff --topic")
        env = os.environ | {
            "GROUPWARDEN_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "GROUPWARDEN_RULES": str(settings.rules_dir),
            "GROUPWARDEN_PARTITIONS": str(settings.partitions),
            "GROUPWARDEN_STORE": "memory://",  # the embedded broker keeps nothing on disk, nor do its tables
            "GROUPWARDEN_DATA_DIR": data_dir,  # Faust still keeps a little there
            "GROUPWARDEN_METRICS_HOST": metrics_host,
            "GROUPWARDEN_METRICS_PORT": str(metrics_port),
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--loglevel", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,  # its warnings and errors still reach stderr
            start_new_session=True,
        )
        try:
            _say(f"worker started (pid {worker.pid}); metrics on {metrics_url(metrics_host, metrics_port)}")
            _say("Ctrl-C stops everything")
            _run_until_stopped(lambda stop: _live(settings, args, worker, stop))
        except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C before the loop watched for it; no one reads us
            pass
        finally:
            process.stop(worker)  # first, whatever happens to the output: a worker must not outlive up
            _say("\nstopping...")
    _say("stopped")
    return 0


def _metrics_address(settings: Settings) -> tuple[str, int]:
    """Where up's worker will serve its metrics: the settings' port, or any free one for 0. A port set and taken is
    refused; the default port taken (another up, say) gives way to a free one."""
    host, port = settings.metrics_host, settings.metrics_port
    try:
        return host, _free(host, port)
    except OSError as exc:
        if "GROUPWARDEN_METRICS_PORT" in os.environ:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}): set GROUPWARDEN_METRICS_PORT to a free"
                " port, or 0 for any"
            ) from None
        free = _free(host, 0)
        print(f"groupwarden: metrics port {port} is taken: serving on {free} instead", file=sys.stderr)
        return host, free


def _free(host: str, port: int) -> int:
    """``port`` if nothing listens on it (any free port for 0); OSError if something does."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the metrics server binds
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def _say(line: str) -> None:
    """print(), for messages that must never stop up: a closed stdout (a `| tee` ended by Ctrl-C) is ignored."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so Python's flush at exit fails no more


def _broker(args: argparse.Namespace) -> int:
    from streams.kafka.broker import BrokerError, EmbeddedBroker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # set first: a Ctrl-C while it starts still stops it
        signal.signal(signum, lambda *_: stop.set())
    try:
        broker = EmbeddedBroker(args.port).start()
    except BrokerError as exc:
        print(f"groupwarden: {exc}", file=sys.stderr)
        return 2
    with broker:
        _say(f"embedded broker (Tansu) on {broker.bootstrap_servers}; memory storage: nothing outlives it")
        _say(f"export GROUPWARDEN_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
        _say("then: groupwarden topics create, groupwarden worker, groupwarden produce FILE; Ctrl-C stops the broker")
        while not stop.wait(0.5):
            if (code := broker.exit_code()) is not None:
                print(f"groupwarden: the embedded broker exited with code {code}", file=sys.stderr)
                return 1
    _say("stopped")
    return 0


async def _live(
    settings: Settings, args: argparse.Namespace, worker: subprocess.Popen[bytes], stop: asyncio.Event
) -> None:
    """The summary and the demo traffic, until ``stop`` is set (Ctrl-C or SIGTERM)."""
    tasks = [asyncio.create_task(_summary(settings, worker, stop))]
    if args.demo:
        tasks.append(asyncio.create_task(_demo_traffic(settings, args.rate, args.count, stop)))
    try:
        await asyncio.gather(*tasks)
    finally:
        stop.set()


async def _demo_traffic(settings: Settings, rate: int, count: int, stop: asyncio.Event) -> None:
    from streams import demo

    producer = AIOKafkaProducer(acks="all", linger_ms=5, **settings.kafka_options())
    await producer.start()
    topic = settings.topic(MESSAGES)
    try:
        start, sent, chunk = time.monotonic(), 0, []
        for key, value in demo.messages(count):
            if stop.is_set():
                return
            chunk.append(OutRecord(topic, key, value))
            if len(chunk) >= max(1, rate // 10):
                sent += await send_batched(producer, chunk)
                chunk = []
                await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        sent += await send_batched(producer, chunk)
        print(f"\ndemo traffic finished: {sent} messages published")
    finally:
        await producer.stop()


async def _summary(settings: Settings, worker: subprocess.Popen[bytes], stop: asyncio.Event) -> None:
    """Reads the outputs (not the worker's memory), so what it shows is what consumers downstream see."""
    consumer = AIOKafkaConsumer(
        settings.topic(VERDICTS),
        settings.topic(DEADLETTER),
        settings.topic(SANCTIONS),
        settings.topic(BLACKLIST),
        auto_offset_reset="earliest",  # the embedded broker's topics are new: show everything
        enable_auto_commit=False,
        **settings.kafka_options(),
    )
    await consumer.start()
    decisions: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    dead = 0
    latencies: list[int] = []
    standing = Standing()
    lines = LiveLines()
    last, last_total = time.monotonic(), 0
    try:
        while not stop.is_set():
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with code {worker.returncode}")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.topic == settings.topic(DEADLETTER):
                        dead += 1
                        continue
                    if record.topic == settings.topic(SANCTIONS):
                        standing.sanction(record.value)
                        continue
                    if record.topic == settings.topic(BLACKLIST):
                        standing.blacklist(record.key, record.value)
                        continue
                    verdict = orjson.loads(record.value or b"{}")
                    decisions[verdict["decision"]] += 1
                    categories.update(verdict["categories"])
                    latencies.append(record.timestamp - verdict["sent_at_ms"])
            now = time.monotonic()
            if now - last >= 2:
                total = sum(decisions.values())
                latencies.sort()
                p50 = f"{latencies[len(latencies) // 2]} ms" if latencies else "-"  # no verdict: nothing to measure
                p99 = f"{latencies[int(len(latencies) * 0.99)]} ms" if latencies else "-"
                top = ", ".join(f"{c} {n}" for c, n in categories.most_common(4)) or "-"
                line = (
                    f"verdicts {total} ({(total - last_total) / (now - last):.0f}/s)  allow {decisions['allow']}  "
                    f"review {decisions['review']}  block {decisions['block']}  dead letters {dead}  "
                    f"latency p50 {p50} p99 {p99}  top: {top}"
                )
                lines.show(line, standing.line())
                last, last_total, latencies = now, total, []
    finally:
        lines.close()
        await consumer.stop()


if __name__ == "__main__":
    raise SystemExit(main())
