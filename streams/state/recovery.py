"""Exact table recovery: two fixes to Faust's recovery, installed with ``TableManager=exact_table_manager(...)``.

1. Seek before resume. After a rebalance, Faust 0.15 resumes the input partitions and only then seeks them to
   their committed offsets. Records fetched in between reach the agents' queues, the seek makes the next record
   look like a gap, the gap is marked acknowledged and the queues are cleared: those records are dropped, yet
   committed. Here the partitions stay paused until the seek has completed, and gaps noted before it are forgotten.
2. True end offsets. Recovery reads each changelog up to its end offset from ListOffsets, which some brokers
   (the embedded one among them) under-report as the first offset of the last record batch + 1; the last batch
   of changelog records would be skipped. Here the end is the high watermark of a Fetch response, which is right
   on every broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP, ConsumerT
from faust.types.tables import TableManagerT

_FETCH_SECONDS = 10.0
_RETRY_SECONDS = 1.0


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


class ExactRecovery(Recovery):
    kafka_options: Mapping[str, Any] = {}

    async def _build_highwaters(
        self,
        consumer: ConsumerT,  # noqa: ARG002 - its end offsets are the ones that may be short
        tps: set[TP],
        destination: Counter[TP],
        title: str,
    ) -> None:
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        while True:
            try:
                ends = await true_end_offsets(self.kafka_options, partitions)
                break
            except KafkaConnectionError:  # the broker went away: recovery waits for it, as the consumers do
                await asyncio.sleep(_RETRY_SECONDS)
            except KafkaTimeoutError:  # aiokafka waited for partitions the broker does not have
                if not (missing := await missing_partitions(self.kafka_options, partitions)):
                    raise
                self.log.critical(  # the one line to read: Faust's crash report would bury it in tracebacks
                    "changelog partitions missing at the broker (did it restart empty?): %s; stop the workers, delete"
                    " those topics if they exist, run `groupwarden topics create`, then start the workers again",
                    ", ".join(f"{topic} {sorted(numbers)}" for topic, numbers in sorted(missing.items())),
                )
                os.kill(os.getpid(), signal.SIGTERM)  # the worker stops as on SIGTERM, within its stop deadline
                await asyncio.Event().wait()  # until the stop cancels recovery
        highwaters = {tp: ends[TopicPartition(tp.topic, tp.partition)] - 1 for tp in tps}  # Faust's own convention
        self.log.info("True end offsets of %s changelog partitions: %s", title, highwaters)
        destination.clear()
        destination.update(highwaters)

    async def _seek_then_resume(self) -> None:
        """Seek the input partitions to their committed offsets while they are paused; only then resume them.

        A partition with nothing committed goes back to its earliest offset (the app's offset reset): Faust drops what
        was fetched for a paused partition, and its seek to committed offsets leaves such a partition where that
        fetch left it, so a new group's first records would be lost."""
        consumer = self.app.consumer
        assignment = consumer.assignment()
        streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        if assignment:
            timeout = self.app.conf.broker_request_timeout
            await self._wait(consumer.perform_seek(), timeout=timeout)
            committed = getattr(consumer, "_committed_offset", {})  # filled by the seek; None or absent: nothing
            fresh = [tp for tp in streams if not committed.get(tp)]
            if fresh and self.app.conf.consumer_auto_offset_reset == "earliest":
                earliest = await consumer.earliest_offsets(*fresh)
                for tp in fresh:
                    await consumer.seek(tp, earliest[tp])
            gaps = cast(Any, consumer)._gap  # gaps seen before the seek are not gaps
            for tp in streams:
                gaps.pop(tp, None)
        consumer.resume_partitions(streams)

    async def _ready(self, *, standbys_ready: bool) -> None:
        self.completed.set()
        self.app.flow_control.resume()
        self.app.consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()  # as Faust's own recovery does
        self.tables.on_actives_ready()
        if standbys_ready:
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self, generation_id: int = 0) -> None:
        """No table needed recovering."""
        await self.app.on_rebalance_complete.send()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume()
        await self._ready(standbys_ready=True)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Active tables are recovered."""
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        for table in self.tables.values():
            await table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume()
        await self._ready(standbys_ready=not self.app.assignor.assigned_standbys())


def exact_table_manager(kafka_options: Mapping[str, Any]) -> type[TableManagerT]:
    """A TableManager whose recovery applies both fixes; ``kafka_options`` reach the broker as the worker does."""

    class _Recovery(ExactRecovery):
        pass

    _Recovery.kafka_options = dict(kafka_options)

    class ExactTableManager(TableManager):
        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = _Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return ExactTableManager
