"""How long each stage lets the broker hold a fetch that finds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.agents.classify import ClassifyStage
from streams.agents.standing import StandingStage
from streams.config import DEFAULT_RULES, Settings
from streams.kafka import stage
from streams.kafka.stage import BatchedStage
from streams.metrics import Metrics
from streams.policy.rules import load_pack
from streams.policy.sanctions import load_sanctions


class _Client:
    made: list[dict[str, Any]]

    def __init__(self, **options: Any) -> None:
        self.made.append(options)

    async def start(self) -> None:
        pass

    def subscribe(self, *_: Any, **__: Any) -> None:
        pass


async def fetch_wait_of(made: BatchedStage, monkeypatch: pytest.MonkeyPatch) -> int:
    consumers: list[dict[str, Any]] = []
    monkeypatch.setattr(stage, "AIOKafkaConsumer", type("Consumer", (_Client,), {"made": consumers}))
    monkeypatch.setattr(stage, "AIOKafkaProducer", type("Producer", (_Client,), {"made": []}))
    await BatchedStage.on_start(made)  # the loop's own start-up: its consumer and producer
    [options] = consumers
    wait: int = options["fetch_max_wait_ms"]
    return wait


async def test_the_standing_stage_lets_the_broker_hold_its_empty_fetches_longer_than_the_classify_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The classify stage's empty fetches are held briefly, as a verdict waits for them under light traffic; the
    # standing stage reads six topics of the same partitions, whose empty fetches every few milliseconds cost an idle
    # worker a third of its CPU.
    settings = Settings(data_dir=tmp_path)
    pack = load_pack(DEFAULT_RULES)
    policy = load_sanctions(DEFAULT_RULES / "sanctions.toml", pack.ids())
    classify = ClassifyStage(settings, metrics=Metrics(CollectorRegistry()))
    standing = StandingStage(settings, policy, pack.version, Metrics(CollectorRegistry()))
    assert await fetch_wait_of(classify, monkeypatch) == stage.FETCH_WAIT_MS
    assert await fetch_wait_of(standing, monkeypatch) >= 10 * stage.FETCH_WAIT_MS
