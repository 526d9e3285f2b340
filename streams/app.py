"""The Faust app: one per worker process, configured from the environment (streams/config.py).

Run it with ``groupwarden worker`` (or ``faust -A streams.app worker --without-web``).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from streams.agents.classify import ClassifyStage
from streams.agents.standing import Standing
from streams.config import Settings
from streams.metrics import Metrics, serve
from streams.policy.classify import Classifier
from streams.policy.rules import load_pack
from streams.policy.sanctions import load_sanctions
from streams.state.recovery import exact_table_manager

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    pack = load_pack(settings.rules_dir)
    policy = load_sanctions(settings.rules_dir / "sanctions.toml", pack.ids())
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=settings.faust_credentials(),
        broker_session_timeout=6,  # the embedded broker holds a new group's first join for half of this
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,  # the changelogs Faust creates
        store=settings.store,
        datadir=str(settings.data_dir),
        TableManager=exact_table_manager(settings.kafka_options()),
        web_enabled=False,
    )
    classifier = Classifier(pack)
    metrics = Metrics()
    metrics.describe_rules(pack.version, policy.version, pack.categories)

    @app.service
    class Classify(ClassifyStage):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, classifier, metrics, **kwargs)

    Standing(app, settings, policy, pack.version, metrics)

    async def serve_metrics() -> None:
        if serve(settings.metrics_port, metrics):
            log.info("metrics on http://localhost:%d/metrics", settings.metrics_port)

    app.task(serve_metrics)

    return app


app = create_app(Settings.from_env())
