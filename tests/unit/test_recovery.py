"""Seek before resume: after a rebalance, input partitions stay paused until they sit at their committed offsets.

Faust 0.15's own recovery resumes them first, and records fetched before the seek are dropped yet committed (the
kill -9 losses). The first test pins that upstream order, so the day Faust fixes it this override can go.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.state.recovery import exact_table_manager

INPUT = TP("chat.messages.v1", 0)


class FakeConsumer:
    """Records the order of seek and resume, as the fetcher would see it."""

    def __init__(self, calls: list[str], committed: int | None = 42) -> None:
        self.calls = calls
        self._gap: dict[TP, str] = {INPUT: "noted before the seek"}
        self._committed_offset: dict[TP, int | None] = {} if committed is None else {INPUT: committed or None}

    def assignment(self) -> set[TP]:
        return {INPUT}

    async def perform_seek(self) -> None:
        self.calls.append("seek started")
        await asyncio.sleep(0.01)  # a real seek waits on the broker; the fetcher runs meanwhile
        self.calls.append("seek done")

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 7)  # what retention has left

    async def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(f"seek {tp.partition} to {offset}")

    def resume_partitions(self, tps: set[TP]) -> None:
        self.calls.append(f"resume {sorted(tp.partition for tp in tps)} (stale gap: {INPUT in self._gap})")

    def resume_flow(self) -> None:
        self.calls.append("resume flow")


def recovery_with(calls: list[str], *, exact: bool, committed: int | None = 42) -> Recovery:
    options: dict[str, Any] = {"broker": "kafka://localhost:1", "web_enabled": False}
    if exact:
        options["TableManager"] = exact_table_manager({})
    app = faust.App(f"recovery-{exact}", **options)
    app.consumer = FakeConsumer(calls, committed)  # type: ignore[assignment]

    async def no_fetcher() -> None:
        return None

    app.__dict__["_fetcher"] = SimpleNamespace(maybe_start=no_fetcher)  # Faust caches it there
    return app.tables.recovery


@pytest.mark.parametrize("path", ["_resume_streams", "on_recovery_completed"])
async def test_faust_alone_resumes_input_before_seeking(path: str) -> None:
    calls: list[str] = []
    recovery = recovery_with(calls, exact=False)
    assert type(recovery) is Recovery
    await getattr(recovery, path)(generation_id=recovery.app.consumer_generation_id)
    assert calls.index("resume [0] (stale gap: True)") < calls.index("seek done")


@pytest.mark.parametrize("path", ["_resume_streams", "on_recovery_completed"])
async def test_exact_recovery_seeks_first_and_forgets_stale_gaps(path: str) -> None:
    calls: list[str] = []
    recovery = recovery_with(calls, exact=True)
    await getattr(recovery, path)(generation_id=recovery.app.consumer_generation_id)
    assert calls == ["seek started", "seek done", "resume [0] (stale gap: False)", "resume flow"]
    assert recovery.completed.is_set()


async def test_exact_recovery_stops_when_a_new_rebalance_began() -> None:
    calls: list[str] = []
    recovery = recovery_with(calls, exact=True)
    await recovery._resume_streams(generation_id=recovery.app.consumer_generation_id + 1)
    assert calls == []
    assert not recovery.completed.is_set()


@pytest.mark.parametrize("committed", [None, 0])
async def test_a_partition_with_nothing_committed_goes_back_to_its_earliest_offset(committed: int | None) -> None:
    """Faust drops what was fetched for a paused partition, and its seek to committed skips one with no commit: a
    new group's first records would be lost. The earliest offset, the app's offset reset, is where it resumes."""
    calls: list[str] = []
    recovery = recovery_with(calls, exact=True, committed=committed)
    await recovery.on_recovery_completed(generation_id=recovery.app.consumer_generation_id)
    assert calls == ["seek started", "seek done", "seek 0 to 7", "resume [0] (stale gap: False)", "resume flow"]
