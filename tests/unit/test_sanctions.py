"""The sanction policy file: the shipped rules/sanctions.toml, and every validation error (with file, key and why)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DEFAULT_PACK_DIR

from streams.policy.rules import RulePack, RulePackError, Severity
from streams.policy.sanctions import DAY_MS, Rung, SanctionPolicy, load_sanctions

SANCTIONS = DEFAULT_PACK_DIR / "sanctions.toml"
SHIPPED = SANCTIONS.read_text(encoding="utf-8")
_LADDER = re.compile(r"^ladder = \[.*?^\]\n", re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def known_ids(default_pack: RulePack) -> set[str]:
    """The categories and rule ids of the shipped pack, which the severe list must name."""
    return default_pack.ids()


def variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The shipped file with each ``old`` text (which must occur exactly once) replaced by ``new``; its path."""
    text = SHIPPED
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "sanctions.toml"
    path.write_text(text, encoding="utf-8")
    return path


def with_ladder(tmp_path: Path, ladder: str, *edits: tuple[str, str]) -> Path:
    """The shipped file with its ``ladder = [...]`` block replaced by ``ladder`` (plus any further edits)."""
    match = _LADDER.search(SHIPPED)
    assert match is not None
    return variant(tmp_path, (match.group(0), ladder + "\n"), *edits)


def load_error(path: Path, known_ids: set[str] | None) -> str:
    with pytest.raises(RulePackError) as excinfo:
        load_sanctions(path, known_ids)
    return str(excinfo.value)


# --- the shipped policy -----------------------------------------------------------------------------------------


def test_shipped_policy_loads_against_the_shipped_pack(known_ids: set[str]) -> None:
    policy = load_sanctions(SANCTIONS, known_ids)
    assert isinstance(policy, SanctionPolicy)


def test_shipped_user_policy(known_ids: set[str]) -> None:
    user = load_sanctions(SANCTIONS, known_ids).user
    assert user.ladder == (
        Rung("warn", None),
        Rung("mute", 7 * DAY_MS),
        Rung("mute", 7 * DAY_MS),
        Rung("ban", None),
    )
    assert user.strike_window_ms == 180 * DAY_MS
    assert dict(user.severe) == {  # 1-based in the file, 0-based ladder indices once loaded
        "weapons.firearms": 2,
        "weapons.explosives": 3,
        "drugs.dealing": 2,
        "violence.hire-violence": 3,
        "violence.bomb-making": 3,
        "illegal_goods.organ-trade": 3,
    }


def test_shipped_credit_policy(known_ids: set[str]) -> None:
    credit = load_sanctions(SANCTIONS, known_ids).credit
    assert credit.start == 100
    assert credit.recovery_per_ms * DAY_MS == pytest.approx(0.5, rel=1e-12)
    assert dict(credit.penalty) == {Severity.LOW: 2, Severity.MEDIUM: 5, Severity.HIGH: 10, Severity.CRITICAL: 20}
    assert (credit.review_messages_below, credit.create_groups_below, credit.manage_groups_below) == (70, 60, 50)


def test_shipped_group_policy(known_ids: set[str]) -> None:
    group = load_sanctions(SANCTIONS, known_ids).group
    assert (group.window_ms, group.warn_at, group.suspend_at, group.suspend_ms, group.shut_down_at) == (
        30 * DAY_MS,
        3,
        6,
        7 * DAY_MS,
        10,
    )
    assert group.member_limit == 500
    assert dict(group.owner_penalty) == {"warn": 5, "suspend": 15, "shut_down": 30}
    assert dict(group.manager_penalty) == {"warn": 2, "suspend": 8, "shut_down": 15}
    assert group.management_suspended_ms == 30 * DAY_MS
    assert group.group_creation_barred_ms == 180 * DAY_MS


def test_shipped_notices(known_ids: set[str]) -> None:
    notices = load_sanctions(SANCTIONS, known_ids).notices
    assert set(notices) == {"warn", "mute", "ban", "group_warn", "group_suspend", "group_shut_down"}
    assert all("{categories}" in text for text in notices.values())
    assert "{days}" in notices["mute"]
    assert "{days}" in notices["group_suspend"]


def test_severe_ids_are_only_checked_when_known_ids_are_given(tmp_path: Path) -> None:
    path = variant(tmp_path, ('"weapons.firearms" = 3', '"weapons.lasers" = 3'))
    assert load_sanctions(path).user.severe["weapons.lasers"] == 2


def test_a_category_may_be_severe(tmp_path: Path, known_ids: set[str]) -> None:
    path = variant(tmp_path, ('"weapons.firearms" = 3', '"weapons" = 2'))
    assert load_sanctions(path, known_ids).user.severe["weapons"] == 1


def test_fractional_days(tmp_path: Path, known_ids: set[str]) -> None:
    ladder = (
        'ladder = [{ action = "warn" }, { action = "mute", days = 0.5 }, { action = "mute", days = 1.5 },'
        ' { action = "ban" }]'
    )
    path = with_ladder(tmp_path, ladder, ("window_days = 30", "window_days = 0.25"))
    policy = load_sanctions(path, known_ids)
    assert policy.user.ladder == (
        Rung("warn", None),
        Rung("mute", DAY_MS // 2),
        Rung("mute", 3 * DAY_MS // 2),
        Rung("ban", None),
    )
    assert policy.group.window_ms == DAY_MS // 4


# --- errors: every one names the file and the key ---------------------------------------------------------------


def test_missing_file(tmp_path: Path, known_ids: set[str]) -> None:
    path = tmp_path / "sanctions.toml"
    assert load_error(path, known_ids) == f"{path}: missing"


def test_toml_syntax_error(tmp_path: Path, known_ids: set[str]) -> None:
    line = SHIPPED.splitlines().index(next(x for x in SHIPPED.splitlines() if x.startswith("member_limit"))) + 1
    path = variant(tmp_path, ("member_limit = 500", "member_limit = = 500"))
    message = load_error(path, known_ids)
    assert message.startswith(f"{path}: ")
    assert f"line {line}," in message


def test_not_utf8(tmp_path: Path, known_ids: set[str]) -> None:
    path = tmp_path / "sanctions.toml"
    path.write_bytes(SHIPPED.encode("utf-8") + b"\n# \xff\xfe\n")
    assert load_error(path, known_ids).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param("strike_window_days = 180", "", "user.strike_window_days", id="strike-window"),
        pytest.param("ladder = [", "steps = [", "user.ladder", id="ladder"),
        pytest.param("[user.severe]", "[user.grave]", "user.severe", id="severe"),
        pytest.param("[group]", "[groups]", "group.window_days", id="group-table"),
        pytest.param("shut_down_at = 10", "", "group.shut_down_at", id="shut-down-at"),
        pytest.param("member_limit = 500", "", "group.member_limit", id="member-limit"),
        pytest.param("owner_penalty = {", "owners_penalty = {", "group.owner_penalty", id="owner-penalty"),
        pytest.param("management_suspended_days = 30", "", "group.management_suspended_days", id="mgmt-days"),
        pytest.param("group_creation_barred_days = 180", "", "group.group_creation_barred_days", id="barred-days"),
        pytest.param("penalty = { low", "penalties = { low", "credit.penalty", id="credit-penalty"),
        pytest.param("start = 100", "", "credit.start", id="credit-start"),
        pytest.param("recovery_per_day = 0.5", "", "credit.recovery_per_day", id="recovery"),
        pytest.param("manage_groups_below = 50", "", "credit.manage_groups_below", id="manage-below"),
        pytest.param("[notices]", "[messages]", "notices", id="notices"),
    ],
)
def test_missing_key(tmp_path: Path, known_ids: set[str], old: str, new: str, key: str) -> None:
    path = variant(tmp_path, (old, new))
    assert load_error(path, known_ids) == f"{path}: {key}: missing"


_ONE_RUNG = "must be a list of at least one rung"
_ACTION = "action must be one of warn, mute, ban"
_DAYS = "a mute needs days; a warning or a ban takes none"
_LAST = "the last rung must mute or ban: a ladder of warnings never escalates"


@pytest.mark.parametrize(
    ("ladder", "key", "why"),
    [
        pytest.param("ladder = []", "user.ladder", _ONE_RUNG, id="empty"),
        pytest.param('ladder = "warn"', "user.ladder", _ONE_RUNG, id="not-a-list"),
        pytest.param('ladder = [{ action = "warn" }, { action = "kick" }]', "user.ladder[2]", _ACTION, id="unknown"),
        pytest.param('ladder = [{ days = 7 }, { action = "ban" }]', "user.ladder[1]", _ACTION, id="no-action"),
        pytest.param('ladder = ["warn", { action = "ban" }]', "user.ladder[1]", _ACTION, id="rung-not-a-table"),
        pytest.param(
            'ladder = [{ action = "warn" }, { action = "mute" }, { action = "ban" }]',
            "user.ladder[2]",
            _DAYS,
            id="mute-without-days",
        ),
        pytest.param(
            'ladder = [{ action = "warn", days = 1 }, { action = "ban" }]', "user.ladder[1]", _DAYS, id="warn-days"
        ),
        pytest.param(
            'ladder = [{ action = "warn" }, { action = "ban", days = 9 }]', "user.ladder[2]", _DAYS, id="ban-days"
        ),
        pytest.param(
            'ladder = [{ action = "mute", days = -1 }]',
            "user.ladder[1].days",
            "must be a number of at least 0",
            id="negative-days",
        ),
        pytest.param(
            'ladder = [{ action = "mute", days = "7" }]',
            "user.ladder[1].days",
            "must be a number of at least 0",
            id="days-not-a-number",
        ),
        pytest.param(
            'ladder = [{ action = "mute", days = 7 }, { action = "warn" }]', "user.ladder", _LAST, id="ends-warn"
        ),
        pytest.param('ladder = [{ action = "warn" }]', "user.ladder", _LAST, id="only-a-warning"),
    ],
)
def test_bad_ladder(tmp_path: Path, known_ids: set[str], ladder: str, key: str, why: str) -> None:
    path = with_ladder(tmp_path, ladder)
    assert load_error(path, known_ids) == f"{path}: {key}: {why}"


@pytest.mark.parametrize(
    ("value", "rungs"),
    [
        pytest.param("5", 4, id="above-the-ladder"),
        pytest.param("0", 4, id="zero"),
        pytest.param("-1", 4, id="negative"),
        pytest.param("2.5", 4, id="fraction"),
        pytest.param("true", 4, id="bool"),
        pytest.param('"4"', 4, id="string"),
    ],
)
def test_severe_rung_out_of_range(tmp_path: Path, known_ids: set[str], value: str, rungs: int) -> None:
    path = variant(tmp_path, ('"weapons.explosives" = 4', f'"weapons.explosives" = {value}'))
    assert load_error(path, known_ids) == f"{path}: user.severe.weapons.explosives: must be a rung from 1 to {rungs}"


def test_severe_rung_beyond_a_shorter_ladder(tmp_path: Path, known_ids: set[str]) -> None:
    path = with_ladder(tmp_path, 'ladder = [{ action = "warn" }, { action = "ban" }]')
    # "weapons.firearms" = 3 is the first severe entry, and the ladder now has 2 rungs.
    assert load_error(path, known_ids) == f"{path}: user.severe.weapons.firearms: must be a rung from 1 to 2"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("weapons.lasers", id="unknown-rule"),
        pytest.param("lasers", id="unknown-category"),
        pytest.param("Weapons.Firearms", id="wrong-case"),
    ],
)
def test_severe_id_unknown_to_the_pack(tmp_path: Path, known_ids: set[str], target: str) -> None:
    path = variant(tmp_path, ('"weapons.firearms" = 3', f'"{target}" = 3'))
    assert load_error(path, known_ids) == f"{path}: user.severe.{target}: no such category or rule in the rule pack"


def test_severe_not_a_table(tmp_path: Path, known_ids: set[str]) -> None:
    path = variant(
        tmp_path,
        ("strike_window_days = 180", "strike_window_days = 180\nsevere = 3"),
        ("[user.severe]", "[user.grave]"),
    )
    assert load_error(path, known_ids).startswith(f"{path}: user.severe: ")


_ORDER = "warn_at < suspend_at < shut_down_at must hold"


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        pytest.param("suspend_at = 6", "suspend_at = 3", "group", _ORDER, id="suspend-equals-warn"),
        pytest.param("suspend_at = 6", "suspend_at = 2", "group", _ORDER, id="suspend-below-warn"),
        pytest.param("shut_down_at = 10", "shut_down_at = 6", "group", _ORDER, id="shut-down-equals-suspend"),
        pytest.param("warn_at = 3", "warn_at = 11", "group", _ORDER, id="warn-above-all"),
        pytest.param(
            "warn_at = 3", "warn_at = 0", "group.warn_at", "must be a whole number of at least 1", id="warn-0"
        ),
        pytest.param(
            "warn_at = 3", "warn_at = 2.5", "group.warn_at", "must be a whole number of at least 1", id="warn-fraction"
        ),
        pytest.param(
            "member_limit = 500",
            "member_limit = 1",
            "group.member_limit",
            "must be a whole number of at least 2",
            id="member-limit-1",
        ),
        pytest.param(
            "window_days = 30", "window_days = -1", "group.window_days", "must be a number of at least 0", id="window"
        ),
        pytest.param(
            "suspend_days = 7", 'suspend_days = "7"', "group.suspend_days", "must be a number of at least 0", id="days"
        ),
    ],
)
def test_bad_group(tmp_path: Path, known_ids: set[str], old: str, new: str, key: str, why: str) -> None:
    path = variant(tmp_path, (old, new))
    assert load_error(path, known_ids) == f"{path}: {key}: {why}"


_SEVERITIES = "must give exactly low, medium, high, critical"
_STEPS = "must give exactly warn, suspend, shut_down"


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        pytest.param(", critical = 20 }", " }", "credit.penalty", _SEVERITIES, id="penalty-missing-critical"),
        pytest.param("{ low = 2, ", "{ ", "credit.penalty", _SEVERITIES, id="penalty-missing-low"),
        pytest.param("{ low = 2,", "{ none = 0, low = 2,", "credit.penalty", _SEVERITIES, id="penalty-extra-none"),
        pytest.param("critical = 20 }", "critical = 20, extreme = 40 }", "credit.penalty", _SEVERITIES, id="extra"),
        pytest.param(
            "high = 10", 'high = "10"', "credit.penalty.high", "must be a number of at least 0", id="penalty-string"
        ),
        pytest.param(
            "medium = 5",
            "medium = -5",
            "credit.penalty.medium",
            "must be a number of at least 0",
            id="penalty-negative",
        ),
        pytest.param("start = 100", "start = 0", "credit.start", "must be a number of at least 1", id="start-0"),
        pytest.param(
            "review_messages_below = 70",
            "review_messages_below = true",
            "credit.review_messages_below",
            "must be a number of at least 0",
            id="threshold-bool",
        ),
        pytest.param(
            "owner_penalty = { warn = 5, suspend = 15, shut_down = 30 }",
            "owner_penalty = { warn = 5, suspend = 15 }",
            "group.owner_penalty",
            _STEPS,
            id="owner-penalty-missing-step",
        ),
        pytest.param(
            "manager_penalty = { warn = 2, suspend = 8, shut_down = 15 }",
            "manager_penalty = { warn = 2, suspend = 8, shut_down = 15, ban = 20 }",
            "group.manager_penalty",
            _STEPS,
            id="manager-penalty-extra-step",
        ),
        pytest.param(
            "owner_penalty = { warn = 5,",
            "owner_penalty = { warn = -5,",
            "group.owner_penalty.warn",
            "must be a number of at least 0",
            id="owner-penalty-negative",
        ),
    ],
)
def test_bad_penalty_table(tmp_path: Path, known_ids: set[str], old: str, new: str, key: str, why: str) -> None:
    path = variant(tmp_path, (old, new))
    assert load_error(path, known_ids) == f"{path}: {key}: {why}"


_NOTICES = "must give exactly warn, mute, ban, group_warn, group_suspend, group_shut_down"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            'group_shut_down = "Your group is shut down', 'shut_down = "Your group is shut down', id="missing"
        ),
        pytest.param('mute = "Your message', '# mute = "Your message', id="missing-mute"),
        pytest.param("[notices]", '[notices]\nkick = "You are out."', id="extra"),
    ],
)
def test_bad_notices(tmp_path: Path, known_ids: set[str], old: str, new: str) -> None:
    path = variant(tmp_path, (old, new))
    assert load_error(path, known_ids) == f"{path}: notices: {_NOTICES}"


def test_notices_not_a_table(tmp_path: Path, known_ids: set[str]) -> None:
    text = 'notices = "none"\n' + SHIPPED[: SHIPPED.index("[notices]")]  # a top-level key, before any table
    path = tmp_path / "sanctions.toml"
    path.write_text(text, encoding="utf-8")
    assert load_error(path, known_ids) == f"{path}: notices: {_NOTICES}"
