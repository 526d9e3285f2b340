"""The classify stage's pipelined loop against a scripted consumer and a broker whose acknowledgements the test gives:
the next batch is judged while earlier ones wait, commits follow the read order, a failed send replays and a
revocation commits what was acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from conftest import header, write_pack
from mode.services import ServiceTask
from prometheus_client import CollectorRegistry

from streams.agents import classify
from streams.agents.classify import ClassifyStage
from streams.config import Settings
from streams.kafka import stage as batched
from streams.kafka.produce import OutRecord
from streams.metrics import CLASSIFY_STEPS, Metrics
from streams.policy.classify import Classifier
from streams.policy.rules import load_pack
from streams.topics import MESSAGES

TOPIC = Settings().topic(MESSAGES)
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def fetched(**spans: tuple[int, int]) -> Fetched:
    """Records of partitions p0/p1 with offsets first..end-1, as ``getmany`` returns them."""
    out: Fetched = {}
    for name, (first, end) in spans.items():
        tp = P0 if name == "p0" else P1
        out[tp] = [record(tp, offset) for offset in range(first, end)]
    return out


def record(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    doc = {"message_id": f"{tp.partition}-{offset}", "group_id": "g1", "sender_id": "u1", "sent_at": 1, "text": "好的"}
    value = orjson.dumps(doc)
    return ConsumerRecord(tp.topic, tp.partition, offset, 1, 0, b"g1", value, None, 2, len(value), [])


class Consumer:
    """Hands out the batches the test queues; remembers commits and seeks; like aiokafka's, it refuses to commit or
    report on a partition it does not own."""

    def __init__(self) -> None:
        self.owned = {P0, P1}
        self.queued: asyncio.Queue[Fetched] = asyncio.Queue()
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.asked: list[TopicPartition] = []  # partitions whose committed offset was asked for
        self.refuse = False  # the group has dropped this member: commits are refused

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Fetched:
        if not self.queued.empty():  # as aiokafka's: records already fetched are returned without yielding
            return self.queued.get_nowait()
        try:
            return await asyncio.wait_for(self.queued.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if set(offsets) - self.owned:
            raise IllegalStateError(f"not assigned: {set(offsets) - self.owned}")
        if self.refuse:
            raise CommitFailedError("the group has rebalanced")
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def committed_offsets(self) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for commit in self.commits:
            out |= commit
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def committed(self, tp: TopicPartition) -> int | None:
        """What the offset check after an assignment asks; none here, so it asks the broker for no end (its own
        tests, in test_offsets.py and tests/integration/test_faults.py, cover offsets past an end)."""
        self.asked.append(tp)
        return None

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp in self.owned, "Partition is not assigned"
        return None


class Broker:
    """Stands in for send_batched: each call waits until the test acknowledges (or fails) it."""

    def __init__(self) -> None:
        self.sends: list[tuple[list[OutRecord], asyncio.Future[None]]] = []

    async def send_batched(self, producer: object, records: Any) -> int:
        out = list(records)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sends.append((out, answer))
        await answer
        return len(out)

    async def send_batched_ends(
        self, producer: object, records: Any, in_order: object = None
    ) -> dict[tuple[str, int], tuple[int, int]]:
        await self.send_batched(producer, records)
        return {}

    def ids(self, n: int) -> list[str]:
        return [orjson.loads(r.value or b"")["message_id"] for r in self.sends[n][0]]

    def ack(self, n: int) -> None:
        self.sends[n][1].set_result(None)

    def fail(self, n: int) -> None:
        self.sends[n][1].set_exception(KafkaError("broker refused"))


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)
    assert check(), what


@pytest.fixture
def classifier(tmp_path: Path) -> Classifier:
    return Classifier(load_pack(write_pack(tmp_path / "rules", {"scam": header("scam") + "\nrule r\n  刷单返利\n"})))


@pytest.fixture
def running(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A stage with its consume and commit loops running on the fakes: (stage, consumer, broker, start)."""
    broker = Broker()
    monkeypatch.setattr(classify, "send_batched", broker.send_batched)
    monkeypatch.setattr(classify, "send_batched_ends", broker.send_batched_ends)
    monkeypatch.setattr(batched, "RETRY_SECONDS", 0.0)
    stage = ClassifyStage(Settings(), classifier, Metrics(CollectorRegistry()))
    consumer = Consumer()
    stage.consumer = consumer  # type: ignore[assignment]
    stage.producer = object()  # type: ignore[assignment]
    tasks: list[asyncio.Task[Any]] = []

    def start() -> None:
        # Every background loop of the stage but those that need a real broker.
        for cls in ClassifyStage.__mro__:
            for name, task in vars(cls).items():
                if isinstance(task, ServiceTask) and name not in ("_follow_campaigns", "_measure_lag"):
                    tasks.append(asyncio.ensure_future(task(stage)))

    yield stage, consumer, broker, start
    for task in tasks:
        task.cancel()


async def test_the_next_batch_is_judged_while_the_previous_one_waits_for_its_acknowledgement(running):
    _, consumer, broker, start = running
    start()
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    consumer.queued.put_nowait(fetched(p0=(2, 4)))
    await until(lambda: len(broker.sends) == 2, "the second batch is sent before the first is acknowledged")
    assert broker.ids(0) == ["0-0", "0-1"]
    assert broker.ids(1) == ["0-2", "0-3"]
    assert consumer.commits == []


async def test_a_batch_is_handed_to_the_producer_before_the_next_one_is_judged(running, monkeypatch):
    stage, consumer, broker, start = running
    sent_before: list[int] = []  # per batch judged, how many batches had been handed to the producer
    judge = stage.decide

    def decide(records: Any) -> Any:
        sent_before.append(len(broker.sends))
        return judge(records)

    monkeypatch.setattr(stage, "decide", decide)
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    consumer.queued.put_nowait(fetched(p0=(2, 4)))
    start()
    await until(lambda: len(broker.sends) == 2, "both batches sent")
    assert sent_before == [0, 1]  # judging holds the event loop: the first batch's outputs left before it


async def test_acknowledgements_out_of_order_commit_only_up_to_the_first_batch_still_waiting(running, monkeypatch):
    _, consumer, broker, start = running
    monkeypatch.setattr(batched, "PIPELINE_DEPTH", 3)
    start()
    for batch in (fetched(p0=(0, 2), p1=(0, 1)), fetched(p0=(2, 4)), fetched(p1=(1, 3))):
        consumer.queued.put_nowait(batch)
    await until(lambda: len(broker.sends) == 3, "three batches in flight")
    broker.ack(2)
    broker.ack(1)
    await asyncio.sleep(0.05)
    assert consumer.committed_offsets() == {}  # both wait behind the first batch, which spans p0 and p1
    broker.ack(0)
    await until(lambda: consumer.committed_offsets() == {P0: 4, P1: 3}, "everything committed once all are acked")
    for commit in consumer.commits:
        assert all(offset <= {P0: 4, P1: 3}[tp] for tp, offset in commit.items())


async def test_the_pipeline_holds_at_most_its_depth_of_unacknowledged_batches(running):
    _, consumer, broker, start = running
    start()
    for n in range(batched.PIPELINE_DEPTH + 2):
        consumer.queued.put_nowait(fetched(p0=(n, n + 1)))
    await until(lambda: len(broker.sends) == batched.PIPELINE_DEPTH, "a full pipeline")
    await asyncio.sleep(0.05)
    assert len(broker.sends) == batched.PIPELINE_DEPTH
    assert consumer.queued.qsize() == 2  # not even fetched: records wait at the broker and make the next batch larger
    broker.ack(0)
    await until(lambda: len(broker.sends) == batched.PIPELINE_DEPTH + 1, "one more once one is acknowledged")


async def test_a_failed_send_replays_from_the_first_unacknowledged_offset_and_commits_what_was_acknowledged(running):
    _, consumer, broker, start = running
    start()
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    consumer.queued.put_nowait(fetched(p0=(2, 4), p1=(0, 2)))
    await until(lambda: len(broker.sends) == 2, "two batches in flight")
    broker.ack(1)
    broker.fail(0)
    await until(lambda: bool(consumer.seeks), "a seek back")
    assert consumer.seeks == [(P0, 0)]  # p1's records were acknowledged: only p0 is read again
    await until(lambda: consumer.committed_offsets() == {P1: 2}, "p1 committed")
    consumer.queued.put_nowait(fetched(p0=(0, 4)))  # read again after the seek
    await until(lambda: len(broker.sends) == 3, "the replay is sent")
    broker.ack(2)
    await until(lambda: consumer.committed_offsets() == {P0: 4, P1: 2}, "p0 committed after the replay")


async def test_a_revocation_waits_for_the_batches_in_flight_commits_them_and_drops_what_was_fetched_before(running):
    stage, consumer, broker, start = running
    start()
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    consumer.queued.put_nowait(fetched(p1=(0, 3)))
    await until(lambda: len(broker.sends) == 2, "two batches in flight")
    listener = batched._CommitBeforeRevoke(stage._lock, stage._assigned, stage._revoked)
    revoking = asyncio.ensure_future(listener.on_partitions_revoked({P0, P1}))
    consumer.queued.put_nowait(fetched(p0=(2, 5)))  # fetched while the revocation waits: stale once it is done
    await asyncio.sleep(0.05)
    assert not revoking.done()
    broker.ack(1)
    await asyncio.sleep(0.05)
    assert not revoking.done()
    broker.ack(0)
    await asyncio.wait_for(revoking, 5)
    assert consumer.committed_offsets() == {P0: 2, P1: 3}  # committed before the partitions go
    await asyncio.sleep(0.05)
    assert len(broker.sends) == 2  # the batch fetched before the rebalance was not judged

    consumer.queued.put_nowait(fetched(p1=(3, 4)))  # read after the revocation, before the new assignment
    await until(lambda: len(broker.sends) == 3, "judged: it was read after the revocation")
    consumer.owned = {P0}
    await listener.on_partitions_assigned({P0})
    broker.ack(2)  # acknowledged once p1 is elsewhere: nothing to commit or report for it
    consumer.queued.put_nowait(fetched(p0=(2, 5)))  # the new assignment reads from the committed offset
    await until(lambda: len(broker.sends) == 4, "the new assignment's first batch")
    broker.ack(3)
    await until(lambda: consumer.committed_offsets()[P0] == 5, "committed under the new assignment")
    assert consumer.committed_offsets()[P1] == 3


async def test_each_step_of_a_batch_is_timed(running):
    stage, consumer, broker, start = running
    start()
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    await until(lambda: len(broker.sends) == 1, "one batch sent")
    broker.ack(0)
    await until(lambda: bool(consumer.commits), "committed")
    await asyncio.sleep(0.01)
    counts = {
        step: stage.metrics.registry.get_sample_value("groupwarden_classify_stage_seconds_count", {"step": step})
        for step in CLASSIFY_STEPS
    }
    assert counts == {"fetch_wait": 1, "judge": 1, "acknowledge": 1, "commit": 1}


def test_a_violation_names_the_categories_that_blocked_its_message_not_those_only_reviewed() -> None:
    def match(rule_id: str, severity: str) -> dict[str, Any]:
        return {"rule_id": rule_id, "category": rule_id.partition(".")[0], "severity": severity}

    verdict = {
        "message_id": "m1",
        "sender_id": "u1",
        "group_id": "g1",
        "classified_at_ms": 1,
        "decision": "block",
        "categories": ("false_advertising", "scam"),
        "severity": "critical",
        "matches": (match("false_advertising.riches", "critical"), match("scam.task-rebate", "high")),
        "scores": (
            {"category": "false_advertising", "decision": "review"},
            {"category": "scam", "decision": "block"},
        ),
        "signals": ({"kind": "link", "domain": "a.example"},),
        "rules_version": "v",
    }
    violation = classify.violation_of(verdict)
    assert (violation["categories"], violation["rule_ids"], violation["severity"]) == (
        ("scam",),
        ["scam.task-rebate"],
        "high",
    )


async def test_an_assignment_asks_each_committed_offset_once_for_the_stage_the_end_check_and_the_lag(running):
    stage, consumer, _, _ = running
    handed: list[dict[TopicPartition, int | None]] = []

    async def assigned(
        partitions: set[TopicPartition], committed: dict[TopicPartition, int | None] | None = None
    ) -> None:
        handed.append(dict(committed or {}))

    stage.assigned = assigned
    listener = batched._CommitBeforeRevoke(stage._lock, stage._assigned, stage._revoked)
    await listener.on_partitions_assigned({P0, P1})
    assert sorted(consumer.asked) == [P0, P1]
    assert handed == [{P0: None, P1: None}]
    assert stage._done == {P0: 0, P1: 0}  # the lag starts from the first offsets, nothing being committed


async def test_a_batch_read_soon_after_an_assignment_or_a_commit_is_judged_without_asking_the_group(running):
    stage, consumer, broker, start = running
    listener = batched._CommitBeforeRevoke(stage._lock, stage._assigned, stage._revoked)
    await listener.on_partitions_assigned({P0, P1})
    start()
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    await until(lambda: len(broker.sends) == 1, "judged")
    assert consumer.commits == []


async def test_a_worker_the_group_dropped_while_it_stalled_judges_nothing_until_it_is_assigned_again(
    running, monkeypatch
):
    stage, consumer, broker, start = running
    monkeypatch.setattr(batched, "MEMBERSHIP_SECONDS", 0.0)  # as after a stall: every batch must show membership
    listener = batched._CommitBeforeRevoke(stage._lock, stage._assigned, stage._revoked)
    await listener.on_partitions_assigned({P0, P1})
    start()
    consumer.queued.put_nowait(fetched(p0=(0, 2)))
    await until(lambda: len(broker.sends) == 1, "judged once the group accepted the worker")
    assert consumer.commits[0] in ({P0: 0}, {P1: 0})  # an offset committed already (the start): nothing moves
    broker.ack(0)
    await until(lambda: consumer.committed_offsets().get(P0) == 2, "committed")

    consumer.refuse = True  # the broker dropped the member and handed its partitions on
    consumer.queued.put_nowait(fetched(p0=(2, 4)))
    await until(lambda: (P0, 2) in consumer.seeks, "read again from its first offset")
    consumer.queued.put_nowait(fetched(p1=(0, 1)))
    await until(lambda: (P1, 0) in consumer.seeks, "nothing is judged while dropped")
    assert len(broker.sends) == 1
    assert consumer.committed_offsets()[P0] == 2

    consumer.refuse = False
    await listener.on_partitions_revoked({P0, P1})
    await listener.on_partitions_assigned({P0, P1})  # the worker rejoined
    consumer.queued.put_nowait(fetched(p0=(2, 4)))
    await until(lambda: len(broker.sends) == 2, "judged under the new assignment")
    assert broker.ids(1) == ["0-2", "0-3"]
