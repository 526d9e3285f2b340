"""Whether a Kafka broker answers at the configured address, asked once before a command talks to it."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from streams.config import ConfigError, Settings


class NoBroker(ConfigError):
    """No broker answered: a setting to fix (or a broker to start), said in one line like any other setting."""


async def require_broker(settings: Settings) -> None:
    """Refuse to go on without a broker: one line naming the address and the setting, not each client's traceback."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # its line about the failed connection would only say ours again
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    try:
        await admin.start()
    except KafkaConnectionError:
        raise NoBroker(
            f"no Kafka broker answers at {settings.bootstrap_servers} (GROUPWARDEN_BOOTSTRAP_SERVERS):"
            " start one with `groupwarden broker`, or set it to yours"
        ) from None
    finally:
        await admin.close()
        client_log.setLevel(level)
