"""In-order commits for a consumer that works on the next batch while earlier ones are still being acknowledged.

Batches are tracked in the order they were read. Their outputs may be acknowledged in any order, but a partition's
committed offset only ever moves to the end of its longest run of acknowledged batches from the front, so it never
passes a batch whose outputs the broker has not confirmed: a crash, or a failed send, replays from the first
unacknowledged offset (duplicates possible, nothing lost).

Pure bookkeeping, no I/O: the caller reads, sends, commits and seeks. Partitions may be any hashable value (aiokafka's
``TopicPartition`` in the stages).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class Batch(Generic[P]):
    """One batch read: per partition, its offsets as (first, last + 1)."""

    __slots__ = ("acknowledged", "spans")

    def __init__(self, spans: Mapping[P, tuple[int, int]]) -> None:
        self.spans = dict(spans)
        self.acknowledged = False

    def __repr__(self) -> str:
        state = "acknowledged" if self.acknowledged else "pending"
        return f"Batch({self.spans}, {state})"


class InOrderCommits(Generic[P]):
    """Which offsets may be committed, per partition, while batches are acknowledged out of order."""

    def __init__(self) -> None:
        # Per partition, the batches not yet released, oldest first; the front one is never acknowledged.
        self._pending: dict[P, deque[Batch[P]]] = {}
        self._released: dict[P, int] = {}  # end of the acknowledged run from the front
        self._committed: dict[P, int] = {}

    def track(self, spans: Mapping[P, tuple[int, int]]) -> Batch[P]:
        """A batch just read, with its (first, last + 1) offsets per partition; call in the order batches are read."""
        batch = Batch(spans)
        for partition, (first, end) in batch.spans.items():
            if end <= first:
                raise ValueError(f"an empty span {first}..{end} for {partition!r}")
            self._pending.setdefault(partition, deque()).append(batch)
        return batch

    def acknowledge(self, batch: Batch[P]) -> None:
        """Every output of the batch is acknowledged; a batch already forgotten or rewound changes nothing."""
        batch.acknowledged = True
        for partition in batch.spans:
            queue = self._pending.get(partition)
            while queue and queue[0].acknowledged:
                end = queue.popleft().spans[partition][1]
                self._released[partition] = max(end, self._released.get(partition, end))

    def committable(self) -> dict[P, int]:
        """The offset to commit for each partition that has moved on since its last commit."""
        return {p: end for p, end in self._released.items() if end > self._committed.get(p, -1)}

    def committed(self, offsets: Mapping[P, int]) -> None:
        """These offsets (from ``committable``) are committed; partitions forgotten meanwhile are left out."""
        for partition, offset in offsets.items():
            if partition in self._released:
                self._committed[partition] = max(offset, self._committed.get(partition, offset))

    def rewind(self) -> dict[P, int]:
        """After a failed send: the first unacknowledged offset of every partition that has one, where reading must
        start again. Those batches, and the ones after them on the same partitions, are dropped; what was released
        before them stays committable."""
        seeks = {partition: queue[0].spans[partition][0] for partition, queue in self._pending.items() if queue}
        self._pending.clear()
        return seeks

    def forget(self, partitions: Iterable[P] | None = None) -> None:
        """Drop everything known of these partitions (all: None), as after a rebalance."""
        if partitions is None:
            self._pending.clear()
            self._released.clear()
            self._committed.clear()
            return
        for partition in partitions:
            self._pending.pop(partition, None)
            self._released.pop(partition, None)
            self._committed.pop(partition, None)
