"""A worker killed with SIGKILL mid-stream loses nothing: its successor resumes from the last committed batch."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from streams.topics import VERDICTS
from tests.integration.conftest import chat_message, produce, read_until

pytestmark = pytest.mark.integration

TOTAL = 40_000


async def test_sigkill_mid_stream_loses_no_verdict(settings, start_worker):
    first = start_worker()

    async def publish() -> None:
        for start in range(0, TOTAL, 2000):  # ~10k messages/s, spread over a few seconds
            await produce(settings, [chat_message(n) for n in range(start, start + 2000)])
            await asyncio.sleep(0.2)

    publishing = asyncio.create_task(publish())
    seen = await read_until(settings, VERDICTS, until=lambda records: len(records) >= TOTAL // 8)
    first.kill()
    killed_at = len(seen)
    await publishing
    assert killed_at < TOTAL, "the worker finished before it was killed: the test proves nothing"

    second = start_worker()
    started = time.monotonic()
    expected = {f"m{n}" for n in range(TOTAL)}

    def complete(records) -> bool:
        return expected <= {orjson.loads(r.value)["message_id"] for r in records}

    verdicts = await read_until(settings, VERDICTS, until=complete, wait_seconds=120)
    ids = [orjson.loads(r.value)["message_id"] for r in verdicts]
    assert set(ids) == expected  # nothing lost, nothing invented; duplicates (same id) are allowed
    assert second.alive()
    took = time.monotonic() - started
    print(f"killed after {killed_at} verdicts; {len(ids) - TOTAL} duplicates; recovered in {took:.1f} s")
