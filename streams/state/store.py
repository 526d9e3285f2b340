"""A table partition's local store: its records, when each next changes by itself, and the checkpoint they reflect.

One store per table partition, replicated by a compacted changelog topic keyed like the table (as Kafka Streams and
Quix Streams keep state). Every write is one atomic batch holding the new values together with the changelog offset
and the input offsets they reflect, so a restart knows exactly where to resume. Expiry times are kept apart from the
records, so rebuilding the expiry schedule reads them without decoding a single record.

``rocksdb://`` keeps each partition in a RocksDB database of its own; ``memory://`` runs the same code on dicts.

A changelog record is the table's key and value (None: deleted), with two headers: when the record next changes by
itself, and the input record that last changed it. Recovery restores the first without decoding the value, and uses
the second to leave out what came from input records that were never committed, which will be applied again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson
import rocksdict

from streams.records import SourceRecord

STORES = ("rocksdb://", "memory://")
DUE_HEADER = "due_ms"  # epoch milliseconds, in ASCII digits; absent: the record never changes by itself
SOURCE_HEADER = "source"  # "<input topic>@<offset>" of the input record that last changed the record

# RocksDB key prefixes: one database per partition, three kinds of keys.
VALUES, EXPIRIES, META = b"v", b"x", b"m"
_CHECKPOINT = b"checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a store reflects: the changelog up to ``changelog_offset`` and each input topic up to its offset (the
    next offset not applied, of this store's partition)."""

    changelog_offset: int = 0
    inputs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    value: bytes | None  # None: the key is deleted, and its due time with it
    due_ms: int | None = None  # when the record next changes by itself


class ChangelogRecord(SourceRecord, Protocol):
    headers: Sequence[tuple[str, bytes]]


def changelog_headers(due_ms: int | None, source_topic: str, source_offset: int) -> list[tuple[str, bytes]]:
    """The headers of a changelog record (see the module's docstring)."""
    headers = [(SOURCE_HEADER, f"{source_topic}@{source_offset}".encode())]
    if due_ms is not None:
        headers.append((DUE_HEADER, str(due_ms).encode()))
    return headers


def _uncommitted(source: bytes, committed: Mapping[bytes, int]) -> bool:
    """Whether the input record a changelog record came from is at or past its topic's committed offset."""
    topic, _, offset = source.rpartition(b"@")
    return int(offset) >= committed.get(topic, 0)


# -- backends --------------------------------------------------------------------------------------------------------


Changes = Mapping[bytes, Mapping[bytes, bytes | None]]  # per kind of key: key -> new value (None: deleted)


class Backend(Protocol):
    def write(self, changes: Changes, checkpoint: bytes, *, logged: bool = True) -> None:
        """The changes of each kind of key (VALUES, EXPIRIES) and the checkpoint, all or none.
        ``logged=False``: a crash may lose the write until the next flush, which makes restoring cheaper."""

    def flush(self) -> None:
        """Make every write so far durable."""

    def get(self, space: bytes, key: bytes) -> bytes | None: ...
    def scan(self, space: bytes) -> Iterator[tuple[bytes, bytes]]: ...
    def wipe(self) -> None:
        """Remove every key."""

    def close(self) -> None: ...


class MemoryBackend:
    """A dict per kind of key. Gone with the process: every start restores from the changelog."""

    def __init__(self) -> None:
        self._spaces: dict[bytes, dict[bytes, bytes]] = {VALUES: {}, EXPIRIES: {}, META: {}}

    def write(self, changes: Changes, checkpoint: bytes, *, logged: bool = True) -> None:  # noqa: ARG002 - no log
        for space, changed in changes.items():
            keys = self._spaces[space]
            for key, value in changed.items():
                if value is None:
                    keys.pop(key, None)
                else:
                    keys[key] = value
        self._spaces[META][_CHECKPOINT] = checkpoint

    def get(self, space: bytes, key: bytes) -> bytes | None:
        return self._spaces[space].get(key)

    def scan(self, space: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._spaces[space].items()))

    def flush(self) -> None:
        pass

    def wipe(self) -> None:
        for keys in self._spaces.values():
            keys.clear()

    def close(self) -> None:
        self.wipe()


def _rocksdb_options() -> rocksdict.Options:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(create_if_missing=True)
    return options


def _unlogged() -> rocksdict.WriteOptions:
    options = rocksdict.WriteOptions()
    options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property; rocksdict's stub says method
    return options


class RocksBackend:
    """One RocksDB database; each kind of key under its own one-byte prefix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = rocksdict.Rdict(str(path), _rocksdb_options())
        self._unflushed = False  # unlogged writes only in memory: a crash would lose them

    def write(self, changes: Changes, checkpoint: bytes, *, logged: bool = True) -> None:
        """One WriteBatch, its keys in order and the values before the due times: RocksDB takes keys in order into
        its memtable several times faster than keys at random (measured on restoring 1M users).

        Unlogged writes skip the write-ahead log. Before a logged write they are flushed: after a crash the log is
        replayed onto the files, and a logged write replayed without the unlogged ones before it would leave a
        checkpoint that claims records the store lost."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        for space in sorted(changes):  # the prefixes sort as the kinds of key: VALUES before EXPIRIES
            changed = changes[space]
            for key in sorted(changed):
                value = changed[key]
                if value is None:
                    delete(space + key)
                else:
                    put(space + key, value)
        put(META + _CHECKPOINT, checkpoint)
        if logged:
            self.flush()
            self._db.write(batch)
        else:
            self._db.write(batch, _unlogged())
            self._unflushed = True

    def flush(self) -> None:
        if self._unflushed:
            self._db.flush(wait=True)
            self._unflushed = False

    def get(self, space: bytes, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(space + key)
        return value

    def scan(self, space: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=space):
            assert isinstance(key, bytes)  # raw mode: keys are bytes
            if not key.startswith(space):
                return
            yield key[len(space) :], value

    def wipe(self) -> None:
        self._db.close()
        rocksdict.Rdict.destroy(str(self.path), _rocksdb_options())
        shutil.rmtree(self.path, ignore_errors=True)  # destroy leaves the folder
        self._db = rocksdict.Rdict(str(self.path), _rocksdb_options())
        self._unflushed = False

    def close(self) -> None:
        self.flush()
        self._db.close()


# -- the store -------------------------------------------------------------------------------------------------------


def _checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    return orjson.dumps({"changelog": checkpoint.changelog_offset, "inputs": dict(checkpoint.inputs)})


def _checkpoint(raw: bytes | None) -> Checkpoint:
    if raw is None:
        return Checkpoint()
    doc = orjson.loads(raw)
    return Checkpoint(int(doc["changelog"]), {str(t): int(o) for t, o in doc["inputs"].items()})


class PartitionStore:
    """The records of one table partition, their expiry times, and the checkpoint they reflect."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.checkpoint = _checkpoint(backend.get(META, _CHECKPOINT))
        # The keys that have an expiry entry: a record with nothing due removes one only where there is one, so a
        # cold restore, whose records mostly have nothing due, writes no deletes for them.
        self._expiring = {key for key, _ in backend.scan(EXPIRIES)}

    def get(self, key: bytes) -> bytes | None:
        return self._backend.get(VALUES, key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self._backend.scan(VALUES)

    def expiries(self) -> Iterator[tuple[bytes, int]]:
        """Every key that changes by itself, with when: without reading a record."""
        return ((key, int.from_bytes(due, "big")) for key, due in self._backend.scan(EXPIRIES))

    def write(self, changes: Mapping[bytes, Change], checkpoint: Checkpoint) -> None:
        """``write_values`` with a Change per key."""
        values = {key: change.value for key, change in changes.items()}
        due_ms = {key: change.due_ms for key, change in changes.items() if change.due_ms is not None}
        self.write_values(values, due_ms, checkpoint)

    def write_values(
        self, values: Mapping[bytes, bytes | None], due_ms: Mapping[bytes, int], checkpoint: Checkpoint
    ) -> None:
        """The new values (None: deleted) and the due times of those that have one, and the checkpoint they reach, in
        one atomic write. A batch has them so: a Change per key would only be taken apart again."""
        self._commit(values, due_ms, checkpoint)

    def restore(
        self,
        records: Sequence[ChangelogRecord],
        committed: Mapping[str, int] | None = None,
        *,
        halt_at_uncommitted: bool = False,
    ) -> int:
        """Apply records read from the changelog, in offset order, in one write; return how many were applied.

        ``committed``: the committed offset of each input topic (of this partition). A record that came from an
        input record at or past it is left out: that input will be read and applied again, and must find the state
        it was first applied to, or its outputs (perhaps never acknowledged) would not be made again.
        ``halt_at_uncommitted``: stop before such a record instead, the checkpoint at its offset, so that a later
        restore decides on it with the committed offsets of its own time (they may have moved on meanwhile).

        The write skips the write-ahead log: a crash before ``flush`` (or the next ``write``, or ``close``) loses
        what restores wrote since the last one, checkpoint included, so the next restore reads it again."""
        if not records:
            return 0
        inputs = None if committed is None else {topic.encode(): offset for topic, offset in committed.items()}
        values: dict[bytes, bytes | None] = {}
        dues: dict[bytes, bytes] = {}  # of the keys whose last record has something due, in ASCII digits
        applied = 0
        end = records[-1].offset + 1
        for record in records:
            due = source = None
            for name, header in record.headers:  # inline: this loop runs once per record of a changelog
                if name == DUE_HEADER:
                    due = header
                elif name == SOURCE_HEADER:
                    source = header
            if inputs is not None and source is not None and _uncommitted(source, inputs):
                if halt_at_uncommitted:
                    end = record.offset
                    break
                continue
            key = record.key
            assert key is not None, "a changelog record has the table's key"
            values[key] = record.value  # a key's last record wins
            if due is None:
                dues.pop(key, None)
            else:
                dues[key] = due
            applied += 1
        inputs_reached = dict(self.checkpoint.inputs if committed is None else committed)
        due_ms = {key: int(due) for key, due in dues.items()}
        self._commit(values, due_ms, Checkpoint(end, inputs_reached), logged=False)
        return applied

    def flush(self) -> None:
        """Make restored records durable."""
        self._backend.flush()

    def _commit(
        self,
        values: Mapping[bytes, bytes | None],
        due_ms: Mapping[bytes, int],
        checkpoint: Checkpoint,
        *,
        logged: bool = True,
    ) -> None:
        """``due_ms``: the keys of ``values`` that have something due; a deleted record has nothing due."""
        expiring = self._expiring
        # 8 big-endian bytes sort as the times do.
        entries: dict[bytes, bytes | None] = {
            key: due.to_bytes(8, "big") for key, due in due_ms.items() if values[key] is not None
        }
        if expiring:
            for key in expiring.intersection(values):
                entries.setdefault(key, None)  # nothing due any more: its entry goes
        self._backend.write({VALUES: values, EXPIRIES: entries}, _checkpoint_bytes(checkpoint), logged=logged)
        self.checkpoint = checkpoint
        for key, entry in entries.items():
            if entry is None:
                expiring.discard(key)
            else:
                expiring.add(key)

    def wipe(self) -> None:
        """Forget everything, checkpoint included: the next restore reads the whole changelog."""
        self._backend.wipe()
        self.checkpoint = Checkpoint()
        self._expiring.clear()

    def close(self) -> None:
        self._backend.close()


def open_store(store: str, path: Path) -> PartitionStore:
    """A partition store: ``rocksdb://`` in the database at ``path``, ``memory://`` in dicts (``path`` unused)."""
    if store == "rocksdb://":
        return PartitionStore(RocksBackend(path))
    if store == "memory://":
        return PartitionStore(MemoryBackend())
    raise ValueError(f"unknown store {store!r}: use one of {', '.join(STORES)}")
