"""The Faust app's wiring (streams/app.py)."""

from __future__ import annotations

from streams.agents.classify import ClassifyStage
from streams.app import app
from streams.config import Settings
from streams.policy.rules import load_pack


async def test_the_classify_stage_starts_with_the_app_not_after_its_tables_recover() -> None:
    # Faust starts @app.service services only once the tables are recovered: a cold worker with a large users
    # table would give no verdict for minutes. Started among the app's own services, the stage needs no table.
    stages = [service for service in app.on_init_dependencies() if isinstance(service, ClassifyStage)]
    assert len(stages) == 1
    assert stages[0].classifier.version == load_pack(Settings.from_env().rules_dir).version
