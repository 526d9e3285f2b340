"""Where a worker serves its metrics: loopback unless told, the port it really got, one line when it cannot."""

from __future__ import annotations

import logging
import socket
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.config import ConfigError, Settings
from streams.metrics import Metrics, metrics_url, serve

ROOT = Path(__file__).resolve().parents[2]


def test_port_0_serves_on_a_free_port_and_says_which() -> None:
    address = serve("127.0.0.1", 0, Metrics(CollectorRegistry()))
    assert address is not None
    host, port = address
    assert (host, port != 0) == ("127.0.0.1", True)
    with urllib.request.urlopen(metrics_url(host, port), timeout=5) as response:
        assert b"groupwarden_build_info" in response.read()


def test_a_taken_port_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as other:  # another worker's endpoint
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with caplog.at_level(logging.INFO):
            assert serve("127.0.0.1", port, Metrics(CollectorRegistry())) is None
    [line] = caplog.records
    assert line.exc_info is None
    assert f"127.0.0.1:{port}" in line.getMessage()
    assert "GROUPWARDEN_METRICS_PORT" in line.getMessage()


def test_metrics_listen_on_loopback_unless_told_otherwise() -> None:
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    assert Settings.from_env({"GROUPWARDEN_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
    with pytest.raises(ConfigError, match="GROUPWARDEN_METRICS_PORT"):
        Settings.from_env({"GROUPWARDEN_METRICS_PORT": "70000"})


def test_containers_listen_where_prometheus_can_scrape_them() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["services"]["worker"]["environment"]["GROUPWARDEN_METRICS_HOST"] == "0.0.0.0"
    assert "ENV GROUPWARDEN_METRICS_HOST=0.0.0.0" in (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")


def test_a_wildcard_address_is_shown_as_loopback() -> None:
    assert metrics_url("0.0.0.0", 9464) == "http://127.0.0.1:9464/metrics"
    assert metrics_url("::1", 9464) == "http://[::1]:9464/metrics"
