"""Batched producing: records grouped per partition with Kafka's default (murmur2) partitioner, one request each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.structs import RecordMetadata

Headers = Sequence[tuple[str, bytes]]


class OutRecord(NamedTuple):
    """A record to produce. A named tuple: the standing stage builds several a violation, at a third of a dataclass's
    cost."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    headers: Headers = ()
    partition: int | None = None  # None: the key's partition (murmur2), or round robin for a record without a key


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition every Kafka client's default partitioner picks for this key (Java's murmur2, positive)."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


async def send_batched(producer: AIOKafkaProducer, records: Iterable[OutRecord]) -> int:
    """Send records in per-partition batches and wait until the broker has acknowledged every one; return how many."""
    ends = await send_batched_ends(producer, records)
    return sum(count for count, _ in ends.values())


async def send_batched_ends(
    producer: AIOKafkaProducer, records: Iterable[OutRecord], *, in_order: asyncio.Lock | None = None
) -> dict[tuple[str, int], tuple[int, int]]:
    """What ``send_batched`` does; per (topic, partition) written, how many records and the offset after the last.

    ``in_order``: held while the records are handed to the producer, so that calls sharing it, made one after the
    other, keep their order on every partition while they wait for their acknowledgements together."""
    async with in_order or contextlib.nullcontext():
        counts: dict[str, int] = {}
        grouped: dict[tuple[str, int], list[OutRecord]] = {}
        keyless = 0
        for record in records:
            partition = record.partition
            if partition is None:
                if record.topic not in counts:
                    counts[record.topic] = len(await producer.partitions_for(record.topic))
                if record.key is None:
                    partition, keyless = keyless % counts[record.topic], keyless + 1
                else:
                    partition = partition_for(record.key, counts[record.topic])
            grouped.setdefault((record.topic, partition), []).append(record)
        pending: list[tuple[tuple[str, int], int, asyncio.Future[RecordMetadata]]] = []
        for (topic, partition), items in grouped.items():
            for count, future in await _enqueue(producer, topic, partition, items):
                pending.append(((topic, partition), count, future))
    acknowledged = await asyncio.gather(*(future for _, _, future in pending))
    ends: dict[tuple[str, int], tuple[int, int]] = {}
    for (where, count, _), metadata in zip(pending, acknowledged, strict=True):
        sent, end = ends.get(where, (0, 0))
        ends[where] = (sent + count, max(end, metadata.offset + count))  # the offset acknowledged is the batch's first
    return ends


async def _enqueue(
    producer: AIOKafkaProducer, topic: str, partition: int, records: list[OutRecord]
) -> list[tuple[int, asyncio.Future[RecordMetadata]]]:
    """Hand one partition's records to the producer in as few batches as its batch size allows: (records, future)
    of each."""
    out = []
    batch = producer.create_batch()
    for record in records:
        if batch.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers)) is None:
            out.append((batch.record_count(), await producer.send_batch(batch, topic, partition=partition)))
            batch = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers)) is None:
                raise ValueError(f"a record for {topic} is larger than the producer's max batch size")
    if batch.record_count():
        out.append((batch.record_count(), await producer.send_batch(batch, topic, partition=partition)))
    return out
