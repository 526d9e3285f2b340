"""What the broker really holds: each partition's true end, and the partitions it does not have.

Some brokers (the embedded one among them) under-report ListOffsets' end offset as the first offset of the last
record batch + 1; a restore that trusted it would miss the last batch of changelog records. The high watermark of a
Fetch response is right on every broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

_FETCH_SECONDS = 10.0


async def true_end_offsets(
    options: Mapping[str, Any], partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The offset after each partition's last record, from a Fetch response's high watermark."""
    tps = list(partitions)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="latest", **options)
    try:
        await consumer.start()  # inside: a consumer that could not start is closed too
        consumer.assign(tps)
        listed: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        ends = {tp: 0 for tp in tps if listed[tp] == 0}  # nothing was ever written
        pending = [tp for tp in tps if listed[tp] > 0]
        for tp in pending:
            consumer.seek(tp, listed[tp] - 1)  # inside the last batch: its fetch carries the high watermark
        deadline = time.monotonic() + _FETCH_SECONDS
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                if (highwater := consumer.highwater(tp)) is not None:
                    ends[tp] = max(highwater, listed[tp])
                    pending.remove(tp)
        ends |= {tp: listed[tp] for tp in pending}  # no fetch answered in time: the listed offset is all we know
        return ends
    finally:
        await consumer.stop()


async def missing_partitions(options: Mapping[str, Any], partitions: Iterable[TopicPartition]) -> dict[str, set[int]]:
    """The partitions (by topic) the broker does not have: its topic missing, or made up with fewer partitions."""
    wanted: dict[str, set[int]] = {}
    for tp in partitions:
        wanted.setdefault(tp.topic, set()).add(tp.partition)
    admin = AIOKafkaAdminClient(**options)
    try:
        await admin.start()
        existing = set(await admin.list_topics()) & set(wanted)  # describing a missing topic may create it
        described = await admin.describe_topics(sorted(existing)) if existing else []
    finally:
        await admin.close()
    found = {t["topic"]: {p["partition"] for p in t.get("partitions", [])} for t in described}
    missing = {topic: numbers - found.get(topic, set()) for topic, numbers in wanted.items()}
    return {topic: numbers for topic, numbers in missing.items() if numbers}
