"""A pipelined consumer-group loop: the shape of every groupwarden stage.

A stage reads a batch, decides it, sends its outputs, and reads the next batch while the broker acknowledges the
last one: PIPELINE_DEPTH batches wait for their acknowledgements at most, and a batch is whatever has arrived (no
waiting to fill one); while the loop waits, records pile up and the next batch grows, so heavy load keeps large
batches. Each partition's offset is committed in order (streams/kafka/commits.py), only up to the last batch whose
outputs are all acknowledged, so a crash or a failed send replays from the first unacknowledged offset
(at-least-once: outputs may repeat, none is lost). Before partitions move to another worker, the batches in flight
settle and what they acknowledged is committed. A worker that cannot show it is still a member of its group (its
event loop stalled past a heartbeat interval, say by a long restore on a loaded machine) re-commits an offset it
already committed before it decides anything more: a member the broker has dropped meanwhile is refused, and its
stale batches never reach the outputs or the changelogs its partitions' new owner reads.

Faust's per-event agents cost ~90 us a record; this loop costs a few per batch. A stage subclasses BatchedStage with
what it does to a batch (``decide``) and, if it keeps state, what it does once a batch's outputs are acknowledged
(``acknowledged``) and when partitions are assigned (``assigned``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from streams.config import Settings
from streams.kafka.commits import Batch, InOrderCommits
from streams.kafka.offsets import committed_offsets, reset_past_end
from streams.kafka.produce import OutRecord, send_batched_ends
from streams.metrics import Metrics

log = logging.getLogger(__name__)

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
Ends = dict[tuple[str, int], tuple[int, int]]  # per (topic, partition) written: records sent, offset after the last

# Batches awaiting their acknowledgements: one is decided while another is acknowledged. More would only queue in
# the producer, which sends one request at a time, and would replay more after a crash.
PIPELINE_DEPTH = 2
# How long the broker may hold a fetch that finds no records. The embedded broker holds it for half of this even when
# records arrive meanwhile, so it adds to the latency of light traffic (Apache Kafka answers as soon as records
# arrive); shorter, the empty fetches of an idle worker cost the broker and the worker CPU.
FETCH_WAIT_MS = 10
LAG_SECONDS = 5.0
RETRY_SECONDS = 1.0
STOP_COMMIT_SECONDS = 5.0  # how long stopping waits to commit what was acknowledged
# Turns of the event loop a batch's outputs take to leave once decided: the task that awaits their acknowledgement
# hands them to the producer, whose sender task drains them and writes the request. Deciding the next batch holds the
# loop, and the consumer returns records it has already fetched without yielding: without these turns a batch's
# outputs would wait for the next batch to be decided before they left.
SEND_TURNS = 4
SESSION_TIMEOUT_MS = 6000  # the embedded broker holds a new group's first join for half of this
HEARTBEAT_INTERVAL_MS = 2000
# How long an accepted commit or an assignment shows the worker to be a member of its group. Past it, a heartbeat
# may not have gone out (the loop stalled), so the broker may have dropped the member and handed its partitions on.
MEMBERSHIP_SECONDS = HEARTBEAT_INTERVAL_MS / 1000


@dataclass
class InFlight:
    """A batch decided and its outputs sent, waiting for the broker's acknowledgement."""

    tracked: Batch[TopicPartition]  # its place in the commit order
    records: Records
    out: list[OutRecord]
    work: Any  # what the stage's ``decide`` made of it, beside the outputs
    started: float
    generation: int  # of the assignment it was read under
    previous: InFlight | None  # the batch read before it, while that one was in flight
    done: asyncio.Event = field(default_factory=asyncio.Event)
    acknowledged: bool = False  # set before ``done``: every output acknowledged and the stage's work after it done

    @property
    def count(self) -> int:
        return sum(len(records) for records in self.records.values())


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        lock: asyncio.Lock,
        assigned: Callable[[set[TopicPartition]], Awaitable[None]],
        revoked: Callable[[], Awaitable[None]],
    ) -> None:
        self._lock, self._assigned, self._revoked = lock, assigned, revoked

    async def on_partitions_revoked(self, revoked: Any) -> None:  # noqa: ARG002 - the interface
        async with self._lock:  # no batch starts meanwhile
            await self._revoked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self._lock:
            await self._assigned(set(assigned))


class BatchedStage(mode.Service, abc.ABC):
    """Consumes ``topics`` in batches as the consumer group ``<group id>-<stage>``, decides, produces, commits."""

    stage: str  # the stage's name: its consumer group's suffix and its metrics' label
    consumer_options: ClassVar[dict[str, Any]] = {}  # more for its consumer (an assignor, say)
    fetch_wait_ms: ClassVar[int] = FETCH_WAIT_MS  # how long the broker may hold its fetches that find nothing
    decide_step = "decide"  # the name ``observe`` gives the time ``decide`` takes

    def __init__(self, settings: Settings, metrics: Metrics, topics: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.metrics, self.topics = settings, metrics, list(topics)
        self.group_id = f"{settings.group_id}-{self.stage}"
        self._done: dict[TopicPartition, int] = {}  # the next offset to process, per partition owned
        self._lock = asyncio.Lock()  # held to start a batch, to swap what decides, and through a rebalance
        self._commits: InOrderCommits[TopicPartition] = InOrderCommits()
        self._committing = asyncio.Lock()  # one commit at a time: each carries everything acknowledged before it
        self._commit_due = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Held while a batch's outputs are handed to the producer: batches sent in the order they were read keep that
        # order on every output partition, so a key's outputs never pass each other between two batches in flight.
        self.in_order = asyncio.Lock()
        self._last: InFlight | None = None  # the batch read last
        self._send_failed = False  # a batch's outputs were refused: read again from the first unacknowledged offsets
        self._broken: BaseException | None = None  # an unexpected error in a batch in flight: the stage stops
        self._generation = 0  # counts rebalances: records fetched before one are stale
        self._member_at = 0.0  # when the broker last accepted this worker as a member (monotonic seconds)
        self._recommit: dict[TopicPartition, int] = {}  # an offset known committed (or the start) per partition owned
        self._dropped = False  # refused as a member: nothing is decided until the group assigns partitions again
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    # -- what a stage does ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def decide(self, records: Records) -> tuple[list[OutRecord], Any]:
        """A batch's outputs, and anything the stage wants back in ``acknowledged`` and ``measure``."""

    async def send(self, flight: InFlight) -> Ends:
        """Send the batch's outputs and wait for the broker to acknowledge them; KafkaError: the batch is read
        again."""
        assert self.producer is not None
        return await send_batched_ends(self.producer, flight.out, in_order=self.in_order)

    async def acknowledged(self, flight: InFlight, ends: Ends) -> bool:  # noqa: ARG002 - for stages that keep state
        """Every output of ``flight`` is acknowledged; False: it must be read again (an earlier batch failed)."""
        return True

    def measure(self, flight: InFlight) -> None:
        """Metrics of a batch whose work is done."""

    def observe(self, step: str, seconds: float) -> None:
        """How long a step of the loop took: fetch_wait, ``decide_step``, acknowledge or commit."""

    async def assigned(
        self,
        partitions: set[TopicPartition],
        committed: Mapping[TopicPartition, int | None],
    ) -> None:
        """Partitions assigned to this worker, before any of their records is read; ``committed``: the consumer
        group's committed offset of each (None: nothing committed)."""

    def rewound(self) -> None:
        """The batches in flight were dropped after a failed send: they will be read again."""

    async def stopped(self) -> None:
        """The consumer has stopped; the last batches are committed."""

    # -- the loop ---------------------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        options = self.settings.kafka_options()
        # No linger: send_batched hands the producer whole batches, and lingering would only delay them.
        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=0, max_batch_size=1 << 20, max_request_size=4 << 20, **options
        )
        self.consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_size,
            max_partition_fetch_bytes=4 << 20,
            fetch_max_wait_ms=self.fetch_wait_ms,
            fetch_max_bytes=16 << 20,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            **self.consumer_options,
            **options,
        )
        await self.producer.start()
        await self.consumer.start()
        # Subscribed once started, the consumer joins its group in the background: start-up goes on meanwhile (it
        # waits for the join when subscribed first).
        listener = _CommitBeforeRevoke(self._lock, self._assigned, self._revoked)
        self.consumer.subscribe(self.topics, listener=listener)

    async def on_stop(self) -> None:
        async with self._lock:  # the batches in flight finish and commit first
            if self.consumer is not None:
                await self._settle()
                with contextlib.suppress(TimeoutError):  # with the broker gone, the next owner repeats them instead
                    await asyncio.wait_for(self._commit(), STOP_COMMIT_SECONDS)
        # The consumer stops outside the lock: it waits for a group join in progress, whose end calls the rebalance
        # listener, which takes the lock (and, the stage stopping, does nothing). Under the lock, they would wait for
        # each other until the worker's stop deadline.
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        await self.stopped()

    @mode.Service.task
    async def _consume(self) -> None:
        while not self.should_stop:
            if self.consumer is None:  # starting
                await asyncio.sleep(0.05)
                continue
            if self._broken is not None:
                raise self._broken
            if self._send_failed:
                await self._replay()
                continue
            if len(self._in_flight) >= PIPELINE_DEPTH:  # while the loop waits, records pile up: the next batch grows
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            asked = time.monotonic()
            records = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.batch_size)
            generation = self._generation
            if records and not self.should_stop:
                self.observe("fetch_wait", time.monotonic() - asked)
                async with self._lock:
                    if generation != self._generation:  # fetched before a rebalance that reset the positions
                        continue
                    if member := await self._still_member():
                        self._start(records)
                    else:  # read again by whoever owns the partitions now (this worker too, once it rejoins)
                        for tp, fetched in records.items():
                            self.consumer.seek(tp, fetched[0].offset)
                if not member:
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                for _ in range(SEND_TURNS):
                    await asyncio.sleep(0)

    async def _still_member(self) -> bool:
        """Whether the group still counts this worker a member: shown recently, or by re-committing an offset it
        committed already (which moves nothing). False: refused, or the broker did not answer."""
        assert self.consumer is not None
        if self._dropped:
            return False
        if time.monotonic() - self._member_at < MEMBERSHIP_SECONDS or not self._recommit:
            return True
        async with self._committing:  # or a commit further on could land first, and this one move it back
            asked = time.monotonic()
            tp, offset = next(iter(self._recommit.items()))
            try:
                # Bounded: the consumer retries while the broker is away, and stopping waits for the lock held here.
                await asyncio.wait_for(self.consumer.commit({tp: OffsetAndMetadata(offset, "")}), STOP_COMMIT_SECONDS)
            except (CommitFailedError, IllegalStateError):
                log.warning("%s stage: no longer a member of its group; waiting for a new assignment", self.stage)
                self._dropped = True
                return False
            except (KafkaError, TimeoutError) as exc:
                log.warning("%s stage: could not show it is still a member (%r); reading again", self.stage, exc)
                return False
        self._member_at = asked
        return True

    def _start(self, records: Records) -> None:
        """Decide a batch and send its outputs; their acknowledgement is awaited beside the next batches."""
        started = time.monotonic()
        out, work = self.decide(records)
        self.observe(self.decide_step, time.monotonic() - started)
        tracked = self._commits.track({tp: (rs[0].offset, rs[-1].offset + 1) for tp, rs in records.items()})
        previous = self._last if self._last is not None and not self._last.done.is_set() else None
        flight = self._last = InFlight(tracked, records, out, work, started, self._generation, previous)
        task = asyncio.create_task(self._acknowledge(flight))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    async def _acknowledge(self, flight: InFlight) -> None:
        sending = time.monotonic()
        try:
            try:
                ends = await self.send(flight)
            except KafkaError:
                log.exception("sending a batch failed; it will be read and sent again")
                self._send_failed = True
                return
            if not await self.acknowledged(flight, ends):
                return
            self.observe("acknowledge", time.monotonic() - sending)
            flight.acknowledged = True
            self._commits.acknowledge(flight.tracked)
            if flight.generation == self._generation:  # else it says nothing of partitions that may be elsewhere now
                for tp, records in flight.records.items():
                    self._done[tp] = records[-1].offset + 1
                self._report_lag()
            self.measure(flight)
            self._commit_due.set()
        finally:
            flight.previous = None  # or each batch in flight would keep every batch before it alive
            flight.done.set()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._broken = self._broken or exc  # raised by the consume loop, which stops the stage

    @mode.Service.task
    async def _commit_acknowledged(self) -> None:
        """Commits as acknowledgements come in; under load one commit carries many batches."""
        while not self.should_stop:
            await self._commit_due.wait()
            self._commit_due.clear()
            await self._commit()

    async def _commit(self) -> None:
        """Commit each partition up to its last batch whose outputs are all acknowledged."""
        assert self.consumer is not None
        async with self._committing:
            offsets = self._commits.committable()
            if not offsets:
                return
            started = time.monotonic()
            try:
                await self.consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
            except (CommitFailedError, IllegalStateError):
                log.warning("commit refused after a rebalance; the new owner reprocesses those batches (duplicates)")
                return
            self._member_at = max(self._member_at, started)
            self._recommit |= offsets
            self._commits.committed(offsets)
            self.observe("commit", time.monotonic() - started)

    async def _settle(self) -> None:
        """Until every batch in flight is acknowledged or has failed."""
        if self._in_flight:
            await asyncio.wait(self._in_flight)

    async def _replay(self) -> None:
        """After a failed send: the batches in flight settle (what they acknowledged is committed as usual), and each
        partition is read again from its first unacknowledged offset (outputs after it may repeat; none is lost)."""
        assert self.consumer is not None
        async with self._lock:
            await self._settle()
            self._send_failed = False
            self.rewound()
            owned = self.consumer.assignment()
            for tp, offset in self._commits.rewind().items():
                if tp in owned:
                    self.consumer.seek(tp, offset)
        await asyncio.sleep(RETRY_SECONDS)

    async def _revoked(self) -> None:
        """Before partitions go (the caller holds the lock): the batches in flight settle and what they acknowledged
        is committed; batches fetched before the rebalance are dropped, as the new assignment reads from the commits."""
        await self._settle()
        await self._commit()
        self._generation += 1

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: reading restarts from the committed offsets (from the start where one is past an end);
        partitions now elsewhere stop reporting lag. A stage stopping takes on nothing."""
        if self.should_stop:
            return
        log.info("%s stage owns %d partitions of %d topics", self.stage, len(assigned), len(self.topics))
        self._member_at, self._dropped = time.monotonic(), False
        self.metrics.rebalances.labels(self.stage).inc()
        self._commits.forget()
        if self._send_failed:  # the failed batches are read again from the new assignment's commits
            self._send_failed = False
            self.rewound()
        self._generation += 1
        for tp in set(self._done) - assigned:
            del self._done[tp]
            self.metrics.lag.remove(self.stage, tp.topic, str(tp.partition))
        if self.consumer is None:
            await self.assigned(assigned, {})
            return
        # Asked once, all at a time, for the stage, the check of offsets past an end and the lag alike. The check
        # runs beside the stage's own work on the assignment (a restore): neither needs the other's result.
        committed = await committed_offsets(self.consumer, assigned)
        self._recommit = {tp: offset for tp, offset in self._recommit.items() if tp in assigned}
        self._recommit |= {tp: offset for tp, offset in committed.items() if offset is not None}
        await asyncio.gather(
            self.assigned(assigned, committed),
            reset_past_end(self.consumer, committed, self.settings.kafka_options()),
        )
        await self._start_lag({tp: committed[tp] for tp in assigned - set(self._done)})

    async def _start_lag(self, committed: Mapping[TopicPartition, int | None]) -> None:
        """Where each partition new to this worker starts, so its lag shows before its first batch: its committed
        offset, or its first one when nothing is committed."""
        assert self.consumer is not None
        starts = {tp: offset for tp, offset in committed.items() if offset is not None}
        if fresh := [tp for tp, offset in committed.items() if offset is None]:
            try:
                starts |= await self.consumer.beginning_offsets(fresh)
            except KafkaError:  # the broker is away or lost the topics: the lag shows once a batch is done
                return
        self._recommit = starts | self._recommit  # from its start, a partition with nothing committed yet
        self._done |= starts

    @mode.Service.timer(LAG_SECONDS)
    async def _measure_lag(self) -> None:
        """Also between batches: a stalled stage must show its lag growing, not the last value it had."""
        self._report_lag()

    def _report_lag(self) -> None:
        if self.consumer is None:
            return
        for tp, done in self._done.items():
            highwater = self.consumer.highwater(tp)  # from the fetch response: right even where ListOffsets is not
            if highwater is not None:
                self.metrics.lag.labels(self.stage, tp.topic, str(tp.partition)).set(max(0, highwater - done))
