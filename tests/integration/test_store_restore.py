"""Partition stores restored from a changelog on the embedded broker: exactly, cold and warm.

The changelog is written in multi-record batches, so ListOffsets reports less than its true end on this broker: a
restore that trusted it would miss the last batch of each partition.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import Settings
from streams.state import restore as restore_module
from streams.state.restore import restore
from streams.state.store import Change, Checkpoint, PartitionStore, changelog_headers, open_store
from tests.integration.test_end_offsets import listed_end_offsets

INPUT = "moderation.violations.v1"
Write = tuple[bytes, bytes | None, int | None]  # key, value (None: deleted), due


def writes(first: int, count: int) -> list[Write]:
    """Records over few keys, so keys repeat; every fifth a tombstone, every third with a due time."""
    out: list[Write] = []
    for n in range(first, first + count):
        key = b"u%d" % (n % 7)
        out.append((key, None if n % 5 == 4 else b"record %d" % n, 1_000 + n if n % 3 == 0 else None))
    return out


async def changelog(settings: Settings, name: str, *, partitions: int = 1, compact: bool = False) -> str:
    """A changelog topic of this test, created with ``partitions`` partitions; its full name."""
    topic = settings.topic(name)
    configs = {"cleanup.policy": "compact"} if compact else {}
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()
    return topic


async def produce_batches(settings: Settings, topic: str, partition: int, batches: list[list[Write]], at: int) -> int:
    """Each list is one record batch, as a stage producing a partition's changes in one request makes."""
    producer = AIOKafkaProducer(acks="all", **settings.kafka_options())
    await producer.start()
    try:
        for records in batches:
            batch = producer.create_batch()
            for key, value, due in records:
                headers = changelog_headers(due, INPUT, at)
                assert batch.append(key=key, value=value, timestamp=None, headers=headers) is not None
                at += 1
            await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()
    return at


def expected(records: list[Write]) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    values: dict[bytes, bytes] = {}
    dues: dict[bytes, int] = {}
    for key, value, due in records:
        values.pop(key, None)
        dues.pop(key, None)
        if value is not None:
            values[key] = value
            if due is not None:
                dues[key] = due
    return values, dues


def contents(store: PartitionStore) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    return dict(store.items()), dict(store.expiries())


@pytest.mark.parametrize("kind", ["rocksdb://", "memory://"])
async def test_restore_is_exact_cold_and_warm(settings: Settings, tmp_path: Path, kind: str) -> None:
    topic = await changelog(settings, "users-changelog", partitions=3, compact=True)
    tps = [TopicPartition(topic, p) for p in range(3)]
    history: dict[int, list[Write]] = {0: writes(0, 5) + writes(5, 10), 1: writes(100, 40), 2: []}
    at = await produce_batches(settings, topic, 0, [history[0][:5], history[0][5:]], 0)
    at = await produce_batches(settings, topic, 1, [history[1]], at)
    listed = await listed_end_offsets(settings, tps)
    assert listed[tps[0]] < 15, "the broker reports the true end: this test no longer covers the short ListOffsets"

    def open_all() -> dict[TopicPartition, PartitionStore]:
        return {tp: open_store(kind, tmp_path / f"users-{tp.partition}") for tp in tps}

    stores = open_all()
    cold = await restore(settings.kafka_options(), stores)
    assert cold.read == {tps[0]: 15, tps[1]: 40, tps[2]: 0}
    for tp in tps:
        assert contents(stores[tp]) == expected(history[tp.partition]), tp
        assert stores[tp].checkpoint.changelog_offset == len(history[tp.partition])

    # More changes while the worker is down; a RocksDB store is reopened from its files, a memory one is kept as
    # a process keeps it across a rebalance.
    tail = {0: [writes(200, 3), writes(203, 4)], 2: [writes(300, 6)]}
    for partition, batches in tail.items():
        at = await produce_batches(settings, topic, partition, batches, at)
        history[partition] += [w for batch in batches for w in batch]
    if kind == "rocksdb://":
        for store in stores.values():
            store.close()
        stores = open_all()

    warm = await restore(settings.kafka_options(), stores)
    assert warm.read == {tps[0]: 7, tps[1]: 0, tps[2]: 6}  # only the tail after each checkpoint
    for tp in tps:
        assert contents(stores[tp]) == expected(history[tp.partition]), tp

    again = await restore(settings.kafka_options(), stores)  # nothing new: nothing is read
    assert again.read == dict.fromkeys(tps, 0)
    for store in stores.values():
        store.close()


async def test_a_store_ahead_of_its_changelog_is_restored_anew(settings: Settings, tmp_path: Path) -> None:
    """The changelog topic was deleted and created again: the stored checkpoint points past its end."""
    topic = await changelog(settings, "links-changelog")
    tp = TopicPartition(topic, 0)
    await produce_batches(settings, topic, 0, [writes(0, 4)], 0)
    store = open_store("rocksdb://", tmp_path / "links-0")
    store.write({b"stale": Change(b"from the old topic")}, Checkpoint(50))
    result = await restore(settings.kafka_options(), {tp: store})
    assert result.rebuilt == [tp]
    assert result.read == {tp: 4}
    assert contents(store) == expected(writes(0, 4))
    store.close()


async def test_a_restored_store_is_durable_when_restore_returns(settings: Settings, tmp_path: Path) -> None:
    """Restore writes skip the write-ahead log; restore() flushes them before it returns, so a crash right after
    finds every record on disk (the files copied while the store is open are what a restart after a crash sees)."""
    topic = await changelog(settings, "groups-changelog")
    tp = TopicPartition(topic, 0)
    await produce_batches(settings, topic, 0, [writes(0, 30), writes(30, 20)], 0)
    store = open_store("rocksdb://", tmp_path / "groups-0")
    await restore(settings.kafka_options(), {tp: store})
    shutil.copytree(tmp_path / "groups-0", tmp_path / "crashed")
    crashed = open_store("rocksdb://", tmp_path / "crashed")
    try:
        assert contents(crashed) == expected(writes(0, 50))
        assert crashed.checkpoint.changelog_offset == 50
    finally:
        crashed.close()
        store.close()


@pytest.mark.parametrize("kind", ["rocksdb://", "memory://"])
async def test_a_stopped_restore_leaves_its_stores_where_a_later_one_goes_on(
    settings: Settings, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after its first write, a restore returns with the store at that write's checkpoint; the next restore
    of the same store reads only the rest, and the store ends equal to the changelog."""
    topic = await changelog(settings, "users-changelog")
    tp = TopicPartition(topic, 0)
    history = writes(0, 40)
    await produce_batches(settings, topic, 0, [history[n : n + 5] for n in range(0, 40, 5)], 0)
    monkeypatch.setattr(restore_module, "MAX_RECORDS", 5)  # a write per 5 records
    store = open_store(kind, tmp_path / "users-0")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    restore_records = store.restore

    def restore_then_stop(*args: Any, **kwargs: Any) -> int:
        applied = restore_records(*args, **kwargs)
        loop.call_soon_threadsafe(stop.set)  # as an assignment arriving after a first write would
        return applied

    store.restore = restore_then_stop  # type: ignore[method-assign]
    first = await restore(settings.kafka_options(), {tp: store}, stop=stop)
    assert 0 < first.read[tp] < 40, first.read
    assert store.checkpoint.changelog_offset == first.read[tp]
    assert contents(store) == expected(history[: first.read[tp]])

    store.restore = restore_records  # type: ignore[method-assign]
    rest = await restore(settings.kafka_options(), {tp: store})
    assert rest.read[tp] == 40 - first.read[tp]
    assert contents(store) == expected(history)
    assert store.checkpoint.changelog_offset == 40
    store.close()


async def test_a_restore_ahead_halts_each_store_at_its_first_record_from_uncommitted_input(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Input committed up to offset 12 when the restore ahead runs: partition 0 stops before the record from input
    12, whatever the fetches hold after it, and partition 1 (all committed) is read to its end; once the input is
    committed further, the next restore reads partition 0's rest and both end equal to their changelogs."""
    topic = await changelog(settings, "users-changelog", partitions=2)
    tps = [TopicPartition(topic, p) for p in range(2)]
    history = {0: writes(0, 40), 1: writes(100, 10)}
    await produce_batches(settings, topic, 0, [history[0][n : n + 5] for n in range(0, 40, 5)], 0)  # input 0-39
    await produce_batches(settings, topic, 1, [history[1]], 0)  # input 0-9
    monkeypatch.setattr(restore_module, "MAX_RECORDS", 5)
    stores = {tp: open_store("rocksdb://", tmp_path / f"users-{tp.partition}") for tp in tps}
    ahead = await restore(
        settings.kafka_options(), stores, committed={tp: {INPUT: 12} for tp in tps}, halt_at_uncommitted=True
    )
    assert ahead.read == {tps[0]: 12, tps[1]: 10}
    assert stores[tps[0]].checkpoint.changelog_offset == 12
    assert contents(stores[tps[0]]) == expected(history[0][:12])
    assert contents(stores[tps[1]]) == expected(history[1])

    rest = await restore(settings.kafka_options(), stores, committed={tp: {INPUT: 40} for tp in tps})
    assert rest.read == {tps[0]: 28, tps[1]: 0}
    for tp in tps:
        assert contents(stores[tp]) == expected(history[tp.partition])
        stores[tp].close()
