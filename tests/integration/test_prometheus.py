"""A real Prometheus scraping a live worker: every query of every dashboard panel returns data, the rules load."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import process
from streams.kafka.broker import free_port
from streams.metrics import CLASSIFY_STEPS
from streams.topics import GROUP_EVENTS
from tests.integration.conftest import CANARY, NEW_RULE, chat_message, copy_rules, produce

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards" / "grafana").glob("*.json"))
ALERTS = ROOT / "dashboards" / "prometheus" / "alerts.yml"
# Wider than the whole run, so a rate sees every sample Prometheus has.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "5m", "$__interval": "15s"}
INSTALL = "apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus"

SCAM = "刷*單*返*利，日赚五百"  # blocked by the shipped pack
LINK = "http://promo.campaign-y.example/join"  # on no blocklist: a campaign once seen in 5 groups


class Prometheus:
    """A Prometheus server on a free loopback port with its own storage, scraping one worker every second."""

    def __init__(self, binary: str, workdir: Path, metrics_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        config = {  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "groupwarden", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        process.stop(self.process)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], Prometheus]]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(f"the prometheus server is not installed; Debian's prometheus package ships it: {INSTALL}")
    servers: list[Prometheus] = []

    def start(metrics_port: int) -> Prometheus:
        server = Prometheus(binary, tmp_path, metrics_port)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


async def wait_for(server: Prometheus, conditions: list[str], timeout: float = 60.0) -> None:
    """Until each query (a filter such as ``x > 0``) returns a series."""
    deadline = time.monotonic() + timeout
    pending = list(conditions)
    while pending:
        pending = [c for c in pending if not server.query(c)]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s, still nothing for: {pending}")
        await asyncio.sleep(0.5)


def message(message_id: str, sender: str, group: str, text: str = SCAM) -> tuple[bytes, bytes]:
    value = {
        "message_id": message_id,
        "group_id": group,
        "sender_id": sender,
        "sent_at": int(time.time() * 1000),
        "text": text,
    }
    return group.encode(), orjson.dumps(value)


def group_events(group: str) -> list[tuple[bytes, bytes]]:
    steps = [("created", "owner-1"), ("member_joined", "manager-1"), ("manager_added", "manager-1")]
    return [
        (group.encode(), orjson.dumps({"event_id": f"{group}-{n}", "group_id": group, "kind": kind, "user_id": user}))
        for n, (kind, user) in enumerate(steps)
    ]


def panel_queries() -> Iterator[tuple[str, str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                yield path.name, f"{panel['title']} [{target['refId']}]", expr


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one sample that is a number: Grafana draws nothing for NaN."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


async def test_every_panel_query_returns_data_and_the_alert_rules_load(settings, start_worker, prometheus, tmp_path):
    candidate = copy_rules(tmp_path / "candidate", NEW_RULE)  # a shadow pack, for the shadow panels
    worker = start_worker(replace(settings, shadow_rules_dir=candidate))
    server = prometheus(worker.metrics_port)
    # Counters must be scraped at zero before traffic, or a rate over the run would see no increase.
    await wait_for(server, ['up{job="groupwarden"} == 1', "groupwarden_rules_info"])

    await produce(settings, [*group_events("g-esc"), (b"g-esc", b"{oops")], GROUP_EVENTS)
    await wait_for(server, ['groupwarden_table_events_total{table="groups"} >= 3'])  # leaders known first
    blocked = [message(f"s{n}", "spammer", "g-esc") for n in range(4)]  # warning, mute, mute, ban
    blocked += [message(f"b{n}", f"bystander-{n}", "g-esc") for n in range(2)]  # 6 in the group: suspended
    blocked += [message(f"c{n}", f"linker-{n}", f"cg{n}", f"{SCAM} {LINK}") for n in range(5)]  # a campaign
    clean = [chat_message(n) for n in range(300)]
    clean += [chat_message(n, CANARY, prefix="q") for n in range(5)]  # blocked by the shadow pack alone
    malformed = [(b"g1", b"{not json"), (b"g1", b"\xff\xfe"), (b"g1", orjson.dumps({"message_id": "x"}))]
    await produce(settings, blocked + clean + malformed)

    # Every panel's subject has happened and been scraped, and the rules have evaluated on it.
    await wait_for(
        server,
        [
            f"groupwarden_messages_consumed_total >= {len(blocked) + len(clean) + len(malformed)}",
            'groupwarden_dead_letters_total{reason="invalid_json"} > 0',
            'groupwarden_dead_letters_total{reason="invalid_event"} > 0',
            'groupwarden_verdicts_total{decision="block"} >= 11',
            'groupwarden_shadow_disagreements_total{active="allow", shadow="block"} >= 5',
            *[
                f'groupwarden_sanctions_total{{kind="{kind}", action="issued"}} > 0'
                for kind in ("warning", "mute", "ban", "group_warning", "group_suspension", "link_blacklisted")
            ],
            *[f'groupwarden_blacklist_entries{{type="{kind}"}} > 0' for kind in ("user", "group", "link")],
            *[f'groupwarden_table_keys{{table="{table}"}} > 0' for table in ("users", "groups", "links")],
            'groupwarden_consumer_lag_messages{stage="classify"}',
            *[f'groupwarden_classify_stage_seconds_count{{step="{step}"}} > 0' for step in CLASSIFY_STEPS],
            "job:groupwarden_verdict_latency_over_1s:ratio_rate6h >= 0",
        ],
    )
    await asyncio.sleep(2)  # one more scrape and evaluation after the last change

    queries = list(panel_queries())
    assert len(queries) >= 51
    empty = [(name, title, expr) for name, title, expr in queries if not has_data(server.query(expr))]
    assert not empty, "queries without data:\n" + "\n".join(f"{n}: {t}: {e}" for n, t, e in empty)

    groups = server.get("/api/v1/rules")["groups"]
    text = ALERTS.read_text()
    assert [g["name"] for g in groups] == re.findall(r"^\s*- name: (\S+)", text, re.MULTILINE)
    rules = [rule for group in groups for rule in group["rules"]]
    names = {rule["name"] for rule in rules}
    assert names == set(re.findall(r"^\s*- (?:alert|record): (\S+)", text, re.MULTILINE))
    for rule in rules:
        assert rule["health"] == "ok", rule
        if rule["type"] == "alerting":
            assert rule["labels"]["severity"] in ("critical", "warning")
            assert {"summary", "description"} <= set(rule["annotations"])
    assert worker.alive()
