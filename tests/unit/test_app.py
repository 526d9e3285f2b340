"""The Faust app's wiring (streams/app.py)."""

from __future__ import annotations

import gc
import logging

import faust
import pytest

import streams.app
from streams.agents.classify import ClassifyStage
from streams.agents.standing import StandingStage
from streams.config import Settings
from streams.policy.rules import load_pack


@pytest.fixture(scope="module")
def app() -> faust.App:
    """The app ``faust -A streams.app`` gets; made when a test asks, not when the tests are collected (it loads the
    rule pack)."""
    made: faust.App = streams.app.app
    return made


async def test_the_classify_stage_starts_with_the_app_not_after_its_tables_recover(app: faust.App) -> None:
    # Faust starts @app.service services only once the tables are recovered: a cold worker with a large users
    # table would give no verdict for minutes. Started among the app's own services, the stage needs no table.
    stages = [service for service in app.on_init_dependencies() if isinstance(service, ClassifyStage)]
    assert len(stages) == 1
    assert stages[0].classifier.version == load_pack(Settings.from_env().rules_dir).version


async def test_the_standing_stage_starts_first_and_the_classify_stage_after_faust_s_own_services(
    app: faust.App,
) -> None:
    # Services start one after another: the standing stage's consumer group join and restore begin before Faust's
    # services start (whose table manager alone waits a second), and before the classify stage's warm-up holds the
    # event loop.
    services = list(app.on_init_dependencies())
    assert isinstance(services[0], StandingStage)
    assert isinstance(services[-1], ClassifyStage)
    assert not any(isinstance(service, StandingStage | ClassifyStage) for service in services[1:-1])


async def test_the_worker_tunes_the_collector_once_as_it_starts_and_freezes_what_start_up_built(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def nothing(_: faust.App) -> None:
        return None

    monkeypatch.setattr(faust.App, "on_first_start", nothing)  # Faust's own start-up is not this test's
    monkeypatch.setattr(faust.App, "on_started", nothing)
    monkeypatch.setattr(app, "serve_metrics", None)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    thresholds = gc.get_threshold()
    try:
        await app.on_first_start()  # before any stage starts
        assert gc.get_threshold() == streams.app.GC_THRESHOLDS
        gc.unfreeze()
        await app.on_started()  # once every stage has started
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def test_the_worker_leaves_the_root_logger_at_its_level_so_library_debug_calls_stay_cheap(app: faust.App) -> None:
    # Faust's start-up spinner would lower the root logger to DEBUG for good: every debug call of aiokafka (one per
    # partition per fetch) would then build a record and pass it to the handlers.
    root = logging.getLogger("groupwarden-test-root")
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.WARNING)
    streams.app.worker(app, "warning").on_setup_root_logger(root, logging.WARNING)
    assert root.level == logging.WARNING
    assert not root.isEnabledFor(logging.DEBUG)
