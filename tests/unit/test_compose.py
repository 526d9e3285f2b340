"""docker-compose.yml holds together: Debian's docker-compose accepts it offline, and whatever it builds, mounts and
runs exists in the repository. No Docker engine is needed; nothing is built or started here.

Every check reads the file as `docker-compose config` resolves it (variables substituted, paths made absolute), so
what is checked is what `docker-compose up` would run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streams.cli import _parser
from streams.config import Settings
from streams.policy.rules import load_pack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
INSTALL = ".ci/install-prometheus"  # installs Debian's docker-compose and prometheus (promtool) packages
SERVICES = {"kafka", "topic-init", "worker", "prometheus", "grafana"}


@dataclass(frozen=True, slots=True)
class Mount:
    source: str | None  # a host path (bind mount), a volume name, or None for an anonymous volume
    target: str
    bind: bool


def run(args: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run {INSTALL} (Debian's docker-compose and prometheus packages)")
    return path


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as docker-compose resolves it, with the defaults its variables fall back to."""
    docker_compose = tool("docker-compose")
    # Variables from the caller's shell would change what is checked; the file's own defaults are the subject.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GROUPWARDEN_", "COMPOSE_", "DOCKER_"))}
    result = run([docker_compose, "-f", str(COMPOSE), "config"], env=env)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services[name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # the KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def mounts(svc: dict[str, Any]) -> list[Mount]:
    found = []
    for spec in svc.get("volumes", []):
        if isinstance(spec, dict):  # long syntax
            found.append(Mount(spec.get("source"), spec["target"], spec.get("type") == "bind"))
            continue
        parts = spec.split(":")
        if len(parts) == 1:
            found.append(Mount(None, parts[0], bind=False))
        else:
            found.append(Mount(parts[0], parts[1], bind=parts[0].startswith(("/", "."))))
    return found


def host_path(svc: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the service's container comes from on the host, if a bind mount provides it."""
    path = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for mount in mounts(svc):
        target = PurePosixPath(mount.target)
        if mount.bind and mount.source and (path == target or target in path.parents):
            depth = len(target.parts)
            if best is None or depth > best[0]:
                best = (depth, Path(mount.source) / path.relative_to(target))
    return None if best is None else best[1]


def within_repository(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def subcommand(command: list[str]) -> list[str]:
    """The command words of a groupwarden command line, without its options."""
    words = []
    for word in command[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    return words


def dockerfile_lines(path: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# -- the file as a whole -------------------------------------------------------------------------------------------


def test_docker_compose_accepts_the_file_and_it_has_the_stack(compose):
    assert set(compose["services"]) == SERVICES


def test_every_mounted_host_file_or_folder_exists_in_the_repository(compose):
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for mount in mounts(svc):
            if mount.bind:
                assert mount.source is not None
                source = Path(mount.source)
                assert source.exists(), f"{name}: {source} (mounted at {mount.target}) does not exist"
                assert within_repository(source), f"{name}: {source} is outside the repository"
            elif mount.source is not None:
                assert mount.source in declared, f"{name}: volume {mount.source} is not declared"


def test_every_build_has_its_context_dockerfile_and_copied_files(compose):
    builds = {name: svc["build"] for name, svc in compose["services"].items() if "build" in svc}
    assert builds, "the worker image is built from docker/"
    for name, build in builds.items():
        context = Path(build["context"])
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert within_repository(context)
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        for line in dockerfile_lines(dockerfile):
            words = line.split()
            if words[0].upper() in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
                sources = [w for w in words[1:-1] if not w.startswith("--")]
                for source in sources:
                    assert (context / source).exists(), f"{dockerfile.name}: {line!r}: {source} is not in the context"


def test_every_image_is_pinned_to_a_tag_other_than_latest(compose):
    images = {f"service {name}": svc["image"] for name, svc in compose["services"].items() if "image" in svc}
    for name, svc in compose["services"].items():
        if "build" in svc:
            dockerfile = Path(svc["build"]["context"]) / svc["build"].get("dockerfile", "Dockerfile")
            for line in dockerfile_lines(dockerfile):
                if line.upper().startswith("FROM "):
                    images[f"{name}'s {dockerfile.name}"] = line.split()[1]
    assert len(images) >= len(SERVICES)
    for where, image in images.items():
        reference = image.rsplit("/", 1)[-1]
        assert ":" in reference or "@sha256:" in image, f"{where}: {image} has no tag"
        assert not image.endswith(":latest"), f"{where}: {image} floats"


# -- Kafka and topic creation --------------------------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode_on_one_node(compose):
    kafka = service(compose, "kafka")
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [voter.split("@", 1)[0] for voter in voters] == [env["KAFKA_NODE_ID"]]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = {entry.split("://", 1)[0]: entry for entry in env["KAFKA_LISTENERS"].split(",")}
    assert controller in listeners
    assert voters[0].split("@", 1)[1].endswith(":" + listeners[controller].rsplit(":", 1)[1])
    protocols = dict(entry.split(":", 1) for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics only with explicit partitions
    assert kafka.get("healthcheck", {}).get("test"), "topic-init waits for Kafka to be healthy"


def test_the_containers_reach_kafka_on_a_listener_it_advertises(compose):
    advertised = environment(service(compose, "kafka"))["KAFKA_ADVERTISED_LISTENERS"]
    addresses = {entry.split("://", 1)[1] for entry in advertised.split(",")}
    for name in ("topic-init", "worker"):
        servers = environment(service(compose, name))["GROUPWARDEN_BOOTSTRAP_SERVERS"].split(",")
        assert set(servers) <= addresses, f"{name} bootstraps from {servers}, Kafka advertises {addresses}"
        assert all(server.split(":", 1)[0] in compose["services"] for server in servers)


@pytest.mark.parametrize("name", ["worker", "topic-init"])
def test_a_groupwarden_service_runs_a_real_groupwarden_command(compose, name):
    command = service(compose, name)["command"]
    assert isinstance(command, list), "exec form: no shell between Docker and the worker's signals"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert command[0] in scripts
    words = subcommand(command)
    helped = run([sys.executable, "-m", "streams", *words, "--help"])
    assert helped.returncode == 0, f"groupwarden {' '.join(words)} --help failed:\n{helped.stderr}"
    try:  # the whole argument list, options included (--help would stop before checking those after it)
        _parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"{name}: {command} is not a valid groupwarden command line")


def test_topic_init_creates_the_topics_with_the_workers_partition_count(compose):
    topic_init, worker = service(compose, "topic-init"), service(compose, "worker")
    assert subcommand(topic_init["command"]) == ["topics", "create"]
    assert subcommand(worker["command"]) == ["worker"]
    options = _parser().parse_args(topic_init["command"][1:])
    partitions = environment(worker)["GROUPWARDEN_PARTITIONS"]
    assert options.partitions == int(partitions), "a worker refuses topics whose partition count differs from its own"
    assert environment(topic_init)["GROUPWARDEN_PARTITIONS"] == partitions


def test_services_start_in_order(compose):
    assert service(compose, "topic-init")["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert service(compose, "topic-init").get("restart", "no") == "no", "one-shot"
    assert service(compose, "worker")["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"


# -- workers -------------------------------------------------------------------------------------------------------


def test_the_worker_scales_with_docker_compose_scale(compose):
    worker = service(compose, "worker")
    assert "container_name" not in worker, "a fixed name allows one container"
    assert "hostname" not in worker
    assert not worker.get("ports"), "a fixed host port allows one container"
    env = environment(worker)
    data_dir = env["GROUPWARDEN_DATA_DIR"]
    [data] = [mount for mount in mounts(worker) if mount.target == data_dir]
    assert data.source is None, "a named volume or bind mount would share one RocksDB folder between replicas"


def test_the_worker_settings_are_accepted_and_use_rocksdb(compose):
    env = environment(service(compose, "worker"))
    settings = Settings.from_env(env)  # refuses inconsistent settings, as the worker does before starting
    assert settings.store == "rocksdb://"
    assert settings.metrics_port == 9464
    assert str(settings.metrics_port) in [str(port) for port in service(compose, "worker").get("expose", [])]


def test_the_worker_reads_the_repositorys_rule_pack(compose):
    worker = service(compose, "worker")
    rules = host_path(worker, environment(worker)["GROUPWARDEN_RULES"])
    assert rules is not None, "GROUPWARDEN_RULES is not on a mount; the image's copy would be used"
    assert rules.resolve() == (ROOT / "rules").resolve()
    assert load_pack(rules).ids()


# -- Prometheus and Grafana ----------------------------------------------------------------------------------------


def prometheus_config_path(prometheus: dict[str, Any]) -> str:
    flags = [arg for arg in prometheus.get("command", []) if arg.startswith("--config.file=")]
    return flags[0].split("=", 1)[1] if flags else "/etc/prometheus/prometheus.yml"  # the image's default


def test_prometheus_discovers_every_worker_and_loads_the_alert_rules(compose):
    prometheus = service(compose, "prometheus")
    container_config = prometheus_config_path(prometheus)
    config_path = host_path(prometheus, container_config)
    assert config_path is not None
    assert config_path.is_file()
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "groupwarden"]  # alerts select on it
    port = int(environment(service(compose, "worker"))["GROUPWARDEN_METRICS_PORT"])
    names = {(name, sd.get("port")) for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
    assert ("worker", port) in names, "every replica of the worker service, found by DNS, on its metrics port"
    for rule_file in config["rule_files"]:
        inside = PurePosixPath(container_config).parent / rule_file
        host = host_path(prometheus, str(inside))
        assert host is not None, f"rule file {inside} is not mounted"
        assert host.resolve() == (ROOT / "dashboards" / "prometheus" / "alerts.yml").resolve()


def test_prometheus_accepts_its_config_as_mounted(compose, tmp_path):
    """promtool checks the config and the rule files it loads, laid out as the container sees them."""
    promtool = tool("promtool")
    prometheus = service(compose, "prometheus")
    for mount in mounts(prometheus):
        if mount.bind and mount.source and Path(mount.source).is_file():
            copy = tmp_path / PurePosixPath(mount.target).relative_to("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mount.source, copy)
    config = tmp_path / PurePosixPath(prometheus_config_path(prometheus)).relative_to("/")
    result = run([promtool, "check", "config", config.name], cwd=config.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_datasource_and_dashboards_through_its_mounts(compose):
    grafana = service(compose, "grafana")
    assert not grafana["image"].endswith(":latest")
    provisioning = host_path(grafana, environment(grafana).get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    assert provisioning is not None, "Grafana's provisioning folder is not mounted"
    assert provisioning.resolve() == (ROOT / "dashboards" / "provisioning").resolve()
    for path in sorted((provisioning / "dashboards").glob("*.yml")):
        for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]:
            folder = host_path(grafana, provider["options"]["path"])
            assert folder is not None, f"{path.name}: {provider['options']['path']} is not mounted"
            assert sorted(folder.glob("*.json")), f"{path.name}: no dashboards in {folder}"
    for path in sorted((provisioning / "datasources").glob("*.yml")):
        for datasource in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]:
            if datasource["type"] == "prometheus":
                host = re.fullmatch(r"https?://([^:/]+)(?::\d+)?/?", datasource["url"])
                assert host is not None
                assert host.group(1) in compose["services"], f"{datasource['url']} is no service of the stack"
