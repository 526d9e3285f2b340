"""benchmarks.crash_loop's comparison: a live pipeline that decided at other times and saw each group's violations in
another order equals its replay; one that lost a table write or a verdict does not."""

from __future__ import annotations

import functools
import random
from collections import deque

import orjson

from benchmarks.crash_loop import Decided, compare
from streams.config import DEFAULT_RULES
from streams.policy.rules import load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions
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
