"""The sanction policy (rules/sanctions.toml): the user ladder, credit, group escalation and notices, validated."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.policy.rules import RulePackError, Severity

DAY_MS = 24 * 3600 * 1000
USER_ACTIONS = ("warn", "mute", "ban")
GROUP_STEPS = ("warn", "suspend", "shut_down")
NOTICES = ("warn", "mute", "ban", "group_warn", "group_suspend", "group_shut_down")


@dataclass(frozen=True, slots=True)
class Rung:
    action: str  # warn | mute | ban
    duration_ms: int | None  # None: no end (a warning has nothing to end; a ban is permanent)


@dataclass(frozen=True, slots=True)
class UserPolicy:
    strike_window_ms: int
    ladder: tuple[Rung, ...]
    severe: Mapping[str, int]  # category or rule id -> the lowest rung index (0-based)


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    start: float
    recovery_per_ms: float
    penalty: Mapping[Severity, float]
    review_messages_below: float
    create_groups_below: float
    manage_groups_below: float


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    window_ms: int
    warn_at: int
    suspend_at: int
    suspend_ms: int
    shut_down_at: int
    member_limit: int
    owner_penalty: Mapping[str, float]  # warn | suspend | shut_down -> credit points
    manager_penalty: Mapping[str, float]
    management_suspended_ms: int
    group_creation_barred_ms: int


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    campaign_groups: int
    window_ms: int
    blacklist_ms: int
    notice: str  # {domain}, {count} and {categories} are filled in


@dataclass(frozen=True, slots=True)
class SanctionPolicy:
    user: UserPolicy
    credit: CreditPolicy
    group: GroupPolicy
    notices: Mapping[str, str]
    links: LinkPolicy
    version: str = ""  # a hash of the file: every decision names the policy it was made under


class _Reader:
    """Typed access to the TOML document; every error names the file and the key."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    def fail(self, key: str, why: str) -> RulePackError:
        return RulePackError(f"{self.path}: {key}: {why}")

    def get(self, key: str) -> Any:
        node: Any = self.doc
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise self.fail(key, "missing")
            node = node[part]
        return node

    def number(self, key: str, *, minimum: float = 0, value: Any = None) -> float:
        found = self.get(key) if value is None else value
        if isinstance(found, bool) or not isinstance(found, int | float) or found < minimum:
            raise self.fail(key, f"must be a number of at least {minimum}")
        return float(found)

    def whole(self, key: str, *, minimum: int = 0) -> int:
        found = self.get(key)
        if isinstance(found, bool) or not isinstance(found, int) or found < minimum:
            raise self.fail(key, f"must be a whole number of at least {minimum}")
        return found

    def days_ms(self, key: str) -> int:
        return int(self.number(key, minimum=0) * DAY_MS)

    def table(self, key: str, keys: tuple[str, ...]) -> dict[str, float]:
        found = self.get(key)
        if not isinstance(found, dict) or set(found) != set(keys):
            raise self.fail(key, f"must give exactly {', '.join(keys)}")
        return {k: self.number(f"{key}.{k}", value=found[k]) for k in keys}


def _ladder(reader: _Reader) -> tuple[Rung, ...]:
    rungs = reader.get("user.ladder")
    if not isinstance(rungs, list) or not rungs:
        raise reader.fail("user.ladder", "must be a list of at least one rung")
    ladder = []
    for number, rung in enumerate(rungs, start=1):
        key = f"user.ladder[{number}]"
        action = rung.get("action") if isinstance(rung, dict) else None
        if action not in USER_ACTIONS:
            raise reader.fail(key, f"action must be one of {', '.join(USER_ACTIONS)}")
        days = rung.get("days")
        if (action == "mute") != (days is not None):
            raise reader.fail(key, "a mute needs days; a warning or a ban takes none")
        ladder.append(Rung(action, None if days is None else int(reader.number(f"{key}.days", value=days) * DAY_MS)))
    if ladder[-1].action == "warn":
        raise reader.fail("user.ladder", "the last rung must mute or ban: a ladder of warnings never escalates")
    return tuple(ladder)


def load_sanctions(path: Path | str, known_ids: set[str] | None = None) -> SanctionPolicy:
    """Load and validate a sanctions file; ``known_ids`` (categories and rule ids) checks the severe list."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        doc = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise RulePackError(f"{path}: missing") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulePackError(f"{path}: {exc}") from None
    reader = _Reader(path, doc)
    ladder = _ladder(reader)
    severe = {}
    severe_table = reader.get("user.severe")
    if not isinstance(severe_table, dict):
        raise reader.fail("user.severe", "must be a table of category or rule id = rung")
    for target, rung in severe_table.items():
        key = f"user.severe.{target}"
        if known_ids is not None and target not in known_ids:
            raise reader.fail(key, "no such category or rule in the rule pack")
        if isinstance(rung, bool) or not isinstance(rung, int) or not 1 <= rung <= len(ladder):
            raise reader.fail(key, f"must be a rung from 1 to {len(ladder)}")
        severe[target] = rung - 1
    group = GroupPolicy(
        window_ms=reader.days_ms("group.window_days"),
        warn_at=reader.whole("group.warn_at", minimum=1),
        suspend_at=reader.whole("group.suspend_at", minimum=1),
        suspend_ms=reader.days_ms("group.suspend_days"),
        shut_down_at=reader.whole("group.shut_down_at", minimum=1),
        member_limit=reader.whole("group.member_limit", minimum=2),
        owner_penalty=reader.table("group.owner_penalty", GROUP_STEPS),
        manager_penalty=reader.table("group.manager_penalty", GROUP_STEPS),
        management_suspended_ms=reader.days_ms("group.management_suspended_days"),
        group_creation_barred_ms=reader.days_ms("group.group_creation_barred_days"),
    )
    if not group.warn_at < group.suspend_at < group.shut_down_at:
        raise reader.fail("group", "warn_at < suspend_at < shut_down_at must hold")
    penalty = reader.table("credit.penalty", tuple(s.label for s in Severity if s))
    credit = CreditPolicy(
        start=reader.number("credit.start", minimum=1),
        recovery_per_ms=reader.number("credit.recovery_per_day") / DAY_MS,
        penalty={Severity[k.upper()]: v for k, v in penalty.items()},
        review_messages_below=reader.number("credit.review_messages_below"),
        create_groups_below=reader.number("credit.create_groups_below"),
        manage_groups_below=reader.number("credit.manage_groups_below"),
    )
    notices = reader.get("notices")
    if not isinstance(notices, dict) or set(notices) != set(NOTICES):
        raise reader.fail("notices", f"must give exactly {', '.join(NOTICES)}")
    return SanctionPolicy(
        user=UserPolicy(reader.days_ms("user.strike_window_days"), ladder, severe),
        credit=credit,
        group=group,
        notices={k: str(v) for k, v in notices.items()},
        links=LinkPolicy(
            campaign_groups=reader.whole("links.campaign_groups", minimum=2),
            window_ms=int(reader.number("links.campaign_window_hours") * 3600 * 1000),
            blacklist_ms=reader.days_ms("links.blacklist_days"),
            notice=str(reader.get("links.notice")),
        ),
        version=hashlib.sha256(raw).hexdigest()[:12],
    )
