"""Batched producing: partitions chosen as every Kafka client chooses them, and batches sent one after the other
keeping their order on every partition."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.kafka.produce import OutRecord, partition_for, send_batched_ends


class Producer:
    """Records what is handed over, per partition; the first hand-over waits until ``release`` is set, as
    aiokafka's does while a partition's earlier batch is still being drained."""

    def __init__(self) -> None:
        self.handed: dict[tuple[str, int], list[bytes | None]] = {}
        self.release = asyncio.Event()
        self.calls = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(4))

    def create_batch(self) -> Any:
        records: list[bytes | None] = []
        return SimpleNamespace(
            records=records,
            append=lambda key, value, timestamp, headers: records.append(value) or True,
            record_count=lambda: len(records),
        )

    async def send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
        handed = self.handed.setdefault((topic, partition), [])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(offset=len(handed)))
        handed.extend(batch.records)
        return future


def records(tag: str) -> list[OutRecord]:
    return [OutRecord("t", key, f"{tag}-{key.decode()}".encode()) for key in (b"a", b"b", b"c", b"d")]


async def test_batches_sent_in_order_keep_their_order_on_every_partition() -> None:
    producer = Producer()
    lock = asyncio.Lock()
    first = asyncio.ensure_future(send_batched_ends(producer, records("1"), in_order=lock))  # type: ignore[arg-type]
    second = asyncio.ensure_future(send_batched_ends(producer, records("2"), in_order=lock))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # the first waits on its first partition; the second must not go ahead of it
    producer.release.set()
    ends = await first
    await second
    for key in (b"a", b"b", b"c", b"d"):
        handed = producer.handed["t", partition_for(key, 4)]
        assert handed.index(b"1-" + key) < handed.index(b"2-" + key)
    assert sum(count for count, _ in ends.values()) == 4
    for (_, partition), (count, end) in ends.items():
        assert end == len([v for v in producer.handed["t", partition] if v and v.startswith(b"1-")])
        assert count >= 1


async def test_a_record_with_a_partition_goes_there_whatever_its_key() -> None:
    producer = Producer()
    producer.release.set()
    key = b"a"
    other = (partition_for(key, 4) + 1) % 4
    await send_batched_ends(producer, [OutRecord("t", key, b"v", partition=other)])  # type: ignore[arg-type]
    assert producer.handed == {("t", other): [b"v"]}
