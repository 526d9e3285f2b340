"""Replays in one process: deterministic, in event order, with the live decisions (streams/replay.py)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import DEFAULT_PACK_DIR

from streams.config import Settings
from streams.kafka.produce import OutRecord
from streams.policy.reload import load_rules
from streams.replay import SEND_CHUNK, Emitted, InputRecord, Pipeline, file_records, parse_time, send_chunks
from streams.topics import BLACKLIST, DEADLETTER, SANCTIONS, VERDICTS, VIOLATIONS

DAY_MS = 24 * 3600 * 1000
T0 = 1_790_000_000_000
SCAM = "兼职刷单，日赚三百，佣金日结"
CLEAN = "周末一起去爬山吗"


def message(n: int, sender: str, group: str, text: str, at_ms: int, links: list[str] | None = None) -> bytes:
    doc = {"message_id": f"m{n}", "group_id": group, "sender_id": sender, "sent_at": at_ms, "text": text}
    return orjson.dumps(doc | ({"links": links} if links else {}))


def pipeline() -> Pipeline:
    """A fresh pipeline on the shipped pack (its classifier read back from the suite's cache)."""
    rules = load_rules(DEFAULT_PACK_DIR, with_policy=True)
    assert rules.policy is not None
    return Pipeline(rules.classifier, rules.policy)


def records(lines: list[bytes]) -> list[InputRecord]:
    return list(file_records("recorded.jsonl", lines))


def of(outputs: list[Emitted], topic: str) -> list[dict[str, object]]:
    return [orjson.loads(o.value) for o in outputs if o.topic == topic and o.value is not None]


def traffic() -> list[bytes]:
    """Two weeks of a few groups: repeat offenders, a link campaign across groups, clean chat, one broken line."""
    lines, n = [], 0
    for day in range(14):
        for hour in range(0, 24, 3):
            at = T0 + day * DAY_MS + hour * 3600 * 1000
            n += 1
            lines.append(message(n, f"u{n % 7}", f"g{n % 5}", CLEAN, at))
            if hour % 6 == 0:
                n += 1
                lines.append(message(n, f"spammer{day % 3}", f"g{n % 9}", SCAM, at + 1))
            if day == 3:
                n += 1
                lines.append(message(n, f"u{n % 7}", f"g{hour}", "看看 http://promo.example-spam.cn/x", at + 2))
    lines.insert(10, b'{"message_id": "broken"')
    return lines


def test_the_same_input_gives_the_same_outputs_every_time() -> None:
    first = list(pipeline().run(records(traffic())))
    second = list(pipeline().run(records(traffic())))
    assert first == second
    assert of(first, SANCTIONS), "the traffic is meant to cause sanctions"


def test_messages_are_taken_in_the_order_they_were_sent() -> None:
    lines = traffic()
    shuffled = lines[:]
    random.Random(3).shuffle(shuffled)
    ordered = [o for o in pipeline().run(records(lines)) if o.topic != DEADLETTER]
    mixed = [o for o in pipeline().run(records(shuffled)) if o.topic != DEADLETTER]
    assert ordered == mixed


def test_every_message_has_one_verdict_classified_at_its_sent_at() -> None:
    lines = traffic()
    outputs = list(pipeline().run(records(lines)))
    verdicts = of(outputs, VERDICTS)
    assert len(verdicts) == len(lines) - 1
    assert len({v["message_id"] for v in verdicts}) == len(verdicts)
    sent = {d["message_id"]: d["sent_at"] for d in (orjson.loads(x) for x in lines if x.endswith(b"}"))}
    assert all(v["classified_at_ms"] == sent[v["message_id"]] for v in verdicts)
    assert [v["message_id"] for v in of(outputs, VIOLATIONS)] == [
        v["message_id"] for v in verdicts if v["decision"] == "block"
    ]


def test_a_broken_line_is_a_dead_letter_naming_the_file_and_line() -> None:
    outputs = list(pipeline().run(records(traffic())))
    dead = [o for o in outputs if o.topic == DEADLETTER]
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["groupwarden.error.reason"] == b"invalid_json"
    assert headers["groupwarden.source.topic"] == b"file:recorded.jsonl"
    assert headers["groupwarden.source.offset"] == b"11"
    assert dead[0].value == b'{"message_id": "broken"'


def test_the_ladder_climbs_and_a_mute_ends_on_the_replay_clock() -> None:
    lines = [message(i, "spammer", f"g{i}", SCAM, T0 + i * 8 * DAY_MS) for i in range(5)]
    outputs = list(pipeline().run(records(lines)))
    kinds = [(s["kind"], s["revoked"]) for s in of(outputs, SANCTIONS) if s["subject"] == "user:spammer"]
    ladder = [k for k, revoked in kinds if k in ("warning", "mute", "ban") and not revoked]
    assert ladder == ["warning", "mute", "mute", "ban", "ban"]
    entries = [o for o in outputs if o.topic == BLACKLIST and o.key == b"user:spammer"]
    # Each week's mute is listed, then tombstoned a day before the next message, at the time it ended.
    assert [o.value is None for o in entries[:4]] == [False, True, False, True]
    muted = orjson.loads(entries[0].value or b"")
    assert muted["until_ms"] == T0 + 8 * DAY_MS + 7 * DAY_MS


def test_a_link_campaign_blocks_the_domain_for_later_messages() -> None:
    link = "http://promo.example-spam.cn/x"
    lines = [message(i, f"s{i}", f"g{i}", f"{SCAM} {link}", T0 + i * 60_000) for i in range(5)]
    lines.append(message(99, "innocent", "g99", "看这个", T0 + 3600_000, links=[link]))
    outputs = list(pipeline().run(records(lines)))
    listed = [o for o in outputs if o.topic == BLACKLIST and o.key == b"link:promo.example-spam.cn"]
    assert listed, "five groups in a day make a campaign"
    last = of(outputs, VERDICTS)[-1]
    assert last["message_id"] == "m99"
    assert last["decision"] == "block"
    assert {m["rule_id"] for m in last["matches"]} == {"scam.campaign-domain"}


def test_times_are_epoch_milliseconds_or_rfc3339_with_an_offset() -> None:
    assert parse_time("1790000000000") == 1_790_000_000_000
    assert parse_time("2026-11-30T08:00:00Z") == parse_time("2026-11-30T16:00:00+08:00")
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_time("2026-11-30T08:00:00")
    with pytest.raises(ValueError, match="neither"):
        parse_time("yesterday")


def test_a_replay_of_a_file_reads_only_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n  \n{"b": 2}\n')
    with path.open("rb") as f:
        got = list(file_records(str(path), f))
    assert [(r.offset, r.value) for r in got] == [(1, b'{"a": 1}'), (4, b'{"b": 2}')]


def test_group_events_make_the_owner_answer_for_the_group() -> None:
    lines = [message(i, f"s{i}", "g1", SCAM, T0 + i * 60_000) for i in range(6)]
    created = orjson.dumps({"group_id": "g1", "kind": "created", "user_id": "boss", "at_ms": T0 - 1})
    broken = b'{"kind": "created"}'
    with_events = list(pipeline().run(records(lines), records([created, broken])))
    without = list(pipeline().run(records(lines)))

    def owner_sanctions(outputs: list[Emitted]) -> list[object]:
        return [s["kind"] for s in of(outputs, SANCTIONS) if s["subject"] == "user:boss"]

    assert "management_suspended" in owner_sanctions(with_events)
    assert "group_suspension" in [s["kind"] for s in of(with_events, SANCTIONS) if s["subject"] == "group:g1"]
    assert owner_sanctions(without) == []
    [dead] = [o for o in with_events if o.topic == DEADLETTER]
    assert dict(dead.headers)["groupwarden.error.reason"] == b"invalid_event"


def test_outputs_go_out_in_chunks_to_the_prefixed_topics_tombstones_included() -> None:
    outputs = [Emitted(VERDICTS, b"g%d" % i, b"{}") for i in range(SEND_CHUNK + 1)]
    outputs.append(Emitted(BLACKLIST, b"user:u1", None, (("reason", b"expired"),)))
    sent: Counter[str] = Counter()
    chunks = list(send_chunks(Settings(topic_prefix="replay-1."), outputs, sent))
    assert [len(c) for c in chunks] == [SEND_CHUNK, 2]
    assert chunks[0][0] == OutRecord("replay-1.moderation.verdicts.v1", b"g0", b"{}")
    assert chunks[1][1] == OutRecord("replay-1.moderation.blacklist.v1", b"user:u1", None, (("reason", b"expired"),))
    assert sent == Counter({VERDICTS: SEND_CHUNK + 1, BLACKLIST: 1})
