"""Restoring partition stores from their changelogs: a batched read-and-write loop, to the true end of each changelog.

A store that has a checkpoint (a warm restart) reads only the changelog after it; an empty one (a cold start, or a
partition that moved here) reads the whole changelog. Each fetch of a partition is written in one batch, without the
write-ahead log; the stores are flushed once at the end. The end to read to is each changelog's high watermark when
the restore begins, taken from a Fetch response: the embedded broker under-reports ListOffsets, and a restore that
trusted it would miss the last batch of records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.state.recovery import true_end_offsets
from streams.state.store import PartitionStore

log = logging.getLogger(__name__)

MAX_RECORDS = 50_000  # records a fetch hands over at most: each partition's share is one write
FETCH_BYTES = 4 << 20  # per partition and fetch: large batches cost the broker little more than small ones


class RestoreError(RuntimeError):
    """A changelog could not be read to its end."""


@dataclass
class Restored:
    read: dict[TopicPartition, int] = field(default_factory=dict)  # changelog records read per partition
    rebuilt: list[TopicPartition] = field(default_factory=list)  # stores ahead of their changelog, wiped and re-read
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(self.read.values())


async def restore(
    options: Mapping[str, Any],
    stores: Mapping[TopicPartition, PartitionStore],
    *,
    committed: Mapping[TopicPartition, Mapping[str, int]] | None = None,
    stall_seconds: float = 60.0,
    stop: asyncio.Event | None = None,
    halt_at_uncommitted: bool = False,
) -> Restored:
    """Bring every store up to its changelog partition's end.

    ``committed``: per changelog partition, the committed offset of each input topic: changelog records from input
    past it are left out (see PartitionStore.restore). ``stall_seconds``: RestoreError when no record arrives for
    that long while some remain to be read. ``stop``: once set, return after the write in progress, each store at
    the checkpoint of its last write (a later restore goes on from there), and unflushed.
    ``halt_at_uncommitted``: a store stops before its first record from uncommitted input instead of leaving it
    out (PartitionStore.restore), and the stores are left unflushed: a restore ahead of knowing which offsets will
    be committed when the stage reads, which the restore that follows completes."""
    started = time.perf_counter()
    result = Restored()
    ends = await true_end_offsets(options, list(stores))
    if stop is not None and stop.is_set():
        result.seconds = time.perf_counter() - started
        return result
    starts: dict[TopicPartition, int] = {}
    for tp, store in stores.items():
        start = store.checkpoint.changelog_offset
        if start > ends[tp]:
            log.warning("store of %s is ahead of its changelog (%d > %d): restoring it anew", tp, start, ends[tp])
            store.wipe()
            result.rebuilt.append(tp)
            start = 0
        result.read[tp] = 0
        if start < ends[tp]:
            starts[tp] = start
    if starts:
        await _read(
            options,
            stores,
            starts,
            ends,
            result,
            committed=committed,
            stall_seconds=stall_seconds,
            stop=stop,
            halt_at_uncommitted=halt_at_uncommitted,
        )
    if not (halt_at_uncommitted or (stop is not None and stop.is_set())):  # else the restore that follows does
        # Restore writes skip the write-ahead log: made durable here, once, before the stores take logged writes.
        for store in stores.values():
            await asyncio.to_thread(store.flush)
    result.seconds = time.perf_counter() - started
    return result


async def _read(
    options: Mapping[str, Any],
    stores: Mapping[TopicPartition, PartitionStore],
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    result: Restored,
    *,
    committed: Mapping[TopicPartition, Mapping[str, int]] | None,
    stall_seconds: float,
    stop: asyncio.Event | None,
    halt_at_uncommitted: bool,
) -> None:
    """Read each changelog partition from its start to its end, one write per partition and fetch.

    Reading and writing overlap: the consumer asks for the next records only once it has handed over the last ones,
    so a loop that wrote between its reads would wait for the broker after every write. (rocksdict holds the GIL
    while it writes: what the thread gains is the next fetch in flight, not a second core.)"""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES,
        **options,
    )

    halted: set[TopicPartition] = set()  # stopped before a record from uncommitted input

    def write(batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batch.items():
            if records and tp not in halted:
                store = stores[tp]
                inputs = committed.get(tp, {}) if committed is not None else None
                store.restore(records, inputs, halt_at_uncommitted=halt_at_uncommitted)
                result.read[tp] += len(records)
                if store.checkpoint.changelog_offset <= records[-1].offset:
                    result.read[tp] -= records[-1].offset + 1 - store.checkpoint.changelog_offset
                    halted.add(tp)

    await consumer.start()
    writing: asyncio.Future[None] | None = None  # the last fetch's write, in a thread while the next is fetched
    try:
        consumer.assign(list(starts))
        for tp, start in starts.items():
            consumer.seek(tp, start)
        pending = set(starts)
        progressed = time.monotonic()
        while pending and not (stop is not None and stop.is_set()):
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=MAX_RECORDS)
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(asyncio.to_thread(write, batch))
            if any(batch.values()):
                progressed = time.monotonic()
            for tp in list(pending):
                if tp in halted or await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if pending and time.monotonic() - progressed > stall_seconds:
                left = {str(tp): ends[tp] - await consumer.position(tp) for tp in pending}
                raise RestoreError(f"no changelog record in {stall_seconds:.0f} s; records left: {left}")
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            await asyncio.wait([writing])  # a write in its thread finishes before anyone may close its store
        await consumer.stop()
