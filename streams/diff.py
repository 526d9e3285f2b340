"""What a rule-pack change does: two replays of the same input (streams/replay.py) compared, message by message.

A message is *affected* when its decision, its categories or its matches (rule, term, span) differ. Sanctions are
compared by what they do to whom (subject, kind, evidence, revoked), so a sanction counts as changed only when it
would appear or disappear, not when its id or its wording moved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from streams.replay import Emitted
from streams.topics import SANCTIONS, VERDICTS

REPORT_SCHEMA = "groupwarden.diff.v1"

_Match = tuple[str, str, tuple[int, int] | None]  # rule id, term, span


def _verdicts(outputs: Iterable[Emitted]) -> dict[str, dict[str, Any]]:
    return {v["message_id"]: v for v in (orjson.loads(o.value or b"") for o in outputs if o.topic == VERDICTS)}


def _matches(verdict: dict[str, Any] | None) -> set[_Match]:
    if verdict is None:
        return set()
    return {(m["rule_id"], m["term"], tuple(m["span"]) if m["span"] else None) for m in verdict["matches"]}


def _sanctions(outputs: Iterable[Emitted]) -> Counter[tuple[str, str, tuple[str, ...], bool]]:
    found: Counter[tuple[str, str, tuple[str, ...], bool]] = Counter()
    for o in outputs:
        if o.topic == SANCTIONS:
            s = orjson.loads(o.value or b"")
            found[s["subject"], s["kind"], tuple(s["evidence"]), bool(s["revoked"])] += 1
    return found


class _Tally:
    """Counts with a few example message ids each."""

    def __init__(self, examples: int) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.examples: dict[tuple[str, ...], list[str]] = {}
        self._limit = examples

    def add(self, key: tuple[str, ...], message_ids: Iterable[str], count: int = 1) -> None:
        self.counts[key] += count
        kept = self.examples.setdefault(key, [])
        for message_id in message_ids:
            if len(kept) < self._limit and message_id not in kept:
                kept.append(message_id)


def compare(
    base: list[Emitted], candidate: list[Emitted], *, base_version: str, candidate_version: str, examples: int = 5
) -> dict[str, Any]:
    """The report, as JSON-ready data: every affected message id, and counts with examples per change."""
    before, after = _verdicts(base), _verdicts(candidate)
    decisions, categories, rules = _Tally(examples), _Tally(examples), _Tally(examples)
    affected: list[str] = []
    for message_id in sorted(before.keys() | after.keys()):
        a, b = before.get(message_id), after.get(message_id)
        decision_a = a["decision"] if a else "missing"
        decision_b = b["decision"] if b else "missing"
        cats_a, cats_b = set(a["categories"] if a else ()), set(b["categories"] if b else ())
        new, lost = _matches(b) - _matches(a), _matches(a) - _matches(b)
        if decision_a == decision_b and cats_a == cats_b and not new and not lost:
            continue
        affected.append(message_id)
        if decision_a != decision_b:
            decisions.add((decision_a, decision_b), [message_id])
        for category in cats_b - cats_a:
            categories.add((category, "gained"), [message_id])
        for category in cats_a - cats_b:
            categories.add((category, "lost"), [message_id])
        for rule_id, _, _ in new:
            rules.add((rule_id, "new"), [message_id])
        for rule_id, _, _ in lost:
            rules.add((rule_id, "lost"), [message_id])
    sanctions_a, sanctions_b = _sanctions(base), _sanctions(candidate)
    sanctions = _Tally(examples)
    for change, found in (("appear", sanctions_b - sanctions_a), ("disappear", sanctions_a - sanctions_b)):
        for (_, kind, evidence, revoked), count in sorted(found.items()):
            sanctions.add((f"{kind} (revoked)" if revoked else kind, change), evidence, count)
    return {
        "schema": REPORT_SCHEMA,
        "base": {"rules_version": base_version},
        "candidate": {"rules_version": candidate_version},
        "messages": len(before.keys() | after.keys()),
        "affected": len(affected),
        "decisions": [
            {"from": f, "to": t, "count": n, "examples": decisions.examples[f, t]}
            for (f, t), n in sorted(decisions.counts.items(), key=lambda item: (-item[1], item[0]))
        ],
        "categories": _two_way(categories, "category", ("gained", "lost")),
        "rules": _two_way(rules, "rule_id", ("new", "lost")),
        "sanctions": _two_way(sanctions, "kind", ("appear", "disappear")),
        "affected_message_ids": affected,
    }


def _two_way(tally: _Tally, name: str, sides: tuple[str, str]) -> list[dict[str, Any]]:
    """One row per name with both sides' counts and examples, the most changed first."""
    names = sorted({key[0] for key in tally.counts})
    rows = [
        {name: n}
        | {side: tally.counts[n, side] for side in sides}
        | {"examples": {side: tally.examples.get((n, side), []) for side in sides}}
        for n in names
    ]
    return sorted(rows, key=lambda row: -(row[sides[0]] + row[sides[1]]))


def render(report: dict[str, Any]) -> str:
    """The report as readable tables."""
    lines = [
        f"base      {report['base']['rules_version']}",
        f"candidate {report['candidate']['rules_version']}",
        f"{report['affected']} of {report['messages']} messages affected",
    ]
    if skipped := sum(report.get("skipped", {}).values()):
        lines.append(f"{skipped} input records skipped: invalid, or a message_id seen before (named on stderr)")

    def table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        lines.extend(["", title])
        if not rows:
            lines.append("  (none)")
            return
        widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
        for row in (header, *rows):
            cells = [
                str(v).ljust(w) if i in (0, len(row) - 1) else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())

    def ids(examples: list[str]) -> str:
        return ", ".join(examples)

    def both(examples: dict[str, list[str]]) -> str:
        """``+`` examples of the first side, ``-`` of the second."""
        first, second = examples.values()
        return "; ".join(part for part in (f"+{ids(first)}" * bool(first), f"-{ids(second)}" * bool(second)) if part)

    table(
        "decisions changed",
        ("change", "messages", "examples"),
        [(f"{d['from']} -> {d['to']}", d["count"], ids(d["examples"])) for d in report["decisions"]],
    )
    table(
        "categories",
        ("category", "gained", "lost", "examples"),
        [(c["category"], c["gained"], c["lost"], both(c["examples"])) for c in report["categories"]],
    )
    table(
        "rules",
        ("rule", "new matches", "lost matches", "examples"),
        [(r["rule_id"], r["new"], r["lost"], both(r["examples"])) for r in report["rules"]],
    )
    table(
        "sanctions",
        ("kind", "appear", "disappear", "evidence (+ appears, - disappears)"),
        [(s["kind"], s["appear"], s["disappear"], both(s["examples"])) for s in report["sanctions"]],
    )
    return "\n".join(lines) + "\n"
