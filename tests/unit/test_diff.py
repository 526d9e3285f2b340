"""groupwarden diff: two rule packs over the same input, and exactly what changes (streams/diff.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from conftest import DEFAULT_PACK_DIR

from streams import cli
from streams.diff import compare, render
from streams.policy.reload import load_rules
from streams.replay import Pipeline, file_records

T0 = 1_790_000_000_000
NEW_TERM = "灵石返利盘"  # not in the shipped pack: the candidate adds it to the first scam rule (block)


def candidate_pack(tmp_path: Path) -> Path:
    folder = tmp_path / "candidate"
    shutil.copytree(DEFAULT_PACK_DIR, folder)
    rules = folder / "scam.rules"
    text = rules.read_text(encoding="utf-8")
    first_rule = text.index("\nrule ")
    line_end = text.index("\n", first_rule + 1)
    rules.write_text(f"{text[: line_end + 1]}  {NEW_TERM}\n{text[line_end + 1 :]}", encoding="utf-8")
    return folder


def recorded() -> tuple[list[bytes], set[str]]:
    """Chat where some messages carry the new term (some spelled evasively), and which ones."""
    texts = [
        ("周末一起去爬山吗", False),
        (f"{NEW_TERM}，限量发售", True),
        ("灵 石 返 利 盘，限时加入", True),  # separators inside the word
        ("兼职刷单，日赚三百，佣金日结", False),  # blocked by both packs: not affected
        ("灵石很贵", False),
        (f"兼职刷单日结 还有{NEW_TERM}", True),  # blocked by both, but a new match
        ("返利活动本周五结束", False),
    ]
    lines, affected = [], set()
    for n in range(60):
        text, carries = texts[n % len(texts)]
        doc = {"message_id": f"m{n}", "group_id": f"g{n % 4}", "sender_id": f"u{n % 6}", "sent_at": T0 + n * 1000}
        lines.append(orjson.dumps(doc | {"text": text}))
        if carries:
            affected.add(f"m{n}")
    return lines, affected


def run(folder: Path, lines: list[bytes]) -> Pipeline:
    rules = load_rules(folder, with_policy=True)
    assert rules.policy is not None
    return Pipeline(rules.classifier, rules.policy)


def test_a_one_term_change_affects_exactly_the_messages_that_carry_it(tmp_path: Path) -> None:
    lines, affected = recorded()
    base, candidate = run(DEFAULT_PACK_DIR, lines), run(candidate_pack(tmp_path), lines)
    report = compare(
        list(base.run(file_records("in", lines))),
        list(candidate.run(file_records("in", lines))),
        base_version=base.classifier.version,
        candidate_version=candidate.classifier.version,
    )
    assert set(report["affected_message_ids"]) == affected
    assert report["affected"] == len(affected)
    newly_blocked = {m for m in affected if int(m[1:]) % 7 in (1, 2)}
    assert report["decisions"] == [
        {"from": "allow", "to": "block", "count": len(newly_blocked), "examples": report["decisions"][0]["examples"]}
    ]
    assert set(report["decisions"][0]["examples"]) <= newly_blocked
    [rule] = report["rules"]
    assert rule["rule_id"].startswith("scam.")
    assert (rule["new"], rule["lost"]) == (len(affected), 0)
    [category] = report["categories"]
    assert category["category"] == "scam"
    assert (category["gained"], category["lost"]) == (len(newly_blocked), 0)
    appear = sum(s["appear"] for s in report["sanctions"])
    assert appear >= len(newly_blocked), "each newly blocked message is at least a strike"
    assert report["base"]["rules_version"] != report["candidate"]["rules_version"]


def test_the_same_pack_changes_nothing(tmp_path: Path) -> None:
    lines, _ = recorded()
    copy = tmp_path / "same"
    shutil.copytree(DEFAULT_PACK_DIR, copy)
    a, b = run(DEFAULT_PACK_DIR, lines), run(copy, lines)
    report = compare(
        list(a.run(file_records("in", lines))),
        list(b.run(file_records("in", lines))),
        base_version="a",
        candidate_version="b",
    )
    assert report["affected"] == 0
    assert report["decisions"] == report["rules"] == report["categories"] == report["sanctions"] == []
    assert "0 of 60 messages affected" in render(report)


def test_the_command_prints_tables_and_writes_the_json_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, affected = recorded()
    source = tmp_path / "recorded.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    report_path = tmp_path / "diff.json"
    code = cli.main(["diff", "--candidate", str(candidate_pack(tmp_path)), "--json", str(report_path), str(source)])
    assert code == 0
    out = capsys.readouterr().out
    assert f"{len(affected)} of 60 messages affected" in out
    assert "allow -> block" in out
    assert "scam." in out
    report = orjson.loads(report_path.read_bytes())
    assert set(report["affected_message_ids"]) == affected


def test_a_broken_candidate_is_refused_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = candidate_pack(tmp_path)
    (folder / "scam.rules").write_text("category scam\nseverity dreadful\n", encoding="utf-8")
    source = tmp_path / "in.jsonl"
    source.write_bytes(recorded()[0][0] + b"\n")
    assert cli.main(["diff", "--candidate", str(folder), str(source)]) == 2
    assert "scam.rules" in capsys.readouterr().err
