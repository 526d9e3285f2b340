"""Faults an operator meets: Ctrl-C on `up | tee`, a broker that goes away or comes back empty, a port taken."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from streams import topics
from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.topics import MESSAGES, VERDICTS, create_topics
from tests.integration.conftest import Worker, chat_message, produce, read_until

CLI = [sys.executable, "-m", "streams"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def read_lines_until(stream: Iterator[str], pattern: str, lines: list[str], seconds: float = 90) -> re.Match[str]:
    deadline = time.monotonic() + seconds
    for line in stream:
        lines.append(line)
        if found := re.search(pattern, line):
            return found
        assert time.monotonic() < deadline, "".join(lines)
    pytest.fail(f"no line matched {pattern!r}:\n{''.join(lines)}")


def stop(up: subprocess.Popen[str]) -> None:
    """As Ctrl-C does, so that up stops its broker and worker even when a test failed; killed if that fails."""
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()


def start_up() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "up", "--partitions", "2"],
        env=os.environ | {"GROUPWARDEN_METRICS_PORT": "0"},  # any free port: up says which
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_stops_up_and_its_worker_when_it_also_ended_the_reader_of_its_output() -> None:
    """`groupwarden up | tee log`, then Ctrl-C: tee is gone before up says it is stopping."""
    up = start_up()
    pid = None
    try:
        assert up.stdout is not None
        lines: list[str] = []
        pid = int(read_lines_until(up.stdout, r"worker started \(pid (\d+)\)", lines)[1])
        read_lines_until(up.stdout, r"Ctrl-C stops everything", lines)
        up.stdout.close()  # the reader is gone
        up.send_signal(signal.SIGINT)
        err = up.communicate(timeout=60)[1]
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), f"the worker outlived up:\n{err}"
        assert up.returncode == 0, err
        assert "Traceback" not in err
    finally:
        stop(up)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)  # an orphan, as on the base commit


def test_up_prints_the_export_line_its_real_metrics_address_and_no_latency_while_idle() -> None:
    up = start_up()
    try:
        assert up.stdout is not None
        lines: list[str] = []
        export = read_lines_until(up.stdout, r"^export GROUPWARDEN_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)", lines)
        assert f"on {export[1]}," in lines[0]
        url = read_lines_until(up.stdout, r"metrics on (http://127\.0\.0\.1:(\d+)/metrics)", lines)
        assert int(url[2]) != 0
        summary = read_lines_until(up.stdout, r"^verdicts 0 ", lines)
        assert "latency p50 - p99 -" in summary.string  # nothing to measure yet
        deadline = time.monotonic() + 60
        while True:  # the worker serves its metrics there once started
            try:
                with urllib.request.urlopen(url[1], timeout=2) as response:
                    assert b"groupwarden_build_info" in response.read()
                break
            except OSError:
                assert time.monotonic() < deadline, "nothing served at " + url[1]
                time.sleep(0.5)
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=60)
        assert up.returncode == 0, err
        assert "stopped" in out
    finally:
        stop(up)


def test_the_broker_command_serves_a_worker_produce_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    broker = subprocess.Popen(
        [*CLI, "broker", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert broker.stdout is not None
        lines: list[str] = []
        read_lines_until(broker.stdout, rf"^export GROUPWARDEN_BOOTSTRAP_SERVERS=127\.0\.0\.1:{port}$", lines)
        env = os.environ | {"GROUPWARDEN_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "GROUPWARDEN_PARTITIONS": "2"}
        created = subprocess.run([*CLI, "topics", "create"], env=env, capture_output=True, text=True, check=False)
        assert created.returncode == 0, created.stderr
        source = tmp_path / "m.jsonl"
        source.write_bytes(chat_message(1)[1] + b"\n")
        produced = subprocess.run([*CLI, "produce", str(source)], env=env, capture_output=True, text=True, check=False)
        assert "published 1 messages" in produced.stdout, produced.stderr
        taken = subprocess.run([*CLI, "broker", "--port", str(port)], capture_output=True, text=True, check=False)
        assert taken.returncode == 2
        [line] = taken.stderr.splitlines()
        assert f"port {port}" in line
        broker.send_signal(signal.SIGINT)
        out, err = broker.communicate(timeout=30)
        assert broker.returncode == 0, err
        assert "stopped" in out
        assert err == ""
    finally:
        if broker.poll() is None:
            broker.kill()
    assert subprocess.run([*CLI, "topics", "create"], env=env, capture_output=True, check=False).returncode == 2


async def test_topics_create_makes_every_topic_the_worker_needs_faust_changelogs_too(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="tc.", group_id="gw-tc", partitions=3)
    env = os.environ | {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
        "GROUPWARDEN_GROUP_ID": settings.group_id,
        "GROUPWARDEN_PARTITIONS": "3",
    }
    # The worker refuses to start without its topics: a broker would make them up with partitions of its own.
    refused = subprocess.run([*CLI, "worker"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.splitlines()
    assert "tc.chat.messages.v1" in line
    assert "groupwarden topics create" in line
    done = subprocess.run([*CLI, "topics", "create"], env=env, capture_output=True, text=True, check=True)
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(["gw-tc-users-changelog"])}
    finally:
        await admin.close()
    for name in ("gw-tc-users-changelog", "gw-tc-groups-changelog", "gw-tc-links-changelog"):
        assert name in done.stdout
    assert "gw-tc-__assignor-__leader" in done.stdout
    assert described == {"gw-tc-users-changelog": 3}


async def test_committed_offsets_past_the_partitions_ends_are_read_from_the_start(
    settings: Settings, start_worker: Callable[..., Worker]
) -> None:
    """What a group finds after its broker was rebuilt empty while it kept its offsets: no verdict, on the base."""
    group = AIOKafkaConsumer(
        group_id=f"{settings.group_id}-classify", enable_auto_commit=False, **settings.kafka_options()
    )
    await group.start()
    try:
        tps = [TopicPartition(settings.topic(MESSAGES), n) for n in range(4)]  # the fixture made 4 partitions
        group.assign(tps)
        await group.commit({tp: OffsetAndMetadata(5000, "") for tp in tps})
    finally:
        await group.stop()
    await produce(settings, [chat_message(n) for n in range(40)])
    worker = start_worker()
    records = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 40, wait_seconds=60)
    assert sorted(orjson.loads(r.value)["message_id"] for r in records) == sorted(f"m{n}" for n in range(40))
    log = worker.log_path.read_text()
    assert re.search(rf"{re.escape(settings.topic(MESSAGES))} partition \d: committed offset 5000 is past", log)


def worker_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    return os.environ | {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_PARTITIONS": str(settings.partitions),
        "GROUPWARDEN_STORE": "memory://",
        "GROUPWARDEN_DATA_DIR": str(data_dir),
        "GROUPWARDEN_METRICS_PORT": "0",
    }


def outage_lines(text: str) -> list[str]:
    """Warnings and errors, and the lines of tracebacks (the worker's log has a line per record otherwise)."""
    return [line for line in text.splitlines() if "[WARNING]" in line or "[ERROR]" in line or line.startswith(" ")]


class BrokerAndWorker:
    """A broker of its own (the test stops it) and a `groupwarden worker` on it, logging warnings and errors."""

    def __init__(self, tmp_path: Path) -> None:
        self.broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
        self.log_path = tmp_path / "worker.log"
        self.settings = Settings(bootstrap_servers=self.broker.bootstrap_servers, partitions=2)
        self.data_dir = tmp_path / "data"
        self.worker: subprocess.Popen[bytes] | None = None

    async def start(self, loglevel: str = "warning") -> subprocess.Popen[bytes]:
        """Once it has given its first verdict."""
        self.broker.start()
        await create_topics(self.settings)
        with self.log_path.open("ab") as log:
            self.worker = subprocess.Popen(
                [*CLI, "worker", "--loglevel", loglevel],
                env=worker_env(self.settings, self.data_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await produce(self.settings, [chat_message(1)])
        await read_until(self.settings, VERDICTS, until=lambda seen: len(seen) >= 1, wait_seconds=60)
        return self.worker

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
        self.broker.stop()


@pytest.fixture
def broker_and_worker(tmp_path: Path) -> Iterator[BrokerAndWorker]:
    both = BrokerAndWorker(tmp_path)
    yield both
    both.stop()


async def test_a_worker_logs_a_broker_outage_in_a_line(broker_and_worker: BrokerAndWorker) -> None:
    await broker_and_worker.start()
    before = len(broker_and_worker.log_path.read_text())
    broker_and_worker.broker.stop()
    await asyncio.sleep(20)
    during = outage_lines(broker_and_worker.log_path.read_text()[before:])
    assert len(during) == 1, "\n".join(during[:50])  # not the thousands of the base commit
    assert "lost the connection to the Kafka broker" in during[0]


async def test_a_worker_stops_on_sigterm_within_seconds_while_its_broker_is_gone(
    broker_and_worker: BrokerAndWorker,
) -> None:
    worker = await broker_and_worker.start(loglevel="info")  # so logging, Faust's consumer thread took 60 s to stop
    broker_and_worker.broker.stop()
    await asyncio.sleep(30)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker was still running 20 s after SIGTERM")
    assert time.monotonic() - started < 12


async def test_a_worker_survives_its_broker_restarting_empty(tmp_path: Path) -> None:
    """The broker restarts with nothing (memory storage, a cluster rebuilt), `topics create` is run again, and every
    message published afterwards gets its verdict from the same worker."""
    port = free_port()
    broker = EmbeddedBroker(port, log_path=tmp_path / "tansu.log").start()
    log_path = tmp_path / "worker.log"
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, partitions=8)  # more than a broker makes up
    env = worker_env(settings, tmp_path / "data")
    try:
        await create_topics(settings)
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [*CLI, "worker", "--loglevel", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            await produce(settings, [chat_message(n, prefix="before") for n in range(300)])
            await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 300, wait_seconds=90)
            broker.stop()
            await asyncio.sleep(8)
            broker = EmbeddedBroker(port, log_path=tmp_path / "tansu.log").start()
            restarted = time.monotonic()
            created = subprocess.run([*CLI, "topics", "create"], env=env, capture_output=True, text=True, check=False)
            assert created.returncode == 0, created.stderr
            await produce(settings, [chat_message(n, prefix="after") for n in range(500)])
            verdicts = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 500, wait_seconds=90)
            assert sorted(orjson.loads(r.value)["message_id"] for r in verdicts) == sorted(
                f"after{n}" for n in range(500)
            )
            await asyncio.sleep(max(0.0, 55 - (time.monotonic() - restarted)))  # the base crashed ~40 s after
            text = log_path.read_text()
            assert worker.poll() is None, text[-3000:]
            assert "the Kafka broker answers again after" in text
            assert "Traceback" not in text
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
    finally:
        broker.stop()


def test_worker_topics_are_named_after_the_group() -> None:
    names = [spec.name for spec in topics.worker_topics(Settings(group_id="gw"))]
    assert names == ["gw-users-changelog", "gw-groups-changelog", "gw-links-changelog", "gw-__assignor-__leader"]


async def test_a_worker_whose_broker_came_back_without_its_topics_stops_with_one_line(tmp_path: Path) -> None:
    """No `topics create` after the restart: the changelogs stay missing, and the worker says so and stops."""
    port = free_port()
    broker = EmbeddedBroker(port, log_path=tmp_path / "tansu.log").start()
    log_path = tmp_path / "worker.log"
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, partitions=8)  # more than a broker makes up
    try:
        await create_topics(settings)
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [*CLI, "worker", "--loglevel", "warning"],
                env=worker_env(settings, tmp_path / "data"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            await produce(settings, [chat_message(1)])
            await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 1, wait_seconds=60)
            broker.stop()
            await asyncio.sleep(3)
            broker = EmbeddedBroker(port, log_path=tmp_path / "tansu.log").start()
            try:
                worker.wait(120)  # recovery waits 40 s for the changelogs first
            except subprocess.TimeoutExpired:
                pytest.fail("the worker runs on without its changelogs")
            text = log_path.read_text()
            [line] = [line for line in text.splitlines() if "[CRITICAL]" in line]
            assert "changelog partitions missing" in line
            assert "groupwarden-users-changelog" in line
            assert "groupwarden topics create" in line
            assert "We experienced a crash" not in text
            assert "Traceback" not in text
        finally:
            if worker.poll() is None:
                worker.kill()
    finally:
        broker.stop()
