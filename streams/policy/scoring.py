"""Scores: which rules a message's evidence fires, what each adds to its category, and what the categories decide.

Evidence is what the matcher and the detectors found: term hits (an atom named by the id of the rule or set the
term belongs to) and signals (``<phone>``, ``<money>``, ...). A rule with a weight fires on any of its terms, or when
one of its conditions holds; it adds its weight to its category once per message, multiplied by its context factor
when the message reads as a warning (it holds a warning frame) or every term it fired on is inside quotation marks.
A category decides by its thresholds (``Category.decide``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice, product

from streams.policy.detectors import QUIET
from streams.policy.rules import Condition, Decision, Rule, RulePack, Severity

# Text inside paired quotation marks: a term there is quoted, not said. Read in the original text: normalisation
# removes the marks between Chinese characters.
_QUOTED = re.compile(
    r'"[^"\n]{1,200}"|“[^”\n]{1,200}”|「[^」\n]{1,200}」|『[^』\n]{1,200}』|‘[^’\n]{1,200}’|《[^》\n]{1,200}》'
)
_QUOTE_MARKS = frozenset('"“「『‘《')


def quotations(original: str) -> list[tuple[int, int]]:
    """The spans of ``original`` inside quotation marks."""
    return [m.span() for m in _QUOTED.finditer(original)] if not _QUOTE_MARKS.isdisjoint(original) else []


_QUIET_ATOMS = frozenset(f"<{kind}>" for kind in QUIET)
_MOST_CHOICES = 256  # spans tried per condition with a window: combinations of a few hits each


@dataclass(frozen=True, slots=True)
class Evidence:
    """One atom found in a message: ``atom`` is a rule or set id or ``<signal>``; the span is in normal text."""

    atom: str
    start: int
    end: int
    source: object  # the Hit or Signal it came from


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule that fired: on which evidence, by which condition (None: by its own terms), and what it added."""

    rule: Rule
    evidence: tuple[Evidence, ...]
    condition: Condition | None
    weight: float  # after the context factor
    discounted: bool


@dataclass(slots=True)
class Scored:
    """A message's scores per category, what they decide, and the rules that fired."""

    fired: list[Fired] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)

    @property
    def decision(self) -> Decision:
        return max(self.decisions.values(), default=Decision.ALLOW)

    def deciding(self) -> list[str]:
        """The categories whose score reached review or block, sorted."""
        return sorted(c for c, d in self.decisions.items() if d > Decision.ALLOW)

    def severity(self) -> Severity:
        deciding = set(self.deciding())
        return max((f.rule.severity for f in self.fired if f.rule.category in deciding), default=Severity.NONE)


class Scorer:
    """Scores evidence against one pack's rules."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self._by_atom: dict[str, list[Rule]] = {}  # atom -> the combination rules that name it
        for rule in pack.rules.values():
            for atom in {atom for condition in rule.conditions for position in condition.atoms for atom in position}:
                self._by_atom.setdefault(atom, []).append(rule)
        # Whether a rule can fire on signals alone: then every text with a signal is scored, not only those with hits.
        self.signals_alone = any(
            all(any(atom.startswith("<") for atom in position) for position in condition.atoms)
            if condition.every
            else any(atom.startswith("<") for position in condition.atoms for atom in position)
            for rule in pack.rules.values()
            for condition in rule.conditions
        )

    def needs(self, atoms: set[str]) -> tuple[bool, bool]:
        """Whether a combination that names one of ``atoms`` also names a signal, and whether a quiet one (a number,
        an amount, a short code): then a text's signals are needed even where the detectors' screen passed it by."""
        named = {
            a
            for atom in atoms
            for rule in self._by_atom.get(atom, ())
            for condition in rule.conditions
            for position in condition.atoms
            for a in position
            if a.startswith("<")
        }
        return bool(named - _QUIET_ATOMS), bool(named & _QUIET_ATOMS)

    def score(
        self,
        evidence: Sequence[Evidence],
        *,
        warned: bool,
        quoted: Callable[[int, int], bool] = lambda _start, _end: False,
        fixed: Sequence[Fired] = (),
    ) -> Scored:
        """The scores of one message's ``evidence``; ``quoted`` tells whether a span of normal text lies inside
        quotation marks; ``fixed`` are rules fired outside the pack's terms (detectors, blocklisted links), added as
        they are."""
        by_atom: dict[str, list[Evidence]] = {}
        for item in evidence:
            by_atom.setdefault(item.atom, []).append(item)
        scored = Scored()
        fired_ids: set[str] = set()
        for atom, items in by_atom.items():  # rules with a weight fire on their own terms
            rule = self.pack.rules.get(atom)
            if rule is not None and rule.scores and atom not in fired_ids:
                fired_ids.add(atom)
                scored.fired.append(_fire(rule, tuple(items), None, warned=warned, quoted=quoted))
        candidates = {rule.id: rule for atom in by_atom for rule in self._by_atom.get(atom, ())}
        for rule_id, rule in sorted(candidates.items()):
            if rule_id in fired_ids:
                continue
            for condition in rule.conditions:
                if (used := _holds(condition, by_atom)) is not None:
                    fired_ids.add(rule_id)
                    scored.fired.append(_fire(rule, used, condition, warned=warned, quoted=quoted))
                    break
        scored.fired.extend(fixed)
        most: dict[str, Decision] = {}
        for fired in scored.fired:
            category = fired.rule.category
            scored.scores[category] = scored.scores.get(category, 0.0) + fired.weight
            most[category] = max(most.get(category, Decision.ALLOW), fired.rule.decision)
        for category, score in scored.scores.items():
            scored.decisions[category] = self.pack.categories[category].decide(score, most[category])
        return scored


def _fire(
    rule: Rule,
    evidence: tuple[Evidence, ...],
    condition: Condition | None,
    *,
    warned: bool,
    quoted: Callable[[int, int], bool],
) -> Fired:
    terms = [e for e in evidence if not e.atom.startswith("<")]
    in_quotes = bool(terms) and all(quoted(e.start, e.end) for e in terms)
    discounted = (warned or in_quotes) and rule.context < 1
    return Fired(rule, evidence, condition, rule.weight * rule.context if discounted else rule.weight, discounted)


def _holds(condition: Condition, by_atom: Mapping[str, list[Evidence]]) -> tuple[Evidence, ...] | None:
    """The evidence a condition holds on, or None: for ``any`` the first atom there; for ``all`` one piece of
    evidence per position, all within the window if there is one."""
    if not condition.every:
        for position in condition.atoms:
            for atom in sorted(position):
                if atom in by_atom:
                    return (by_atom[atom][0],)
        return None
    choices = []
    for position in condition.atoms:
        found = [item for atom in sorted(position) for item in by_atom.get(atom, ())]
        if not found:
            return None
        choices.append(found)
    if condition.within is None:
        return tuple(found[0] for found in choices)
    for chosen in islice(product(*choices), _MOST_CHOICES):
        if max(e.end for e in chosen) - min(e.start for e in chosen) <= condition.within:
            return tuple(chosen)
    return None
