"""Verdicts as a rule author reads them: every rule that scored, on what evidence, and each category's score against
its thresholds (``groupwarden classify --explain``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

_DECISION_STYLES = {"allow": "green", "review": "yellow", "block": "bold red"}


def _excerpt(text: str, span: Any) -> str:
    if not span:
        return "(attached link)"
    start, end = span
    return text[start:end]


def _term(item: Mapping[str, Any]) -> str:
    """A term as written, with the generated variant of it that matched: 冰毒 (initials bd)."""
    term = str(item["term"])
    return f"{term} ({item['variant']} {item['generated']})" if item.get("variant") else term


def render(verdict: Mapping[str, Any], text: str) -> RenderableType:
    """One verdict, its message's original ``text`` beside it."""
    decision = verdict["decision"]
    head = Text.assemble(
        (f"{verdict['message_id']}: ", "bold"),
        (decision, _DECISION_STYLES[decision]),
        f"  {', '.join(verdict['categories']) or '-'}  severity {verdict['severity']}\n",
        (text if len(text) <= 300 else text[:300] + "…", "dim"),
    )
    parts: list[RenderableType] = [head]
    if verdict["matches"]:
        rules = Table("rule", "matched", "in the message", "span", "undone", "weight", box=None, pad_edge=False)
        for match in verdict["matches"]:
            weight = f"{match.get('weight', 0):g}"
            if match.get("discounted"):  # of a category's discounted rules only the strongest counts
                weight += " (discounted)" if match.get("counted", True) else " (discounted, not counted)"
            rules.add_row(
                match["rule_id"],
                _term(match),
                _excerpt(text, match["span"]),
                str(list(match["span"])) if match["span"] else "-",
                ", ".join(match["normalisations"]) or "-",
                weight,
            )
            for atom in match.get("atoms", ()):
                rules.add_row(
                    "",
                    f"  {atom['atom']}" + (f" {_term(atom)}" if atom["term"] else ""),
                    _excerpt(text, atom["span"]),
                    str(list(atom["span"])),
                    "",
                    "",
                )
        parts.append(rules)
    if verdict.get("scores"):
        scores = Table("category", "score", "review at", "block at", "decides", box=None, pad_edge=False)
        for score in verdict["scores"]:
            scores.add_row(
                score["category"],
                f"{score['score']:g}",
                f"{score['review']:g}",
                f"{score['block']:g}",
                Text(score["decision"], _DECISION_STYLES[score["decision"]]),
            )
        parts.append(scores)
    signals = [s for s in verdict["signals"] if s["span"]]
    if signals:
        parts.append(Text("signals: " + ", ".join(f"{s['kind']} {_excerpt(text, s['span'])!r}" for s in signals)))
    return Group(*parts, Text(""))
