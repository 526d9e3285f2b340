"""Scores: which rules a message's evidence fires, what each adds to its category, and what the categories decide.

Evidence is what the matcher and the detectors found: term hits (an atom named by the id of the rule or set the
term belongs to) and signals (``<phone>``, ``<money>``, ...). A rule with a weight fires on any of its terms, or when
one of its conditions holds; it adds its weight to its category once per message, multiplied by its context factor
when the message reads as a warning (it holds a warning frame) or every term it fired on is inside quotation marks.
Discounted rules of one category count as their strongest one only: a notice that names many harms is one warning,
not one piece of evidence per harm it names. A category decides by its thresholds (``Category.decide``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice, product
from typing import NamedTuple, TypeVar

from streams.policy.detectors import QUIET
from streams.policy.rules import Condition, Decision, Rule, RulePack, Severity

# Text inside paired quotation marks: a term there is quoted, not said. Read in the original text: normalisation
# removes the marks between Chinese characters.
# English also quotes with single marks; an apostrophe is no opening one (a letter before it: "it's", "kids'"), and
# the quoted words touch the marks ("'share to win' posts").
_QUOTED = re.compile(
    r'"[^"\n]{1,200}"|“[^”\n]{1,200}”|「[^」\n]{1,200}」|『[^』\n]{1,200}』|‘[^’\n]{1,200}’|《[^》\n]{1,200}》'
    r"|(?<![\w'])'(?=[^\s'])[^'\n]{0,199}[^\s']'(?!\w)"
)
_QUOTE_MARK = re.compile("[\"“「『‘《']")  # an opening mark: most texts have none, and this finds so sooner


def quotations(original: str) -> list[tuple[int, int]]:
    """The spans of ``original`` inside quotation marks."""
    return [m.span() for m in _QUOTED.finditer(original)] if _QUOTE_MARK.search(original) else []


_QUIET_ATOMS = frozenset(f"<{kind}>" for kind in QUIET)
_ADDRESSES = frozenset({"<link>", "<blocked_link>", "<email>"})
_MOST_CHOICES = 256
# "Anywhere in the message" reaches this many characters: a chat message is shorter, and in a long e-mail a product
# word and a phone number paragraphs apart are not an offer.
MESSAGE_REACH = 300  # spans tried per condition with a window: combinations of a few hits each
_ATOM_SETS_REMEMBERED = 100_000  # atom sets whose conditions and prospects the scorer keeps
_V = TypeVar("_V")


def _remembered(memo: dict[frozenset[str], _V], atoms: frozenset[str], find: Callable[[frozenset[str]], _V]) -> _V:
    """What ``find`` says of ``atoms``, found once; a full memo starts again (a flood of new sets is not kept)."""
    try:
        return memo[atoms]
    except KeyError:
        pass
    if len(memo) >= _ATOM_SETS_REMEMBERED:
        memo.clear()
    memo[atoms] = found = find(atoms)
    return found


class Evidence(NamedTuple):
    """One atom found in a message: ``atom`` is a rule or set id or ``<signal>``; the span is in normal text."""

    atom: str
    start: int
    end: int
    source: object  # the Hit or Signal it came from
    needs_company: bool = False  # short initials (fp for 发票): they fill a combination's place beside other evidence


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule that fired: on which evidence, by which condition (None: by its own terms), and what it added."""

    rule: Rule
    evidence: tuple[Evidence, ...]
    condition: Condition | None
    weight: float  # after the context factor
    discounted: bool
    counted: bool = True  # False: a discounted rule of a category where a stronger discounted one counts


class _Filed(NamedTuple):
    """A condition as the scorer files it: its rule, its place in firing order, and the places that name no
    signal, every one of which must hit for an ``all`` condition to hold (none for ``any``)."""

    order: int
    rule: Rule
    condition: Condition
    terms: tuple[frozenset[str], ...]


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
        """The highest severity of the rules that counted in a deciding category."""
        decisions = self.decisions  # every fired rule's category has one
        return max(
            (f.rule.severity for f in self.fired if f.counted and decisions[f.rule.category] > Decision.ALLOW),
            default=Severity.NONE,
        )


class Scorer:
    """Scores evidence against one pack's rules."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        # atom -> the conditions that may hold when it is there, with their rules and their order (rule id order, the
        # order rules fire in). An ``all`` condition is filed under the atoms of its first place that names no signal:
        # it holds only if one of them is there, so a text with common words only looks at few conditions.
        self._by_atom: dict[str, list[_Filed]] = {}
        conditions = [(rule, c) for rule in sorted(pack.rules.values(), key=lambda r: r.id) for c in rule.conditions]
        for order, (rule, condition) in enumerate(conditions):
            terms = tuple(p for p in condition.atoms if not any(a.startswith("<") for a in p))
            filed = _Filed(order, rule, condition, terms if condition.every else ())
            for atom in terms[0] if condition.every and terms else {a for p in condition.atoms for a in p}:
                self._by_atom.setdefault(atom, []).append(filed)
        self._weighted = frozenset(rule.id for rule in pack.rules.values() if rule.scores)
        # Whether a rule can fire on signals alone: then every text with a signal is scored, not only those with hits.
        self.signals_alone = any(
            all(any(atom.startswith("<") for atom in position) for position in condition.atoms)
            if condition.every
            else any(atom.startswith("<") for position in condition.atoms for atom in position)
            for rule in pack.rules.values()
            for condition in rule.conditions
        )
        # What _conditions and prospects found, by atom set: chat repeats its few common words, so texts share sets.
        self._conditions_of: dict[frozenset[str], list[_Filed]] = {}
        self._prospects_of: dict[frozenset[str], tuple[bool, bool, bool]] = {}

    def _conditions(self, atoms: Collection[str]) -> list[_Filed]:
        """The conditions that may hold with ``atoms`` there (every place that names no signal hit), once each, in
        order; remembered by atom set."""
        return _remembered(self._conditions_of, frozenset(atoms), self._find_conditions)

    def _find_conditions(self, atoms: frozenset[str]) -> list[_Filed]:
        found = {
            filed.order: filed
            for atom in atoms
            for filed in self._by_atom.get(atom, ())
            if all(not terms.isdisjoint(atoms) for terms in filed.terms)
        }
        return [found[order] for order in sorted(found)]

    def may_fire(self, atoms: Collection[str]) -> bool:
        """Whether a rule may fire on terms that hit ``atoms``: one of them has a weight, or a condition may hold
        with them (``prospects``' first answer, found at less cost: most texts that hit a term hit only common words
        of sets)."""
        if not self._weighted.isdisjoint(atoms):
            return True
        return any(
            all(not terms.isdisjoint(atoms) for terms in filed.terms)
            for atom in atoms
            for filed in self._by_atom.get(atom, ())
        )

    def prospects(self, atoms: set[str]) -> tuple[bool, bool, bool]:
        """What a text whose terms hit ``atoms`` may come to: whether a rule can fire (one of them has a weight, or a
        condition may hold with them; most texts that hit a term hit only a common word of a set, which fires
        nothing alone), and whether a condition that may hold needs the text's signals, and its quiet ones (numbers,
        amounts, short codes), which the detectors' screen may not have looked for. Remembered by atom set."""
        return _remembered(self._prospects_of, frozenset(atoms), self._find_prospects)

    def _find_prospects(self, atoms: frozenset[str]) -> tuple[bool, bool, bool]:
        rules = self.pack.rules
        conditions = self._conditions(atoms)
        loud = quiet = False
        for filed in conditions:
            named = {
                a for position in filed.condition.atoms if position.isdisjoint(atoms) for a in position if a[0] == "<"
            }
            loud, quiet = loud or bool(named - _QUIET_ATOMS), quiet or bool(named & _QUIET_ATOMS)
        weighted = any((rule := rules.get(atom)) is not None and rule.scores for atom in atoms)
        return weighted or bool(conditions), loud, quiet

    def score(
        self,
        evidence: Sequence[Evidence],
        *,
        warned: bool,
        quoted: Callable[[int, int], bool] | None = None,
        fixed: Sequence[Fired] = (),
    ) -> Scored:
        """The scores of one message's ``evidence``; ``quoted`` tells whether a span of normal text lies inside
        quotation marks (None: the message quotes nothing); ``fixed`` are rules fired outside the pack's terms
        (detectors, blocklisted links), added as they are."""
        by_atom: dict[str, list[Evidence]] = {}
        for item in evidence:
            by_atom.setdefault(item.atom, []).append(item)
        scored = Scored()
        fired_ids: set[str] = set()
        for atom, items in by_atom.items():  # rules with a weight fire on their own terms, if they count alone
            rule = self.pack.rules.get(atom)
            if rule is not None and rule.scores and atom not in fired_ids:
                alone = tuple(item for item in items if not item.needs_company)
                if alone:
                    fired_ids.add(atom)
                    scored.fired.append(_fire(rule, alone, None, warned=warned, quoted=quoted))
        by_atom = _words_said(by_atom)
        present = by_atom.keys()
        for filed in self._conditions(present):
            rule, condition = filed.rule, filed.condition
            if rule.id in fired_ids:
                continue
            if condition.every:
                if any(position.isdisjoint(present) for position in condition.atoms):
                    continue
            elif all(position.isdisjoint(present) for position in condition.atoms):
                continue
            if (used := _holds(condition, by_atom)) is not None:
                fired_ids.add(rule.id)
                scored.fired.append(_fire(rule, used, condition, warned=warned, quoted=quoted))
        scored.fired.extend(fixed)
        scored.fired = _count_strongest_discounted(scored.fired)
        self._decide(scored)
        return scored

    def _decide(self, scored: Scored) -> None:
        """Each category's score, from the rules that counted, and what its thresholds decide."""
        most: dict[str, Decision] = {}
        for fired in scored.fired:
            if not fired.counted:  # its category's strongest discounted rule counts: the category has a score
                continue
            category = fired.rule.category
            scored.scores[category] = scored.scores.get(category, 0.0) + fired.weight
            most[category] = max(most.get(category, Decision.ALLOW), fired.rule.decision)
        for category, score in scored.scores.items():
            scored.decisions[category] = self.pack.categories[category].decide(score, most[category])


def _fire(
    rule: Rule,
    evidence: tuple[Evidence, ...],
    condition: Condition | None,
    *,
    warned: bool,
    quoted: Callable[[int, int], bool] | None,
) -> Fired:
    discounted = rule.context < 1 and (warned or (quoted is not None and _all_quoted(evidence, quoted)))
    return Fired(rule, evidence, condition, rule.weight * rule.context if discounted else rule.weight, discounted)


def _count_strongest_discounted(fired: list[Fired]) -> list[Fired]:
    """``fired`` with the discounted rules of each category but the strongest (the first of equals) marked as not
    counted: a warning or a quotation naming many harms stays one piece of discounted evidence per category, while
    what is not discounted (a contact and a price beside the warning) still adds."""
    strongest: dict[str, Fired] = {}
    for item in fired:
        if item.discounted:
            best = strongest.get(item.rule.category)
            if best is None or item.weight > best.weight:
                strongest[item.rule.category] = item
    if len(strongest) == sum(item.discounted for item in fired):
        return fired
    return [
        replace(item, counted=False) if item.discounted and strongest[item.rule.category] is not item else item
        for item in fired
    ]


def _all_quoted(evidence: tuple[Evidence, ...], quoted: Callable[[int, int], bool]) -> bool:
    """Whether every term the evidence holds (signals aside) is inside quotation marks, and it holds one."""
    terms = [e for e in evidence if not e.atom.startswith("<")]
    return bool(terms) and all(quoted(e.start, e.end) for e in terms)


def _holds(condition: Condition, by_atom: Mapping[str, list[Evidence]]) -> tuple[Evidence, ...] | None:
    """The evidence a condition holds on, or None: for ``any`` the first atom there; for ``all`` one piece of
    evidence per position, all within the window if there is one."""
    if not condition.every:
        for position in condition.atoms:
            for atom in sorted(position):
                for item in by_atom.get(atom, ()):
                    if not item.needs_company:
                        return (item,)
        return None
    choices = []
    for position in condition.atoms:
        found = [item for atom in sorted(position) for item in by_atom.get(atom, ())]
        if not found:
            return None
        choices.append(found)
    within = MESSAGE_REACH if condition.within is None else condition.within
    for chosen in islice(product(*choices), _MOST_CHOICES):
        if (
            max(e.end for e in chosen) - min(e.start for e in chosen) <= within
            and _distinct(chosen)
            and not all(e.needs_company for e in chosen)
        ):
            return tuple(chosen)
    return None


def _distinct(chosen: Sequence[Evidence]) -> bool:
    """Whether each position holds on its own piece of evidence: two positions that may take the same atom ask for
    two of its hits, not one hit counted twice; and initials that stand for two terms stand for one of them here."""
    guessed = [(e.start, e.end) for e in chosen if e.needs_company]
    return len({(e.atom, e.start, e.end) for e in chosen}) == len(chosen) and len(set(guessed)) == len(guessed)


def _words_said(by_atom: dict[str, list[Evidence]]) -> dict[str, list[Evidence]]:
    """The evidence without the words inside a link or an e-mail address (``chyp`` in ``www.chyp.com``): a
    combination asks for what the text says beside the address, and the address is one piece of evidence."""
    addresses = [(e.start, e.end) for atom in _ADDRESSES for e in by_atom.get(atom, ())]
    if not addresses:
        return by_atom
    said: dict[str, list[Evidence]] = {}
    for atom, items in by_atom.items():
        kept = [e for e in items if atom[0] == "<" or not any(a <= e.start and e.end <= b for a, b in addresses)]
        if kept:
            said[atom] = kept
    return said
