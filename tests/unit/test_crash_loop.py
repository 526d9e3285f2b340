"""benchmarks.crash_loop's comparisons: a live pipeline that decided at other times and saw each group's violations in
another order equals its replay; one that lost a table write or a verdict does not. A store equals its changelog when
it holds each key's last record, with its due time, and nothing the changelog deleted."""

from __future__ import annotations

import functools
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.crash_loop import (
    Decided,
    RunResult,
    StoreDifferences,
    changelog_state,
    compare,
    owners,
    published_before_kill,
    read_store,
    standing_lag,
    standing_partitions,
)
from streams.config import DEFAULT_RULES
from streams.policy.rules import load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions
from streams.state.store import Change, Checkpoint, changelog_headers, open_store
from streams.state.tables import Tables
from streams.topics import BLACKLIST, GROUP_ACTIONS, LINK_ACTIONS, SANCTIONS, VERDICTS, VIOLATIONS

T0 = 1_790_000_000_000
CHANGELOGS = {"users": "users", GROUP_ACTIONS: "groups"}


def violations() -> list[dict[str, object]]:
    """Five groups of three users, three violations each, in the order sent; one link a group, so the domain is a
    campaign; one user's second violation is grave enough to start higher on the ladder."""
    out = []
    for n in range(45):
        group, user = f"g{n % 5}", f"u{n % 15}"
        rule = "drugs.dealing" if (user, n // 15) == ("u3", 1) else "scam.phishing"
        out.append(
            {
                "message_id": f"m{n}",
                "sender_id": user,
                "group_id": group,
                "at_ms": T0 + n,
                "severity": "high",
                "categories": [rule.split(".", maxsplit=1)[0]],
                "rule_ids": [rule],
                "domains": ["spam.example"] if n < 5 else [],
                "rules_version": "test",
            }
        )
    return out


@functools.cache
def policy() -> SanctionPolicy:
    return load_sanctions(DEFAULT_RULES / "sanctions.toml", load_pack(DEFAULT_RULES).ids())


def decided(
    *,
    late_ms: int = 0,
    shuffle: int | None = None,
    lose_write_of: str | None = None,
    lose_verdict: str | None = None,
    swap: tuple[int, int] | None = None,
) -> Decided:
    """The tables' outputs for violations(), as the live pipeline or the replay would publish them.

    ``late_ms``: each violation decided this much later than sent (a live one is dated when it was classified);
    ``shuffle``: the seed of another arrival order at the group and link tables (each user's order kept);
    ``lose_write_of``: a message id whose user table write is lost after its outputs went out, and never redone;
    ``swap``: two violations (by index) that reach the user table in each other's place."""
    tables = Tables(policy(), "test")
    apply = {"users": tables.user, GROUP_ACTIONS: tables.group, LINK_ACTIONS: tables.link}
    state: dict[str, dict[bytes, bytes]] = {name: {} for name in apply}
    out = Decided()
    forwarded: deque[tuple[str, bytes, bytes]] = deque()

    def run(table: str, key: bytes, doc: dict[str, object], message_id: str) -> None:
        applied = apply[table](state[table].get(key), key, doc, int(doc["at_ms"]))  # type: ignore[call-overload]
        for o in applied.outputs:
            if o.topic in (GROUP_ACTIONS, LINK_ACTIONS):
                forwarded.append((o.topic, o.key, o.value))
            else:
                out.add(o.topic, o.key, o.value)
        if applied.record is not None and message_id != lose_write_of:
            state[table][key] = applied.record
            if table in CHANGELOGS:
                out.add(CHANGELOGS[table], key, applied.record)

    arriving = violations()
    if swap is not None:
        first, second = swap
        arriving[first], arriving[second] = arriving[second], arriving[first]
    for v in arriving:
        message_id = str(v["message_id"])
        doc = v | {"at_ms": int(v["at_ms"]) + late_ms, "action": "violation"}  # type: ignore[call-overload]
        if message_id != lose_verdict:
            out.add(
                VERDICTS, str(v["group_id"]).encode(), orjson.dumps({"message_id": message_id, "decision": "block"})
            )
        out.add(VIOLATIONS, str(v["sender_id"]).encode(), orjson.dumps(doc))
        run("users", str(v["sender_id"]).encode(), doc, message_id)
        if shuffle is None:  # the replay: every event between the tables first in, first out
            while forwarded:
                topic, key, value = forwarded.popleft()
                run(topic, key, orjson.loads(value), "")
    events = list(forwarded)
    random.Random(shuffle).shuffle(events)
    for topic, key, value in events:
        run(topic, key, orjson.loads(value), "")
    return out


def test_a_live_pipeline_deciding_later_and_in_another_group_order_equals_its_replay():
    replay = decided()
    live = decided(late_ms=60_000, shuffle=3)
    assert {s[1] for s in replay.sanctions.values()} >= {"warning", "mute", "group_suspension", "link_blacklisted"}
    assert live.sanctions.keys().isdisjoint(replay.sanctions.keys())  # every id hashes a time: none is shared
    assert not compare(live, replay), compare(live, replay).examples


def test_repeated_outputs_are_no_difference():
    replay, live = decided(), decided(late_ms=1000, shuffle=5)
    sanction_id, (subject, kind, revoked, evidence) = next(iter(live.sanctions.items()))
    again = {"sanction_id": sanction_id, "subject": subject, "kind": kind, "revoked": revoked, "evidence": evidence}
    live.add(SANCTIONS, subject.encode(), orjson.dumps(again))
    live.add(VERDICTS, b"g0", orjson.dumps({"message_id": "m0", "decision": "block"}))
    assert live.verdict_records == replay.verdict_records + 1
    assert not compare(live, replay)


def test_a_user_table_write_lost_after_its_outputs_shows_in_the_count_and_in_later_sanctions():
    """u5's first strike is forgotten: its second is a warning again, not a mute."""
    differences = compare(decided(late_ms=60_000, shuffle=3, lose_write_of="m5"), decided())
    assert differences.strikes == 1
    assert differences.strikes_live == differences.strikes_replay - 1
    assert differences.sanctions_missing == 1
    assert differences.sanctions_extra == 1
    assert differences.blacklist_changed == 1


def test_a_user_table_write_lost_mid_ladder_shows_in_the_blacklist():
    """u5's second strike is forgotten: its third is a mute all the same, but the entry names another strike."""
    differences = compare(decided(late_ms=60_000, shuffle=3, lose_write_of="m20"), decided())
    assert differences.strikes == 1
    assert differences.blacklist_changed == 1


def test_a_user_table_write_lost_on_the_last_strike_shows_in_the_count():
    differences = compare(decided(late_ms=60_000, shuffle=3, lose_write_of="m33"), decided())
    assert differences.strikes == 1
    assert "strikes of u3: 2, replay 3" in differences.examples
    assert not differences.sanctions_missing
    assert not differences.reordered


def test_a_ladder_decided_in_arrival_order_is_counted_apart_not_as_loss():
    """u3's grave second violation arrives first: it is a mute at once, and the first one, arriving next, a ban."""
    differences = compare(decided(late_ms=60_000, shuffle=3, swap=(3, 18)), decided())
    assert not differences
    assert (differences.reordered, differences.reordered_sanctions, differences.reordered_blacklist) == (1, 2, 1)
    assert differences.reordering().startswith("1 users' violations arrived out of the order sent: 2 of their")


def test_a_strike_lost_by_a_user_whose_violations_arrived_out_of_order_is_a_loss():
    differences = compare(decided(late_ms=60_000, shuffle=3, swap=(3, 18), lose_write_of="m18"), decided())
    assert differences
    assert differences.strikes == 1
    assert differences.reordered == 1


def test_a_lost_verdict_shows():
    differences = compare(decided(lose_verdict="m7"), decided())
    assert differences.verdicts_lost == 1
    assert differences.examples == ["verdict lost: m7"]


def test_a_blacklist_entry_lost_or_changed_shows():
    replay, live = decided(), decided(late_ms=10)
    key = next(k for k in replay.blacklist if k.startswith(b"group:"))
    live.add(BLACKLIST, key, None)
    assert compare(live, replay).blacklist_missing == 1
    entry = orjson.loads(replay.blacklist[key])
    entry["restrictions"] = [*entry["restrictions"][:1], {"kind": "group_shutdown", "until_ms": None, "reason": "x"}]
    live.add(BLACKLIST, key, orjson.dumps(entry))
    assert compare(live, replay).blacklist_changed == 1


# -- the stores against their changelogs ---------------------------------------------------------------------------


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    offset: int = 0
    topic: str = "users-changelog"
    partition: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def changelog() -> list[Record]:
    """u1 written twice (the second due at 5), u2 written then deleted, u3 written once."""
    return [
        Record(b"u1", b"one", headers=changelog_headers(None, "violations", 0)),
        Record(b"u2", b"two", headers=changelog_headers(7, "violations", 1)),
        Record(b"u1", b"one again", headers=changelog_headers(5, "violations", 2)),
        Record(b"u2", None, headers=changelog_headers(None, "user-actions", 0)),
        Record(b"u3", b"three", headers=changelog_headers(None, "violations", 3)),
    ]


def test_a_changelog_is_its_last_record_per_key_with_its_due_time():
    assert changelog_state(changelog()) == {b"u1": (b"one again", 5), b"u3": (b"three", None)}


def written_store(path: Path, changes: dict[bytes, Change]) -> dict[bytes, tuple[bytes | None, int | None]]:
    store = open_store("rocksdb://", path)
    store.write(changes, Checkpoint(5, {"violations": 4}))
    store.close()
    return read_store(path)


def test_a_store_written_as_its_changelog_says_equals_it(tmp_path):
    store = written_store(tmp_path / "users-0", {b"u1": Change(b"one again", 5), b"u3": Change(b"three")})
    differences = StoreDifferences()
    differences.add("users-0", store, changelog_state(changelog()))
    assert not differences
    assert differences.stores == 1


def test_a_store_missing_a_key_holding_a_deleted_one_or_another_value_or_due_time_differs(tmp_path):
    store = written_store(
        tmp_path / "users-0",
        {b"u1": Change(b"one"), b"u2": Change(b"two", 7), b"u4": Change(b"four", 9)},  # u3 missing
    )
    differences = StoreDifferences()
    differences.add("users-0", store, changelog_state(changelog()))
    assert differences
    assert (differences.missing, differences.extra, differences.values, differences.due) == (1, 2, 1, 0)
    assert "store users-0: key b'u3' missing" in differences.examples

    only_due = StoreDifferences()
    due_later = written_store(tmp_path / "users-1", {b"u1": Change(b"one again", 6), b"u3": Change(b"three")})
    only_due.add("users-1", due_later, changelog_state(changelog()))
    assert (only_due.keys, only_due.due) == (1, 1)


def test_a_store_never_written_misses_every_key(tmp_path):
    differences = StoreDifferences()
    differences.add("users-0", read_store(tmp_path / "absent"), changelog_state(changelog()))
    assert differences.missing == 2
    assert not (tmp_path / "absent").exists()  # reading did not create it


def test_a_partition_owned_by_both_workers_or_neither_has_no_owner():
    assert owners({"a": {0, 1}, "b": {2, 3}}, 4) == {0: "a", 1: "a", 2: "b", 3: "b"}
    assert owners({"a": {0, 1, 2}, "b": {2}}, 4) == {0: "a", 1: "a"}
    assert StoreDifferences(unowned=1)


def test_the_standing_stage_owns_the_partitions_it_reports_lag_for():
    text = (
        "# TYPE groupwarden_consumer_lag_messages gauge\n"
        'groupwarden_consumer_lag_messages{stage="standing",topic="p.violations",partition="3"} 0.0\n'
        'groupwarden_consumer_lag_messages{stage="standing",topic="p.violations",partition="5"} 2.0\n'
        'groupwarden_consumer_lag_messages{stage="standing",topic="p.commands",partition="4"} 1.0\n'
        'groupwarden_consumer_lag_messages{stage="classify",topic="p.violations",partition="6"} 7.0\n'
    )
    families = list(text_string_to_metric_families(text))
    assert standing_partitions(families, "p.violations") == {3, 5}
    assert standing_lag(families) == 3.0


def test_the_input_is_published_in_parts_each_after_a_kill():
    assert [published_before_kill(100, kills, 4) for kills in range(5)] == [20, 40, 60, 80, 100]
    assert published_before_kill(100, 0, 0) == 100


def run_result(stores: StoreDifferences | None, kills: int = 4) -> RunResult:
    live, replay = decided(late_ms=1000, shuffle=2), decided()
    return RunResult(compare(live, replay), stores, live, replay, violations=45, kills=kills, unasked=0, seconds=9)


def test_a_run_whose_outputs_equal_the_replay_but_whose_store_differs_is_a_loss():
    equal = run_result(StoreDifferences(stores=24))
    assert not equal.lossy
    assert equal.line(1, 4).startswith("run 1: 4 kills, 45 violations, no loss (verdicts 0, strikes 0, groups 0,")

    store = StoreDifferences()
    store.add("users-0", {b"u1": (b"one", None)}, changelog_state(changelog()))
    differs = run_result(store)
    assert differs.lossy
    assert differs.losses()["store"] == 2
    assert ", LOSS (" in differs.line(2, 4)
    assert "store keys 1 missing, 0 extra, 1 values and 0 due times differ" in differs.details()


def test_a_run_line_says_what_it_could_not_check_and_kills_short_of_those_asked():
    line = run_result(None, kills=3).line(1, 4)
    assert line.startswith("run 1: 3 kills (of 4 asked), 45 violations, no loss (")
    assert "store: memory://, not read back" in line
