"""A shadow pack judges every message beside the active one, publishes its own verdicts and changes nothing else."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson

from streams.kafka.produce import partition_for
from streams.policy.rules import load_pack
from streams.policy.sanctions import load_sanctions
from streams.topics import SHADOW_VERDICTS, VERDICTS, VIOLATIONS
from tests.integration.conftest import (
    CANARY,
    NEW_RULE,
    RULES,
    chat_message,
    copy_rules,
    produce,
    read_until,
    reloads,
    scrape,
    wait_until,
)

CLEAN = "今晚一起吃饭吗"
SCAM = "刷*單*返*利，日赚五百"  # blocked by both packs


def by_id(records) -> dict[str, dict]:
    return {(v := orjson.loads(r.value))["message_id"]: v for r in records}


async def test_a_shadow_pack_publishes_one_verdict_per_message_and_nothing_else_changes(
    settings, start_worker, tmp_path
):
    candidate = copy_rules(tmp_path / "candidate", NEW_RULE)  # the candidate also blocks the canary
    active, shadow = load_pack(RULES).version, load_pack(candidate).version
    policy = load_sanctions(RULES / "sanctions.toml").version
    texts = (CLEAN, SCAM, CANARY)
    count = 300
    await produce(settings, [chat_message(n, texts[n % 3]) for n in range(count)])
    worker = start_worker(replace(settings, shadow_rules_dir=candidate))

    def complete(seen) -> bool:
        return len(seen) >= count

    verdicts = await read_until(settings, VERDICTS, until=complete)
    shadowed = await read_until(settings, SHADOW_VERDICTS, until=complete)
    await asyncio.sleep(2)  # anything extra (a duplicate) would arrive now
    verdicts = await read_until(settings, VERDICTS, until=complete, wait_seconds=10)
    shadowed = await read_until(settings, SHADOW_VERDICTS, until=complete, wait_seconds=10)
    assert len(verdicts) == len(shadowed) == count
    judged, candidates = by_id(verdicts), by_id(shadowed)
    assert set(judged) == set(candidates) == {f"m{n}" for n in range(count)}

    for record in shadowed:  # keyed and partitioned like the verdicts, so the two join per partition
        assert record.key == orjson.loads(record.value)["group_id"].encode()
        assert record.partition == partition_for(record.key, settings.partitions)
    for n in range(count):
        mine, theirs = judged[f"m{n}"], candidates[f"m{n}"]
        assert (mine["rules_version"], theirs["rules_version"]) == (active, shadow)
        expected = {CLEAN: ("allow", "allow"), SCAM: ("block", "block"), CANARY: ("allow", "block")}[texts[n % 3]]
        assert (mine["decision"], theirs["decision"]) == expected, n
        assert theirs.keys() == mine.keys()  # a verdict like any other (schemas/verdict.v1.json)

    # Only the active pack's blocks are violations: the canaries, blocked by the shadow alone, are not.
    scams = {f"m{n}" for n in range(count) if texts[n % 3] == SCAM}
    violations = await read_until(settings, VIOLATIONS, until=lambda seen: len(seen) >= len(scams))
    await asyncio.sleep(1)
    violations = await read_until(settings, VIOLATIONS, until=lambda seen: len(seen) >= len(scams), wait_seconds=10)
    assert set(by_id(violations)) == scams
    assert len(violations) == len(scams)

    metrics = scrape(worker.metrics_port)
    info = f'policy_version="{policy}",rules_version="{active}",shadow_rules_version="{shadow}"'
    assert metrics[f"groupwarden_rules_info{{{info}}}"] == 1
    assert metrics['groupwarden_verdicts_total{decision="block"}'] == count // 3
    assert metrics['groupwarden_shadow_verdicts_total{decision="block"}'] == 2 * count // 3
    assert metrics['groupwarden_shadow_verdicts_total{decision="allow"}'] == count // 3
    disagreements = {k: v for k, v in metrics.items() if k.startswith("groupwarden_shadow_disagreements_total{")}
    assert len(disagreements) == 6  # every pair of different decisions, exported from the start
    assert {k for k, v in disagreements.items() if v} == {
        'groupwarden_shadow_disagreements_total{active="allow",shadow="block"}'
    }
    assert disagreements['groupwarden_shadow_disagreements_total{active="allow",shadow="block"}'] == count // 3
    assert sum(v for k, v in metrics.items() if k.startswith("groupwarden_shadow_skipped_messages_total{")) == 0

    # The shadow folder is followed too: a new candidate judges from the next batch on, the active pack stays.
    (candidate / "scam.rules").write_text((RULES / "scam.rules").read_text(encoding="utf-8"), encoding="utf-8")
    await wait_until(lambda: reloads(worker.metrics_port, "applied", "shadow") == 1, 60, "the candidate stayed")
    await produce(settings, [chat_message(n, CANARY, prefix="late") for n in range(30)])
    late = await read_until(settings, SHADOW_VERDICTS, until=lambda seen: len(seen) >= count + 30)
    late_verdicts = [v for v in by_id(late).values() if v["message_id"].startswith("late")]
    assert {(v["rules_version"], v["decision"]) for v in late_verdicts} == {(active, "allow")}  # now the same pack
    assert reloads(worker.metrics_port, "applied") == 0  # the active pack did not change
    assert worker.alive()
