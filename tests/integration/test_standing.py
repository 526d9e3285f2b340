"""Strikes, group escalation, the blacklist and appeals on a real broker, with the production (RocksDB) store."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import jsonschema
import orjson
import pytest
from aiokafka import ConsumerRecord

from streams.config import DEFAULT_RULES, Settings
from streams.policy import standing
from streams.policy.rules import load_pack
from streams.policy.sanctions import load_sanctions
from streams.state import codec
from streams.topics import (
    AUDIT,
    BLACKLIST,
    COMMANDS,
    DEADLETTER,
    GROUP_EVENTS,
    NOTICES,
    SANCTIONS,
    VERDICTS,
    VIOLATIONS,
)
from tests.integration.conftest import copy_rules, produce, read_until, reloads, scrape, wait_until

SCAM = "刷*單*返*利，日赚五百"  # blocked by the shipped pack (scam.task-scam)
OWNER, MANAGER = "owner-1", "manager-1"


SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def conform(schema: str, docs: list[dict]) -> None:
    """Every document follows the schema published for its topic."""
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / schema).read_text()))
    assert docs
    for doc in docs:
        validator.validate(doc)


def message(message_id: str, sender: str, group: str, text: str = SCAM) -> tuple[bytes, bytes]:
    value = {
        "message_id": message_id,
        "group_id": group,
        "sender_id": sender,
        "sent_at": int(time.time() * 1000),
        "text": text,
    }
    return group.encode(), orjson.dumps(value)


def group_events(group: str) -> list[tuple[bytes, bytes]]:
    steps = [("created", OWNER), ("member_joined", MANAGER), ("manager_added", MANAGER)]
    return [
        (group.encode(), orjson.dumps({"event_id": f"{group}-{n}", "group_id": group, "kind": kind, "user_id": user}))
        for n, (kind, user) in enumerate(steps)
    ]


def command(command_id: str, kind: str, **fields: str) -> tuple[bytes | None, bytes]:
    value = {"command_id": command_id, "kind": kind, "operator": "analyst-7", "reason": "appeal upheld"} | fields
    return None, orjson.dumps(value)


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict]:
    return [orjson.loads(r.value) for r in records if r.value is not None]


def sanctions_of(records: list[ConsumerRecord[bytes, bytes]], subject: str) -> list[tuple[str, bool]]:
    return [(s["kind"], s["revoked"]) for s in values(records) if s["subject"] == subject]


def latest(records: list[ConsumerRecord[bytes, bytes]], key: str) -> dict | str | None:
    """The blacklist's last word on a key: its entry, None for a tombstone, "absent" if never written."""
    found: dict | str | None = "absent"
    for r in records:
        if r.key == key.encode():
            found = orjson.loads(r.value) if r.value is not None else None
    return found


async def settle(settings: Settings, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic until ``count`` records, then a little longer: anything extra would show up now."""
    await read_until(settings, topic, until=lambda seen: len(seen) >= count)
    await asyncio.sleep(3)
    return await read_until(settings, topic, until=lambda seen: len(seen) >= count, wait_seconds=10)


async def test_a_sender_reaching_four_violations_is_banned_exactly_once(settings, start_worker):
    await produce(settings, group_events("g1"), GROUP_EVENTS)
    await produce(settings, [message(f"m{n}", "spammer", "g1") for n in range(4)])
    worker = start_worker()

    records = await read_until(
        settings, SANCTIONS, until=lambda seen: ("ban", False) in sanctions_of(seen, "user:spammer")
    )
    await asyncio.sleep(3)
    records = await read_until(settings, SANCTIONS, until=lambda seen: len(seen) >= len(records), wait_seconds=10)
    ladder = [k for k in sanctions_of(records, "user:spammer") if k[0] in ("warning", "mute", "ban")]
    assert ladder == [("warning", False), ("mute", False), ("mute", False), ("ban", False)]
    ban = next(s for s in values(records) if s["subject"] == "user:spammer" and s["kind"] == "ban")
    assert ban["expires_ms"] is None
    assert ban["notice"]  # the sanctioned user is told why
    assert ban["rule_ids"]
    assert ban["rules_version"]

    listing = latest(await read_until(settings, BLACKLIST, until=bool), "user:spammer")
    assert isinstance(listing, dict)
    assert "ban" in [r["kind"] for r in listing["restrictions"]]
    assert listing["until_ms"] is None

    audit = values(await read_until(settings, AUDIT, until=lambda seen: len(seen) >= 4))
    assert {a["input"]["message_id"] for a in audit if a["subject"] == "user:spammer"} >= {f"m{n}" for n in range(4)}
    conform("sanction.v1.json", values(records))
    conform("blacklist.v1.json", values(await read_until(settings, BLACKLIST, until=bool)))

    await asyncio.sleep(6)  # a lag measurement and a blacklist read later
    metrics = scrape(worker.metrics_port)
    for kind in ("warning", "ban"):
        assert metrics[f'groupwarden_sanctions_total{{action="issued",kind="{kind}"}}'] == 1
    assert metrics['groupwarden_sanctions_total{action="issued",kind="mute"}'] == 2
    assert metrics['groupwarden_blacklist_entries{type="user"}'] == 1
    assert metrics['groupwarden_table_keys{table="users"}'] == 3  # the spammer, and g1's owner and manager (liable)
    assert metrics['groupwarden_rebalances_total{stage="standing"}'] >= 1
    lags = {k: v for k, v in metrics.items() if k.startswith("groupwarden_consumer_lag_messages") and "standing" in k}
    assert lags
    assert set(lags.values()) == {0}
    conform("group-event.v1.json", [orjson.loads(v) for _, v in group_events("g1")])


async def test_the_stages_run_in_workers_of_their_own(settings, start_worker, tmp_path):
    rules = copy_rules(tmp_path / "rules")
    split = replace(settings, rules_dir=rules, rules_poll_seconds=1.0)
    await produce(settings, [message(f"s{n}", "splitter", "g9") for n in range(4)])
    standing_alone = start_worker(replace(split, stages=("standing",)))
    start_worker(replace(split, stages=("classify",)))

    records = await read_until(
        settings, SANCTIONS, until=lambda seen: ("ban", False) in sanctions_of(seen, "user:splitter")
    )
    ladder = [k for k in sanctions_of(records, "user:splitter") if k[0] in ("warning", "mute", "ban")]
    assert ladder == [("warning", False), ("mute", False), ("mute", False), ("ban", False)]
    verdicts = values(await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 4))
    ban = next(s for s in values(records) if s["subject"] == "user:splitter" and s["kind"] == "ban")
    assert ban["rules_version"] == verdicts[0]["rules_version"]  # the pack's version, read without its classifier
    log = standing_alone.log_path.read_text()
    assert "classify stage" not in log

    # The standing worker follows the folder itself: a sanctions file naming a rule the pack lacks is refused, a
    # valid change applied.
    sanctions = rules / "sanctions.toml"
    original = sanctions.read_text(encoding="utf-8")
    sanctions.write_text(original.replace("[user.severe]", '[user.severe]\n"scam.gone" = 2'))
    port = standing_alone.metrics_port
    await wait_until(lambda: reloads(port, "refused") == 1, 15, "the broken sanctions were not refused")
    assert f"{sanctions}: user.severe.scam.gone: no such category or rule in the rule pack" in (
        standing_alone.log_path.read_text(errors="replace")
    )
    sanctions.write_text(original.replace("warn_at = 3", "warn_at = 4"))
    await wait_until(lambda: reloads(port, "applied") == 1, 15, "the new sanctions were not applied")
    assert scrape(port)['groupwarden_rules_refused{pack="active"}'] == 0
    assert standing_alone.alive()


async def test_violations_waiting_while_a_new_worker_recovers_its_table_are_all_applied(settings, start_worker):
    """A new consumer group has nothing committed, and Faust drops what it fetched for its input partitions while the
    users table recovered: every record already waiting must still be read, from the start."""
    policy = load_sanctions(DEFAULT_RULES / "sanctions.toml", load_pack(DEFAULT_RULES).ids())
    fresh = codec.dump_user(standing.new_user_record(policy))
    changelog = f"{settings.group_id}-users-changelog"  # Faust's name: "<app id>-<table>-changelog"
    await produce(
        replace(settings, topic_prefix=""), [(f"known-{n}".encode(), fresh) for n in range(20_000)], changelog
    )
    violation = {"schema": "moderation.violation.v1", "group_id": "g0", "at_ms": int(time.time() * 1000)}
    violation |= {"severity": "high", "categories": ["scam"], "rule_ids": ["scam.task-scam"], "domains": []}
    waiting = [
        (f"early-{n}".encode(), orjson.dumps(violation | {"message_id": f"w{n}", "sender_id": f"early-{n}"}))
        for n in range(64)
    ]
    await produce(settings, waiting, VIOLATIONS)
    start_worker()
    audits = await read_until(settings, AUDIT, until=lambda seen: len(seen) >= 128)  # a user and a group audit each
    assert {a["input"]["message_id"] for a in values(audits) if a["subject"].startswith("user:")} == {
        f"w{n}" for n in range(64)
    }


async def test_the_same_violations_delivered_twice_change_nothing(settings, start_worker):
    await produce(settings, [message(f"m{n}", f"u{n % 3}", "g2") for n in range(6)])
    start_worker()
    violations = await read_until(settings, VIOLATIONS, until=lambda seen: len(seen) >= 6)
    first = await settle(settings, SANCTIONS, 1)
    await produce(settings, [(r.key, r.value) for r in violations], VIOLATIONS)  # every violation again
    await produce(settings, [message(f"m{n}", f"u{n % 3}", "g2") for n in range(6)])  # and every message
    await asyncio.sleep(8)
    again = await read_until(settings, SANCTIONS, until=lambda seen: len(seen) >= len(first), wait_seconds=10)
    assert len(again) == len(first)
    assert Counter(s["kind"] for s in values(again) if s["subject"].startswith("user:")) == {"warning": 3, "mute": 3}


async def test_a_group_crossing_the_threshold_is_suspended_and_its_leaders_penalised(settings, start_worker):
    await produce(settings, group_events("g3"), GROUP_EVENTS)
    await produce(settings, [message(f"m{n}", f"member-{n}", "g3") for n in range(6)])  # six senders, one group
    start_worker()

    records = await read_until(
        settings, SANCTIONS, until=lambda seen: ("group_suspension", False) in sanctions_of(seen, "group:g3")
    )
    assert sanctions_of(records, "group:g3") == [("group_warning", False), ("group_suspension", False)]
    suspension = next(s for s in values(records) if s["kind"] == "group_suspension")
    assert len(suspension["evidence"]) == 6
    assert suspension["expires_ms"] - suspension["start_ms"] == 7 * 24 * 3600 * 1000
    records = await read_until(settings, SANCTIONS, until=lambda seen: len(sanctions_of(seen, f"user:{MANAGER}")) >= 1)
    assert ("management_suspended", False) in sanctions_of(records, f"user:{OWNER}")
    assert ("management_suspended", False) in sanctions_of(records, f"user:{MANAGER}")

    blacklist = await read_until(
        settings, BLACKLIST, until=lambda seen: isinstance(latest(seen, f"user:{OWNER}"), dict)
    )
    group_entry = latest(blacklist, "group:g3")
    assert isinstance(group_entry, dict)
    assert [r["kind"] for r in group_entry["restrictions"]] == ["group_suspension"]
    # The owner's credit fell at the warning and again at the suspension (rules/sanctions.toml: 5, then 15).
    audit = await read_until(settings, AUDIT, until=lambda seen: len(liabilities(seen, OWNER)) >= 2)
    assert [a["input"]["points"] for a in liabilities(audit, OWNER)] == [5, 15]
    conform("sanction.v1.json", values(records))
    conform("blacklist.v1.json", values(blacklist))


def liabilities(records: list[ConsumerRecord[bytes, bytes]], user: str) -> list[dict]:
    return [a for a in values(records) if a["subject"] == f"user:{user}" and a["input"].get("action") == "liability"]


@pytest.fixture
def quick_rules(tmp_path: Path) -> Path:
    """The shipped pack with mutes of under ten seconds, so an expiry can be watched."""
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, rules)
    sanctions = rules / "sanctions.toml"
    sanctions.write_text(sanctions.read_text().replace("days = 7 }", "days = 0.0001 }"))  # 8.64 s
    return rules


async def test_an_expiry_emits_its_tombstone_on_time(settings, start_worker, quick_rules):
    settings = replace(settings, rules_dir=quick_rules)
    await produce(settings, [message(f"m{n}", "talker", "g4") for n in range(2)])  # a warning, then a mute
    start_worker(settings)

    blacklist = await read_until(settings, BLACKLIST, until=lambda seen: isinstance(latest(seen, "user:talker"), dict))
    entry = latest(blacklist, "user:talker")
    assert isinstance(entry, dict)
    until = entry["until_ms"]
    blacklist = await read_until(settings, BLACKLIST, until=lambda seen: latest(seen, "user:talker") is None)
    tombstone = next(r for r in blacklist if r.key == b"user:talker" and r.value is None)
    assert until <= tombstone.timestamp < until + 5000  # on time: the tick runs every second


async def test_an_appeal_reverses_everything(settings, start_worker):
    await produce(settings, group_events("g5"), GROUP_EVENTS)
    await produce(settings, [message(f"m{n}", "appellant", "g5") for n in range(4)])
    start_worker()
    await read_until(settings, SANCTIONS, until=lambda seen: ("ban", False) in sanctions_of(seen, "user:appellant"))
    await read_until(settings, SANCTIONS, until=lambda seen: ("group_warning", False) in sanctions_of(seen, "group:g5"))

    await produce(
        settings,
        [command(f"c{n}", "pardon_message", message_id=f"m{n}", user_id="appellant", group_id="g5") for n in range(4)],
        COMMANDS,
    )
    records = await read_until(
        settings, SANCTIONS, until=lambda seen: ("ban", True) in sanctions_of(seen, "user:appellant")
    )
    blacklist = await read_until(settings, BLACKLIST, until=lambda seen: latest(seen, "user:appellant") is None)
    assert latest(blacklist, "user:appellant") is None  # the ban's entry is tombstoned
    records = await read_until(
        settings, SANCTIONS, until=lambda seen: ("group_warning", True) in sanctions_of(seen, "group:g5")
    )
    user = sanctions_of(records, "user:appellant")
    for kind in ("warning", "mute", "ban"):
        assert (kind, True) in user  # every rung revoked
    audit = values(await read_until(settings, AUDIT, until=lambda seen: len(seen) >= 8))
    assert any(a["input"].get("command_id") == "c3" for a in audit)
    conform("sanction.v1.json", values(records))
    conform(
        "command.v1.json", [orjson.loads(command("c", "pardon_message", message_id="m", user_id="u", group_id="g")[1])]
    )


async def test_a_malformed_group_event_or_command_goes_to_dead_letters(settings, start_worker):
    await produce(
        settings, [(b"g6", b"{oops"), (b"g6", orjson.dumps({"group_id": "g6", "kind": "exploded"}))], GROUP_EVENTS
    )
    await produce(settings, [command("c1", "smite", user_id="u1")], COMMANDS)
    await produce(settings, group_events("g6"), GROUP_EVENTS)
    start_worker()

    dead = await read_until(settings, DEADLETTER, until=lambda seen: len(seen) >= 3)
    reasons = {dict(r.headers)["groupwarden.error.reason"] for r in dead}
    assert reasons == {b"invalid_event"}
    details = sorted(dict(r.headers)["groupwarden.error.detail"].decode() for r in dead)
    assert any("kind" in d for d in details)


async def test_a_domain_spread_in_violations_across_groups_is_blacklisted_and_announced(settings, start_worker):
    link = "http://promo.campaign-x.example/join"  # on no blocklist: only its spread gives it away
    await produce(settings, [message(f"m{n}", f"s{n}", f"cg{n}", f"{SCAM} {link}") for n in range(5)])
    await produce(settings, [message("m-more", "s0", "cg0", f"{SCAM} {link}")])  # a sixth: one campaign, one entry
    start_worker()

    notices = values(await read_until(settings, NOTICES, until=bool))
    assert [(n["subject"], n["kind"]) for n in notices] == [("link:promo.campaign-x.example", "link_blacklisted")]
    assert "promo.campaign-x.example" in notices[0]["notice"]
    assert len(notices[0]["evidence"]) == 5
    blacklist = await read_until(
        settings, BLACKLIST, until=lambda seen: isinstance(latest(seen, "link:promo.campaign-x.example"), dict)
    )
    entry = latest(blacklist, "link:promo.campaign-x.example")
    assert isinstance(entry, dict)
    assert entry["type"] == "link"
    assert entry["categories"] == ["scam"]
    conform("sanction.v1.json", notices)
    conform("blacklist.v1.json", [entry])
    assert entry["until_ms"] - notices[0]["start_ms"] == 30 * 24 * 3600 * 1000  # rules/sanctions.toml blacklist_days
    await asyncio.sleep(3)
    assert len(values(await read_until(settings, NOTICES, until=bool))) == 1

    # From now on the domain itself blocks, even in a message that breaks no other rule.
    await produce(
        settings, [message("m-later", "bystander", "cg9", "周末聚会的照片在这 http://promo.campaign-x.example/p")]
    )
    verdicts = await read_until(
        settings, VERDICTS, until=lambda seen: any(orjson.loads(r.value)["message_id"] == "m-later" for r in seen)
    )
    later = next(v for v in values(verdicts) if v["message_id"] == "m-later")
    assert later["decision"] == "block"
    assert [(m["rule_id"], m["term"]) for m in later["matches"]] == [
        ("scam.campaign-domain", "promo.campaign-x.example")
    ]


async def test_a_batch_writing_hundreds_of_table_entries_waits_for_its_changelog_quietly(settings, start_worker):
    # Faust warns when more than 100 changelog records wait to be sent; a batch writes up to 500 table entries.
    senders = 3000
    await produce(settings, [message(f"m{n}", f"sender-{n}", f"g{n % 50}") for n in range(senders)])
    worker = start_worker()

    every_sender = {f"user:sender-{n}" for n in range(senders)}

    def warned(records: list[ConsumerRecord[bytes, bytes]]) -> set[str]:
        return {s["subject"] for s in values(records) if s["kind"] == "warning"} & every_sender

    records = await read_until(settings, SANCTIONS, until=lambda seen: warned(seen) == every_sender, wait_seconds=120)
    assert warned(records) == every_sender
    await asyncio.sleep(3)
    assert worker.alive()
    assert "producer buffer full" not in worker.log_path.read_text()
