"""A worker killed with SIGKILL mid-stream loses nothing: its successor resumes from the last committed batch."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson

from streams.policy.classify import Classifier
from streams.policy.rules import load_pack
from streams.records import parse_message
from streams.state.codec import load_group, load_user
from streams.topics import AUDIT, VERDICTS
from tests.integration.conftest import chat_message, produce, read_until

TOTAL = 40_000


async def test_sigkill_mid_stream_loses_no_verdict(settings, start_worker):
    first = start_worker()

    async def publish() -> None:
        for start in range(0, TOTAL, 2000):  # ~10k messages/s, spread over a few seconds
            await produce(settings, [chat_message(n) for n in range(start, start + 2000)])
            await asyncio.sleep(0.2)

    publishing = asyncio.create_task(publish())
    seen = await read_until(settings, VERDICTS, until=lambda records: len(records) >= TOTAL // 8)
    first.kill()
    killed_at = len(seen)
    await publishing
    assert killed_at < TOTAL, "the worker finished before it was killed: the test proves nothing"

    second = start_worker()
    started = time.monotonic()
    expected = {f"m{n}" for n in range(TOTAL)}

    def complete(records) -> bool:
        return expected <= {orjson.loads(r.value)["message_id"] for r in records}

    verdicts = await read_until(settings, VERDICTS, until=complete, wait_seconds=120)
    ids = [orjson.loads(r.value)["message_id"] for r in verdicts]
    assert set(ids) == expected  # nothing lost, nothing invented; duplicates (same id) are allowed
    assert second.alive()
    took = time.monotonic() - started
    print(f"killed after {killed_at} verdicts; {len(ids) - TOTAL} duplicates; recovered in {took:.1f} s")


def final_records(records) -> dict[bytes, bytes]:
    """A changelog's last value per key: the table as recovery rebuilds it."""
    table: dict[bytes, bytes] = {}
    for r in records:
        if r.value is None:
            table.pop(r.key, None)
        else:
            table[r.key] = r.value
    return table


async def test_two_workers_one_killed_keep_every_verdict_and_exact_strike_counts(settings, start_worker):
    """Violations from 200 senders in 40 groups; one of two workers is killed mid-stream and restarted later."""
    total, texts = 12_000, ["今晚一起吃饭吗", "刷*單*返*利，日赚五百", "明天见", "澳门在线赌场 bet365点com", "好的"]
    messages = []
    for n in range(total):
        key, value = chat_message(n, texts[n % len(texts)] if n % 3 else texts[0], group=f"g{n % 40}")
        doc = orjson.loads(value) | {"sender_id": f"u{n % 200}"}
        messages.append((key, orjson.dumps(doc)))
    classifier = Classifier(load_pack(settings.rules_dir))
    blocked = [
        doc
        for doc in (orjson.loads(v) for _, v in messages)
        if classifier.classify(parse_message(orjson.dumps(doc)), 0)["decision"] == "block"
    ]
    expected_users = Counter(doc["sender_id"] for doc in blocked)
    expected_groups = Counter(doc["group_id"] for doc in blocked)
    assert len(blocked) > 1000

    first, second = start_worker(machine="a"), start_worker(machine="b")

    async def publish() -> None:
        for start in range(0, total, 500):
            await produce(settings, messages[start : start + 500])
            await asyncio.sleep(0.5)

    publishing = asyncio.create_task(publish())
    audited = await read_until(settings, AUDIT, until=lambda records: len(records) >= 300)
    first.kill()
    await publishing
    assert len(audited) < 2 * len(blocked), "everything was applied before the kill: the test proves nothing"
    await asyncio.sleep(12)  # the survivor takes every partition over and works alone for a while
    start_worker(machine="a")  # back on its own disk: RocksDB offsets ahead of what the changelog may show

    expected_ids = {orjson.loads(v)["message_id"] for _, v in messages}
    verdicts = await read_until(
        settings,
        VERDICTS,
        until=lambda rs: expected_ids <= {orjson.loads(r.value)["message_id"] for r in rs},
        wait_seconds=180,
    )
    assert {orjson.loads(r.value)["message_id"] for r in verdicts} == expected_ids

    def strikes(records) -> Counter[str]:
        users = final_records(records)
        return Counter({key.decode(): len(load_user(value).state.strikes) for key, value in users.items()})

    users = await read_until(
        settings,
        f"{settings.group_id}-users-changelog",
        until=lambda rs: strikes(rs) == expected_users,
        wait_seconds=180,
        prefixed=False,
    )
    assert strikes(users) == expected_users
    groups = await read_until(
        settings,
        f"{settings.group_id}-groups-changelog",
        until=lambda rs: sum(len(load_group(v).state.violations) for v in final_records(rs).values()) >= len(blocked),
        wait_seconds=60,
        prefixed=False,
    )
    counts = Counter({k.decode(): len(load_group(v).state.violations) for k, v in final_records(groups).items()})
    assert +counts == expected_groups
    assert second.alive()
