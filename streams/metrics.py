"""Prometheus metrics of one worker, served over HTTP (GROUPWARDEN_METRICS_HOST, GROUPWARDEN_METRICS_PORT).

Names follow Prometheus conventions: one prefix, base units, ``_total`` counters, label values from small closed
sets exported at 0 from the start. No user, group or message id and no text ever becomes a label.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable
from importlib import metadata

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)

from streams.records import DEAD_LETTER_REASONS

log = logging.getLogger(__name__)

DECISIONS = ("allow", "review", "block")
SANCTION_KINDS = (
    "warning",
    "mute",
    "ban",
    "messages_held_for_review",
    "group_creation_barred",
    "management_barred",
    "management_suspended",
    "management_revoked",
    "group_warning",
    "group_suspension",
    "group_shutdown",
    "member_limit_exceeded",
    "link_blacklisted",
)
SUBJECT_TYPES = ("user", "group", "link")
TABLES = ("users", "groups", "links")
STAGE_ERRORS = ("classify_error", "standing_error")  # dead letters the stage caused, not the input
PACKS = ("active", "shadow")  # the rule pack in force, and a candidate judged beside it (GROUPWARDEN_SHADOW_RULES)
RELOAD_RESULTS = ("applied", "refused")
SHADOW_SKIPS = ("classify_error", "send_error", "paused")  # why a message got no shadow verdict
# Where a classify batch's time goes: waiting for records, judging them, having the outputs acknowledged, committing.
CLASSIFY_STEPS = ("fetch_wait", "judge", "acknowledge", "commit")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric groupwarden exports; one instance per worker process (tests make their own registry)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.registry = registry
        self.build = Info("groupwarden_build", "The running groupwarden.", registry=r)
        self.rules = Info("groupwarden_rules", "The rule pack and sanction policy in force.", registry=r)
        self.messages_consumed = Counter(
            "groupwarden_messages_consumed_total", "Chat messages read by the classify stage.", registry=r
        )
        self.verdicts = Counter("groupwarden_verdicts_total", "Verdicts published.", ["decision"], registry=r)
        self.category_hits = Counter(
            "groupwarden_verdict_categories_total",
            "Verdicts that name a category (a verdict may name several).",
            ["category"],
            registry=r,
        )
        self.dead_letters = Counter(
            "groupwarden_dead_letters_total", "Records sent to the dead-letter topic.", ["reason"], registry=r
        )
        self.batch_duration = Histogram(
            "groupwarden_classify_batch_duration_seconds",
            "Time to classify one batch and have every output acknowledged.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "groupwarden_classify_batch_messages",
            "Messages per classify batch.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.stage_seconds = Histogram(
            "groupwarden_classify_stage_seconds",
            "Time of each step of a classify batch: fetch_wait (for records to arrive), judge, acknowledge (of every "
            "output by the broker), commit (of the input offsets); batches overlap, so the steps do not add up.",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "groupwarden_verdict_latency_seconds",
            "From a message's Kafka timestamp to its verdict being acknowledged.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.last_processed = Gauge(
            "groupwarden_last_processed_timestamp_seconds",
            "When the classify stage last had a batch acknowledged (Unix time).",
            registry=r,
        )
        self.lag = Gauge(
            "groupwarden_consumer_lag_messages",
            "Records not yet processed, from the fetch high watermark (ListOffsets can under-report).",
            ["stage", "topic", "partition"],
            registry=r,
        )
        self.rebalances = Counter(
            "groupwarden_rebalances_total", "Partition assignments received, by stage.", ["stage"], registry=r
        )
        self.sanctions = Counter(
            "groupwarden_sanctions_total",
            "Sanctions published, by kind; revoked ones too.",
            ["kind", "action"],
            registry=r,
        )
        self.blacklist_entries = Gauge(
            "groupwarden_blacklist_entries",
            "Entries on the compacted blacklist topic, as this worker reads it (every worker reads all of it).",
            ["type"],
            registry=r,
        )
        self.table_keys = Gauge(
            "groupwarden_table_keys", "Keys in the partitions of a table this worker owns.", ["table"], registry=r
        )
        self.table_events = Counter(
            "groupwarden_table_events_total", "Events applied to the standing tables.", ["table"], registry=r
        )
        self.rules_reloads = Counter(
            "groupwarden_rules_reload_total",
            "Changed rule-pack folders loaded while running, by pack and whether the new pack was applied.",
            ["pack", "result"],
            registry=r,
        )
        self.rules_refused = Gauge(
            "groupwarden_rules_refused",
            "1 while the pack folder holds a pack this worker refused; it keeps the last good one (a shadow: none).",
            ["pack"],
            registry=r,
        )
        self.shadow_verdicts = Counter(
            "groupwarden_shadow_verdicts_total", "Verdicts of the shadow pack published.", ["decision"], registry=r
        )
        self.shadow_disagreements = Counter(
            "groupwarden_shadow_disagreements_total",
            "Messages the shadow pack decided otherwise than the active one, by the two decisions.",
            ["active", "shadow"],
            registry=r,
        )
        self.shadow_skipped = Counter(
            "groupwarden_shadow_skipped_messages_total",
            "Messages left without a shadow verdict (the active pipeline went on), by why.",
            ["reason"],
            registry=r,
        )
        for decision in DECISIONS:
            self.verdicts.labels(decision)
        for reason in (*DEAD_LETTER_REASONS, *STAGE_ERRORS):
            self.dead_letters.labels(reason)
        for kind in SANCTION_KINDS:
            for action in ("issued", "revoked"):
                self.sanctions.labels(kind, action)
        for subject_type in SUBJECT_TYPES:
            self.blacklist_entries.labels(subject_type)
        for table in TABLES:
            self.table_keys.labels(table)
            self.table_events.labels(table)
        for pack in PACKS:
            self.rules_refused.labels(pack)
            for result in RELOAD_RESULTS:
                self.rules_reloads.labels(pack, result)
        for decision in DECISIONS:
            self.shadow_verdicts.labels(decision)
            for other in DECISIONS:
                if other != decision:
                    self.shadow_disagreements.labels(decision, other)
        for reason in SHADOW_SKIPS:
            self.shadow_skipped.labels(reason)
        _export_zero(self.stage_seconds, CLASSIFY_STEPS)
        self.rebalances.labels("classify")
        self.rebalances.labels("standing")
        self.build.info({"version": _version(), "python": platform.python_version()})
        self._rules_info = {"rules_version": "", "policy_version": "", "shadow_rules_version": ""}

    def describe_rules(self, pack_version: str, policy_version: str, categories: Iterable[str]) -> None:
        """The pack and policy in force (again after a reload)."""
        self._describe(rules_version=pack_version, policy_version=policy_version)
        for category in categories:
            self.category_hits.labels(category)

    def describe_shadow(self, pack_version: str) -> None:
        """The shadow pack judging beside the active one; "" for none."""
        self._describe(shadow_rules_version=pack_version)

    def _describe(self, **versions: str) -> None:
        self._rules_info |= versions
        self.rules.info(self._rules_info)


def _export_zero(metric: Histogram, values: Iterable[str]) -> None:
    """A child per label value known in advance, so each is exported (at 0) from the start."""
    for value in values:
        metric.labels(value)


def _version() -> str:
    try:
        return metadata.version("groupwarden")
    except metadata.PackageNotFoundError:
        return "unknown"


def serve(host: str, port: int, metrics: Metrics) -> tuple[str, int] | None:
    """Serve /metrics on ``host``:``port`` (0: any free port) from a background thread; the address it listens on,
    or None if it cannot listen there (said in one line: moderation goes on without metrics rather than not at all)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only add noise
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        log.error(  # noqa: TRY400 - the reason is the whole story; a traceback would only bury it
            "metrics not served: cannot listen on %s:%d (%s); set GROUPWARDEN_METRICS_PORT to a free port, 0 for any",
            host,
            port,
            exc.strerror or exc,
        )
        return None
    bound_host, bound_port = server.server_address[:2]
    return str(bound_host), int(bound_port)


def metrics_url(host: str, port: int) -> str:
    """Where to scrape a worker listening on ``host``: a wildcard address is reached on loopback from this host."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard is not an address to connect to
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
