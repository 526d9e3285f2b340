"""One batch of one partition of the standing inputs, applied to that partition's table stores.

The pure core of a batched standing stage: the events of a partition's batch are decided in offset order by the
functions of streams/state/tables.py, each reading its table through an overlay of the batch's own new values. What
comes out is everything to produce for the batch (outputs, dead letters, and one changelog record per changed key,
all in one request per partition) and, once those are acknowledged, one write per table store holding the new values
with the changelog and input offsets they reflect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.agents.classify import dead_letter
from streams.config import Settings
from streams.kafka.produce import OutRecord
from streams.policy.ladder import Sanction
from streams.records import INVALID_EVENT, SourceRecord
from streams.state import codec
from streams.state.store import Checkpoint, PartitionStore, changelog_headers
from streams.state.tables import Applied, InvalidEvent, Tables, parse
from streams.topics import COMMANDS, GROUP_ACTIONS, GROUP_EVENTS, LINK_ACTIONS, USER_ACTIONS, VIOLATIONS

STANDING_ERROR = "standing_error"  # dead-letter reason for an event the tables failed on (a bug, not bad input)
USERS, GROUPS, LINKS = "users", "groups", "links"
TABLE_OF = {  # input topic -> the table that applies it; commands keep no state
    VIOLATIONS: USERS,
    USER_ACTIONS: USERS,
    GROUP_EVENTS: GROUPS,
    GROUP_ACTIONS: GROUPS,
    LINK_ACTIONS: LINKS,
    COMMANDS: None,
}
INBOX_OF = {USERS: USER_ACTIONS, GROUPS: GROUP_ACTIONS, LINKS: LINK_ACTIONS}  # where a table's ticks go
Decide = Callable[[Any, bytes, dict[str, Any], int], Applied[Any]]  # a decoded record (None: new) and an event
CODECS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {  # a table's records: load, dump
    USERS: (codec.load_user, codec.dump_user),
    GROUPS: (codec.load_group, codec.dump_group),
    LINKS: (codec.load_link, codec.dump_link),
}


class Readable(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


# Records kept decoded per table partition, as its store holds them: the keys that come back batch after batch (a
# spam wave's senders and groups, a campaign's domain) are not decoded again each time. The oldest go first.
DECODED_LIMIT = 8_192
Decoded = dict[str, dict[bytes, Any]]  # table -> key -> its stored record, decoded


def _remember(decoded: dict[bytes, Any], key: bytes, record: Any) -> None:
    if len(decoded) >= DECODED_LIMIT:
        del decoded[next(iter(decoded))]
    decoded[key] = record


@dataclass(slots=True)
class _New:
    record: Any  # decoded: later events of the batch, and later batches, read it as it is
    due_ms: int | None
    topic: str  # the input record that last changed it
    offset: int
    value: bytes = b""  # encoded once the batch is decided


@dataclass
class PartitionBatch:
    """What one batch of one partition decided."""

    partition: int
    outputs: list[OutRecord] = field(default_factory=list)  # outputs and dead letters, in decision order
    changed: dict[str, dict[bytes, _New]] = field(default_factory=dict)  # table -> key -> its new value
    inputs: dict[str, int] = field(default_factory=dict)  # input topic -> the next offset to read
    sanctions: list[Sanction] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)  # dead-letter reasons
    applied: Counter[str] = field(default_factory=Counter)  # events applied, per table
    created: Counter[str] = field(default_factory=Counter)  # keys that had no record, per table

    def changelog(self, changelog_topic: Callable[[str], str]) -> dict[str, list[OutRecord]]:
        """Per table, one changelog record per changed key, for this partition of its changelog."""
        return {
            table: [
                OutRecord(
                    changelog_topic(table),
                    key,
                    new.value,
                    changelog_headers(new.due_ms, new.topic, new.offset),
                    partition=self.partition,  # the store's partition, whichever partitioner placed the input
                )
                for key, new in changed.items()
            ]
            for table, changed in self.changed.items()
        }

    def write(
        self, stores: Mapping[str, PartitionStore], changelog_ends: Mapping[str, int], decoded: Decoded | None = None
    ) -> None:
        """After every record of the batch is acknowledged: each changed store in one write, with the offset after
        its changelog records (``changelog_ends``) and the input offsets the batch reached; ``decoded`` (the
        stores' records kept decoded) follows."""
        for table, store in stores.items():
            changed = self.changed.get(table, {})
            values = {key: new.value for key, new in changed.items()}
            due_ms = {key: new.due_ms for key, new in changed.items() if new.due_ms is not None}
            inputs = {**store.checkpoint.inputs, **self.inputs}
            checkpoint = Checkpoint(changelog_ends.get(table, store.checkpoint.changelog_offset), inputs)
            store.write_values(values, due_ms, checkpoint)
            if decoded is not None:
                kept = decoded[table]
                for key, new in changed.items():
                    kept.pop(key, None)  # to the end: the last written goes last
                    _remember(kept, key, new.record)


def apply_batch(
    settings: Settings,
    tables: Tables,
    stores: Mapping[str, Readable],
    partition: int,
    records: Sequence[SourceRecord],
    *,
    now_ms: int,
    earlier: Sequence[PartitionBatch] = (),
    decoded: Decoded | None = None,
    topic_name: Callable[[str], str] = lambda prefixed: prefixed,
) -> PartitionBatch:
    """Decide ``records`` (one partition's, in offset order per topic) against ``stores`` and the batch's overlay.

    ``earlier``: batches of the partition decided before this one whose values are not in the stores yet, oldest
    first. ``decoded``: records of the stores kept decoded, which reading the stores adds to. ``topic_name``: an
    input record's topic without the deployment's prefix. Stores are read, never written."""
    decide: dict[str | None, Decide] = {
        USERS: tables.decide_user,
        GROUPS: tables.decide_group,
        LINKS: tables.decide_link,
        None: lambda _record, _key, doc, now: Tables.command(doc, now),
    }
    batch = PartitionBatch(partition, changed={table: {} for table in stores})
    if decoded is None:
        decoded = {table: {} for table in stores}  # for this batch only
    outputs, inputs = batch.outputs, batch.inputs
    prefixed: dict[str, str] = {}  # an output's topic -> its name in this deployment
    newest_first = (batch, *reversed(earlier))
    for record in records:
        topic = topic_name(record.topic)
        table = TABLE_OF[topic]
        key = record.key or b""
        inputs[topic] = record.offset + 1
        try:
            current = _current(table, key, newest_first, stores, decoded) if table is not None else None
            applied = decide[table](current, key, parse(record.value), now_ms)
        except InvalidEvent as exc:
            outputs.append(dead_letter(settings, record, INVALID_EVENT, str(exc)))
            batch.dead.append(INVALID_EVENT)
            continue
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the stage, nor lose the event: kept with the error
            outputs.append(dead_letter(settings, record, STANDING_ERROR, repr(exc)))
            batch.dead.append(STANDING_ERROR)
            continue
        for o in applied.outputs:
            if (out_topic := prefixed.get(o.topic)) is None:
                out_topic = prefixed[o.topic] = settings.topic(o.topic)
            outputs.append(OutRecord(out_topic, o.key, o.value))
        if applied.sanctions:
            batch.sanctions += applied.sanctions
        if table is not None and applied.record is not None:
            batch.applied[table] += 1
            if current is None:
                batch.created[table] += 1
            batch.changed[table][key] = _New(applied.record, applied.due_ms, topic, record.offset)
    for table, changed in batch.changed.items():  # each changed record encoded once, whatever the events it took
        dump = CODECS[table][1]
        for new in changed.values():
            new.value = dump(new.record)
    return batch


def _current(
    table: str, key: bytes, batches: Sequence[PartitionBatch], stores: Mapping[str, Readable], decoded: Decoded
) -> Any:
    """A key's record as the events before this one left it, decoded: the last of ``batches`` (this one, then the
    unwritten ones before it, newest first) that changed it, or the store's; None if it has none."""
    for decided in batches:
        if (new := decided.changed[table].get(key)) is not None:
            return new.record
    kept = decoded[table]
    if (record := kept.get(key)) is not None:
        return record
    raw = stores[table].get(key)
    if raw is None:
        return None
    record = CODECS[table][0](raw)
    _remember(kept, key, record)
    return record
