"""A changed rule pack reaches a running worker within seconds; a broken one is refused and the running one stays."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson

from streams.policy.reload import load_rules
from streams.topics import SANCTIONS, VERDICTS
from tests.integration.conftest import (
    CANARY,
    NEW_RULE,
    chat_message,
    copy_rules,
    produce,
    read_until,
    reloads,
    scrape,
    wait_until,
)

CLEAN = "今晚一起吃饭吗"


def verdicts_of(records) -> list[dict]:
    return [orjson.loads(r.value) for r in records]


async def test_a_changed_pack_mid_stream_switches_versions_with_no_message_judged_twice_or_skipped(
    settings, start_worker, tmp_path
):
    rules = copy_rules(tmp_path / "rules")
    before = load_rules(rules, with_policy=True)
    worker = start_worker(replace(settings, rules_dir=rules))
    await produce(settings, [chat_message(0, CLEAN)])
    await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 1)  # the worker is up

    sent = 1
    changed_at = applied_after = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a steady stream, ~400 messages a second, half of them canaries
        await produce(settings, [chat_message(n, CANARY if n % 2 else CLEAN) for n in range(sent, sent + 40)])
        sent += 40
        if changed_at is None and sent >= 400:  # the pack changes mid-stream: a new term, a new warning notice
            (rules / "scam.rules").write_text((rules / "scam.rules").read_text(encoding="utf-8") + NEW_RULE)
            sanctions = (rules / "sanctions.toml").read_text(encoding="utf-8")
            (rules / "sanctions.toml").write_text(sanctions.replace("This is a warning", "Consider this a warning"))
            changed_at = time.monotonic()
        if changed_at is not None and applied_after is None and reloads(worker.metrics_port, "applied") == 1:
            applied_after = time.monotonic() - changed_at
        if applied_after is not None and time.monotonic() - changed_at > applied_after + 1.5:
            break
        await asyncio.sleep(0.1)
    after = load_rules(rules, with_policy=True)
    assert after.version != before.version
    assert after.policy is not None
    assert before.policy is not None
    assert after.policy.version != before.policy.version
    assert applied_after is not None, "the new pack was never applied"
    # Building the edited default pack takes ~6 s on a quiet machine, three times that on a busy CI host.
    assert applied_after < 30, f"the new pack took {applied_after:.1f} s to apply"

    records = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= sent)
    await asyncio.sleep(2)  # anything extra (a message judged twice) would arrive now
    records = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= sent, wait_seconds=10)
    verdicts = verdicts_of(records)
    assert sorted(v["message_id"] for v in verdicts) == sorted(f"m{n}" for n in range(sent))

    # In each partition, in offset order, the old version until the switch and the new one after: never back.
    switched = 0
    for partition in range(settings.partitions):
        versions = [
            orjson.loads(r.value)["rules_version"]
            for r in sorted(records, key=lambda r: r.offset)
            if r.partition == partition
        ]
        old = versions.count(before.version)
        assert versions == [before.version] * old + [after.version] * (len(versions) - old), partition
        switched += 0 < old < len(versions)
    assert switched, "no partition saw both versions: the change was not mid-stream"
    # The new term blocks from the switch on, and only from then.
    for verdict in verdicts:
        canary = int(verdict["message_id"][1:]) % 2 == 1
        expected = "block" if canary and verdict["rules_version"] == after.version else "allow"
        assert verdict["decision"] == expected, verdict
    blocked = sum(v["decision"] == "block" for v in verdicts)
    assert blocked > 50

    # The standing agents decide under the new sanctions file: only new-pack violations exist, all warned anew.
    sanctions = verdicts_of(await read_until(settings, SANCTIONS, until=lambda seen: len(seen) >= 10))
    assert {s["policy_version"] for s in sanctions} == {after.policy.version}
    assert {s["rules_version"] for s in sanctions} == {after.version}
    warnings = [s for s in sanctions if s["kind"] == "warning"]
    assert warnings
    assert all("Consider this a warning" in s["notice"] for s in warnings)

    metrics = scrape(worker.metrics_port)
    info = f'groupwarden_rules_info{{policy_version="{after.policy.version}",rules_version="{after.version}",'
    assert metrics[info + 'shadow_rules_version=""}'] == 1
    assert metrics['groupwarden_rules_reload_total{pack="active",result="refused"}'] == 0
    assert worker.alive()


async def test_a_broken_pack_is_refused_with_file_line_and_reason_and_the_running_one_stays(
    settings, start_worker, tmp_path
):
    rules = copy_rules(tmp_path / "rules")
    before = load_rules(rules, with_policy=True).version
    worker = start_worker(replace(settings, rules_dir=rules))
    await produce(settings, [chat_message(n, CANARY, prefix="a") for n in range(10)])
    await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 10)

    scam = rules / "scam.rules"
    original = scam.read_text(encoding="utf-8")
    scam.write_text(original + "rule reload-canary\n  刷\n")  # a one-character term
    line = len(original.splitlines()) + 2
    error = f"{scam}:{line}: '刷' is shorter than 2 characters after normalisation"
    await wait_until(lambda: reloads(worker.metrics_port, "refused") == 1, 15, "the broken pack was not refused")
    log = worker.log_path.read_text(errors="replace")
    assert f"active rule pack in {rules} refused, keeping {before}: {error}" in log
    assert "Traceback" not in log  # the reason is the message, not a stack
    metrics = scrape(worker.metrics_port)
    assert metrics['groupwarden_rules_refused{pack="active"}'] == 1
    assert metrics['groupwarden_rules_reload_total{pack="active",result="applied"}'] == 0

    await produce(settings, [chat_message(n, CANARY, prefix="b") for n in range(10)])
    records = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 20)
    assert {(v["rules_version"], v["decision"]) for v in verdicts_of(records)} == {(before, "allow")}
    assert worker.alive()

    # Fixed, the pack is applied; a sanctions file that names a rule the pack lacks is refused in turn.
    scam.write_text(original + NEW_RULE)
    after = load_rules(rules, with_policy=True).version
    await wait_until(lambda: reloads(worker.metrics_port, "applied") == 1, 30, "the fixed pack was not applied")
    sanctions = rules / "sanctions.toml"
    sanctions.write_text(
        sanctions.read_text(encoding="utf-8").replace("[user.severe]", '[user.severe]\n"scam.gone" = 2')
    )
    await wait_until(lambda: reloads(worker.metrics_port, "refused") == 2, 15, "the broken sanctions were not refused")
    log = worker.log_path.read_text(errors="replace")
    assert f"keeping {after}: {sanctions}: user.severe.scam.gone: no such category or rule in the rule pack" in log

    await produce(settings, [chat_message(n, CANARY, prefix="c") for n in range(10)])
    records = await read_until(settings, VERDICTS, until=lambda seen: len(seen) >= 30)
    late = [v for v in verdicts_of(records) if v["message_id"].startswith("c")]
    assert {(v["rules_version"], v["decision"]) for v in late} == {(after, "block")}
    assert scrape(worker.metrics_port)['groupwarden_rules_refused{pack="active"}'] == 1
    assert worker.alive()
