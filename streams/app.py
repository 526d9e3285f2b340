"""The Faust app: one per worker process, configured from the environment (streams/config.py).

Run it with ``groupwarden worker`` (or ``faust -A streams.app worker --without-web``).
"""

from __future__ import annotations

from typing import Any

import faust

from streams.agents.classify import ClassifyStage
from streams.config import Settings


def _credentials(settings: Settings) -> Any:
    options = settings.kafka_options()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=options.get("ssl_context"),
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        broker_session_timeout=6,  # the embedded broker holds a new group's first join for half of this
        topic_partitions=settings.partitions,
        web_enabled=False,
    )

    @app.service
    class Classify(ClassifyStage):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, **kwargs)

    return app


app = create_app(Settings.from_env())
