"""The standing stage: strike tables per user and per group, link campaigns, sanctions, the blacklist and the audit.

    moderation.violations.v1 (key sender) ---+
    groupwarden.user-actions.v1 (key user) --+--> users table  --> sanctions, blacklist, audit, notices;
    chat.group-events.v1 (key group) --------+--> groups table     forwards to the inboxes: a violation to its group
    groupwarden.group-actions.v1 (key group) +--> links table      and its linked domains, a group's liability to its
    groupwarden.link-actions.v1 (key domain) +                     leaders, expiry ticks to the table itself
    moderation.commands.v1 ------------------+--> pardons, unbans and lifts forwarded to the inboxes

The inputs are co-partitioned (keyed like their table, with the same partition count), so one consumer group
assigns partition p of every input to one worker, which keeps partition p of each table in a store of its own
(streams/state/store.py: RocksDB, or dicts for memory://) replicated by the table's compacted changelog. Each batch
is decided a partition at a time by the pure functions of streams/state/tables.py (streams/state/stage.py), reading
through the values of the batches still in flight; its outputs and one changelog record per changed key go in one
request per partition. Once the broker has acknowledged all of them, the stores are written in one atomic batch per
partition with the changelog and input offsets they reflect, and the input offsets are committed after that. A crash
in between applies the batch again: decisions are idempotent (a message id counts once per user, group and domain),
so it changes nothing, but outputs may repeat, with the same sanction ids.

Partitions assigned to a worker are restored before it reads their inputs: a warm store reads only its changelog's
tail, a cold one the whole changelog, in batches, to the Fetch high watermark (streams/state/restore.py). A worker
starts restoring while its consumer group is joined (a broker may hold a new group's first join for seconds): every
partition's stores, each up to its first changelog record from input not committed yet; the assignment goes on from
those of its own partitions and closes the rest.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import mode
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.config import Settings
from streams.kafka.offsets import committed_offsets
from streams.kafka.produce import OutRecord, send_batched
from streams.kafka.stage import BatchedStage, Ends, InFlight, Records
from streams.metrics import Metrics
from streams.policy.sanctions import SanctionPolicy
from streams.state.expiries import Expiries
from streams.state.recovery import missing_partitions
from streams.state.restore import Restored, RestoreError, restore
from streams.state.stage import INBOX_OF, TABLE_OF, Decoded, PartitionBatch, apply_batch
from streams.state.store import PartitionStore, open_store
from streams.state.tables import Tables
from streams.topics import changelog_topic

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
_COUNT_SLICE = 5_000  # keys counted between two turns of the event loop
# How long an assignment waits for changelog partitions the broker does not have before the worker stops: a broker
# that restarted empty comes back before anyone has run `groupwarden topics create` again.
MISSING_WAIT_SECONDS = 20.0
_MAX_RETRY_SECONDS = 30.0
_RETRY_SECONDS = 1.0
INPUTS = tuple(TABLE_OF)
TABLES = tuple(INBOX_OF)


class _Partition:
    """One partition of every table: its stores, what expires in it, and the batches decided but not written."""

    def __init__(self, stores: dict[str, PartitionStore]) -> None:
        self.stores = stores
        self.expiries = Expiries()
        self.unwritten: list[PartitionBatch] = []  # oldest first
        self.decoded: Decoded = {table: {} for table in stores}  # records as the stores hold them, decoded
        for table, store in stores.items():
            for key, due_ms in store.expiries():
                self.expiries.schedule(INBOX_OF[table], key, due_ms)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


@dataclass
class _Ahead:
    """Stores restored before the assignment, from the committed offsets of the inputs as they were then."""

    stores: dict[tuple[str, int], PartitionStore] = field(default_factory=dict)
    committed: dict[TopicPartition, int | None] = field(default_factory=dict)
    restored: Restored = field(default_factory=Restored)


def _went_back(before: int | None, now: int | None) -> bool:
    return before is not None and (now is None or now < before)


class StandingStage(BatchedStage):
    """The standing tables of the partitions this worker owns, fed by their inputs in batches."""

    stage = "standing"
    # Partition p of every input to the same worker: the inputs are co-partitioned, and the range assignor gives each
    # worker the same partition numbers of every topic when the partition counts are equal.
    consumer_options: ClassVar[dict[str, Any]] = {"partition_assignment_strategy": (RangePartitionAssignor,)}
    # Fetches of its many partitions that find nothing, every 5 ms, took a third of an idle worker's CPU from the
    # classify stage; held up to 100 ms, a sanction may come up to that much later while traffic is light.
    fetch_wait_ms = 100

    def __init__(
        self, settings: Settings, policy: SanctionPolicy, rules_version: str, metrics: Metrics, **kwargs: Any
    ) -> None:
        super().__init__(settings, metrics, [settings.topic(t) for t in INPUTS], **kwargs)
        self.tables = Tables(policy, rules_version)
        self._owned: dict[int, _Partition] = {}
        self._counting: asyncio.Future[None] | None = None
        self._unprefixed = {settings.topic(t): t for t in INPUTS}
        self._changelogs = {table: changelog_topic(settings, table) for table in TABLES}
        self._ahead: asyncio.Future[_Ahead] | None = None
        self._stop_ahead = asyncio.Event()

    async def on_start(self) -> None:
        await super().on_start()
        self._ahead = asyncio.ensure_future(self._restore_ahead())

    def use(self, policy: SanctionPolicy, rules_version: str) -> None:
        """Decide later batches under a new sanction policy and rule-pack version."""
        self.tables = Tables(policy, rules_version)

    # -- a batch ----------------------------------------------------------------------------------------------------

    def decide(self, records: Records) -> tuple[list[OutRecord], Any]:
        by_partition: dict[int, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
        for tp, partition_records in records.items():
            by_partition[tp.partition] += partition_records  # each topic's records stay in offset order
        now_ms = int(time.time() * 1000)
        out: list[OutRecord] = []
        decided: list[PartitionBatch] = []
        for partition, batch_records in by_partition.items():
            owned = self._owned[partition]
            batch = apply_batch(
                self.settings,
                self.tables,
                owned.stores,
                partition,
                batch_records,
                now_ms=now_ms,
                earlier=owned.unwritten,
                decoded=owned.decoded,
                topic_name=self._unprefixed.__getitem__,
            )
            owned.unwritten.append(batch)
            decided.append(batch)
            out += batch.outputs
            for changelog in batch.changelog(self._changelogs.__getitem__).values():
                out += changelog
        return out, decided

    async def acknowledged(self, flight: InFlight, ends: Ends) -> bool:
        """Once the batch read before is written: write each partition's stores, then let the batch commit."""
        if flight.previous is not None:
            await flight.previous.done.wait()
            if not flight.previous.acknowledged:  # it will be read again, and this one after it
                return False
        for batch in flight.work:
            owned = self._owned[batch.partition]
            changelog_ends = {
                table: ends[topic, batch.partition][1]
                for table, topic in self._changelogs.items()
                if (topic, batch.partition) in ends
            }
            batch.write(owned.stores, changelog_ends, owned.decoded)
            assert owned.unwritten[0] is batch, "batches are written in the order they were decided"
            del owned.unwritten[0]
            for table, changed in batch.changed.items():
                for key, new in changed.items():
                    owned.expiries.schedule(INBOX_OF[table], key, new.due_ms)
        return True

    def measure(self, flight: InFlight) -> None:
        m = self.metrics
        # Counted first: looking a metric's labels up costs more than the count, and a batch issues thousands.
        sanctions: Counter[tuple[str, str]] = Counter()
        dead: Counter[str] = Counter()
        for batch in flight.work:
            sanctions.update((s.kind, "revoked" if s.revoked else "issued") for s in batch.sanctions)
            dead.update(batch.dead)
            for table, count in batch.applied.items():
                m.table_events.labels(table).inc(count)
            for table, count in batch.created.items():
                m.table_keys.labels(table).inc(count)
        for (kind, state), count in sanctions.items():
            m.sanctions.labels(kind, state).inc(count)
        for reason, count in dead.items():
            m.dead_letters.labels(reason).inc(count)

    def rewound(self) -> None:
        for owned in self._owned.values():
            owned.unwritten.clear()

    # -- partitions -------------------------------------------------------------------------------------------------

    async def assigned(self, partitions: set[TopicPartition], committed: Mapping[TopicPartition, int | None]) -> None:
        """Close the stores of partitions gone elsewhere; bring every store of this assignment up to its changelog
        before reading its inputs: those new here, and those kept, whose changelog the broker may have lost."""
        numbers = {tp.partition for tp in partitions}
        await self._counted()
        for gone in set(self._owned) - numbers:
            self._owned.pop(gone).close()
        stores = {(table, p): owned.stores[table] for p, owned in self._owned.items() for table in TABLES}
        ahead = await self._ahead_taken(numbers - set(self._owned), committed)
        stores |= ahead.stores
        stores |= await self._open(
            [(table, p) for p in sorted(numbers - set(self._owned)) for table in TABLES if (table, p) not in stores]
        )
        changelogs = {TopicPartition(self._changelogs[table], p): store for (table, p), store in stores.items()}
        restored = await self._restore(partitions, changelogs, committed)
        if restored is None:
            for p in numbers - set(self._owned):
                for table in TABLES:
                    stores[table, p].close()
            return
        log.info(
            "standing stage restored %d partitions from %d changelog records in %.1f s (%d of them, in %.1f s, while"
            " its consumer group was joined)",
            len(numbers),
            ahead.restored.records + restored.records,
            ahead.restored.seconds + restored.seconds,
            ahead.restored.records,
            ahead.restored.seconds,
        )
        # The expiry schedules anew: a store ahead of its changelog (the broker lost it) was rebuilt.
        self._owned = {p: _Partition({table: stores[table, p] for table in TABLES}) for p in numbers}
        # Counted beside the stage, which does not wait for a scan of every key to make its first decision.
        self._counting = asyncio.ensure_future(self._count_keys())

    async def _restore_ahead(self) -> _Ahead:
        """While the consumer group is joined (the broker may hold a new group's first join for seconds): the stores
        of every partition, restored until the assignment says which partitions are this worker's. Each stops before
        its first changelog record from input not committed yet: whether it is left out is for the offsets committed
        when the stage reads to say. Any failure leaves the rest to the assignment."""
        options = self.settings.kafka_options()
        numbers = range(self.settings.partitions)
        changelogs = [TopicPartition(self._changelogs[table], p) for table in TABLES for p in numbers]
        ahead = _Ahead()
        # The stores open while the broker is asked what is committed and which changelogs it has.
        opening = asyncio.ensure_future(self._open([(table, p) for p in numbers for table in TABLES]))
        try:
            try:
                committed, missing = await asyncio.gather(
                    self._committed_now([TopicPartition(t, p) for t in self.topics for p in numbers]),
                    missing_partitions(options, changelogs),
                    return_exceptions=True,  # both done before either's failure is raised
                )
            finally:
                ahead.stores = await opening
            for answer in (committed, missing):
                if isinstance(answer, BaseException):
                    raise answer
            ahead.committed = committed
            if self._stop_ahead.is_set() or missing:
                return ahead  # the assignment says which are missing
            stores = {TopicPartition(self._changelogs[table], p): store for (table, p), store in ahead.stores.items()}
            inputs = self._inputs(ahead.committed)
            ahead.restored = await restore(
                options,
                stores,
                committed={tp: inputs[tp.partition] for tp in stores},
                stop=self._stop_ahead,
                halt_at_uncommitted=True,
            )
        except (KafkaError, RestoreError, OSError) as exc:
            log.warning("restoring ahead of the assignment stopped (%r); the assignment restores its stores", exc)
        return ahead

    async def _committed_now(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets, asked by a consumer of its own: the stage's consumer asks nothing until the
        broker answers its join."""
        reader = AIOKafkaConsumer(group_id=self.group_id, enable_auto_commit=False, **self.settings.kafka_options())
        await reader.start()
        try:
            return await committed_offsets(reader, partitions)
        finally:
            await reader.stop()

    async def _ahead_taken(self, numbers: set[int], committed: Mapping[TopicPartition, int | None]) -> _Ahead:
        """The stores restored ahead of the assignment that it goes on from: those of partitions newly assigned
        here. Every record they hold came from committed input, so offsets committed since change nothing; one
        committed offset gone back (reset by an operator) makes its partition's stores restore anew. The stores of
        partitions assigned elsewhere are closed."""
        if self._ahead is None:
            return _Ahead()
        self._stop_ahead.set()
        ahead = await self._ahead
        self._ahead = None
        kept: dict[tuple[str, int], PartitionStore] = {}
        for (table, p), store in ahead.stores.items():
            if p not in numbers:
                await asyncio.to_thread(store.close)  # flushes what it restored: not on the event loop
                continue
            if any(
                _went_back(ahead.committed.get(tp), offset) for tp, offset in committed.items() if tp.partition == p
            ):
                log.info("%s store of partition %d restored anew: its inputs' committed offsets went back", table, p)
                await asyncio.to_thread(store.wipe)
                ahead.restored.read.pop(TopicPartition(self._changelogs[table], p), None)
            kept[table, p] = store
        ahead.stores = kept
        ahead.restored.read = {tp: n for tp, n in ahead.restored.read.items() if tp.partition in numbers}
        return ahead

    def _inputs(self, committed: Mapping[TopicPartition, int | None]) -> dict[int, dict[str, int]]:
        """Per partition, the committed offset of each input topic (unprefixed), where one is committed."""
        inputs: dict[int, dict[str, int]] = defaultdict(dict)
        for tp, offset in committed.items():
            if offset is not None:
                inputs[tp.partition][self._unprefixed[tp.topic]] = offset
        return inputs

    async def _open(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], PartitionStore]:
        """The stores of these (table, partition) pairs, opened side by side (a new RocksDB database takes tens of
        milliseconds to create); if one cannot be opened, none stays open."""
        opened = await asyncio.gather(
            *(
                asyncio.to_thread(open_store, self.settings.store, self.settings.data_dir / "stores" / f"{table}-{p}")
                for table, p in wanted
            ),
            return_exceptions=True,
        )
        stores = [store for store in opened if isinstance(store, PartitionStore)]
        if len(stores) < len(opened):
            for store in stores:
                store.close()
            raise next(exc for exc in opened if isinstance(exc, BaseException))
        return dict(zip(wanted, stores, strict=True))

    async def _counted(self) -> None:
        """The last count of the keys given up: no store closes while it is read."""
        if self._counting is not None:
            self._counting.cancel()
            await asyncio.gather(self._counting, return_exceptions=True)
            self._counting = None

    async def _restore(
        self,
        partitions: set[TopicPartition],
        changelogs: dict[TopicPartition, PartitionStore],
        committed: Mapping[TopicPartition, int | None],
    ) -> Restored | None:
        """Restore the stores, leaving out what came from input past its ``committed`` offset; wait for the broker
        while it is away. None: the changelogs are missing and the worker stops, or it is stopping."""
        options = self.settings.kafka_options()
        assert self.consumer is not None
        inputs = self._inputs(committed)
        waiting_since: float | None = None
        while True:
            try:
                if missing := await missing_partitions(options, changelogs):
                    listed = ", ".join(f"{topic} {sorted(numbers)}" for topic, numbers in sorted(missing.items()))
                    if waiting_since is None:
                        waiting_since = time.monotonic()
                        log.warning(
                            "changelog partitions missing at the broker: %s; waiting %.0f s for them"
                            " (`groupwarden topics create` after a broker restarted empty)",
                            listed,
                            MISSING_WAIT_SECONDS,
                        )
                    if time.monotonic() - waiting_since < MISSING_WAIT_SECONDS and not self.should_stop:
                        await asyncio.sleep(_RETRY_SECONDS)
                        continue
                    log.critical(  # the one line to read
                        "changelog partitions missing at the broker (did it restart empty?): %s; stop the workers,"
                        " delete those topics if they exist, run `groupwarden topics create`, then start the workers"
                        " again",
                        listed,
                    )
                    self.consumer.pause(*partitions)  # nothing is read without its table
                    os.kill(os.getpid(), signal.SIGTERM)  # the worker stops as on SIGTERM, within its stop deadline
                    return None
                return await restore(options, changelogs, committed={tp: inputs[tp.partition] for tp in changelogs})
            except KafkaConnectionError:  # the broker went away: restoring waits for it, as the consumers do
                if self.should_stop:
                    return None
                await asyncio.sleep(_RETRY_SECONDS)

    async def _count_keys(self) -> None:
        """A slice of keys at a time, on the event loop: a scan of a million keys in a thread of its own would keep
        the interpreter from the stage's first batches for a second or more after a restore."""
        for table in TABLES:
            keys = 0
            for owned in self._owned.values():
                for _ in owned.stores[table].items():
                    keys += 1
                    if keys % _COUNT_SLICE == 0:
                        await asyncio.sleep(0)
            self.metrics.table_keys.labels(table).set(keys)

    async def stopped(self) -> None:
        await self._counted()
        await self._ahead_taken(set(), {})
        for owned in self._owned.values():
            owned.close()
        self._owned.clear()

    # -- expiry -----------------------------------------------------------------------------------------------------

    @mode.Service.timer(TICK_SECONDS)
    async def _tick(self) -> None:
        """A tick to each record whose blacklist entry is due to change, on its table's partition."""
        if self.producer is None:
            return
        now_ms = int(time.time() * 1000)
        tick = orjson.dumps({"action": "tick", "at_ms": now_ms})
        due = [
            OutRecord(self.settings.topic(inbox), key, tick, partition=p)
            for p, owned in self._owned.items()
            for inbox, key in owned.expiries.pop_due(now_ms)
        ]
        for attempt in itertools.count():
            if not due or self.should_stop:
                return
            try:
                await send_batched(self.producer, due)
            except KafkaError:
                delay = min(_MAX_RETRY_SECONDS, 0.5 * 2**attempt)
                log.warning("sending %d expiry ticks failed; again in %.1f s", len(due), delay, exc_info=True)
                await asyncio.sleep(delay)
            else:
                return
