"""The commands as a user runs them: `up --demo` from the README, and `topics create` + `produce` + `worker`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest

from streams.config import Settings
from streams.kafka.broker import free_port
from streams.topics import TOPICS, VERDICTS, worker_topics
from tests.integration.conftest import chat_message, read_until


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_with_demo_traffic_classifies_everything_and_stops_on_ctrl_c(stop_signal):
    count = 3000
    up = subprocess.Popen(
        [sys.executable, "-m", "streams", "up", "--demo", "--count", str(count), "--rate", "3000", "--partitions", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 90
    try:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            summary = re.search(r"verdicts (\d+) .* dead letters (\d+)", line)
            if summary and int(summary[1]) + int(summary[2]) == count:
                break
            assert time.monotonic() < deadline, "".join(lines)
        else:
            pytest.fail("up exited early:\n" + "".join(lines))
        verdicts, dead = int(summary[1]), int(summary[2])
        assert verdicts > 0
        assert dead > 0  # the demo traffic carries a little malformed input on purpose
        assert re.search(r"block [1-9]", line)
        up.send_signal(stop_signal)
        rest, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, "".join(lines) + rest
    assert "stopped" in rest


async def test_topics_create_produce_and_worker_commands(broker, tmp_path):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="cli.", group_id="gw-cli")
    env = os.environ | {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
        "GROUPWARDEN_GROUP_ID": settings.group_id,
        "GROUPWARDEN_DATA_DIR": str(tmp_path / "data"),
        "GROUPWARDEN_METRICS_PORT": str(free_port()),
    }
    cli = [sys.executable, "-m", "streams"]

    def run(*args: str) -> str:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, check=True).stdout

    assert f"created {len(TOPICS) + len(worker_topics(settings))} topics" in run(
        "topics", "create", "--partitions", "4"
    )
    assert "(all existed)" in run("topics", "create", "--partitions", "4")
    source = tmp_path / "messages.jsonl"
    source.write_bytes(b"\n".join(value for _, value in (chat_message(n) for n in range(50))) + b"\n")
    assert "published 50 messages" in run("produce", str(source))

    # Partitions that differ from the topics' would split tables from their inputs: refused before anything starts.
    refused = subprocess.run(
        [*cli, "worker", "--partitions", "8"], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert "has 4 partitions but GROUPWARDEN_PARTITIONS is 8" in refused.stderr

    worker = subprocess.Popen(
        [*cli, "worker", "--partitions", "4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        records = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 50)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert sorted(orjson.loads(r.value)["message_id"] for r in records) == sorted(f"m{n}" for n in range(50))
    assert worker.returncode == 0
