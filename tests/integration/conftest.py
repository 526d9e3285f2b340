"""Integration fixtures: a real embedded broker for the session, isolated topics and workers per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from streams import process
from streams.config import DEFAULT_RULES, Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.produce import OutRecord, send_batched
from streams.topics import MESSAGES, create_topics


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder needs a real broker (a ``pytestmark`` here would mark nothing: only test modules'
    count), so ``-m integration`` selects them all and ``-m "not integration"`` none."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


RULES = DEFAULT_RULES  # the shipped pack
CANARY = "join the quokka rebate club today"  # allowed by the shipped pack, blocked by one with NEW_RULE
NEW_RULE = "\nrule reload-canary\n  quokka rebate club\n"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log") as running:
        yield running


@pytest.fixture
async def settings(broker: EmbeddedBroker) -> Settings:
    """Topics of this test only: a fresh prefix and consumer group on the shared broker."""
    tag = uuid.uuid4().hex[:8]
    s = Settings(
        bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"t{tag}.", group_id=f"gw-{tag}", partitions=4
    )
    await create_topics(s)
    return s


class Worker:
    """A `groupwarden worker` process, as an operator would run it."""

    def __init__(self, settings: Settings, log_path: Path, data_dir: Path) -> None:
        self.metrics_port = free_port()
        env = os.environ | {
            "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
            "GROUPWARDEN_GROUP_ID": settings.group_id,
            "GROUPWARDEN_PARTITIONS": str(settings.partitions),
            "GROUPWARDEN_RULES": str(settings.rules_dir),
            "GROUPWARDEN_STORE": settings.store,
            "GROUPWARDEN_DATA_DIR": str(data_dir),
            "GROUPWARDEN_METRICS_PORT": str(self.metrics_port),
            "GROUPWARDEN_SHADOW_RULES": str(settings.shadow_rules_dir or ""),
            "GROUPWARDEN_RULES_POLL_SECONDS": str(settings.rules_poll_seconds),
            "GROUPWARDEN_STAGES": ",".join(settings.stages),
        }
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "--loglevel", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        process.stop(self.process)


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(custom: Settings | None = None, machine: str | None = None) -> Worker:
        """A worker on a machine of its own (its RocksDB folder); the same ``machine`` again is a restart there."""
        n = len(workers)
        data_dir = tmp_path / f"data-{machine or n}"
        worker = Worker(custom or settings, tmp_path / f"worker-{n}.log", data_dir)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def copy_rules(folder: Path, scam_extra: str = "") -> Path:
    """A copy of the shipped rule pack in ``folder``, with ``scam_extra`` added to its scam.rules."""
    shutil.copytree(RULES, folder)
    scam = folder / "scam.rules"
    scam.write_text(scam.read_text(encoding="utf-8") + scam_extra, encoding="utf-8")
    return folder


def chat_message(
    n: int, text: str = "今晚一起吃饭吗", group: str | None = None, prefix: str = "m"
) -> tuple[bytes, bytes]:
    group_id = group or f"g{n % 37}"
    value = {
        "message_id": f"{prefix}{n}",
        "group_id": group_id,
        "sender_id": f"u{n % 101}",
        "sent_at": int(time.time() * 1000),
        "text": text,
    }
    return group_id.encode(), orjson.dumps(value)


async def produce(settings: Settings, pairs: list[tuple[bytes | None, bytes]], topic: str = MESSAGES) -> None:
    producer = AIOKafkaProducer(acks="all", **settings.kafka_options())
    await producer.start()
    try:
        await send_batched(producer, (OutRecord(settings.topic(topic), key, value) for key, value in pairs))
    finally:
        await producer.stop()


async def read_until(
    settings: Settings,
    topic: str,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    wait_seconds: float = 90.0,
    *,
    prefixed: bool = True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the beginning, read until ``until(records)`` holds (Faust's own are unprefixed)."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic) if prefixed else topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_options(),
    )
    await consumer.start()
    seen: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + wait_seconds
    try:
        while not until(seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {wait_seconds} s with {len(seen)} records on {topic}")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(records)
    finally:
        await consumer.stop()
    return seen


def scrape(port: int) -> dict[str, float]:
    """A worker's metrics as ``{'name{label="value",...}': value}``, labels in name order."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def reloads(port: int, result: str, pack: str = "active") -> float:
    """How many changed rule packs a worker has applied or refused."""
    return scrape(port)[f'groupwarden_rules_reload_total{{pack="{pack}",result="{result}"}}']


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` holds."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"after {timeout} s: {what}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started
