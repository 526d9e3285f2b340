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

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self._gap: dict[TP, str] = {INPUT: "noted before the seek"}

    def assignment(self) -> set[TP]:
        return {INPUT}

    async def perform_seek(self) -> None:
        self.calls.append("seek started")
        await asyncio.sleep(0.01)  # a real seek waits on the broker; the fetcher runs meanwhile
        self.calls.append("seek done")

    def resume_partitions(self, tps: set[TP]) -> None:
        self.calls.append(f"resume {sorted(tp.partition for tp in tps)} (stale gap: {INPUT in self._gap})")

    def resume_flow(self) -> None:
        self.calls.append("resume flow")


def recovery_with(calls: list[str], *, exact: bool) -> Recovery:
    options: dict[str, Any] = {"broker": "kafka://localhost:1", "web_enabled": False}
    if exact:
        options["TableManager"] = exact_table_manager({})
    app = faust.App(f"recovery-{exact}", **options)
    app.consumer = FakeConsumer(calls)  # type: ignore[assignment]

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
