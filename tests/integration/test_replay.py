"""groupwarden replay on a real broker: a recorded topic into prefixed topics, the same every time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
from aiokafka import ConsumerRecord

from streams.config import Settings
from streams.replay import InputRecord, TopicRange, topic_records
from streams.topics import BLACKLIST, DEADLETTER, GROUP_EVENTS, MESSAGES, SANCTIONS, VERDICTS

from .conftest import produce, read_until

DAY_MS = 24 * 3600 * 1000
T0 = 1_790_000_000_000
SCAM = "兼职刷单，日赚三百，佣金日结"


def recorded(count: int = 400) -> list[bytes]:
    """A fortnight of chat: repeat offenders in several groups, and clean messages; unique send times."""
    lines = []
    for n in range(count):
        text = SCAM if n % 4 == 0 else "明天的会议改到下午三点"
        doc = {"message_id": f"m{n}", "group_id": f"g{n % 9}", "sender_id": f"u{n % 13}", "text": text}
        lines.append(orjson.dumps(doc | {"sent_at": T0 + n * (14 * DAY_MS // count)}))
    return lines


def replay(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"GROUPWARDEN_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    command = [sys.executable, "-m", "streams", "replay", "--partitions", str(settings.partitions), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


async def outputs(settings: Settings, prefix: str, topic: str, count: int) -> dict[int, list[bytes | None]]:
    """A replay's output topic, as each partition's values in order."""
    out = Settings(bootstrap_servers=settings.bootstrap_servers, topic_prefix=prefix)
    records: list[ConsumerRecord[bytes, bytes]] = await read_until(out, topic, lambda seen: len(seen) >= count)
    by_partition: dict[int, list[bytes | None]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_partition[r.partition].append(r.value)
    return dict(by_partition)


def count_of(stdout: str, what: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith(what))
    return int(line.split()[-1] if what != "blacklist" else line.split()[1])


async def test_replaying_a_recorded_topic_twice_gives_identical_verdicts_and_sanctions(
    settings: Settings, tmp_path: Path
) -> None:
    lines = recorded()
    await produce(settings, [(orjson.loads(line)["group_id"].encode(), line) for line in lines])
    await produce(settings, [(b"g0", b"not json")])
    topic = settings.topic(MESSAGES)
    runs = []
    for name in ("first", "second"):
        prefix = f"{settings.topic_prefix}{name}."
        done = replay(settings, "--topic", topic, "--output-prefix", prefix)
        assert done.returncode == 0, done.stderr
        assert count_of(done.stdout, "verdicts") == len(lines)
        assert count_of(done.stdout, "dead letters") == 1
        sanctions = count_of(done.stdout, "sanctions")
        assert sanctions > 0
        runs.append(
            (
                await outputs(settings, prefix, VERDICTS, len(lines)),
                await outputs(settings, prefix, SANCTIONS, sanctions),
                await outputs(settings, prefix, DEADLETTER, 1),
            )
        )
    assert runs[0] == runs[1]
    verdicts = [orjson.loads(v or b"") for values in runs[0][0].values() for v in values]
    assert sorted(v["message_id"] for v in verdicts) == sorted(f"m{n}" for n in range(len(lines)))
    kinds = {orjson.loads(v or b"")["kind"] for values in runs[0][1].values() for v in values}
    assert {"warning", "mute", "ban"} <= kinds

    # The same messages from a file give the same outputs as from the topic.
    source = tmp_path / "recorded.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    prefix = f"{settings.topic_prefix}file."
    done = replay(settings, str(source), "--output-prefix", prefix)
    assert done.returncode == 0, done.stderr
    assert await outputs(settings, prefix, VERDICTS, len(lines)) == runs[0][0]
    assert await outputs(settings, prefix, SANCTIONS, count_of(done.stdout, "sanctions")) == runs[0][1]

    # A replay never mixes with an earlier one, nor writes to the live topics.
    again = replay(settings, "--topic", topic, "--output-prefix", f"{settings.topic_prefix}first.")
    assert again.returncode == 2
    assert "already hold records" in again.stderr
    live = replay(settings, "--topic", topic, "--output-prefix", "")
    assert live.returncode == 2
    assert "topics of its own" in live.stderr


async def test_a_blacklist_entry_that_ends_is_published_as_a_tombstone(settings: Settings, tmp_path: Path) -> None:
    """A mute ends before the next message: its entry on the compacted blacklist is deleted (a null value)."""
    spam = {"group_id": "g", "sender_id": "spammer", "text": SCAM}
    lines = [orjson.dumps(spam | {"message_id": f"m{n}", "sent_at": T0 + n * 8 * DAY_MS}) for n in range(3)]
    source = tmp_path / "ladder.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    prefix = f"{settings.topic_prefix}ladder."
    done = replay(settings, str(source), "--output-prefix", prefix)
    assert done.returncode == 0, done.stderr
    entries = await outputs(settings, prefix, BLACKLIST, count_of(done.stdout, "blacklist"))
    values = [value for values in entries.values() for value in values]
    assert None in values
    assert b"" not in values


async def test_a_replay_takes_an_offset_or_a_time_range(settings: Settings) -> None:
    early = [
        orjson.dumps({"message_id": f"e{n}", "group_id": "g", "sender_id": "u", "sent_at": T0, "text": "hi"})
        for n in range(20)
    ]
    await produce(settings, [(b"g", line) for line in early])  # one key: one partition, offsets 0..19
    await asyncio.sleep(0.05)
    middle = int(time.time() * 1000)
    await asyncio.sleep(0.05)
    late = [line.replace(b'"e', b'"l') for line in early]
    await produce(settings, [(b"g", line) for line in late])

    def ids(records: list[InputRecord]) -> list[str]:
        return [orjson.loads(r.value or b"")["message_id"] for r in records]

    topic = settings.topic(MESSAGES)
    assert ids(await topic_records(settings, TopicRange(topic, from_offset=5, to_offset=8))) == ["e5", "e6", "e7"]
    assert ids(await topic_records(settings, TopicRange(topic, since_ms=middle))) == [f"l{n}" for n in range(20)]
    assert ids(await topic_records(settings, TopicRange(topic, until_ms=middle))) == [f"e{n}" for n in range(20)]


async def test_a_replay_with_the_group_events_topic_holds_owners_to_account(settings: Settings) -> None:
    lines = [
        orjson.dumps({"message_id": f"m{n}", "group_id": "g1", "sender_id": f"s{n}", "sent_at": T0 + n, "text": SCAM})
        for n in range(6)
    ]
    await produce(settings, [(b"g1", line) for line in lines])
    created = orjson.dumps({"group_id": "g1", "kind": "created", "user_id": "boss", "at_ms": T0 - 1})
    await produce(settings, [(b"g1", created)], topic=GROUP_EVENTS)
    prefix = f"{settings.topic_prefix}owners."
    done = replay(
        settings,
        "--topic",
        settings.topic(MESSAGES),
        "--group-events-topic",
        settings.topic(GROUP_EVENTS),
        "--output-prefix",
        prefix,
    )
    assert done.returncode == 0, done.stderr
    assert "6 messages and 1 group events" in done.stdout
    sanctions = await outputs(settings, prefix, SANCTIONS, count_of(done.stdout, "sanctions"))
    subjects = {(s["subject"], s["kind"]) for v in sanctions.values() for s in map(orjson.loads, v)}
    assert ("user:boss", "management_suspended") in subjects


async def test_a_replay_decides_as_the_live_pipeline_does(settings: Settings, start_worker) -> None:
    """Where the live order is the sent order (each user in one group), live and replay give the same sanctions."""
    now = int(time.time() * 1000)
    lines = []
    for n in range(40):
        user, text = f"u{n % 5}", SCAM if n % 3 else "周末一起去爬山吗"
        doc = {"message_id": f"m{n}", "group_id": f"g-{user}", "sender_id": user, "sent_at": now + n, "text": text}
        lines.append(orjson.dumps(doc))
    await produce(settings, [(orjson.loads(line)["group_id"].encode(), line) for line in lines])
    start_worker()
    prefix = f"{settings.topic_prefix}same."
    done = replay(settings, "--topic", settings.topic(MESSAGES), "--output-prefix", prefix)
    assert done.returncode == 0, done.stderr
    count = count_of(done.stdout, "sanctions")
    replayed = await outputs(settings, prefix, SANCTIONS, count)
    live = await read_until(settings, SANCTIONS, until=lambda seen: len(seen) >= count)
    await asyncio.sleep(3)  # anything the live pipeline issued beyond the replay would show now
    live = await read_until(settings, SANCTIONS, until=lambda seen: len(seen) >= count, wait_seconds=10)

    def what(docs: list[dict[str, object]]) -> list[tuple[object, ...]]:
        # Not the reasons: a credit-based one quotes the credit, which recovers by the clock, and the clocks differ.
        return sorted((d["subject"], d["kind"], tuple(d["evidence"]), d["revoked"]) for d in docs)

    expected = what([orjson.loads(v or b"") for values in replayed.values() for v in values])
    assert what([orjson.loads(r.value) for r in live]) == expected
    assert {kind for _, kind, *_ in expected} >= {"warning", "mute", "ban"}
