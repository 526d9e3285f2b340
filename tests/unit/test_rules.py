"""Rule packs: loading, every validation error (with file, line and reason), versions, and the shipped pack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DEFAULT_PACK_DIR, MANIFEST, header, make_pack, write_pack

from streams.policy.rules import Decision, RulePack, RulePackError, Severity, load_pack

HEADER = header("scam")  # 4 lines: a rule starting right after it is on line 5


def load_error(directory: Path, files: dict[str, str | bytes], *, manifest: str | None = MANIFEST) -> str:
    """Write a pack that must be refused; the error message."""
    write_pack(directory, files, manifest=manifest)
    with pytest.raises(RulePackError) as excinfo:
        load_pack(directory)
    return str(excinfo.value)


# --- loading ----------------------------------------------------------------------------------------------------


def test_loads_a_small_pack(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        {
            "scam": HEADER
            + "\nrule task-rebate\n  刷单返利\n  click farming job\n"
            + "rule safe-account\n  安全账户\n"
            + "allow\n  警惕刷单返利\n",
        },
    )
    assert pack.name == "test"
    assert list(pack.categories) == ["scam"]
    category = pack.categories["scam"]
    assert (category.id, category.title, category.severity, category.decision) == (
        "scam",
        "Test category",
        Severity.HIGH,
        Decision.BLOCK,
    )
    assert [(t.text, t.normal, t.rule.id) for t in pack.terms if not t.variant] == [
        ("刷单返利", "刷单返利", "scam.task-rebate"),
        ("click farming job", "click farming job", "scam.task-rebate"),
        ("安全账户", "安全账户", "scam.safe-account"),
    ]
    assert [t.where for t in pack.terms if not t.variant] == [f"{tmp_path / 'scam.rules'}:{n}" for n in (7, 8, 10)]
    assert [(a.text, a.normal, a.where) for a in pack.allow] == [
        ("警惕刷单返利", "警惕刷单返利", f"{tmp_path / 'scam.rules'}:12"),
    ]


def test_terms_are_normalised(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"scam": HEADER + "rule a\n  刷*單\n  ＶＩＰ Group\n"})
    assert [(t.text, t.normal) for t in pack.terms if not t.variant] == [
        ("刷*單", "刷单"),
        ("ＶＩＰ Group", "vip group"),
    ]


def test_rule_options_override_severity_and_decision(tmp_path: Path) -> None:
    text = (
        header("counterfeit", severity="medium", decision="review")
        + "rule plain\n  高仿包\n"
        + "rule severe severity=critical decision=block\n  假币出售\n"
        + "rule only-severity severity=low\n  复刻手表\n"
        + "rule only-decision decision=block\n  假证办理\n"
    )
    pack = make_pack(tmp_path, {"counterfeit": text})
    rules = {t.rule.id: (t.rule.severity, t.rule.decision) for t in pack.terms}
    assert rules == {
        "counterfeit.plain": (Severity.MEDIUM, Decision.REVIEW),
        "counterfeit.severe": (Severity.CRITICAL, Decision.BLOCK),
        "counterfeit.only-severity": (Severity.LOW, Decision.REVIEW),
        "counterfeit.only-decision": (Severity.MEDIUM, Decision.BLOCK),
    }
    assert pack.categories["counterfeit"].severity == Severity.MEDIUM
    assert pack.categories["counterfeit"].decision == Decision.REVIEW


def test_comments_are_ignored(tmp_path: Path) -> None:
    text = (
        "# a comment before the header\n"
        "category scam   # the id\n"
        "title    Scams\n"
        "severity high # the severity\n"
        "decision block\n"
        "  # an indented comment line\n"
        "rule a   # a comment after the rule\n"
        "  刷单返利 # a comment after a term\n"
        "#  刷单日结\n"
        "  c#\n"  # '#' not after a space is part of the term
        "allow # allow phrases follow\n"
        "  警惕刷单返利    # why\n"
    )
    pack = make_pack(tmp_path, {"scam": text})
    assert pack.categories["scam"].title == "Scams"
    assert pack.categories["scam"].severity == Severity.HIGH
    assert [t.normal for t in pack.terms if not t.variant] == ["刷单返利", "c#"]
    assert [a.normal for a in pack.allow] == ["警惕刷单返利"]


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"scam": "\n\n" + HEADER + "\n\nrule a\n\n  刷单返利\n\n"})
    assert [t.normal for t in pack.terms if not t.variant] == ["刷单返利"]


# --- versions ---------------------------------------------------------------------------------------------------

_VERSION = re.compile(r"^1\.2\.3\+[0-9a-f]{12}$")


def test_version_is_declared_version_plus_content_hash(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"})
    assert _VERSION.match(pack.version), pack.version


def test_version_is_stable_for_the_same_content(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"scam": HEADER + "rule a\n  刷单返利\n"}
    assert make_pack(tmp_path / "one", files).version == make_pack(tmp_path / "two", files).version


def test_version_changes_when_any_rule_file_changes(tmp_path: Path) -> None:
    scam = HEADER + "rule a\n  刷单返利\n"
    gambling = header("gambling") + "rule b\n  网络赌博\n"
    before = make_pack(tmp_path, {"scam": scam, "gambling": gambling}).version
    (tmp_path / "gambling.rules").write_text(gambling + "  线上赌场\n", encoding="utf-8")
    after = load_pack(tmp_path).version
    assert _VERSION.match(after)
    assert after != before
    (tmp_path / "gambling.rules").write_text(gambling + "# only a comment\n", encoding="utf-8")
    assert load_pack(tmp_path).version not in (before, after)


def test_version_changes_when_a_rule_file_is_added(tmp_path: Path) -> None:
    before = make_pack(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"}).version
    write_pack(tmp_path, {"gambling": header("gambling") + "rule b\n  网络赌博\n"})
    assert load_pack(tmp_path).version != before


def test_version_follows_the_declared_version(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"}, manifest='name = "x"\nversion = "2026.11.1"\n'
    )
    assert re.match(r"^2026\.11\.1\+[0-9a-f]{12}$", pack.version)
    assert pack.name == "x"


# --- errors -----------------------------------------------------------------------------------------------------


def test_missing_pack_toml(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"}, manifest=None)
    assert message.startswith(f"{tmp_path / 'pack.toml'}: missing")


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param('name = "test"\n', id="absent"),
        pytest.param('name = "test"\nversion = ""\n', id="empty"),
        pytest.param('name = "test"\nversion = 3\n', id="not-a-string"),
    ],
)
def test_pack_toml_without_version(tmp_path: Path, manifest: str) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"}, manifest=manifest)
    assert message == f"{tmp_path / 'pack.toml'}: 'version' must be a non-empty string"


def test_pack_toml_without_name(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"}, manifest='version = "1"\n')
    assert message == f"{tmp_path / 'pack.toml'}: 'name' must be a non-empty string"


def test_pack_toml_not_toml(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\n"}, manifest="name = = 1\n")
    assert message.startswith(f"{tmp_path / 'pack.toml'}: ")
    assert "line 1" in message


def test_no_rules_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a rules file\n", encoding="utf-8")
    message = load_error(tmp_path, {})
    assert message == f"{tmp_path}: no *.rules files"


def test_unknown_header_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "owner bob\nrule a\n  刷单返利\n"})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:5: expected a header line")
    assert "'owner bob'" in message


def test_stray_line_after_a_rule(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nstray line\n"})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:7: expected a header line")
    assert "'stray line'" in message


def test_header_key_after_a_rule(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nseverity low\n"})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:7: expected a header line")


def test_header_key_given_twice(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "title again\nrule a\n  刷单返利\n"})
    assert message == f"{tmp_path / 'scam.rules'}:5: 'title' is given twice"


def test_header_missing_severity(tmp_path: Path) -> None:
    text = "category scam\ntitle    Scams\ndecision block\n\nrule a\n  刷单返利\n"
    message = load_error(tmp_path, {"scam": text})
    assert message == f"{tmp_path / 'scam.rules'}:5: the header misses severity"


def test_empty_rules_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": "# nothing yet\n"})
    assert message == f"{tmp_path / 'scam.rules'}:1: the header misses category, title, severity, decision"


@pytest.mark.parametrize("value", ["extreme", "none", "0"])
def test_bad_severity(tmp_path: Path, value: str) -> None:
    text = f"category scam\ntitle    Scams\nseverity {value}\ndecision block\nrule a\n  刷单返利\n"
    message = load_error(tmp_path, {"scam": text})
    assert message == (f"{tmp_path / 'scam.rules'}:3: severity '{value}' is not one of low | medium | high | critical")


@pytest.mark.parametrize("value", ["ban", "allow"])
def test_bad_decision(tmp_path: Path, value: str) -> None:
    # README: "decision review | block: what a hit in this category does"; a category that allows is no rule.
    text = f"category scam\ntitle    Scams\nseverity high\ndecision {value}\nrule a\n  刷单返利\n"
    message = load_error(tmp_path, {"scam": text})
    assert message == f"{tmp_path / 'scam.rules'}:4: decision '{value}' is not one of review | block"


@pytest.mark.parametrize("option", ["severity=none", "severity=", "decision=allow", "decision=maybe"])
def test_bad_rule_option_value(tmp_path: Path, option: str) -> None:
    message = load_error(tmp_path, {"scam": HEADER + f"rule a {option}\n  刷单返利\n"})
    kind, _, value = option.partition("=")
    allowed = "low | medium | high | critical" if kind == "severity" else "review | block"
    assert message == f"{tmp_path / 'scam.rules'}:5: {kind} '{value}' is not one of {allowed}"


def test_category_id_not_matching_file_name(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": header("fraud") + "rule a\n  刷单返利\n"})
    assert message == f"{tmp_path / 'scam.rules'}:1: category 'fraud' must live in a file named fraud.rules"


def test_category_id_not_a_slug(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"Scam": header("Scam") + "rule a\n  刷单返利\n"})
    assert message.startswith(f"{tmp_path / 'Scam.rules'}:1: category id 'Scam' must be lower-case")


def test_term_before_any_rule(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "  刷单返利\nrule a\n  兼职刷单\n"})
    assert (
        message == f"{tmp_path / 'scam.rules'}:5: a term must follow a 'rule <id>', 'set <id>', 'allow' or 'warn' line"
    )


def test_duplicate_rule_id(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nrule a\n  兼职刷单\n"})
    assert message == f"{tmp_path / 'scam.rules'}:7: rule 'scam.a' is defined twice"


def test_rule_id_not_a_slug(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule Task\n  刷单返利\n"})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:5: rule id 'Task' must be lower-case")


def test_rule_without_id(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nrule\n  兼职刷单\n"})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:7: ")


def test_unknown_rule_option(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a priority=1\n  刷单返利\n"})
    assert message == (
        f"{tmp_path / 'scam.rules'}:5: unknown rule option 'priority=1' "
        "(weight=, severity=, decision=, context=, pinyin=no, variants=no)"
    )


def test_allow_with_an_argument(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nallow extra\n"})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:7: expected a header line")


@pytest.mark.parametrize(
    "term",
    [
        pytest.param("刷", id="one-han"),
        pytest.param("ａ", id="full-width-letter"),
        pytest.param("Ⓐ\u200b", id="styled-and-zero-width"),
    ],
)
def test_term_shorter_than_two_characters_after_normalisation(tmp_path: Path, term: str) -> None:
    message = load_error(tmp_path, {"scam": HEADER + f"rule a\n  刷单返利\n  {term}\n"})
    assert message == f"{tmp_path / 'scam.rules'}:7: '{term}' is shorter than 2 characters after normalisation"


def test_allow_phrase_shorter_than_two_characters(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nallow\n  x\n"})
    assert message == f"{tmp_path / 'scam.rules'}:8: 'x' is shorter than 2 characters after normalisation"


def test_same_term_twice_in_one_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"scam": HEADER + "rule a\n  刷单返利\nrule b\n  刷单返利\n"})
    path = tmp_path / "scam.rules"
    assert message == f"{path}:8: term '刷单返利' is the same as '刷单返利' at {path}:6 after normalisation"


def test_same_term_twice_across_files(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        {"scam": HEADER + "rule a\n  刷单返利\n", "gambling": header("gambling") + "rule b\n  网络赌博\n  刷单返利\n"},
    )
    # Files load in name order: gambling.rules first, so the later place is scam.rules.
    assert message == (
        f"{tmp_path / 'scam.rules'}:6: term '刷单返利' is the same as '刷单返利' "
        f"at {tmp_path / 'gambling.rules'}:7 after normalisation"
    )


def test_same_term_after_normalisation_across_files(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        {"scam": HEADER + "rule a\n  赌博\n", "gambling": header("gambling") + "rule b\n  賭博\n"},
    )
    assert message == (
        f"{tmp_path / 'scam.rules'}:6: term '赌博' is the same as '賭博' "
        f"at {tmp_path / 'gambling.rules'}:6 after normalisation"
    )


def test_non_utf8_file_names_file_and_reason(tmp_path: Path) -> None:
    raw = (HEADER + "rule a\n  刷单返利\n  caf").encode() + b"\xe9\n"  # latin-1 é on line 7
    message = load_error(tmp_path, {"scam": raw})
    assert message.startswith(f"{tmp_path / 'scam.rules'}")
    assert "not UTF-8" in message
    assert f"at byte {len(raw) - 2}" in message


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    # README: "A pack with an error is refused as a whole, with the file, the line and the reason".
    raw = (HEADER + "rule a\n  刷单返利\n  caf").encode() + b"\xe9\n"  # latin-1 é on line 7
    message = load_error(tmp_path, {"scam": raw})
    assert message.startswith(f"{tmp_path / 'scam.rules'}:7: ")


def test_one_bad_file_refuses_the_whole_pack(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        {"gambling": header("gambling") + "rule b\n  网络赌博\n", "scam": HEADER + "rule a\n  刷\n"},
    )
    assert message.startswith(f"{tmp_path / 'scam.rules'}:6: ")


def test_error_is_a_value_error(tmp_path: Path) -> None:
    write_pack(tmp_path, {}, manifest=None)
    with pytest.raises(ValueError, match=r"pack\.toml: missing"):
        load_pack(tmp_path)


# --- the shipped pack -------------------------------------------------------------------------------------------

SHIPPED_CATEGORIES = {
    "scam",
    "gambling",
    "drugs",
    "weapons",
    "sexual",
    "counterfeit",
    "false_advertising",
    "share_bait",
    "illegal_goods",
    "violence",
    "privacy",
}
_HAN = re.compile(r"[\u3400-\u9fff]")
_ENGLISH = re.compile(r"^[a-z][a-z0-9' .-]*[a-z0-9]$")


def test_default_pack_loads_with_the_eleven_categories(default_pack: RulePack) -> None:
    assert default_pack.name == "default"
    assert set(default_pack.categories) == SHIPPED_CATEGORIES
    assert len(default_pack.categories) == 11
    assert {t.rule.category for t in default_pack.terms} == SHIPPED_CATEGORIES


def test_default_pack_version(default_pack: RulePack) -> None:
    assert re.match(r"^2026\.12\.16\+[0-9a-f]{12}$", default_pack.version), default_pack.version
    assert load_pack(DEFAULT_PACK_DIR).version == default_pack.version


def test_default_pack_size(default_pack: RulePack) -> None:
    assert len(default_pack.terms) >= 600
    assert len(default_pack.allow) >= 1


@pytest.mark.parametrize("category", sorted(SHIPPED_CATEGORIES))
def test_default_pack_has_chinese_and_english_terms_in_every_category(default_pack: RulePack, category: str) -> None:
    normals = [t.normal for t in default_pack.terms if t.rule.category == category]
    assert any(_HAN.search(n) for n in normals), f"{category}: no Chinese term"
    assert any(_ENGLISH.match(n) and re.search(r"[a-z]{3}", n) for n in normals), f"{category}: no English term"


def test_default_pack_rule_ids_belong_to_their_category(default_pack: RulePack) -> None:
    for term in default_pack.terms:
        assert term.rule.id.startswith(f"{term.rule.category}."), term.where
