"""Committed offsets past a partition's end (a broker restarted empty) are read from the start, with a warning."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.kafka import offsets

A, B, C = (TopicPartition("chat.messages.v1", n) for n in range(3))


class Consumer:
    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self._committed = committed
        self.rewound: list[TopicPartition] = []

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed[tp]

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.rewound.extend(partitions)


def test_only_offsets_past_the_end_count() -> None:
    assert offsets.past_end({A: 5, B: 7, C: 0}, {A: 5, B: 3, C: 0}) == {B: 7}


async def test_partitions_committed_past_their_ends_are_read_from_the_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def true_ends(options: Mapping[str, Any], partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        assert options == {"bootstrap_servers": "b:9092"}
        return {tp: {A: 120, B: 0}[tp] for tp in partitions}

    monkeypatch.setattr(offsets, "true_end_offsets", true_ends)
    consumer = Consumer({A: 100, B: 2400, C: None})  # B: the broker lost its records; C: nothing committed
    with caplog.at_level(logging.WARNING):
        committed = await offsets.committed_offsets(consumer, [A, B, C])  # type: ignore[arg-type]
        reset = await offsets.reset_past_end(consumer, committed, {"bootstrap_servers": "b:9092"})  # type: ignore[arg-type]
    assert reset == {B}
    assert consumer.rewound == [B]
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith(
        "chat.messages.v1 partition 1: committed offset 2400 is past the partition's end 0"
    )


async def test_nothing_committed_asks_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    async def true_ends(*_: Any) -> dict[TopicPartition, int]:
        raise AssertionError("no end offsets are needed")

    monkeypatch.setattr(offsets, "true_end_offsets", true_ends)
    consumer = Consumer({A: None})
    assert await offsets.reset_past_end(consumer, {A: None}, {}) == set()  # type: ignore[arg-type]
