"""What the moderation did, as a person sees it: `groupwarden tail` on the output topics, and the second line of
`groupwarden up`'s live summary (sanctions, blacklist, groups suspended or shut)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import orjson
import pytest

from streams.config import Settings
from streams.topics import BLACKLIST, SANCTIONS, VERDICTS
from tests.integration.conftest import produce

CLI = [sys.executable, "-m", "streams"]
AT_MS = 1_795_300_000_000  # 2026-11-21T22:26:40Z


def sanction(subject: str, kind: str, notice: str, *, revoked: bool = False) -> bytes:
    return orjson.dumps(
        {
            "schema": "moderation.sanction.v1",
            "sanction_id": f"{subject}/{kind}/0123456789abcdef",
            "subject": subject,
            "kind": kind,
            "reason": "strike 2: scam",
            "rule_ids": ["scam.task-fraud"],
            "evidence": ["m1", "m2"],
            "start_ms": AT_MS,
            "expires_ms": AT_MS + 7 * 24 * 3600 * 1000,
            "notice": notice,
            "revoked": revoked,
            "rules_version": "1.0.0+abc",
            "policy_version": "def",
        }
    )


def listing(kind: str, subject_id: str, restriction: str) -> bytes:
    return orjson.dumps(
        {
            "schema": "moderation.blacklist.v1",
            "key": f"{kind}:{subject_id}",
            "type": kind,
            "id": subject_id,
            "restrictions": [{"kind": restriction, "until_ms": None, "reason": "a campaign"}],
            "until_ms": None,
            "rules_version": "1.0.0+abc",
            "policy_version": "def",
        }
    )


def environment(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "GROUPWARDEN_TOPIC_PREFIX": settings.topic_prefix,
    }


def tail(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*CLI, "tail", *args]
    return subprocess.run(command, env=environment(settings), capture_output=True, text=True, timeout=60, check=False)


async def test_tail_shows_sanctions_with_their_notices(settings):
    await produce(
        settings,
        [
            (b"user:u1", sanction("user:u1", "mute", "You cannot post for 7 days.")),
            (b"user:u1", sanction("user:u1", "mute", "Your mute was lifted.", revoked=True)),
        ],
        topic=SANCTIONS,
    )
    result = tail(settings, SANCTIONS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-11-21 22:26:40Z  mute  user:u1  until 2026-11-28 22:26:40Z  strike 2: scam",
        "    notice: You cannot post for 7 days.",
        "2026-11-21 22:26:40Z  revoked mute  user:u1  until 2026-11-28 22:26:40Z  strike 2: scam",
        "    notice: Your mute was lifted.",
    ]


async def test_tail_shows_the_blacklist_and_what_was_lifted(settings):
    await produce(
        settings,
        [(b"group:g1", listing("group", "g1", "group_suspension")), (b"link:bad.example", None)],
        topic=BLACKLIST,
    )
    lines = sorted(tail(settings, BLACKLIST).stdout.splitlines())
    assert lines == [
        "group:g1  group_suspension until revoked (a campaign)",
        "link:bad.example  no longer restricted",
    ]


async def test_tail_shows_verdicts_and_the_last_n_of_each_partition(settings):
    verdicts = [
        {
            "schema": "moderation.verdict.v1",
            "message_id": f"m{n}",
            "group_id": "g1",
            "sender_id": "u1",
            "decision": "block",
            "categories": ["scam"],
            "severity": "high",
            "matches": [{"rule_id": "scam.task-fraud", "term": "刷单", "span": [0, 2]}],
            "signals": [],
            "rules_version": "1.0.0+abc",
            "sent_at_ms": AT_MS + n * 1000,
            "classified_at_ms": AT_MS,
        }
        for n in range(5)
    ]
    await produce(settings, [(b"g1", orjson.dumps(v)) for v in verdicts], topic=VERDICTS)
    result = tail(settings, VERDICTS, "--last", "2")
    assert result.stdout.splitlines() == [
        "2026-11-21 22:26:43Z  block   m3  group g1  sender u1  scam: scam.task-fraud '刷单'",
        "2026-11-21 22:26:44Z  block   m4  group g1  sender u1  scam: scam.task-fraud '刷单'",
    ]


async def test_tail_follow_prints_new_records_until_ctrl_c(settings):
    await produce(settings, [(b"user:u1", sanction("user:u1", "warning", "first"))], topic=SANCTIONS)
    follow = subprocess.Popen(
        [*CLI, "tail", "--follow", SANCTIONS],
        env=environment(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert "warning  user:u1" in follow.stdout.readline()
        assert follow.stdout.readline() == "    notice: first\n"
        await produce(settings, [(b"user:u2", sanction("user:u2", "ban", "second"))], topic=SANCTIONS)
        ready, _, _ = select.select([follow.stdout], [], [], 30)
        assert ready, "the new record was not shown"
        assert "ban  user:u2" in follow.stdout.readline()
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0
    assert "Traceback" not in err


def test_tail_of_a_missing_topic_is_one_line(broker):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="never-created.")
    result = tail(settings, SANCTIONS)
    assert result.returncode == 2
    assert result.stderr == (
        f"groupwarden: topic never-created.{SANCTIONS} does not exist: `groupwarden topics create` makes every topic\n"
    )


def test_up_summary_has_a_second_line_of_sanctions_blacklist_and_groups():
    up = subprocess.Popen(
        [*CLI, "up", "--demo", "--count", "4000", "--rate", "4000", "--partitions", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pattern = re.compile(
        r"sanctions (\d+) \((.*); (\d+) revoked\)  blacklist users (\d+) groups (\d+) links (\d+)  "
        r"groups suspended (\d+) shut (\d+)"
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    try:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            second = pattern.fullmatch(line.rstrip("\n"))
            if second and int(second[1]) > 0 and int(second[4]) > 0:
                break
            assert time.monotonic() < deadline, "".join(lines)
        else:
            pytest.fail("up exited early:\n" + "".join(lines))
        assert lines[-2].startswith("verdicts ")  # the first line of the same summary
        kinds = dict(part.rsplit(" ", 1) for part in second[2].split(", "))
        assert sum(int(n) for n in kinds.values()) == int(second[1])
        assert "warning" in kinds
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0
