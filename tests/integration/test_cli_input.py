"""`produce` and `diff --topic` with invalid input: what they refuse or skip is named and counted on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from streams.config import DEFAULT_RULES, Settings
from streams.replay import TopicRange, topic_records
from streams.topics import MESSAGES

LINES = [
    orjson.dumps({"message_id": "m1", "group_id": "g1", "sender_id": "u1", "sent_at": 1, "text": "兼职刷单日结"}),
    b"{not json",
    orjson.dumps({"message_id": "m1", "group_id": "g1", "sender_id": "u2", "sent_at": 2, "text": "same id"}),
    orjson.dumps({"message_id": "m3", "group_id": "g1", "sender_id": "u3", "sent_at": 3, "text": None}),
    orjson.dumps({"message_id": "m4", "group_id": "g1", "sender_id": "u4", "sent_at": 4, "text": "今晚一起吃饭吗"}),
]


def cli(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
    }
    command = [sys.executable, "-m", "streams", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


async def published(settings: Settings) -> list[bytes | None]:
    return [r.value for r in await topic_records(settings, TopicRange(settings.topic(MESSAGES)))]


async def test_produce_refuses_invalid_lines_and_repeated_ids_and_says_so(settings, tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(LINES) + b"\n")
    result = cli(settings, "produce", "in.jsonl", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ")[:2] for line in lines[:3]] == [
        ["in.jsonl:2", "invalid_json"],
        ["in.jsonl:3", "duplicate_message_id"],
        ["in.jsonl:4", "invalid_field"],
    ]
    assert lines[3] == "5 records, 3 refused (1 invalid_json, 1 duplicate_message_id, 1 invalid_field)"
    assert result.stdout == f"published 2 messages to {settings.topic(MESSAGES)}\n"
    assert sorted(await published(settings)) == sorted([LINES[0], LINES[4]])


async def test_produce_send_invalid_publishes_every_line_and_still_counts(settings, tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(LINES) + b"\n")
    result = cli(settings, "produce", "--send-invalid", "in.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "5 records, 3 published anyway (1 invalid_json, 1 duplicate_message_id, 1 invalid_field)"
    )
    assert sorted(await published(settings)) == sorted(LINES)


async def test_diff_of_a_topic_names_the_records_it_skips(settings, tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(LINES) + b"\n")
    assert cli(settings, "produce", "--send-invalid", "in.jsonl", cwd=tmp_path).returncode == 0
    topic = settings.topic(MESSAGES)
    result = cli(settings, "diff", "--topic", topic, "--candidate", str(DEFAULT_RULES), "--json", "-", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    named = [line for line in result.stderr.splitlines() if line.startswith(f"{topic}[")]
    assert sorted(line.split(": ")[1] for line in named) == ["duplicate_message_id", "invalid_field", "invalid_json"]
    assert orjson.loads(result.stdout)["skipped"] == {"invalid_json": 1, "duplicate_message_id": 1, "invalid_field": 1}
