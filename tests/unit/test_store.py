"""Partition stores: one atomic write holds values, expiry times and the checkpoint; restore applies changelog
records as the last value per key, with expiries from headers and without what came from uncommitted input.

Every test runs on both stores: memory:// is the same code on dicts.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rocksdict

from streams.state.store import (
    Change,
    Checkpoint,
    PartitionStore,
    changelog_headers,
    open_store,
)

VIOLATIONS = "moderation.violations.v1"
INBOX = "groupwarden.user-actions.v1"


@dataclass
class Record:
    """A changelog record as aiokafka hands it over."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "users-changelog"
    partition: int = 0


@pytest.fixture(params=["memory://", "rocksdb://"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[PartitionStore]:
    opened = open_store(kind, tmp_path / "users-0")
    yield opened
    opened.close()


def contents(store: PartitionStore) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    return dict(store.items()), dict(store.expiries())


def test_a_new_store_is_empty_with_no_checkpoint(store: PartitionStore) -> None:
    assert contents(store) == ({}, {})
    assert store.checkpoint == Checkpoint(0, {})
    assert store.get(b"u1") is None


def test_a_write_sets_values_expiries_and_the_checkpoint_together(store: PartitionStore) -> None:
    store.write({b"u1": Change(b"one", 1_000), b"u2": Change(b"two")}, Checkpoint(7, {VIOLATIONS: 40}))
    store.write({b"u2": Change(b"two again", 2_000), b"u3": Change(None)}, Checkpoint(9, {VIOLATIONS: 41, INBOX: 3}))

    assert store.get(b"u2") == b"two again"
    assert contents(store) == ({b"u1": b"one", b"u2": b"two again"}, {b"u1": 1_000, b"u2": 2_000})
    assert store.checkpoint == Checkpoint(9, {VIOLATIONS: 41, INBOX: 3})


def test_deleting_a_record_or_its_due_time_removes_them(store: PartitionStore) -> None:
    store.write({b"u1": Change(b"one", 1_000), b"u2": Change(b"two", 2_000)}, Checkpoint(2))
    store.write({b"u1": Change(None), b"u2": Change(b"two, nothing due")}, Checkpoint(4))
    assert contents(store) == ({b"u2": b"two, nothing due"}, {})


def test_expiries_are_read_without_the_records(store: PartitionStore) -> None:
    """Values that are not even JSON: the schedule comes from the expiry index alone."""
    changes = {f"u{n}".encode(): Change(b"\xff not a record", 5_000 + n) for n in range(3)}
    changes[b"u9"] = Change(b"\xff", None)
    store.write(changes, Checkpoint(1))
    assert sorted(store.expiries()) == [(b"u0", 5_000), (b"u1", 5_001), (b"u2", 5_002)]


def test_keys_of_one_kind_never_show_among_another(store: PartitionStore) -> None:
    """In RocksDB each kind is a key prefix: values, expiries and the checkpoint share one database."""
    keys = [b"", b"m", b"v", b"x", b"\x00", b"\xff\xff", b"checkpoint"]
    store.write({key: Change(b"value of " + key, 1 << 40) for key in keys}, Checkpoint(3))
    assert dict(store.items()) == {key: b"value of " + key for key in keys}
    assert dict(store.expiries()) == dict.fromkeys(keys, 1 << 40)


def test_a_rocksdb_store_keeps_everything_across_a_restart(tmp_path: Path) -> None:
    store = open_store("rocksdb://", tmp_path / "users-3")
    store.write({b"u1": Change(b"one", 1_000)}, Checkpoint(12, {VIOLATIONS: 5}))
    store.close()
    reopened = open_store("rocksdb://", tmp_path / "users-3")
    try:
        assert contents(reopened) == ({b"u1": b"one"}, {b"u1": 1_000})
        assert reopened.checkpoint == Checkpoint(12, {VIOLATIONS: 5})
    finally:
        reopened.close()


def test_a_memory_store_starts_empty_every_time(tmp_path: Path) -> None:
    store = open_store("memory://", tmp_path / "users-3")
    store.write({b"u1": Change(b"one")}, Checkpoint(12))
    store.close()
    assert open_store("memory://", tmp_path / "users-3").checkpoint == Checkpoint()


def test_restore_keeps_the_last_value_of_each_key_and_its_due_time(store: PartitionStore) -> None:
    records = [
        Record(10, b"u1", b"u1 v1", changelog_headers(1_000, VIOLATIONS, 0)),
        Record(11, b"u2", b"u2 v1", changelog_headers(None, VIOLATIONS, 1)),
        Record(12, b"u1", b"u1 v2", changelog_headers(None, INBOX, 0)),
        Record(13, b"u3", b"u3 v1", changelog_headers(3_000, VIOLATIONS, 2)),
        Record(15, b"u2", None, changelog_headers(None, INBOX, 1)),  # offsets may skip (compaction)
        Record(16, b"u4", b"u4 v1"),  # no headers: written by something else; applied, nothing due
    ]
    assert store.restore(records[:3]) == 3
    assert store.restore(records[3:]) == 3
    assert contents(store) == ({b"u1": b"u1 v2", b"u3": b"u3 v1", b"u4": b"u4 v1"}, {b"u3": 3_000})
    assert store.checkpoint.changelog_offset == 17


def test_a_cold_restore_writes_no_deletes_for_records_with_nothing_due(tmp_path: Path) -> None:
    """Most changelog records have nothing due; an empty store has no expiry entry to remove for them, and a delete
    per record would cost RocksDB about as much as the record itself."""
    store = open_store("rocksdb://", tmp_path / "users-0")
    records = [Record(n, b"u%d" % n, b"v", changelog_headers(None, VIOLATIONS, n)) for n in range(100)]
    records[7].headers = changelog_headers(5_000, VIOLATIONS, 7)
    store.restore(records)
    assert store.restore([Record(100, b"u7", b"v2", changelog_headers(None, VIOLATIONS, 100))]) == 1
    assert contents(store)[1] == {}  # the one entry there was is removed
    store.close()
    assert deletes_written(tmp_path / "users-0") == 1


def deletes_written(path: Path) -> int:
    """Deletes in a closed RocksDB database's files (closing flushes every write into them)."""
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
    try:
        properties = db.property_value("rocksdb.aggregated-table-properties") or ""
    finally:
        db.close()
    found = re.search(r"# deletions=(\d+)", properties)
    assert found is not None, properties
    return int(found.group(1))


def test_a_reopened_store_removes_the_expiry_entries_written_before(tmp_path: Path) -> None:
    store = open_store("rocksdb://", tmp_path / "users-0")
    store.write({b"u1": Change(b"one", 1_000), b"u2": Change(b"two", 2_000)}, Checkpoint(2))
    store.close()
    store = open_store("rocksdb://", tmp_path / "users-0")
    try:
        store.restore([Record(2, b"u1", b"one again", changelog_headers(None, VIOLATIONS, 3))])
        store.write({b"u2": Change(b"two again")}, Checkpoint(4))
        assert contents(store) == ({b"u1": b"one again", b"u2": b"two again"}, {})
    finally:
        store.close()


def test_restore_leaves_out_what_uncommitted_input_changed(store: PartitionStore) -> None:
    """Input committed up to violations 2 and the inbox 1: the changes of violations@2 and inbox@1 wait for their
    input to be applied again; the record they changed stays as the committed input left it."""
    records = [
        Record(0, b"u1", b"u1 v1", changelog_headers(1_000, VIOLATIONS, 0)),
        Record(1, b"u2", b"u2 v1", changelog_headers(None, INBOX, 0)),
        Record(2, b"u1", b"u1 v2", changelog_headers(None, VIOLATIONS, 2)),
        Record(3, b"u2", None, changelog_headers(None, INBOX, 1)),
        Record(4, b"u3", b"u3 v1", changelog_headers(None, "another-topic", 0)),  # never committed at all
    ]
    committed = {VIOLATIONS: 2, INBOX: 1}
    assert store.restore(records, committed) == 2
    assert contents(store) == ({b"u1": b"u1 v1", b"u2": b"u2 v1"}, {b"u1": 1_000})
    assert store.checkpoint == Checkpoint(5, committed)


def test_a_restore_may_halt_at_the_first_record_from_uncommitted_input(store: PartitionStore) -> None:
    """Halted there, the checkpoint is that record's offset; restored again once its input is committed, the store
    is what one restore with the later offsets makes."""
    records = [
        Record(0, b"u1", b"u1 v1", changelog_headers(1_000, VIOLATIONS, 0)),
        Record(1, b"u2", b"u2 v1", changelog_headers(None, INBOX, 0)),
        Record(2, b"u1", b"u1 v2", changelog_headers(None, VIOLATIONS, 2)),
        Record(3, b"u2", None, changelog_headers(None, INBOX, 1)),
    ]
    assert store.restore(records, {VIOLATIONS: 2, INBOX: 1}, halt_at_uncommitted=True) == 2
    assert contents(store) == ({b"u1": b"u1 v1", b"u2": b"u2 v1"}, {b"u1": 1_000})
    assert store.checkpoint == Checkpoint(2, {VIOLATIONS: 2, INBOX: 1})
    later = {VIOLATIONS: 3, INBOX: 1}  # violations@2 committed since; the inbox not
    assert store.restore(records[2:], later) == 1
    assert contents(store) == ({b"u1": b"u1 v2", b"u2": b"u2 v1"}, {})
    assert store.checkpoint == Checkpoint(4, later)


def test_restore_of_nothing_changes_nothing(store: PartitionStore) -> None:
    store.write({b"u1": Change(b"one")}, Checkpoint(3, {VIOLATIONS: 1}))
    assert store.restore([]) == 0
    assert store.checkpoint == Checkpoint(3, {VIOLATIONS: 1})


def test_wipe_forgets_records_and_checkpoint(store: PartitionStore) -> None:
    store.write({b"u1": Change(b"one", 9)}, Checkpoint(3, {VIOLATIONS: 1}))
    store.wipe()
    assert contents(store) == ({}, {})
    assert store.checkpoint == Checkpoint()
    store.write({b"u2": Change(b"two")}, Checkpoint(1))  # and it still takes writes
    assert contents(store) == ({b"u2": b"two"}, {})


def test_an_unknown_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown store"):
        open_store("redis://", tmp_path)


def test_a_deleted_record_has_nothing_due(store: PartitionStore) -> None:
    store.write({b"u1": Change(b"one", 1_000)}, Checkpoint(1))
    store.write({b"u1": Change(None, 2_000)}, Checkpoint(2))
    assert contents(store) == ({}, {})


def crashed_copy(store_path: Path, to: Path) -> PartitionStore:
    """The store as a restart after a crash finds it: the files on disk as they are now, nothing closed or flushed."""
    shutil.copytree(store_path, to)
    return open_store("rocksdb://", to)


def changelog(first: int, count: int) -> list[Record]:
    return [Record(n, b"u%d" % n, b"v%d" % n, changelog_headers(n, VIOLATIONS, n)) for n in range(first, first + count)]


def test_a_crash_in_a_restore_leaves_the_store_as_before_it(tmp_path: Path) -> None:
    """Restore writes skip the write-ahead log: a crash loses them all, checkpoint included, and the next restore
    reads the same tail again. What was written before the restore stays."""
    store = open_store("rocksdb://", tmp_path / "users-0")
    store.write({b"u0": Change(b"v0", 0)}, Checkpoint(1, {VIOLATIONS: 1}))
    store.restore(changelog(1, 50))
    crashed = crashed_copy(tmp_path / "users-0", tmp_path / "crashed")
    try:
        assert contents(crashed) == ({b"u0": b"v0"}, {b"u0": 0})
        assert crashed.checkpoint == Checkpoint(1, {VIOLATIONS: 1})
    finally:
        crashed.close()
        store.close()


def test_restored_records_outlive_a_crash_once_flushed(tmp_path: Path) -> None:
    store = open_store("rocksdb://", tmp_path / "users-0")
    store.restore(changelog(0, 50))
    store.flush()
    crashed = crashed_copy(tmp_path / "users-0", tmp_path / "crashed")
    try:
        assert contents(crashed) == contents(store)
        assert crashed.checkpoint == Checkpoint(50, {})
    finally:
        crashed.close()
        store.close()


def test_a_write_after_a_restore_survives_a_crash_with_what_was_restored(tmp_path: Path) -> None:
    """The write's checkpoint claims the restored records: they are made durable before it is logged."""
    store = open_store("rocksdb://", tmp_path / "users-0")
    store.restore(changelog(0, 50))
    store.write({b"u50": Change(b"v50")}, Checkpoint(51, {VIOLATIONS: 51}))
    crashed = crashed_copy(tmp_path / "users-0", tmp_path / "crashed")
    try:
        values, dues = contents(crashed)
        assert values == {b"u%d" % n: b"v%d" % n for n in range(51)}
        assert dues == {b"u%d" % n: n for n in range(50)}
        assert crashed.checkpoint == Checkpoint(51, {VIOLATIONS: 51})
    finally:
        crashed.close()
        store.close()


def test_restore_writes_each_key_once_with_its_last_value(store: PartitionStore) -> None:
    """Records of one fetch, many per key: the last decides the value and the due time, a tombstone included."""
    records = [
        Record(0, b"u1", b"u1 v1", changelog_headers(1_000, VIOLATIONS, 0)),
        Record(1, b"u2", b"u2 v1", changelog_headers(2_000, VIOLATIONS, 1)),
        Record(2, b"u1", b"u1 v2", changelog_headers(None, VIOLATIONS, 2)),
        Record(3, b"u2", None, changelog_headers(None, VIOLATIONS, 3)),
        Record(4, b"u2", b"u2 v3", changelog_headers(4_000, VIOLATIONS, 4)),
        Record(5, b"u3", b"u3 v1", changelog_headers(5_000, VIOLATIONS, 5)),
        Record(6, b"u3", None, changelog_headers(None, VIOLATIONS, 6)),
    ]
    assert store.restore(records) == 7
    assert contents(store) == ({b"u1": b"u1 v2", b"u2": b"u2 v3"}, {b"u2": 4_000})
