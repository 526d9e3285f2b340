"""In-order commit bookkeeping: acknowledgements in any order never commit past an unacknowledged batch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streams.kafka.commits import Batch, InOrderCommits

PARTITIONS = ("p0", "p1", "p2")


def test_an_acknowledgement_ahead_of_an_earlier_batch_waits_for_it():
    commits: InOrderCommits[str] = InOrderCommits()
    first = commits.track({"p0": (0, 10)})
    second = commits.track({"p0": (10, 20)})
    third = commits.track({"p0": (20, 30)})
    commits.acknowledge(third)
    commits.acknowledge(second)
    assert commits.committable() == {}
    commits.acknowledge(first)
    assert commits.committable() == {"p0": 30}


def test_a_batch_over_several_partitions_holds_each_of_them():
    commits: InOrderCommits[str] = InOrderCommits()
    both = commits.track({"p0": (0, 5), "p1": (0, 7)})
    later = commits.track({"p1": (7, 9)})
    other = commits.track({"p2": (3, 4)})
    commits.acknowledge(later)
    commits.acknowledge(other)
    assert commits.committable() == {"p2": 4}  # p1 waits for the batch it shares with p0
    commits.acknowledge(both)
    assert commits.committable() == {"p0": 5, "p1": 9, "p2": 4}


def test_committed_offsets_are_not_offered_again():
    commits: InOrderCommits[str] = InOrderCommits()
    commits.acknowledge(commits.track({"p0": (0, 10), "p1": (0, 3)}))
    offered = commits.committable()
    commits.acknowledge(commits.track({"p0": (10, 12)}))  # acknowledged while the commit was in flight
    commits.committed(offered)
    assert commits.committable() == {"p0": 12}
    commits.committed({"p0": 12})
    assert commits.committable() == {}


def test_rewind_gives_the_first_unacknowledged_offsets_and_keeps_what_was_released():
    commits: InOrderCommits[str] = InOrderCommits()
    commits.acknowledge(commits.track({"p0": (0, 10), "p1": (0, 10)}))
    failed = commits.track({"p0": (10, 20)})
    after = commits.track({"p0": (20, 30), "p1": (10, 20)})
    commits.acknowledge(after)  # sent fine, but behind the failed one on p0
    assert commits.rewind() == {"p0": 10}
    assert commits.committable() == {"p0": 10, "p1": 20}
    commits.acknowledge(failed)  # a late answer for a dropped batch changes nothing
    assert commits.committable() == {"p0": 10, "p1": 20}
    assert commits.rewind() == {}


def test_forgotten_partitions_commit_nothing_more():
    commits: InOrderCommits[str] = InOrderCommits()
    batch = commits.track({"p0": (0, 10), "p1": (0, 10)})
    commits.acknowledge(commits.track({"p1": (10, 11)}))
    commits.forget(["p1"])
    commits.acknowledge(batch)
    assert commits.committable() == {"p0": 10}
    commits.forget()
    assert commits.committable() == {}
    commits.committed({"p0": 10})  # a commit that was in flight across the rebalance
    assert commits.committable() == {}
    commits.acknowledge(commits.track({"p0": (5, 8)}))  # read again from the committed offset
    assert commits.committable() == {"p0": 8}


def test_an_empty_span_is_refused():
    with pytest.raises(ValueError, match="empty span"):
        InOrderCommits[str]().track({"p0": (4, 4)})


@st.composite
def batches_and_ack_order(draw: st.DrawFn) -> tuple[list[dict[str, tuple[int, int]]], list[int]]:
    """Batches read one after another from up to three partitions, and an order their acknowledgements arrive in."""
    ends = dict.fromkeys(PARTITIONS, 0)
    batches = []
    for _ in range(draw(st.integers(1, 12))):
        sizes = draw(st.dictionaries(st.sampled_from(PARTITIONS), st.integers(1, 50), min_size=1))
        spans = {p: (ends[p], ends[p] + size) for p, size in sizes.items()}
        ends |= {p: end for p, (_, end) in spans.items()}
        batches.append(spans)
    order = draw(st.permutations(range(len(batches))))
    return batches, list(order)


@settings(max_examples=300, deadline=None)
@given(batches_and_ack_order())
def test_out_of_order_acknowledgements_never_commit_past_an_unacknowledged_batch(case):
    spans, order = case
    commits: InOrderCommits[str] = InOrderCommits()
    tracked = [commits.track(s) for s in spans]
    acknowledged: set[int] = set()
    committed: dict[str, int] = {}
    for n in order:
        commits.acknowledge(tracked[n])
        acknowledged.add(n)
        offered = commits.committable()
        committed |= offered
        for partition in PARTITIONS:
            on_it = [i for i, s in enumerate(spans) if partition in s]
            run = 0  # batches acknowledged from the front of this partition
            while run < len(on_it) and on_it[run] in acknowledged:
                run += 1
            if run == 0:
                assert partition not in committed
                continue
            assert committed[partition] == spans[on_it[run - 1]][partition][1]
            if run < len(on_it):  # the first unacknowledged batch on the partition bounds the commit
                assert committed[partition] <= spans[on_it[run]][partition][0]
        commits.committed(offered)
    assert commits.committable() == {}
    assert commits.rewind() == {}


class ConsumerLoop(RuleBasedStateMachine):
    """A consumer reading batches, sending their outputs, committing, failing sends, replaying and crashing, in any
    interleaving: whatever is committed was acknowledged (nothing is lost), and a commit never passes a pending
    batch."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: InOrderCommits[str] = InOrderCommits()
        self.position = dict.fromkeys(PARTITIONS, 0)  # the consumer's next offset to read
        self.broker_committed = dict.fromkeys(PARTITIONS, 0)
        self.in_flight: list[Batch[str]] = []
        self.dropped: list[Batch[str]] = []  # rewound or forgotten while their sends were still out
        self.delivered: dict[str, set[int]] = {p: set() for p in PARTITIONS}  # offsets whose outputs were acked
        self.failed = False

    @rule(sizes=st.dictionaries(st.sampled_from(PARTITIONS), st.integers(1, 20), min_size=1))
    def read(self, sizes: dict[str, int]) -> None:
        spans = {p: (self.position[p], self.position[p] + size) for p, size in sizes.items()}
        self.position |= {p: end for p, (_, end) in spans.items()}
        self.in_flight.append(self.commits.track(spans))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        batch = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        for partition, (first, end) in batch.spans.items():
            self.delivered[partition].update(range(first, end))
        self.commits.acknowledge(batch)

    @precondition(lambda self: self.dropped)
    @rule(data=st.data())
    def late_acknowledgement(self, data: st.DataObject) -> None:
        batch = self.dropped.pop(data.draw(st.integers(0, len(self.dropped) - 1)))
        for partition, (first, end) in batch.spans.items():
            self.delivered[partition].update(range(first, end))
        self.commits.acknowledge(batch)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def send_fails(self, data: st.DataObject) -> None:
        self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        self.failed = True

    @precondition(lambda self: self.failed)
    @rule()
    def replay(self) -> None:
        self.position |= self.commits.rewind()
        self.dropped += self.in_flight
        self.in_flight = []
        self.failed = False

    @rule()
    def commit(self) -> None:
        offered = self.commits.committable()
        self.broker_committed |= offered
        self.commits.committed(offered)

    @rule()
    def crash_or_rebalance(self) -> None:
        self.commits.forget()
        self.position = dict(self.broker_committed)
        self.dropped += self.in_flight
        self.in_flight = []
        self.failed = False

    @invariant()
    def nothing_committed_was_left_unacknowledged(self) -> None:
        for partition, committed in self.broker_committed.items():
            assert set(range(committed)) <= self.delivered[partition]

    @invariant()
    def no_commit_passes_a_pending_batch(self) -> None:
        offered = self.commits.committable()
        for batch in self.in_flight:
            for partition, (first, _) in batch.spans.items():
                assert offered.get(partition, first) <= first

    @invariant()
    def every_offset_read_is_pending_or_delivered(self) -> None:
        """Nothing is skipped: below the read position, an offset is delivered or in a batch still out."""
        out = {p: set[int]() for p in PARTITIONS}
        for batch in self.in_flight:
            for partition, (first, end) in batch.spans.items():
                out[partition].update(range(first, end))
        if self.failed:  # the failed batch's offsets are read again at the replay
            return
        for partition, position in self.position.items():
            assert set(range(position)) <= self.delivered[partition] | out[partition]


TestConsumerLoop = ConsumerLoop.TestCase
TestConsumerLoop.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
