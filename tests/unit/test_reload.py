"""Rule packs changed while running: the folder check, loading, the swap between batches and the shadow pack."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from conftest import DEFAULT_PACK_DIR, header, write_pack
from prometheus_client import CollectorRegistry

from streams.agents import classify
from streams.agents.classify import ClassifyStage, Tally, judge_records, shadow_records
from streams.config import Settings
from streams.metrics import Metrics
from streams.policy import reload
from streams.policy.classify import Classifier
from streams.policy.reload import FolderWatch, Followed, Rules, load_classifier, load_policy, load_rules
from streams.policy.rules import RulePack, RulePackError, load_pack
from streams.records import ChatMessage
from streams.topics import SHADOW_VERDICTS, VERDICTS

SCAM = header("scam") + "\nrule task-rebate\n  刷单返利\n"
GAMBLING = header("gambling", severity="medium", decision="review") + "\nrule casino\n  在线赌场\n"


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# -- the folder check ------------------------------------------------------------------------------------------------


def test_a_change_is_reported_once_the_folder_has_stayed_still_for_one_check(tmp_path: Path) -> None:
    write_pack(tmp_path, {"scam": SCAM})
    watch = FolderWatch(tmp_path)
    assert not watch.changed()

    write(tmp_path / "scam.rules", SCAM + "  兼职刷单\n")
    assert not watch.changed()  # maybe a copy in progress: wait one check
    assert watch.changed()
    assert not watch.changed()  # once per change

    write(tmp_path / "scam.rules", SCAM)
    assert not watch.changed()
    write(tmp_path / "scam.rules", SCAM + "  刷单佣金\n")  # changed again before the next check: still moving
    assert not watch.changed()
    assert watch.changed()


def test_a_touch_or_a_rewrite_with_the_same_content_is_no_change(tmp_path: Path) -> None:
    write_pack(tmp_path, {"scam": SCAM})
    watch = FolderWatch(tmp_path)
    stat = (tmp_path / "scam.rules").stat()
    os.utime(tmp_path / "scam.rules", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    write(tmp_path / "pack.toml", (tmp_path / "pack.toml").read_text())
    assert not watch.changed()
    assert not watch.changed()


def test_new_removed_and_nested_files_are_changes_hidden_ones_are_not(tmp_path: Path) -> None:
    write_pack(tmp_path, {"scam": SCAM})
    watch = FolderWatch(tmp_path)

    def settled() -> bool:
        return watch.changed() or watch.changed()

    write(tmp_path / ".scam.rules.swp", "an editor's swap file")
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".git" / "index", "x")
    assert not settled()
    (tmp_path / "blocklists").mkdir()
    write(tmp_path / "blocklists" / "spam.txt", "evil.example\n")
    assert settled()
    write(tmp_path / "gambling.rules", GAMBLING)
    assert settled()
    (tmp_path / "gambling.rules").unlink()
    assert settled()


def test_a_pack_swapped_by_repointing_a_symlink_is_a_change(tmp_path: Path) -> None:
    one = write_pack(tmp_path / "v1", {"scam": SCAM})
    two = write_pack(tmp_path / "v2", {"scam": SCAM + "  兼职刷单\n"})
    link = tmp_path / "rules"
    link.symlink_to(one)
    watch = FolderWatch(link)
    (tmp_path / "next").symlink_to(two)
    (tmp_path / "next").replace(link)  # atomically, as `ln -sfn` and Kubernetes' ConfigMap volumes do
    assert not watch.changed()
    assert watch.changed()


def test_a_configmap_volume_updated_by_kubernetes_is_a_change(tmp_path: Path) -> None:
    """Kubernetes writes a new hidden folder and re-points ..data at it; the visible files link through ..data."""
    folder = tmp_path / "rules"
    write_pack(folder / "..2026_11_30_1", {"scam": SCAM})
    (folder / "..data").symlink_to("..2026_11_30_1")
    for name in ("pack.toml", "scam.rules"):
        (folder / name).symlink_to(f"..data/{name}")
    watch = FolderWatch(folder)
    before = load_rules(folder, with_policy=False).version

    write_pack(folder / "..2026_11_30_2", {"scam": SCAM + "  兼职刷单\n"})
    (folder / "..data_tmp").symlink_to("..2026_11_30_2")
    (folder / "..data_tmp").replace(folder / "..data")
    shutil.rmtree(folder / "..2026_11_30_1")
    assert not watch.changed()
    assert watch.changed()
    assert load_rules(folder, with_policy=False).version != before


def test_a_folder_that_goes_missing_is_a_change_and_its_pack_is_refused(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "rules", {"scam": SCAM})
    watch = FolderWatch(folder)
    shutil.rmtree(folder)
    assert not watch.changed()
    assert watch.changed()
    with pytest.raises(RulePackError, match=r"pack\.toml: missing"):
        load_rules(folder, with_policy=False)


# -- loading ---------------------------------------------------------------------------------------------------------


def test_loading_checks_the_sanctions_against_the_new_packs_ids(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK_DIR, folder)
    rules = load_rules(folder, with_policy=True)
    assert rules.policy is not None
    assert rules.classifier.version == rules.version == rules.pack.version
    assert rules.same_as(load_rules(folder, with_policy=True))
    assert load_rules(folder, with_policy=False).policy is None

    weapons = folder / "weapons.rules"  # sanctions.toml names weapons.firearms as severe
    rules_text = weapons.read_text(encoding="utf-8")
    write(weapons, re.sub(r"\nrule firearms\b", "\nrule guns", rules_text))
    with pytest.raises(RulePackError, match=r"sanctions.toml: user\.severe\.weapons.*no such category or rule"):
        load_rules(folder, with_policy=True)  # refused before its classifier is built

    write(weapons, rules_text)
    sanctions = folder / "sanctions.toml"
    write(sanctions, sanctions.read_text(encoding="utf-8").replace('"weapons.firearms"', '"weapons.guns"'))
    with pytest.raises(RulePackError, match=r"sanctions.toml: user\.severe\.weapons.*no such category or rule"):
        load_rules(folder, with_policy=True)
    load_rules(folder, with_policy=False)  # a shadow pack's sanctions are never used, so never checked


def test_editing_the_sanctions_builds_no_new_classifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[Classifier] = []

    def counted(pack: RulePack) -> Classifier:
        builds.append(Classifier(pack))
        return builds[-1]

    monkeypatch.setattr(reload, "Classifier", counted)
    folder = write_pack(tmp_path / "rules", {"scam": SCAM + "  只在这里的词\n"})  # in no other test's cached pack
    sanctions = folder / "sanctions.toml"
    write(sanctions, "# the policy\n")
    first = load_classifier(folder)
    write(sanctions, "# the policy, edited\n")
    assert load_classifier(folder).version == first.version
    assert len(builds) == 1, "a policy edit left the classifier as it was"
    write(folder / "scam.rules", SCAM + "  兼职返利\n")
    assert load_classifier(folder).version != first.version
    assert len(builds) == 2


def test_rules_are_the_same_only_with_the_same_pack_and_policy(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK_DIR, folder)
    before = load_rules(folder, with_policy=True)
    sanctions = folder / "sanctions.toml"
    write(sanctions, sanctions.read_text(encoding="utf-8") + "\n# a comment changes the policy's hash\n")
    after = load_rules(folder, with_policy=True)
    assert after.version == before.version
    assert not after.same_as(before)
    assert not after.same_as(None)


# -- campaigns carried over ------------------------------------------------------------------------------------------


def message(text: str, message_id: str = "m1", links: tuple[str, ...] = ()) -> ChatMessage:
    return ChatMessage(message_id=message_id, group_id="g1", sender_id="u1", sent_at_ms=0, text=text, links=links)


def test_a_new_classifier_keeps_the_campaigns_the_old_one_learned(tmp_path: Path) -> None:
    old = Classifier(load_rules(write_pack(tmp_path / "old", {"scam": SCAM}), with_policy=False).pack)
    assert old.block_campaign("spread.example", ["scam"])
    assert not old.block_campaign("dice.example", ["gambling"])  # no such category in this pack
    assert old.block_campaign("gone.example", ["scam"])
    old.lift_campaign("gone.example")

    new = load_rules(write_pack(tmp_path / "new", {"scam": SCAM, "gambling": GAMBLING}), with_policy=False).classifier
    new.carry_campaigns(old)

    def rules_hit(domain: str) -> list[str]:
        verdict = new.classify(message(f"看 http://{domain}/"), 0)
        return [m["rule_id"] for m in verdict["matches"]]

    assert rules_hit("x.spread.example") == ["scam.campaign-domain"]
    assert rules_hit("dice.example") == ["gambling.campaign-domain"]  # the new pack knows its category
    assert rules_hit("gone.example") == []


# -- the shadow pack -------------------------------------------------------------------------------------------------


def record(offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("chat.messages.v1", 0, offset, 0, 0, b"g1", value, None, len(value), len(value), [])


def chat(message_id: str, text: str) -> bytes:
    doc = {"message_id": message_id, "group_id": "g1", "sender_id": "u1", "sent_at": 1, "text": text}
    return orjson.dumps(doc)


class Failing(Classifier):
    """A classifier with a bug on one text."""

    def classify_batch(self, messages: Any, classified_at_ms: int) -> list[dict[str, Any]]:
        if any("boom" in m.text for m in messages):
            raise RuntimeError("boom")
        return super().classify_batch(messages, classified_at_ms)


@pytest.fixture
def packs(tmp_path: Path) -> tuple[Classifier, Classifier]:
    """An active pack that blocks 刷单返利, and a candidate that also holds 在线赌场 for review."""
    active = load_rules(write_pack(tmp_path / "active", {"scam": SCAM}), with_policy=False)
    shadow = load_rules(write_pack(tmp_path / "shadow", {"scam": SCAM, "gambling": GAMBLING}), with_policy=False)
    return active.classifier, Failing(shadow.pack)


def test_shadow_verdicts_carry_the_candidates_version_and_nothing_else_goes_out(
    packs: tuple[Classifier, Classifier],
) -> None:
    active, shadow = packs
    settings = Settings(topic_prefix="t.")
    records = [
        record(0, chat("m0", "今晚一起吃饭吗")),
        record(1, chat("m1", "刷单返利")),
        record(2, chat("m2", "在线赌场")),
        record(3, b"{not json"),
    ]
    tally = Tally()
    judged = judge_records(records, active, settings, 5, tally)
    out = shadow_records(judged, shadow, settings, 5, tally)

    assert {r.topic for r in out} == {settings.topic(SHADOW_VERDICTS)}  # no violation, no dead letter
    verdicts = [orjson.loads(r.value) for r in out]
    assert [(v["message_id"], v["decision"], v["rules_version"]) for v in verdicts] == [
        ("m0", "allow", shadow.version),
        ("m1", "block", shadow.version),
        ("m2", "review", shadow.version),
    ]
    assert all(r.key == b"g1" for r in out)
    assert tally.shadow_decisions == {"allow": 1, "block": 1, "review": 1}
    assert tally.disagreements == {("allow", "review"): 1}
    assert judged.decisions == ["allow", "block", "allow"]
    assert [orjson.loads(r.value)["rules_version"] for r in judged.out if r.topic == settings.topic(VERDICTS)] == [
        active.version
    ] * 3


def test_a_shadow_failure_costs_only_the_messages_it_failed_on(packs: tuple[Classifier, Classifier]) -> None:
    active, shadow = packs
    settings = Settings()
    records = [record(0, chat("m0", "boom")), record(1, chat("m1", "在线赌场"))]
    tally = Tally()
    judged = judge_records(records, active, settings, 5, tally)
    out = shadow_records(judged, shadow, settings, 5, tally)
    assert [orjson.loads(r.value)["message_id"] for r in out] == ["m1"]
    assert tally.shadow_skipped == {"classify_error": 1}
    assert tally.disagreements == {("allow", "review"): 1}
    assert tally.decisions == {"allow": 2}  # the active pack judged both


def test_an_active_failure_leaves_no_decision_to_compare(packs: tuple[Classifier, Classifier]) -> None:
    active, shadow = packs
    failing = Failing(active.pack)
    settings = Settings()
    tally = Tally()
    records = [record(0, chat("m0", "boom")), record(1, chat("m1", "在线赌场"))]
    judged = judge_records(records, failing, settings, 5, tally)
    assert judged.decisions == [None, "allow"]
    assert tally.dead_letters == {"classify_error": 1}
    shadow_records(judged, Classifier(shadow.pack), settings, 5, tally)
    assert tally.shadow_decisions == {"allow": 1, "review": 1}
    assert tally.disagreements == {("allow", "review"): 1}


# -- the swap, between two batches -----------------------------------------------------------------------------------


def reloads(metrics: Metrics, pack: str, result: str) -> float | None:
    return metrics.registry.get_sample_value("groupwarden_rules_reload_total", {"pack": pack, "result": result})


async def test_a_changed_pack_is_swapped_in_and_a_broken_one_refused(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK_DIR, folder)
    active = Followed("active", folder, with_policy=True)
    first = active.rules = active.load()
    metrics = Metrics(CollectorRegistry())
    applied: list[Rules] = []
    stage = ClassifyStage(Settings(), first.classifier, metrics, follow=[active], on_rules=applied.append)
    assert first.classifier.block_campaign("spread.example", ["scam"])

    scam = folder / "scam.rules"
    write(scam, scam.read_text(encoding="utf-8") + "\nrule hot-reload\n  紫色独角兽茶话会\n")
    await stage._reload(active)
    assert stage.classifier is not first.classifier
    assert applied == [active.rules]
    assert stage.classifier.version == active.rules.version != first.version
    verdict = stage.classifier.classify(message("紫色独角兽茶话会 http://spread.example/"), 0)
    assert {m["rule_id"] for m in verdict["matches"]} == {"scam.hot-reload", "scam.campaign-domain"}
    assert reloads(metrics, "active", "applied") == 1
    info = metrics.registry.get_sample_value(
        "groupwarden_rules_info",
        {"rules_version": active.rules.version, "policy_version": first.policy.version, "shadow_rules_version": ""},
    )
    assert info == 1

    running = stage.classifier
    write(scam, scam.read_text(encoding="utf-8") + "  刷\n")
    await stage._reload(active)
    assert stage.classifier is running
    assert len(applied) == 1
    assert reloads(metrics, "active", "refused") == 1
    assert metrics.registry.get_sample_value("groupwarden_rules_refused", {"pack": "active"}) == 1

    write(scam, scam.read_text(encoding="utf-8").replace("  刷\n", ""))  # back as it runs: nothing to apply
    await stage._reload(active)
    assert stage.classifier is running
    assert metrics.registry.get_sample_value("groupwarden_rules_refused", {"pack": "active"}) == 0
    assert reloads(metrics, "active", "applied") == 1


async def test_a_pack_swapped_in_is_frozen_like_the_one_loaded_at_start(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "rules", {"scam": SCAM})
    active = Followed("active", folder, with_policy=False)
    active.rules = active.load()
    stage = ClassifyStage(Settings(), active.rules.classifier, Metrics(CollectorRegistry()), follow=[active])
    write(folder / "scam.rules", SCAM + "  兼职刷单\n")
    try:
        await stage._reload(active)
        swapped_in = stage.classifier
        assert swapped_in is not None
        assert swapped_in is active.rules.classifier
        assert not any(tracked is swapped_in for tracked in gc.get_objects())  # frozen: no collection walks it
    finally:
        gc.unfreeze()


async def test_a_shadow_pack_refused_at_first_comes_in_when_fixed(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "shadow", {"scam": SCAM + "  刷\n"})
    shadow = Followed("shadow", folder, with_policy=False)
    with pytest.raises(RulePackError, match=r"scam\.rules:8: '刷' is shorter than 2 characters"):
        shadow.load()
    active = load_rules(write_pack(tmp_path / "active", {"scam": SCAM}), with_policy=False)
    assert active.classifier.block_campaign("spread.example", ["scam"])
    metrics = Metrics(CollectorRegistry())
    stage = ClassifyStage(Settings(), active.classifier, metrics, follow=[shadow])
    assert stage.shadow is None

    write(folder / "scam.rules", SCAM + "  兼职刷单\n")
    await stage._reload(shadow)
    assert stage.shadow is not None
    assert stage.classifier is active.classifier
    assert stage.shadow.classify(message("看 http://spread.example/"), 0)["decision"] == "block"  # learned campaigns
    assert reloads(metrics, "shadow", "applied") == 1
    assert (
        metrics.registry.get_sample_value(
            "groupwarden_rules_info",
            {"rules_version": "", "policy_version": "", "shadow_rules_version": stage.shadow.version},
        )
        == 1
    )


async def test_shadow_verdicts_not_acknowledged_are_counted_and_the_shadow_rests(
    packs: tuple[Classifier, Classifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    active, shadow = packs
    stage = ClassifyStage(Settings(), active, Metrics(CollectorRegistry()), shadow=shadow)
    judged = judge_records([record(0, chat("m0", "在线赌场"))], active, Settings(), 5, Tally())
    tally = Tally()
    assert len(stage._shadow_records(judged, 5, tally)) == 1
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(KafkaError())
    await stage._shadow_acknowledged(failed, 1, tally)
    assert (tally.shadow_decisions, tally.disagreements) == ({}, {})  # not published after all
    assert tally.shadow_skipped == {"send_error": 1}

    tally = Tally()
    assert stage._shadow_records(judged, 5, tally) == []  # resting: the active pack judges alone for a while
    assert tally.shadow_skipped == {"paused": 1}

    monkeypatch.setattr(classify, "SHADOW_SEND_SECONDS", 0.05)
    stage._shadow_paused_until = 0.0
    hanging = asyncio.get_running_loop().create_future()
    tally = Tally()
    await stage._shadow_acknowledged(hanging, 3, tally)  # holds the commit no longer than that
    assert hanging.cancelled()
    assert tally.shadow_skipped == {"send_error": 3}


def test_a_standing_worker_reads_the_pack_version_and_policy_without_the_classifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK_DIR, pack)  # the same files: the suite's cached classifier and summary
    full = load_rules(pack, with_policy=True)
    assert full.policy is not None

    def no_pack(directory: Path) -> RulePack:
        raise AssertionError(f"{directory} was read again")

    monkeypatch.setattr(reload, "load_pack", no_pack)
    alone = load_policy(pack)  # the summary cached beside the classifier, the policy read afresh
    assert (alone.version, alone.policy.version) == (full.version, full.policy.version)
    assert set(alone.summary.categories) == set(full.pack.categories)
    assert alone.same_as(load_policy(pack))

    sanctions = pack / "sanctions.toml"
    write(sanctions, sanctions.read_text(encoding="utf-8").replace("[user.severe]", '[user.severe]\n"x.y" = 2'))
    with pytest.raises(RulePackError, match=r"sanctions.toml: user\.severe\.x\.y: no such category or rule"):
        load_policy(pack)


def test_a_summary_not_cached_is_read_from_the_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUPWARDEN_CACHE_DIR", str(tmp_path / "cache"))
    built: list[RulePack] = []
    monkeypatch.setattr(reload, "Classifier", built.append)  # no classifier is built for a summary
    folder = write_pack(tmp_path / "rules", {"scam": SCAM})
    assert reload.load_summary(folder).version == load_pack(folder).version
    assert not built
    shutil.copy(DEFAULT_PACK_DIR / "sanctions.toml", folder)  # it names weapons.firearms, which this pack lacks
    with pytest.raises(RulePackError, match=r"user\.severe\.weapons\.firearms: no such category or rule"):
        load_policy(folder)
