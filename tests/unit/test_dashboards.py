"""The Grafana dashboards, provisioning files and Prometheus rules under dashboards/ hold together.

The queries returning data from a live worker is tests/integration/test_prometheus.py; here: structure, PromQL that
parses, metric names that exist, and the alert rules' own unit tests (promtool).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.metrics import CLASSIFY_STEPS, Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "dashboards"
DASHBOARD_FILES = sorted((DASHBOARDS_DIR / "grafana").glob("*.json"))
PROMETHEUS_DIR = DASHBOARDS_DIR / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts.test.yml"
PROVISIONING = DASHBOARDS_DIR / "provisioning"
MOUNT = "/etc/groupwarden/dashboards/"  # where the provisioning files expect the repository's dashboards/ folder

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "5m", "$__interval": "15s"}
INSTALL = "apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus"


def load_yaml(text: str) -> Any:
    return yaml.safe_load(text)


# -- dashboards ----------------------------------------------------------------------------------------------------


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text(encoding="utf-8"))) for path in DASHBOARD_FILES]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables substituted) for every target."""
    for panel in panels(dashboard):
        for t in panel.get("targets", []):
            expr = t["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            yield panel["title"], expr


def test_there_are_three_dashboards_with_distinct_uids_and_titles():
    docs = [doc for _, doc in dashboards()]
    assert len(docs) == 3
    uids = [doc["uid"] for doc in docs]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids)  # Grafana's limit on uids
    assert len({doc["title"] for doc in docs}) == len(docs)


@pytest.mark.parametrize(("name", "dashboard"), dashboards(), ids=[p.name for p in DASHBOARD_FILES])
def test_a_dashboard_is_provisionable_and_uses_its_datasource_variable(name, dashboard):
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert "__inputs" not in dashboard  # exported-for-sharing form; provisioning would not resolve it
    assert dashboard.get("id") is None  # Grafana assigns ids; a fixed one clashes across instances
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == DATASOURCE, f"{name}: {panel['title']}"
        assert panel["targets"], f"{name}: {panel['title']} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), f"{name}: {panel['title']}"
        for t in panel["targets"]:
            assert t.get("datasource") == DATASOURCE, f"{name}: {panel['title']} {t['refId']}"
            assert t["expr"].strip()
            used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
            assert used <= {v.lstrip("$") for v in GRAFANA_VARIABLES} | set(variables), f"{name}: {used}"


@pytest.mark.parametrize(("name", "dashboard"), dashboards(), ids=[p.name for p in DASHBOARD_FILES])
def test_panels_fit_the_grid_without_overlapping(name, dashboard):
    boxes = []
    for panel in dashboard["panels"]:  # nested row panels sit in collapsed rows, drawn elsewhere
        g = panel["gridPos"]
        assert g["w"] > 0
        assert g["h"] > 0
        assert g["x"] >= 0
        assert g["x"] + g["w"] <= 24, f"{name}: {panel['title']} is wider than the grid"
        boxes.append((panel["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for n, (title, x0, y0, x1, y1) in enumerate(boxes):
        for other, a0, b0, a1, b1 in boxes[n + 1 :]:
            assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0, f"{name}: {title!r} overlaps {other!r}"


def test_the_overview_leads_with_rate_errors_and_duration():
    overview = json.loads((DASHBOARDS_DIR / "grafana" / "groupwarden-overview.json").read_text())
    top = sorted((p for p in overview["panels"] if p["gridPos"]["y"] == 0), key=lambda p: p["gridPos"]["x"])
    exprs = [" ".join(t["expr"] for t in p["targets"]) for p in top]
    assert "groupwarden_messages_consumed_total" in exprs[0]
    assert "groupwarden_dead_letters_total" in exprs[1]
    assert "histogram_quantile" in exprs[2]
    assert "groupwarden_verdict_latency_seconds_bucket" in exprs[2]
    assert "groupwarden_classify_batch_duration_seconds_bucket" in exprs[3]


def test_the_health_dashboard_splits_the_classify_stage_time_by_step():
    health = json.loads((DASHBOARDS_DIR / "grafana" / "groupwarden-health.json").read_text())
    split = [
        (panel["title"], expr)
        for panel in panels(health)
        for expr in (t["expr"] for t in panel.get("targets", []))
        if "groupwarden_classify_stage_seconds" in expr
    ]
    assert any("histogram_quantile(0.99" in e and "by (le, step)" in e for _, e in split), split
    assert any("_sum" in e and "_count" in e and "by (step)" in e for _, e in split), split
    registry = CollectorRegistry()
    Metrics(registry)
    exported = {
        sample.labels["step"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "groupwarden_classify_stage_seconds_count"
    }
    assert exported == set(CLASSIFY_STEPS) == {"fetch_wait", "judge", "acknowledge", "commit"}  # all at 0 from start


def exported_metric_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry).describe_rules("v", "p", ["scam"])
    names = {"up"}
    for family in registry.collect():
        names |= {sample.name for sample in family.samples}
        if family.type in ("counter", "gauge"):  # one with labels but no child yet has no sample
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def rules(kind: str) -> list[dict[str, Any]]:
    """The rules of alerts.yml of one kind: "record" or "alert"."""
    return [rule for group in load_yaml(ALERTS.read_text())["groups"] for rule in group["rules"] if kind in rule]


def recording_rules() -> list[dict[str, Any]]:
    return rules("record")


def test_every_query_names_metrics_the_workers_export_or_rules_record():
    exported, recorded = exported_metric_names(), {rule["record"] for rule in recording_rules()}
    for name, dashboard in dashboards():
        for title, expr in queries(dashboard):
            for metric in re.findall(r"(?<![\w:])(groupwarden_\w+|up)(?=[\s{\[)]|$)", expr):
                assert metric in exported, f"{name}: {title}: {metric} is not exported"
            for rule in re.findall(r"\b\w+:\w+:\w+\b", expr):
                assert rule in recorded, f"{name}: {title}: {rule} is not a recording rule of alerts.yml"
    for rule in rules("record") + rules("alert"):
        for metric in re.findall(r"(?<![\w:])(groupwarden_\w+|up)(?=[\s{\[)])", rule["expr"]):
            assert metric in exported, f"{rule.get('record') or rule['alert']}: {metric} is not exported"
        for used in re.findall(r"\b\w+:\w+:\w+\b", rule["expr"]):
            assert used in recorded, f"{rule.get('record') or rule['alert']}: {used} is not recorded"


def test_every_query_is_valid_promql(promtool, tmp_path):
    """promtool parses each query as the expression of a recording rule."""
    rules = [
        {"record": f"dashboard_query_{n}", "expr": expr}
        for n, (_, expr) in enumerate(e for _, d in dashboards() for e in queries(d))
    ]
    path = tmp_path / "queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules}]}))  # JSON is YAML
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -- provisioning --------------------------------------------------------------------------------------------------


def test_the_datasource_provisioning_declares_prometheus():
    doc = load_yaml((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert doc["apiVersion"] == 1
    (datasource,) = doc["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["access"] == "proxy"
    assert re.fullmatch(r"https?://[\w.-]+:\d+/?", datasource["url"])


def test_the_dashboard_provider_points_at_the_dashboards_folder():
    doc = load_yaml((PROVISIONING / "dashboards" / "groupwarden.yml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith(MOUNT), f"{path} is outside the documented mount {MOUNT}"
    folder = DASHBOARDS_DIR / path.removeprefix(MOUNT)
    assert folder.is_dir()
    assert sorted(folder.glob("*.json")) == DASHBOARD_FILES
    assert (DASHBOARDS_DIR / "provisioning" / "datasources").is_dir()  # GF_PATHS_PROVISIONING=<MOUNT>provisioning


# -- Prometheus ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool is not installed; Debian's prometheus package ships it: {INSTALL}")
    return path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def test_the_prometheus_config_is_valid_and_scrapes_the_workers(promtool):
    result = run([promtool, "check", "config", "prometheus.yml"], PROMETHEUS_DIR)  # also loads its rule files
    assert result.returncode == 0, result.stdout + result.stderr
    doc = load_yaml((PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "groupwarden"  # the alerts and dashboards select up{job="groupwarden"}
    assert all(t.endswith(":9464") for c in job["static_configs"] for t in c["targets"])
    assert [(PROMETHEUS_DIR / f).resolve() for f in doc["rule_files"]] == [ALERTS]


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests(promtool):
    checked = run([promtool, "check", "rules", ALERTS.name], PROMETHEUS_DIR)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run([promtool, "test", "rules", ALERTS_TEST.name], PROMETHEUS_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_severity_a_summary_and_a_description_and_rules_are_well_named():
    alerts = rules("alert")
    assert {a["alert"] for a in alerts} >= {
        "GroupwardenWorkerDown",
        "GroupwardenConsumerLagGrowing",
        "GroupwardenNotProcessing",
        "GroupwardenDeadLetterRateHigh",
        "GroupwardenLatencyBudgetBurnFast",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
        assert alert["annotations"]["description"].strip(), alert["alert"]
    for rule in recording_rules():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]  # level:metric:ops


def test_every_alert_is_tested_both_firing_and_quiet():
    alerts = {rule["alert"] for rule in rules("alert")}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERTS_TEST.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing >= alerts, f"never seen firing: {sorted(alerts - firing)}"
    assert quiet >= alerts, f"never seen quiet: {sorted(alerts - quiet)}"
