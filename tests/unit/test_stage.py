"""A partition's batch applied to its stores: the same decisions, outputs and records as one event at a time, one
changelog record per changed key, and the stores written only when told, with the offsets reached."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from streams.config import DEFAULT_RULES, Settings
from streams.policy.rules import load_pack
from streams.policy.sanctions import load_sanctions
from streams.records import INVALID_EVENT
from streams.state import stage
from streams.state.stage import CODECS, GROUPS, LINKS, USERS, Decoded, apply_batch
from streams.state.store import DUE_HEADER, SOURCE_HEADER, Checkpoint, PartitionStore, open_store
from streams.state.tables import Tables
from streams.topics import AUDIT, DEADLETTER, GROUP_ACTIONS, GROUP_EVENTS, USER_ACTIONS, VIOLATIONS

T0 = 1_899_000_000_000
SETTINGS = Settings(topic_prefix="p.")


@dataclass
class Record:
    topic: str
    offset: int
    key: bytes | None
    value: bytes | None
    partition: int = 0


@functools.cache
def tables() -> Tables:
    pack = load_pack(DEFAULT_RULES)
    return Tables(load_sanctions(DEFAULT_RULES / "sanctions.toml", pack.ids()), pack.version)


def stores(tmp_path: Path) -> dict[str, PartitionStore]:
    return {table: open_store("memory://", tmp_path / table) for table in (USERS, GROUPS, LINKS)}


def violation(n: int, user: str, group: str, at_ms: int) -> bytes:
    doc = {
        "message_id": f"m{n}",
        "sender_id": user,
        "group_id": group,
        "at_ms": at_ms,
        "severity": "high",
        "categories": ["scam"],
        "rule_ids": ["scam.phishing"],
        "domains": [],
    }
    return orjson.dumps(doc)


def workload(seed: int) -> list[Record]:
    """Violations of few users and groups (so keys repeat within a batch), group events, a redelivery, a bad event,
    and the group table's inbox fed as the stage would feed it."""
    rng = random.Random(seed)
    offsets = dict.fromkeys((VIOLATIONS, GROUP_EVENTS, GROUP_ACTIONS, USER_ACTIONS), 0)
    out: list[Record] = []

    def add(topic: str, key: bytes, value: bytes) -> None:
        out.append(Record(f"p.{topic}", offsets[topic], key, value))
        offsets[topic] += 1

    for g in range(3):
        event = {"kind": "created", "group_id": f"g{g}", "user_id": f"owner{g}", "at_ms": T0}
        add(GROUP_EVENTS, f"g{g}".encode(), orjson.dumps(event))
    for n in range(60):
        user, group = f"u{rng.randrange(5)}", f"g{rng.randrange(3)}"
        value = violation(n, user, group, T0 + n * 1000)
        add(VIOLATIONS, user.encode(), value)
        forward = orjson.loads(value) | {"action": "violation", "rules_version": None}
        add(GROUP_ACTIONS, group.encode(), orjson.dumps(forward))
        if n % 17 == 3:
            add(VIOLATIONS, user.encode(), value)  # redelivered
        if n == 30:
            add(VIOLATIONS, user.encode(), b"not json")
    return out


def run(
    records: list[Record], sizes: list[int], tmp_path: Path, decoded: Decoded | None = None
) -> tuple[list[tuple[str, bytes, bytes]], dict]:
    """Apply ``records`` in batches of the given sizes, writing the stores after each as the stage would;
    ``decoded``: the stores' records kept decoded from batch to batch, as the stage keeps them."""
    t, s = tables(), stores(tmp_path)
    outputs: list[tuple[str, bytes, bytes]] = []
    at, i = 0, 0
    while at < len(records):
        size = sizes[i % len(sizes)]
        chunk = records[at : at + size]
        batch = apply_batch(
            SETTINGS, t, s, 0, chunk, now_ms=T0, decoded=decoded, topic_name=lambda n: n.removeprefix("p.")
        )
        outputs += [(o.topic, o.key or b"", o.value or b"") for o in batch.outputs]
        batch.write(s, {table: at + len(records) for table in s}, decoded)
        at, i = at + size, i + 1
    return outputs, {table: dict(store.items()) for table, store in s.items()} | {
        "expiries": {table: dict(store.expiries()) for table, store in s.items()}
    }


@pytest.mark.parametrize("keep_decoded", [False, True])
@pytest.mark.parametrize("sizes", [[2], [7, 1, 30], [1000]])
def test_a_batch_decides_as_one_event_at_a_time(tmp_path: Path, sizes: list[int], keep_decoded: bool) -> None:
    records = workload(3)
    one_by_one = run(records, [1], tmp_path / "one")
    decoded: Decoded | None = {table: {} for table in (USERS, GROUPS, LINKS)} if keep_decoded else None
    batched = run(records, sizes, tmp_path / "batched", decoded)
    assert batched == one_by_one
    outputs, state = batched
    assert len(state[USERS]) == 5
    assert len(state[GROUPS]) == 3
    assert any(topic == SETTINGS.topic(DEADLETTER) for topic, _, _ in outputs)


def test_each_changed_key_has_one_changelog_record_with_its_source_and_due(tmp_path: Path) -> None:
    s = stores(tmp_path)
    records = [
        Record(f"p.{VIOLATIONS}", 10, b"u1", violation(1, "u1", "g1", T0)),
        Record(f"p.{VIOLATIONS}", 11, b"u2", violation(2, "u2", "g1", T0 + 1)),
        Record(f"p.{VIOLATIONS}", 12, b"u1", violation(3, "u1", "g2", T0 + 2)),  # strike 2: a mute, so a due time
    ]
    batch = apply_batch(SETTINGS, tables(), s, 0, records, now_ms=T0, topic_name=lambda n: n.removeprefix("p."))

    changelog = batch.changelog(lambda table: f"p.{table}-changelog")
    assert list(changelog) == [USERS, GROUPS, LINKS]
    users = {r.key: dict(r.headers) for r in changelog[USERS]}
    assert set(users) == {b"u1", b"u2"}
    assert users[b"u1"][SOURCE_HEADER] == f"{VIOLATIONS}@12".encode()
    assert DUE_HEADER in users[b"u1"]
    assert changelog[GROUPS] == changelog[LINKS] == []  # the group table hears of it through its inbox
    forwarded = [o for o in batch.outputs if o.topic == SETTINGS.topic(GROUP_ACTIONS)]
    assert [o.key for o in forwarded] == [b"g1", b"g1", b"g2"]
    assert batch.inputs == {VIOLATIONS: 13}

    assert s[USERS].get(b"u1") is None, "nothing is written before the outputs are acknowledged"
    batch.write(s, {USERS: 57})
    assert s[USERS].checkpoint == Checkpoint(57, {VIOLATIONS: 13})
    assert s[GROUPS].checkpoint == Checkpoint(0, {VIOLATIONS: 13})
    assert s[USERS].get(b"u1") == next(r.value for r in changelog[USERS] if r.key == b"u1")
    assert b"u1" in dict(s[USERS].expiries())


def test_a_bad_event_is_a_dead_letter_and_the_rest_is_applied(tmp_path: Path) -> None:
    s = stores(tmp_path)
    records = [
        Record(f"p.{VIOLATIONS}", 0, b"u1", b"{"),
        Record(f"p.{VIOLATIONS}", 1, b"u1", violation(1, "u2", "g1", T0)),  # keyed by another user
        Record(f"p.{VIOLATIONS}", 2, b"u3", violation(2, "u3", "g1", T0)),
    ]
    batch = apply_batch(SETTINGS, tables(), s, 0, records, now_ms=T0, topic_name=lambda n: n.removeprefix("p."))
    assert batch.dead == [INVALID_EVENT, INVALID_EVENT]
    assert [o.topic for o in batch.outputs[:2]] == [SETTINGS.topic(DEADLETTER)] * 2
    assert SETTINGS.topic(AUDIT) in {o.topic for o in batch.outputs[2:]}
    assert set(batch.changed[USERS]) == {b"u3"}
    assert batch.inputs == {VIOLATIONS: 3}


def test_a_batch_reads_through_the_batches_decided_before_it_that_are_not_written_yet(tmp_path: Path) -> None:
    """Two batches in flight: the second sees the first's values although the stores have neither."""
    records = workload(5)
    half = len(records) // 2
    expected = run(records, [half], tmp_path / "written")  # each batch written before the next is decided

    s, t = stores(tmp_path / "in-flight"), tables()

    def name(prefixed: str) -> str:
        return prefixed.removeprefix("p.")

    first = apply_batch(SETTINGS, t, s, 0, records[:half], now_ms=T0, topic_name=name)
    second = apply_batch(SETTINGS, t, s, 0, records[half:], now_ms=T0, earlier=[first], topic_name=name)
    assert all(store.get(key) is None for store in s.values() for key in (b"u0", b"g0"))
    first.write(s, {})
    second.write(s, {})
    outputs = [(o.topic, o.key or b"", o.value or b"") for o in first.outputs + second.outputs]
    state = {table: dict(store.items()) for table, store in s.items()}
    state |= {"expiries": {table: dict(store.expiries()) for table, store in s.items()}}
    assert (outputs, state) == expected


def test_records_kept_decoded_are_the_stores_not_those_of_a_batch_never_written(tmp_path: Path) -> None:
    """A batch whose outputs were refused is read again: what it decided must not outlive it."""
    records = workload(7)
    half = len(records) // 2
    expected = run(records, [half], tmp_path / "written")

    s, t = stores(tmp_path / "kept"), tables()
    decoded: Decoded = {table: {} for table in s}

    def name(prefixed: str) -> str:
        return prefixed.removeprefix("p.")

    first = apply_batch(SETTINGS, t, s, 0, records[:half], now_ms=T0, decoded=decoded, topic_name=name)
    first.write(s, {}, decoded)
    assert decoded[USERS], "the records written are kept decoded"
    dropped = apply_batch(SETTINGS, t, s, 0, records[half:], now_ms=T0, decoded=decoded, topic_name=name)
    assert dropped.changed[USERS]
    again = apply_batch(SETTINGS, t, s, 0, records[half:], now_ms=T0, decoded=decoded, topic_name=name)
    again.write(s, {}, decoded)
    outputs = [(o.topic, o.key or b"", o.value or b"") for o in first.outputs + again.outputs]
    state = {table: dict(store.items()) for table, store in s.items()}
    state |= {"expiries": {table: dict(store.expiries()) for table, store in s.items()}}
    assert (outputs, state) == expected
    for table, store in s.items():
        dump = CODECS[table][1]
        assert {key: dump(record) for key, record in decoded[table].items()} == {
            key: store.get(key) for key in decoded[table]
        }


def test_records_kept_decoded_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "DECODED_LIMIT", 3)
    s, decoded = stores(tmp_path), {table: {} for table in (USERS, GROUPS, LINKS)}
    records = [Record(f"p.{VIOLATIONS}", n, f"u{n}".encode(), violation(n, f"u{n}", "g1", T0 + n)) for n in range(5)]
    batch = apply_batch(SETTINGS, tables(), s, 0, records, now_ms=T0, decoded=decoded, topic_name=lambda n: n[2:])
    batch.write(s, {}, decoded)
    assert list(decoded[USERS]) == [b"u2", b"u3", b"u4"]  # the last written


def test_changelog_records_go_to_the_batch_partition_whatever_their_key_hashes_to(tmp_path: Path) -> None:
    records = [Record(f"p.{VIOLATIONS}", 0, b"u1", violation(1, "u1", "g1", T0), partition=5)]
    batch = apply_batch(SETTINGS, tables(), stores(tmp_path), 5, records, now_ms=T0, topic_name=lambda n: n[2:])
    [record] = batch.changelog(lambda table: f"{table}-changelog")[USERS]
    assert record.partition == 5
