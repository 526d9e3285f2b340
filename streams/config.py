"""Settings from the environment (GROUPWARDEN_*), shared by the worker and the CLI."""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust


class ConfigError(ValueError):
    """Settings that cannot work together; the message says which and why."""


def _default_rules() -> Path:
    """The shipped pack: the repository's rules/ folder, installed as the package streams.default_rules in an
    editable install and in a wheel alike. Located, not imported: no bytecode is written into a pack's folder."""
    spec = importlib.util.find_spec("streams.default_rules")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the default rule pack (streams.default_rules) is not installed: give GROUPWARDEN_RULES")
    return Path(spec.submodule_search_locations[0])


DEFAULT_RULES = _default_rules()
STAGES = ("classify", "standing")  # what a worker may run: both, or one where the stages are scaled apart


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = ""  # isolates replays and tests on a shared cluster: "<prefix>chat.messages.v1"
    partitions: int = 8
    group_id: str = "groupwarden"
    rules_dir: Path = DEFAULT_RULES
    shadow_rules_dir: Path | None = None  # a candidate pack judged beside the active one, with no effect
    rules_poll_seconds: float = 1.0  # how often the pack folders are checked for changes; 0: read once, at start
    batch_size: int = 2000
    stages: tuple[str, ...] = STAGES  # the stages this worker runs
    store: str = "rocksdb://"  # where tables live; "memory://" keeps them in RAM, rebuilt from changelogs on start
    data_dir: Path = Path("groupwarden-data")  # the RocksDB files, one folder per worker
    replication_factor: int = 1  # of every topic groupwarden creates, changelogs included; 3 on a real cluster
    metrics_host: str = "127.0.0.1"  # loopback: set 0.0.0.0 (as docker-compose.yml does) for a Prometheus elsewhere
    metrics_port: int = 9464  # Prometheus scrapes http://<worker>:<port>/metrics; 0: any free port (logged)
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides: Any) -> Settings:
        def get(name: str) -> str | None:
            return env.get(f"GROUPWARDEN_{name}") or None

        default = cls()
        values: dict[str, Any] = {
            "bootstrap_servers": get("BOOTSTRAP_SERVERS") or default.bootstrap_servers,
            "topic_prefix": get("TOPIC_PREFIX") or "",
            "partitions": _int(get("PARTITIONS"), default.partitions, "GROUPWARDEN_PARTITIONS"),
            "group_id": get("GROUP_ID") or default.group_id,
            "rules_dir": Path(get("RULES") or DEFAULT_RULES),
            "shadow_rules_dir": Path(shadow) if (shadow := get("SHADOW_RULES")) else None,
            "rules_poll_seconds": _float(
                get("RULES_POLL_SECONDS"), default.rules_poll_seconds, "GROUPWARDEN_RULES_POLL_SECONDS"
            ),
            "batch_size": _int(get("BATCH_SIZE"), default.batch_size, "GROUPWARDEN_BATCH_SIZE"),
            "stages": tuple(n.strip() for n in stages.split(",")) if (stages := get("STAGES")) else default.stages,
            "store": get("STORE") or default.store,
            "data_dir": Path(get("DATA_DIR") or default.data_dir),
            "metrics_host": get("METRICS_HOST") or default.metrics_host,
            "metrics_port": _int(get("METRICS_PORT"), default.metrics_port, "GROUPWARDEN_METRICS_PORT"),
            "replication_factor": _int(
                get("REPLICATION_FACTOR"), default.replication_factor, "GROUPWARDEN_REPLICATION_FACTOR"
            ),
            "security_protocol": (get("SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            "sasl_mechanism": (get("SASL_MECHANISM") or "").upper() or None,
            "sasl_username": get("SASL_USERNAME"),
            "sasl_password": get("SASL_PASSWORD"),
            "ssl_cafile": get("SSL_CAFILE"),
            "ssl_certfile": get("SSL_CERTFILE"),
            "ssl_keyfile": get("SSL_KEYFILE"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        protocols = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        if self.security_protocol not in protocols:
            raise ConfigError(
                f"GROUPWARDEN_SECURITY_PROTOCOL={self.security_protocol}: use one of {', '.join(protocols)}"
            )
        sasl = self.security_protocol.startswith("SASL")
        if sasl and self.sasl_mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError("SASL needs GROUPWARDEN_SASL_MECHANISM=PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        if sasl and not (self.sasl_username and self.sasl_password):
            raise ConfigError("SASL needs GROUPWARDEN_SASL_USERNAME and GROUPWARDEN_SASL_PASSWORD")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ConfigError(f"SASL settings are given but GROUPWARDEN_SECURITY_PROTOCOL is {self.security_protocol}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("GROUPWARDEN_SSL_CERTFILE and GROUPWARDEN_SSL_KEYFILE go together")
        if self.store not in ("rocksdb://", "memory://"):
            raise ConfigError(f"GROUPWARDEN_STORE={self.store}: use rocksdb:// or memory://")
        if self.partitions < 1 or self.batch_size < 1 or self.replication_factor < 1:
            raise ConfigError("partitions, batch size and replication factor must be at least 1")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"GROUPWARDEN_METRICS_PORT={self.metrics_port}: use 1 to 65535, or 0 for any free port")
        if not self.stages or not set(self.stages) <= set(STAGES):
            named = ",".join(self.stages)
            raise ConfigError(f"GROUPWARDEN_STAGES={named}: use classify, standing or both, comma-separated")
        if not 0 <= self.rules_poll_seconds <= 3600:
            raise ConfigError("GROUPWARDEN_RULES_POLL_SECONDS must be from 0 to 3600; 0 turns reloading off")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def kafka_options(self) -> dict[str, Any]:
        """Connection options for aiokafka clients."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile and self.ssl_keyfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            options["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        return options

    def faust_credentials(self) -> Any:
        """The same security settings, as Faust's own consumer and producer take them."""
        options = self.kafka_options()
        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=options.get("ssl_context"),
            )
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(options["ssl_context"])
        return None


def _int(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None


def _float(value: str | None, default: float, name: str) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
