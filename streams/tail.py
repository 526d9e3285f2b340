"""`groupwarden tail`: a topic's records as a person reads them, one line each (a sanction's notice on a second).

Verdicts, dead letters, violations, sanctions and notices, the blacklist and chat messages get their own layout; any
other record is shown as its JSON. Records are read with no consumer group, so tailing changes nothing anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from rich.text import Text

from streams.config import Settings
from streams.state.recovery import true_end_offsets
from streams.topics import (
    BLACKLIST,
    DEADLETTER,
    MESSAGES,
    NOTICES,
    SANCTIONS,
    SHADOW_VERDICTS,
    VERDICTS,
    VIOLATIONS,
    TopicError,
)

DECISION_STYLES = {"allow": "green", "review": "yellow", "block": "bold red"}


def when(at_ms: object) -> str:
    """Epoch milliseconds as a UTC time to the second; ``-`` for none."""
    if not isinstance(at_ms, int) or isinstance(at_ms, bool):
        return "-"
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _verdict(doc: dict[str, Any]) -> Text:
    decision = str(doc.get("decision"))
    matches = ", ".join(f"{m['rule_id']} {m['term']!r}" for m in doc.get("matches", []))
    return Text.assemble(
        f"{when(doc.get('sent_at_ms'))}  ",
        (f"{decision:<6}", DECISION_STYLES.get(decision, "")),
        f"  {doc.get('message_id')}  group {doc.get('group_id')}  sender {doc.get('sender_id')}",
        (f"  {', '.join(doc.get('categories', []))}: {matches}" if matches else ""),
    )


def _sanction(doc: dict[str, Any]) -> Text:
    until = doc.get("expires_ms")
    line = Text.assemble(
        f"{when(doc.get('start_ms'))}  ",
        ("revoked " if doc.get("revoked") else "", "bold green"),
        (str(doc.get("kind")), "bold yellow" if doc.get("revoked") else "bold red"),
        f"  {doc.get('subject')}  until {when(until) if until is not None else 'revoked'}",
        f"  {doc.get('reason', '')}",
    )
    if doc.get("notice"):
        line.append(f"\n    notice: {doc['notice']}", "italic")
    return line


def _blacklist(key: bytes | None, doc: dict[str, Any] | None) -> Text:
    subject = (key or b"").decode(errors="replace")
    if doc is None:
        return Text.assemble((subject, "bold"), ("  no longer restricted", "green"))
    restrictions = "; ".join(
        f"{r['kind']} until {when(r['until_ms']) if r['until_ms'] is not None else 'revoked'} ({r['reason']})"
        for r in doc.get("restrictions", [])
    )
    categories = doc.get("categories")
    return Text.assemble(
        (subject, "bold"), ("  " + restrictions, "red"), (f"  categories {', '.join(categories)}" if categories else "")
    )


def _violation(doc: dict[str, Any]) -> Text:
    return Text(
        f"{when(doc.get('at_ms'))}  {doc.get('severity')}  sender {doc.get('sender_id')}  group {doc.get('group_id')}"
        f"  {doc.get('message_id')}  {', '.join(doc.get('rule_ids', []))}"
    )


def _message(doc: dict[str, Any]) -> Text:
    return Text(
        f"{doc.get('sent_at')}  {doc.get('message_id')}  group {doc.get('group_id')}  sender {doc.get('sender_id')}"
        f"  {doc.get('text')!r}"
    )


def _dead_letter(record: ConsumerRecord[bytes, bytes]) -> Text:
    headers = {name: value.decode(errors="replace") for name, value in record.headers}
    source = (
        f"{headers.get('groupwarden.source.topic')}[{headers.get('groupwarden.source.partition')}]"
        f"@{headers.get('groupwarden.source.offset')}"
    )
    return Text.assemble(
        f"{when(record.timestamp)}  ",
        (headers.get("groupwarden.error.reason", "?"), "bold red"),
        f"  {source}  {headers.get('groupwarden.error.detail', '')}",
    )


_LAYOUTS: dict[str, Callable[[dict[str, Any]], Text]] = {
    VERDICTS: _verdict,
    SHADOW_VERDICTS: _verdict,
    SANCTIONS: _sanction,
    NOTICES: _sanction,
    VIOLATIONS: _violation,
    MESSAGES: _message,
}


def kind_of(topic: str) -> str:
    """The groupwarden topic a name is, with or without a prefix (``replay-….moderation.sanctions.v1``)."""
    return next((name for name in (*_LAYOUTS, DEADLETTER, BLACKLIST) if topic.endswith(name)), topic)


def render(name: str, record: ConsumerRecord[bytes, bytes]) -> Text:
    """One record of the topic ``name`` (see ``kind_of``), readable."""
    if name == DEADLETTER:
        return _dead_letter(record)
    try:
        doc = None if record.value is None else orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return Text(f"{record.partition}@{record.offset}  {record.value!r}")
    if name == BLACKLIST:
        return _blacklist(record.key, doc)
    layout = _LAYOUTS.get(name)
    if layout is None or not isinstance(doc, dict):
        return Text((record.value or b"null").decode(errors="replace"))
    return layout(doc)


async def tail(
    settings: Settings, name: str, show: Callable[[Text], None], *, last: int | None, follow: bool, stop: asyncio.Event
) -> int:
    """Show the records of ``name`` (the last ``last`` of each partition, or all that are kept) up to its end, and
    with ``follow`` what arrives after, until ``stop``. Returns how many were shown."""
    topic, name = settings.topic(name), kind_of(name)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **settings.kafka_options())
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise TopicError(f"topic {topic} does not exist: `groupwarden topics create` makes every topic")
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        firsts = await consumer.beginning_offsets(tps)
        ends = await true_end_offsets(settings.kafka_options(), tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, firsts[tp] if last is None else max(firsts[tp], ends[tp] - last))
        shown = 0
        while not stop.is_set():
            if not follow and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                break
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                for record in batch:
                    if follow or record.offset < ends[tp]:
                        show(render(name, record))
                        shown += 1
        return shown
    finally:
        await consumer.stop()
