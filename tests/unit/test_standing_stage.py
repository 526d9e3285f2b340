"""The standing stage's stores across its start: what was restored before the assignment and what the assignment
keeps of it."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from rocksdict import DbClosedError

from streams.agents import standing
from streams.agents.standing import StandingStage, _Ahead
from streams.config import DEFAULT_RULES, Settings
from streams.kafka.stage import _CommitBeforeRevoke
from streams.metrics import Metrics
from streams.policy.rules import load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions
from streams.state.restore import Restored
from streams.state.store import Change, Checkpoint, PartitionStore, open_store
from streams.topics import COMMANDS, VIOLATIONS


@functools.cache
def policy() -> tuple[SanctionPolicy, str]:
    pack = load_pack(DEFAULT_RULES)
    return load_sanctions(DEFAULT_RULES / "sanctions.toml", pack.ids()), pack.version


def stage(tmp_path: Path) -> StandingStage:
    settings = Settings(topic_prefix="p.", partitions=3, data_dir=tmp_path)
    return StandingStage(settings, *policy(), Metrics(CollectorRegistry()))


def written(path: Path) -> PartitionStore:
    store = open_store("rocksdb://", path)
    store.write({b"u1": Change(b"restored", None)}, Checkpoint(7, {VIOLATIONS: 5}))
    return store


def inputs(partition: int, violations: int | None, commands: int | None) -> dict[TopicPartition, int | None]:
    return {
        TopicPartition(f"p.{VIOLATIONS}", partition): violations,
        TopicPartition(f"p.{COMMANDS}", partition): commands,
    }


async def test_the_assignment_goes_on_from_what_was_restored_ahead_unless_an_offset_went_back(tmp_path: Path) -> None:
    s = stage(tmp_path)
    kept, went_back, elsewhere = (written(tmp_path / f"users-{p}") for p in range(3))
    ahead = _Ahead(
        stores={("users", 0): kept, ("users", 1): went_back, ("users", 2): elsewhere},
        committed=inputs(0, 5, None) | inputs(1, 5, 2) | inputs(2, 5, None),
    )
    s._ahead = asyncio.ensure_future(asyncio.sleep(0, ahead))
    # Partitions 0 and 1 are assigned here. Partition 0's inputs were committed further meanwhile: what its store
    # holds came from input committed before, so it stands. Partition 1's commands offset went back (an operator
    # reset it): records its store holds may come from input to be read again: restored anew.
    taken = await s._ahead_taken({0, 1}, inputs(0, 9, 4) | inputs(1, 5, 1))
    assert s._stop_ahead.is_set()
    assert set(taken.stores) == {("users", 0), ("users", 1)}
    assert dict(kept.items()) == {b"u1": b"restored"}
    assert kept.checkpoint == Checkpoint(7, {VIOLATIONS: 5})
    assert dict(went_back.items()) == {}
    assert went_back.checkpoint == Checkpoint()
    with pytest.raises(DbClosedError):
        elsewhere.get(b"u1")  # closed: its partition is another worker's
    kept.close()
    went_back.close()


async def test_a_stopped_stage_closes_what_it_restored_ahead(tmp_path: Path) -> None:
    s = stage(tmp_path)
    store = written(tmp_path / "users-0")
    s._ahead = asyncio.ensure_future(asyncio.sleep(0, _Ahead(stores={("users", 0): store})))
    await s.stopped()
    with pytest.raises(DbClosedError):
        store.get(b"u1")


async def test_restoring_ahead_stops_where_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    s = stage(tmp_path)
    s.settings = Settings(bootstrap_servers="127.0.0.1:1", partitions=3, data_dir=tmp_path)
    ahead = await asyncio.wait_for(s._restore_ahead(), 30)
    assert ahead.restored.records == 0  # the stores opened meanwhile are left to the assignment to restore
    assert len(ahead.stores) == 9
    opened = ahead.stores["users", 0]
    s._ahead = asyncio.ensure_future(asyncio.sleep(0, ahead))
    await s._ahead_taken(set(), {})  # none of them is this worker's: all closed
    with pytest.raises(DbClosedError):
        opened.get(b"u1")


async def test_an_assignment_waits_a_while_for_changelogs_the_broker_does_not_have_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker restarted empty comes back before `groupwarden topics create` has run again: the restore waits for
    the changelogs instead of stopping the worker at once."""
    s = stage(tmp_path)
    s.consumer = object()  # type: ignore[assignment]
    changelog = TopicPartition("groupwarden-users-changelog", 0)
    answers = [{changelog.topic: {0}}, {changelog.topic: {0}}, {}]  # missing twice, then created
    restored = Restored(read={changelog: 3})

    async def missing(options: object, partitions: object) -> dict[str, set[int]]:
        return answers.pop(0)

    async def restore(*args: object, **kwargs: object) -> Restored:
        return restored

    def kill(pid: int, signum: int) -> None:
        raise AssertionError("the worker was stopped")

    monkeypatch.setattr(standing, "missing_partitions", missing)
    monkeypatch.setattr(standing, "restore", restore)
    monkeypatch.setattr(standing, "_RETRY_SECONDS", 0.01)
    monkeypatch.setattr(standing.os, "kill", kill)
    store = open_store("memory://", tmp_path / "users-0")
    assert await s._restore(set(), {changelog: store}, {}) is restored
    assert answers == []
    assert "waiting 20 s for them" in caplog.text
    assert "CRITICAL" not in caplog.text


class _JoiningConsumer:
    """A consumer whose group join completes while it stops: as aiokafka's, its stop waits for the rebalance
    listener."""

    def __init__(self, listener: _CommitBeforeRevoke) -> None:
        self.listener = listener

    async def stop(self) -> None:
        await self.listener.on_partitions_assigned({TopicPartition(f"p.{VIOLATIONS}", 0)})


async def test_a_stage_stopped_while_its_group_join_completes_stops_at_once_and_takes_nothing_on(
    tmp_path: Path,
) -> None:
    """A worker stopped in its first seconds: the join's end must not wait for the stop, nor the stop for it (the
    worker would wait for its stop deadline), and the stage restores nothing for an assignment it will not read."""
    s = stage(tmp_path)
    s.consumer = _JoiningConsumer(_CommitBeforeRevoke(s._lock, s._assigned, s._revoked))  # type: ignore[assignment]
    await asyncio.wait_for(s.stop(), 2.0)
    assert s._owned == {}
