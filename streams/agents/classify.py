"""The classify stage: chat messages in, one verdict each out; bad input to the dead-letter topic.

Classifying is stateless and sees every message: a pipelined batched loop (streams/kafka/stage.py) rather than a
per-event Faust agent, whose machinery costs ~90 us a message against a few for the whole classify step. A crash or a
failed send replays from the first unacknowledged offset: a verdict may repeat, with the same message id; none is
lost.

A shadow pack (GROUPWARDEN_SHADOW_RULES) judges the same batches beside the active one; its verdicts go to their
own topic only. Both pack folders are checked for changes every GROUPWARDEN_RULES_POLL_SECONDS and a changed pack is
swapped in between two batches, so each batch is judged wholly by one version.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter as CounterOf
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mode
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.kafka.produce import OutRecord, send_batched, send_batched_ends
from streams.kafka.stage import BatchedStage, Ends, InFlight, Records
from streams.metrics import SUBJECT_TYPES, Metrics
from streams.policy.classify import Classifier
from streams.policy.reload import Followed, Rules, load_classifier
from streams.policy.rules import RulePackError, Severity
from streams.records import ChatMessage, InvalidMessage, SourceRecord, parse_message
from streams.topics import BLACKLIST, DEADLETTER, MESSAGES, SHADOW_VERDICTS, VERDICTS, VIOLATIONS

log = logging.getLogger(__name__)

CLASSIFY_ERROR = "classify_error"  # dead-letter reason for a message the classifier itself failed on
SHADOW_SEND_SECONDS = 5.0  # how long shadow verdicts may hold a batch's commit once its own outputs are acknowledged
SHADOW_PAUSE_SECONDS = 30.0  # the shadow rests after a failed send, so a broken shadow topic slows nothing down


def report_refused(metrics: Metrics, pack: str, directory: Path, running: str, exc: Exception) -> None:
    """Log and count a changed pack folder that could not be loaded; the pack ``running`` stays."""
    # A RulePackError's message is the whole story (file, line and reason): no stack for it.
    log.error(
        "%s rule pack in %s refused, keeping %s: %s",
        pack,
        directory,
        running,
        exc,
        exc_info=not isinstance(exc, RulePackError | OSError),
    )
    metrics.rules_reloads.labels(pack, "refused").inc()
    metrics.rules_refused.labels(pack).set(1)


def dead_letter(settings: Settings, record: SourceRecord, reason: str, detail: str) -> OutRecord:
    """The original bytes, where they came from, and why they were refused (in headers, as Kafka Connect does)."""
    headers = [
        ("groupwarden.error.reason", reason.encode()),
        ("groupwarden.error.detail", detail[:1000].encode()),
        ("groupwarden.source.topic", record.topic.encode()),
        ("groupwarden.source.partition", str(record.partition).encode()),
        ("groupwarden.source.offset", str(record.offset).encode()),
    ]
    return OutRecord(settings.topic(DEADLETTER), record.key, record.value or b"", headers)


@dataclass
class Tally:
    """What one batch produced, for the metrics."""

    decisions: CounterOf[str] = field(default_factory=CounterOf)
    categories: CounterOf[str] = field(default_factory=CounterOf)
    dead_letters: CounterOf[str] = field(default_factory=CounterOf)
    verdict_timestamps: list[int] = field(default_factory=list)  # Kafka timestamps (ms) of the messages judged
    shadow_decisions: CounterOf[str] = field(default_factory=CounterOf)
    disagreements: CounterOf[tuple[str, str]] = field(default_factory=CounterOf)  # (active, shadow) decisions
    shadow_skipped: CounterOf[str] = field(default_factory=CounterOf)


@dataclass
class Judged:
    """One batch judged: its outputs, and each valid message with its decision (None: the classifier failed)."""

    out: list[OutRecord]
    messages: list[ChatMessage]
    decisions: list[str | None]


@dataclass
class _Work:
    """What a batch's outputs do not say: its shadow verdicts and its tally."""

    shadow_out: list[OutRecord]
    tally: Tally


def classify_records(
    records: Sequence[ConsumerRecord[bytes, bytes]],
    classifier: Classifier,
    settings: Settings,
    now_ms: int,
    tally: Tally | None = None,
) -> list[OutRecord]:
    """Every output of one input batch: a verdict per valid message, a dead letter per invalid one."""
    return judge_records(records, classifier, settings, now_ms, tally if tally is not None else Tally()).out


def judge_records(
    records: Sequence[ConsumerRecord[bytes, bytes]],
    classifier: Classifier,
    settings: Settings,
    now_ms: int,
    tally: Tally,
) -> Judged:
    """What ``classify_records`` does, keeping the messages and decisions for a shadow pack to compare with."""
    out: list[OutRecord] = []
    valid: list[tuple[ConsumerRecord[bytes, bytes], ChatMessage]] = []
    for record in records:
        try:
            valid.append((record, parse_message(record.value)))
        except InvalidMessage as exc:
            out.append(dead_letter(settings, record, exc.reason, exc.detail))
            tally.dead_letters[exc.reason] += 1
    messages = [message for _, message in valid]
    verdicts: list[dict[str, Any] | None] = []
    results = classifier.classify_each(messages, now_ms)  # a classifier bug must not stop the stream
    _log_failures("the rule pack", results)
    for (record, _), result in zip(valid, results, strict=True):
        if isinstance(result, Exception):
            verdicts.append(None)
            out.append(dead_letter(settings, record, CLASSIFY_ERROR, repr(result)))
            tally.dead_letters[CLASSIFY_ERROR] += 1
        else:
            verdicts.append(result)
            tally.verdict_timestamps.append(record.timestamp)
    verdicts_topic, violations_topic = settings.topic(VERDICTS), settings.topic(VIOLATIONS)
    for verdict in verdicts:
        if verdict is None:
            continue
        out.append(OutRecord(verdicts_topic, verdict["group_id"].encode(), orjson.dumps(verdict)))
        tally.decisions[verdict["decision"]] += 1
        if verdict["categories"]:  # most have none, and Counter.update runs Python code even for none
            tally.categories.update(verdict["categories"])
        if verdict["decision"] == "block":  # review waits for a person; only a block is a strike
            out.append(OutRecord(violations_topic, verdict["sender_id"].encode(), orjson.dumps(violation_of(verdict))))
    return Judged(out, messages, [v["decision"] if v is not None else None for v in verdicts])


def shadow_records(
    judged: Judged, shadow: Classifier, settings: Settings, now_ms: int, tally: Tally
) -> list[OutRecord]:
    """The shadow pack's verdict on each message of a judged batch, for its own topic: no violation, no effect."""
    if not judged.messages:
        return []
    results = shadow.classify_each(judged.messages, now_ms)  # the candidate's failures cost the active pipeline nothing
    _log_failures("the shadow pack", results)
    topic = settings.topic(SHADOW_VERDICTS)
    out = []
    for verdict, active in zip(results, judged.decisions, strict=True):
        if isinstance(verdict, Exception):
            tally.shadow_skipped[CLASSIFY_ERROR] += 1
            continue
        out.append(OutRecord(topic, verdict["group_id"].encode(), orjson.dumps(verdict)))
        tally.shadow_decisions[verdict["decision"]] += 1
        if active is not None and active != verdict["decision"]:
            tally.disagreements[active, verdict["decision"]] += 1
    return out


def _log_failures(pack: str, results: Sequence[dict[str, Any] | Exception]) -> None:
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        log.error("%s failed on %d of %d messages of a batch", pack, len(failures), len(results), exc_info=failures[0])


_SEVERITY_ORDER = [severity.label for severity in Severity]


def violation_of(verdict: dict[str, Any]) -> dict[str, Any]:
    """What the user and group tables need of a blocked message (moderation.violations.v1): the categories that
    blocked it, their rules and their severity. A category whose evidence only reached review beside them is in the
    verdict, not in the strike, its sanctions' reasons or a campaign's categories."""
    decided = tuple(s["category"] for s in verdict["scores"] if s["decision"] == verdict["decision"])
    categories = decided or verdict["categories"]
    matches = [m for m in verdict["matches"] if m["category"] in categories]
    return {
        "schema": "moderation.violation.v1",
        "message_id": verdict["message_id"],
        "sender_id": verdict["sender_id"],
        "group_id": verdict["group_id"],
        "at_ms": verdict["classified_at_ms"],
        "severity": max((m["severity"] for m in matches), key=_SEVERITY_ORDER.index, default=verdict["severity"]),
        "categories": categories,
        "rule_ids": sorted({m["rule_id"] for m in matches}),
        "domains": sorted({s["domain"] for s in verdict["signals"] if s["kind"] == "link"}),
        "rules_version": verdict["rules_version"],
    }


class ClassifyStage(BatchedStage):
    """Consumes chat.messages.v1 in batches, classifies, produces verdicts and dead letters, then commits."""

    stage = "classify"
    decide_step = "judge"

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier | None = None,
        metrics: Metrics | None = None,
        *,
        shadow: Classifier | None = None,
        follow: Sequence[Followed] = (),
        on_rules: Callable[[Rules], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """``follow``: the pack folders to reload when they change; ``on_rules``: told of each new active pack."""
        super().__init__(settings, metrics or Metrics(CollectorRegistry()), [settings.topic(MESSAGES)], **kwargs)
        self.classifier = classifier or load_classifier(settings.rules_dir)
        self.shadow = shadow
        self._folders, self._on_rules = list(follow), on_rules
        self._shadow_paused_until = 0.0
        self._listed: dict[bytes, str] = {}  # blacklist key -> subject type, to count entries
        # The gauge of each subject type, looked up once: the standing stage writes about one entry a violation.
        self._entries = {
            subject_type: self.metrics.blacklist_entries.labels(subject_type) for subject_type in SUBJECT_TYPES
        }

    async def on_start(self) -> None:
        self.classifier.warm_up()
        await super().on_start()
        log.info("classify stage started with rule pack %s", self.classifier.version)
        if self.shadow is not None:
            log.info("shadow rule pack %s judges beside it", self.shadow.version)

    @mode.Service.task
    async def _follow_campaigns(self) -> None:
        """Every worker reads the whole blacklist: a link campaign's domain blocks until its entry is tombstoned."""
        consumer = AIOKafkaConsumer(
            self.settings.topic(BLACKLIST),
            group_id=None,  # no group: every partition, on every worker
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.settings.kafka_options(),
        )
        await consumer.start()
        try:
            while not self.should_stop:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        self._follow(record)
        finally:
            await consumer.stop()

    def _follow(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if not record.key:
            return
        self._count_entry(record.key, present=record.value is not None)
        if self.shadow is not None:  # the candidate learns campaigns too, or it would disagree on every one
            self.shadow.follow_blacklist(record.key, record.value)
        if (change := self.classifier.follow_blacklist(record.key, record.value)) is not None:
            log.info("%s", change)

    def _count_entry(self, key: bytes, *, present: bool) -> None:
        subject_type = key.split(b":", 1)[0].decode(errors="replace")
        if (entries := self._entries.get(subject_type)) is None:
            return
        if present and key not in self._listed:
            self._listed[key] = subject_type
            entries.inc()
        elif not present and self._listed.pop(key, None) is not None:
            entries.dec()

    @mode.Service.task
    async def _follow_rules(self) -> None:
        """Every few seconds, apply a pack folder that changed; refuse a broken pack and keep the one running."""
        if not self._folders or not self.settings.rules_poll_seconds:
            return
        while not self.should_stop:
            await self.sleep(self.settings.rules_poll_seconds)
            for followed in self._folders:
                try:
                    if await asyncio.to_thread(followed.watch.changed):
                        await self._reload(followed)
                except Exception:  # following the folder is a convenience: never let it take the worker down
                    log.exception("checking the %s rule pack in %s failed", followed.pack, followed.directory)

    async def _reload(self, followed: Followed) -> None:
        running = followed.rules.version if followed.rules is not None else "none"
        try:
            rules = await asyncio.to_thread(followed.load)  # ~0.3 s for the shipped pack: not on the event loop
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the new pack, reported; the running one stays
            report_refused(self.metrics, followed.pack, followed.directory, running, exc)
            return
        self.metrics.rules_refused.labels(followed.pack).set(0)
        if rules.same_as(followed.rules):
            log.info("%s rule pack in %s changed on disk but is still %s", followed.pack, followed.directory, running)
            return
        async with self._lock:  # between two batches: each batch is judged wholly by one version
            if followed.pack == "shadow":
                rules.classifier.carry_campaigns(self.shadow or self.classifier)
                self.shadow = rules.classifier
                self.metrics.describe_shadow(rules.version)
            else:
                rules.classifier.carry_campaigns(self.classifier)
                self.classifier = rules.classifier
                policy_version = rules.policy.version if rules.policy is not None else ""
                self.metrics.describe_rules(rules.version, policy_version, rules.pack.categories)
                if self._on_rules is not None:
                    self._on_rules(rules)
            followed.rules = rules
        # The new pack lives as long as the worker, as the start-up one does (frozen by the app once started): keep
        # full collections from walking its million objects. The pack it replaced holds no cycles: it goes by
        # reference counting, frozen or not, once the last batch judged by it has gone.
        gc.collect(1)
        gc.freeze()
        self.metrics.rules_reloads.labels(followed.pack, "applied").inc()
        log.info("%s rule pack %s applied, replacing %s", followed.pack, rules.version, running)

    def decide(self, records: Records) -> tuple[list[OutRecord], Any]:
        batch = [record for partition_records in records.values() for record in partition_records]
        now_ms = int(time.time() * 1000)
        tally = Tally()
        judged = judge_records(batch, self.classifier, self.settings, now_ms, tally)
        return judged.out, _Work(self._shadow_records(judged, now_ms, tally), tally)

    async def send(self, flight: InFlight) -> Ends:
        """The batch's outputs, and beside them its shadow verdicts, which may fail without holding the batch."""
        work: _Work = flight.work
        assert self.producer is not None
        shadow = asyncio.ensure_future(send_batched(self.producer, work.shadow_out)) if work.shadow_out else None
        try:
            ends = await send_batched_ends(self.producer, flight.out, in_order=self.in_order)
        except KafkaError:
            if shadow is not None:  # judged again by both packs when it is read again
                shadow.cancel()
                await asyncio.gather(shadow, return_exceptions=True)
            raise
        if shadow is not None:  # acknowledged before the commit, like the batch's own outputs
            await self._shadow_acknowledged(shadow, len(work.shadow_out), work.tally)
        return ends

    def observe(self, step: str, seconds: float) -> None:
        self.metrics.stage_seconds.labels(step).observe(seconds)

    def _shadow_records(self, judged: Judged, now_ms: int, tally: Tally) -> list[OutRecord]:
        if self.shadow is None:
            return []
        if time.monotonic() < self._shadow_paused_until:
            tally.shadow_skipped["paused"] += len(judged.messages)
            return []
        try:
            return shadow_records(judged, self.shadow, self.settings, now_ms, tally)
        except Exception:  # whatever fails on the shadow side, the batch goes on without its shadow verdicts
            log.exception("shadow verdicts of a batch could not be made; the batch goes on without them")
            tally.shadow_decisions.clear()
            tally.disagreements.clear()
            tally.shadow_skipped[CLASSIFY_ERROR] = len(judged.messages)
            return []

    async def _shadow_acknowledged(self, sending: asyncio.Future[int], count: int, tally: Tally) -> None:
        """Wait a little for the shadow verdicts; if they fail, count them and rest the shadow, not the batch."""
        try:
            await asyncio.wait_for(sending, SHADOW_SEND_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a shadow failure is logged and counted, and the batch commits
            log.warning(
                "%d shadow verdicts not acknowledged (%r); shadow verdicts pause for %.0f s",
                count,
                exc,
                SHADOW_PAUSE_SECONDS,
            )
            tally.shadow_decisions.clear()
            tally.disagreements.clear()
            tally.shadow_skipped["send_error"] += count
            self._shadow_paused_until = time.monotonic() + SHADOW_PAUSE_SECONDS

    def measure(self, flight: InFlight) -> None:
        """Metrics of a batch whose outputs the broker has acknowledged."""
        tally: Tally = flight.work.tally
        m, now = self.metrics, time.time()
        m.messages_consumed.inc(flight.count)
        m.batch_duration.observe(time.monotonic() - flight.started)
        m.batch_size.observe(flight.count)
        m.last_processed.set(now)
        for decision, count in tally.decisions.items():
            m.verdicts.labels(decision).inc(count)
        for category, count in tally.categories.items():
            m.category_hits.labels(category).inc(count)
        for reason, count in tally.dead_letters.items():
            m.dead_letters.labels(reason).inc(count)
        for decision, count in tally.shadow_decisions.items():
            m.shadow_verdicts.labels(decision).inc(count)
        for (active, shadow), count in tally.disagreements.items():
            m.shadow_disagreements.labels(active, shadow).inc(count)
        for reason, count in tally.shadow_skipped.items():
            m.shadow_skipped.labels(reason).inc(count)
        for timestamp in tally.verdict_timestamps:
            if timestamp > 0:
                m.latency.observe(max(0.0, now - timestamp / 1000))
