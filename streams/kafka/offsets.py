"""Committed offsets past a partition's end: the broker lost its records (memory storage, a cluster rebuilt empty).

Kafka answers a fetch from such an offset with OFFSET_OUT_OF_RANGE and the consumer resets; some brokers answer
with nothing, and the group would wait there until new records caught up with the old offset. Treated here as
out of range: read the partition from its start, and say so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.state.recovery import true_end_offsets

log = logging.getLogger(__name__)


def past_end(committed: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The partitions whose committed offset lies past their end, with that offset."""
    return {tp: offset for tp, offset in committed.items() if offset > ends[tp]}


async def committed_offsets(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The consumer group's committed offset of each partition (None: nothing committed), asked all at once."""
    tps = list(partitions)
    offsets = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
    return dict(zip(tps, offsets, strict=True))


async def reset_past_end(
    consumer: AIOKafkaConsumer, committed: Mapping[TopicPartition, int | None], options: Mapping[str, Any]
) -> set[TopicPartition]:
    """Seek the newly assigned partitions whose ``committed`` offsets are past their ends to their starts."""
    known = {tp: offset for tp, offset in committed.items() if offset is not None}
    if not known:
        return set()
    ends = await true_end_offsets(options, known)  # ListOffsets may under-report an end: not a reason to reset
    reset = past_end(known, ends)
    for tp, offset in sorted(reset.items()):
        log.warning(
            "%s partition %d: committed offset %d is past the partition's end %d (did the broker lose its records?):"
            " reading the partition from its start",
            tp.topic,
            tp.partition,
            offset,
            ends[tp],
        )
    if reset:
        await consumer.seek_to_beginning(*reset)
    return set(reset)
