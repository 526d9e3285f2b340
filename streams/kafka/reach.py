"""Whether a Kafka broker answers at the configured address, asked once before a command talks to it."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from streams.config import ConfigError, Settings


class NoBroker(ConfigError):
    """No broker answered: a setting to fix (or a broker to start), said in one line like any other setting."""


async def require_broker(settings: Settings) -> None:
    """Refuse to go on without a broker: one line naming the address and the setting, not each client's traceback."""
    admin = AIOKafkaAdminClient(**settings.kafka_options())
    try:
        await admin.start()
    except KafkaConnectionError:
        raise NoBroker(
            f"no Kafka broker answers at {settings.bootstrap_servers}: start one (`groupwarden broker`) or set"
            " GROUPWARDEN_BOOTSTRAP_SERVERS (or --bootstrap-servers) to yours"
        ) from None
    finally:
        await admin.close()
