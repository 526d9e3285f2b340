"""Settings from the environment: security options reach every Kafka client, bad combinations are refused."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import faust
import pytest

from streams.config import ConfigError, Settings
from streams.topics import MESSAGES

SASL = {
    "GROUPWARDEN_SECURITY_PROTOCOL": "SASL_SSL",
    "GROUPWARDEN_SASL_MECHANISM": "scram-sha-512",
    "GROUPWARDEN_SASL_USERNAME": "groupwarden",
    "GROUPWARDEN_SASL_PASSWORD": "s3cret-Pa55",
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as a client certificate and as the CA that signed it."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "client.pem", folder / "client.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=groupwarden"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert (settings.bootstrap_servers, settings.partitions, settings.security_protocol) == (
        "localhost:9092",
        8,
        "PLAINTEXT",
    )
    assert settings.kafka_options() == {"bootstrap_servers": "localhost:9092", "security_protocol": "PLAINTEXT"}
    assert settings.faust_credentials() is None
    assert settings.topic(MESSAGES) == MESSAGES


def test_every_setting_is_read() -> None:
    env = {
        "GROUPWARDEN_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "GROUPWARDEN_TOPIC_PREFIX": "replay.",
        "GROUPWARDEN_PARTITIONS": "32",
        "GROUPWARDEN_GROUP_ID": "gw-prod",
        "GROUPWARDEN_RULES": "/etc/groupwarden/rules",
        "GROUPWARDEN_BATCH_SIZE": "500",
        "GROUPWARDEN_STORE": "memory://",
        "GROUPWARDEN_DATA_DIR": "/var/lib/groupwarden",
        "GROUPWARDEN_METRICS_PORT": "0",
        "GROUPWARDEN_REPLICATION_FACTOR": "3",
    }
    s = Settings.from_env(env)
    assert (s.bootstrap_servers, s.topic(MESSAGES), s.partitions, s.group_id) == (
        "k1:9093,k2:9093",
        "replay.chat.messages.v1",
        32,
        "gw-prod",
    )
    assert (str(s.rules_dir), s.batch_size, s.store, str(s.data_dir), s.metrics_port, s.replication_factor) == (
        "/etc/groupwarden/rules",
        500,
        "memory://",
        "/var/lib/groupwarden",
        0,
        3,
    )


def test_a_worker_runs_both_stages_unless_told_which() -> None:
    assert Settings.from_env({}).stages == ("classify", "standing")
    assert Settings.from_env({"GROUPWARDEN_STAGES": "standing"}).stages == ("standing",)
    assert Settings.from_env({"GROUPWARDEN_STAGES": " classify , standing"}).stages == ("classify", "standing")


def test_the_shadow_pack_and_the_rules_poll_come_from_the_environment() -> None:
    assert (Settings.from_env({}).shadow_rules_dir, Settings.from_env({}).rules_poll_seconds) == (None, 1.0)
    assert Settings.from_env({"GROUPWARDEN_SHADOW_RULES": ""}).shadow_rules_dir is None
    settings = Settings.from_env({"GROUPWARDEN_SHADOW_RULES": "candidate/", "GROUPWARDEN_RULES_POLL_SECONDS": "0.5"})
    assert (settings.shadow_rules_dir, settings.rules_poll_seconds) == (Path("candidate"), 0.5)
    assert Settings.from_env({"GROUPWARDEN_RULES_POLL_SECONDS": "0"}).rules_poll_seconds == 0  # no reloading


def test_sasl_over_tls_reaches_aiokafka_and_faust(certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    env = SASL | {"GROUPWARDEN_SSL_CAFILE": str(cert)}
    settings = Settings.from_env(env)
    options = settings.kafka_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "groupwarden",
        "s3cret-Pa55",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    faust_credentials = settings.faust_credentials()
    assert isinstance(faust_credentials, faust.SASLCredentials)
    assert faust_credentials.username == "groupwarden"
    assert isinstance(faust_credentials.ssl_context, ssl.SSLContext)


def test_sasl_plain_without_tls() -> None:
    env = SASL | {"GROUPWARDEN_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "GROUPWARDEN_SASL_MECHANISM": "PLAIN"}
    options = Settings.from_env(env).kafka_options()
    assert options["sasl_mechanism"] == "PLAIN"
    assert "ssl_context" not in options


def test_mutual_tls_loads_the_client_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    env = {
        "GROUPWARDEN_SECURITY_PROTOCOL": "ssl",
        "GROUPWARDEN_SSL_CAFILE": str(cert),
        "GROUPWARDEN_SSL_CERTFILE": str(cert),
        "GROUPWARDEN_SSL_KEYFILE": str(key),
    }
    settings = Settings.from_env(env)
    assert isinstance(settings.kafka_options()["ssl_context"], ssl.SSLContext)
    assert isinstance(settings.faust_credentials(), faust.SSLCredentials)


def test_the_password_is_never_in_the_settings_repr() -> None:
    settings = Settings.from_env(SASL)
    assert "s3cret-Pa55" not in repr(settings)
    assert "s3cret-Pa55" not in str(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"GROUPWARDEN_SECURITY_PROTOCOL": "TLS"}, "use one of PLAINTEXT, SSL", id="unknown-protocol"),
        pytest.param(
            SASL | {"GROUPWARDEN_SASL_MECHANISM": "GSSAPI"}, "SASL needs GROUPWARDEN_SASL_MECHANISM", id="mech"
        ),
        pytest.param(SASL | {"GROUPWARDEN_SASL_MECHANISM": ""}, "SASL needs GROUPWARDEN_SASL_MECHANISM", id="no-mech"),
        pytest.param(SASL | {"GROUPWARDEN_SASL_PASSWORD": ""}, "SASL_USERNAME and GROUPWARDEN_SASL_PASSWORD", id="pw"),
        pytest.param(
            {"GROUPWARDEN_SASL_USERNAME": "u", "GROUPWARDEN_SASL_PASSWORD": "p"}, "but GROUPWARDEN_SECURITY", id="plain"
        ),
        pytest.param(
            {"GROUPWARDEN_SECURITY_PROTOCOL": "SSL", "GROUPWARDEN_SSL_CERTFILE": "c.pem"}, "go together", id="half-mtls"
        ),
        pytest.param({"GROUPWARDEN_PARTITIONS": "eight"}, "GROUPWARDEN_PARTITIONS='eight'", id="not-a-number"),
        pytest.param({"GROUPWARDEN_PARTITIONS": "0"}, "at least 1", id="zero-partitions"),
        pytest.param({"GROUPWARDEN_REPLICATION_FACTOR": "0"}, "at least 1", id="zero-replicas"),
        pytest.param({"GROUPWARDEN_STORE": "redis://"}, "use rocksdb:// or memory://", id="store"),
        pytest.param({"GROUPWARDEN_RULES_POLL_SECONDS": "often"}, "'often' is not a number", id="poll-word"),
        pytest.param({"GROUPWARDEN_RULES_POLL_SECONDS": "-1"}, "must be from 0 to 3600; 0 turns", id="poll-negative"),
        pytest.param({"GROUPWARDEN_STAGES": "judge"}, "STAGES=judge: use classify, standing or both", id="stage"),
        pytest.param({"GROUPWARDEN_STAGES": "standing,"}, "STAGES=standing,: use classify", id="empty-stage"),
    ],
)
def test_inconsistent_settings_are_refused_with_the_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as refused:
        Settings.from_env(env)
    assert "s3cret-Pa55" not in str(refused.value)


def test_the_worker_refuses_inconsistent_settings_before_starting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "GROUPWARDEN_SECURITY_PROTOCOL": "SASL_SSL", "GROUPWARDEN_SASL_PASSWORD": "x9"}
    done = subprocess.run(
        [sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "groupwarden: SASL needs GROUPWARDEN_SASL_MECHANISM" in done.stderr
    assert "x9" not in done.stderr + done.stdout
