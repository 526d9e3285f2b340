"""Loading and validating rule packs (format: rules/README.md). A pack with any error is refused whole.

A pack is scored, as the mature spam filters are: a rule adds its weight to its category's score once per message,
and a category's ``review`` and ``block`` thresholds decide. A plain rule weighs the threshold of its decision, so one
hit decides; sets score nothing alone and exist to be combined; a combination rule fires when every (``all``) or one
(``any``) of its atoms is there: terms, sets, other rules, detector signals and number slots, optionally all within a
window of characters. At load, Chinese terms get their pinyin and pinyin initials as variants (pypinyin), and
look-alike characters of ``lookalikes.txt`` one at a time.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from streams.policy.normalize import BOUNDARY, normalize_joined


class Severity(IntEnum):
    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return ("none", "low", "medium", "high", "critical")[self]


class Decision(IntEnum):
    ALLOW = 0
    REVIEW = 1
    BLOCK = 2

    @property
    def label(self) -> str:
        return ("allow", "review", "block")[self]


DEFAULT_REVIEW = 5.0
DEFAULT_BLOCK = 10.0
DEFAULT_CONTEXT = 0.25  # the share of a rule's weight kept inside a warning or a quotation

# Signals a combination may name, as the detectors report them; <contact> is any way to reach the sender.
CONTACTS = ("phone", "intl_phone", "premium_phone", "shortcode", "wechat_id", "qq_id", "telegram_id", "email")
SIGNALS = frozenset({*CONTACTS, "link", "blocked_link", "wallet", "money", "number", "id_card"})
SLOTS = {"n": "number", "price": "money"}  # a slot alone is the signal of the same reading


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    title: str
    severity: Severity
    decision: Decision  # the most the category can lead to
    review: float = DEFAULT_REVIEW
    block: float = DEFAULT_BLOCK
    disguised: float | None = None  # what a word of a set written in disguise adds; None: the review threshold

    @property
    def disguised_weight(self) -> float:
        return self.review if self.disguised is None else self.disguised

    def decide(self, score: float, most: Decision) -> Decision:
        """What a score in this category leads to, at most ``most``: the strictest decision of the rules that added
        to it (a rule may say ``decision=block`` in a category that reviews)."""
        if score >= self.block:
            return most
        return min(most, Decision.REVIEW) if score >= self.review else Decision.ALLOW


@dataclass(frozen=True, slots=True)
class Condition:
    """One alternative of a combination rule: each position holds alternative atoms (rule ids, ``<signal>``s)."""

    every: bool  # all: every position; any: one of them
    within: int | None  # all positions within this many characters of normal text
    atoms: tuple[frozenset[str], ...]
    where: str
    text: str  # as written, for explanations


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # "<category>.<slug>"
    category: str
    severity: Severity
    decision: Decision
    weight: float = 0.0  # added to the category's score once per message; 0 for a set, which only combines
    context: float = DEFAULT_CONTEXT
    conditions: tuple[Condition, ...] = ()

    @property
    def scores(self) -> bool:
        return self.weight > 0


class Term(NamedTuple):
    """A term of a rule. A named tuple: a pack holds tens of thousands, and they are read back from the cache."""

    text: str  # as written in the pack
    normal: str  # as matched: the whole term, or for a term with slots the literal part the automaton finds
    rule: Rule
    where: str  # "file:line", for error messages and explanations
    pattern: re.Pattern[str] | None = None  # a term with slots: the whole term, checked around ``normal``
    variant: str = ""  # "", or how it was generated from the written term: pinyin, initials, lookalike

    @property
    def needs_company(self) -> bool:
        """Whether the term counts only beside other evidence: the initials of a term of two or three characters
        (``fp`` for 发票) are also common Latin abbreviations."""
        return self.variant == "initials" and len(self.normal) < INITIALS_ALONE


@dataclass(frozen=True, slots=True)
class AllowPhrase:
    text: str
    normal: str
    where: str


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    version: str  # "<declared version>+<content hash>": any edit to the data changes it
    categories: dict[str, Category]
    terms: list[Term] = field(default_factory=list)
    allow: list[AllowPhrase] = field(default_factory=list)
    domains: dict[str, Rule] = field(default_factory=dict)  # blocked domain -> the blocklist's rule
    warn: list[AllowPhrase] = field(default_factory=list)  # warning frames: their messages are warnings or quotes
    rules: dict[str, Rule] = field(default_factory=dict)  # every rule and set by id

    def ids(self) -> set[str]:
        """Every category and rule id: what a sanctions file may name."""
        written = {rule.id for rule in self.rules.values() if "/" not in rule.id}
        return written | {r.id for r in self.domains.values()} | set(self.categories)

    def blocked(self, domain: str) -> tuple[str, Rule] | None:
        """The blocklisted domain that covers ``domain`` (itself or a parent), and its rule."""
        return covering(self.domains, domain)


def covering(domains: Mapping[str, Rule], domain: str) -> tuple[str, Rule] | None:
    """The entry of ``domains`` that covers ``domain``: the domain itself or its nearest listed parent."""
    labels = _ascii(domain).split(".")
    for i in range(len(labels) - 1):
        if (rule := domains.get(parent := ".".join(labels[i:]))) is not None:
            return parent, rule
    return None


class RulePackError(ValueError):
    """A pack that cannot be loaded; the message names the file and line."""


_SLUG = re.compile(r"^[a-z][a-z0-9_-]*$")
_MIN_TERM_CHARS = 2
_HEADER_KEYS = ("category", "title", "severity", "decision")
_OPTIONAL_HEADER_KEYS = ("review", "block", "disguised")
DISGUISED_SLUG = "disguised-word"  # each category's rule for its words written in disguise (streams/policy/disguise.py)
_CONDITION = re.compile(r"^(all|any)(?:\s+within\s+(\d+))?\s*:\s*(.*)$")
_SLOT = re.compile(r"\{(\w+)\}")
_QUOTED = re.compile(r'^"([^"]+)"$')
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")

# What a slot matches in normal text (digit forms, full-width digits and financial numerals are folded already).
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|thousand"
)
NUMBER = rf"(?:[0-9]+(?:[.,][0-9]+)*(?:st|nd|rd|th|k|w)?|[〇零一二两三四五六七八九十百千万几]+|{_NUMBER_WORDS})"
_CURRENCY_BEFORE = r"(?:[$¥£€]|rmb|usd|us\$|hk\$)"
_CURRENCY_AFTER = r"(?:元|块|圆|rmb|usd|dollars?|bucks|pounds?|euros?|美元|美金|刀|p\b|pence|gbp|eur|万元|万|w\b|k\b)"
MONEY = (
    rf"(?:{_CURRENCY_BEFORE} ?[0-9][0-9,]*(?:\.[0-9]+)?(?:k|m|w|万)?"
    rf"|[0-9][0-9,]*(?:\.[0-9]+)? ?{_CURRENCY_AFTER}"
    r"|[一二两三四五六七八九十百千万]+(?:元|块))"
)
_SLOT_PATTERNS = {"n": NUMBER, "price": MONEY}
# What every match of a slot holds: one of these characters, or for {n} a number word. A text without them holds no
# term with slots, which the matcher then need not look for around the term's literal part.
SLOT_DIGITS = re.compile(r"[0-9〇零一二两三四五六七八九十百千万几]")
NUMBER_WORD = re.compile(_NUMBER_WORDS)

# Generated variants: pinyin needs this many letters, so it does not collide with common English words, and initials
# this many characters to count alone (shorter ones are abbreviations of everything: db, fp, sj); a term gets at most
# this many look-alike variants.
_PINYIN_LETTERS = 5
_SPACED_PINYIN_LETTERS = 4  # "du bo", "du4bo2"; "dubo" would be a word of English or of other languages
INITIALS_ALONE = 4
_MIXED_PINYIN_CHARACTERS = 3  # terms this short get variants with pinyin for some characters: 冰du
_MOST_LOOKALIKES = 24
_TERMS_REMEMBERED = 1 << 17  # pinyin kept per term and style, for reloads: a few times the default pack's terms


def _parse_enum(kind: type[Severity] | type[Decision], value: str, where: str) -> Severity | Decision:
    choices = {m.label: m for m in kind if m.value > 0}  # none and allow are outcomes, not settings
    if value not in choices:
        raise RulePackError(f"{where}: {kind.__name__.lower()} '{value}' is not one of {' | '.join(choices)}")
    return choices[value]


def _number(value: str, where: str, what: str, *, low: float, high: float | None = None) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number >= low and (high is None or number <= high)):  # also refuses nan
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise RulePackError(f"{where}: {what} '{value}' must be a number {bound}")
    return number


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    return re.sub(r"\s#.*$", "", line).rstrip()


@dataclass
class _Entry:
    """A term, allow or warning phrase as written, before normalisation."""

    text: str
    where: str
    owner: str  # a rule id, or "allow" / "warn"


@dataclass
class _Draft:
    """A rule or set being read: options, and its condition lines until the pack's ids are all known."""

    id: str
    category: Category
    severity: Severity
    decision: Decision
    weight: float
    context: float
    where: str
    pinyin: bool = True
    variants: bool = True
    terms: int = 0
    conditions: list[tuple[bool, int | None, list[list[str]], str, str]] = field(default_factory=list)


@dataclass
class _FileParser:
    path: Path
    category: Category | None = None
    header: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (value, "file:line")
    rule: _Draft | None = None
    section: str = ""  # "allow" or "warn" while in one of them
    drafts: list[_Draft] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)

    def parse(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw)
            if line.strip():
                self._line(line, f"{self.path}:{number}")
        if self.category is None:
            self._finish_header(f"{self.path}:1")
        self._check_rule_done()

    def _line(self, line: str, where: str) -> None:
        if line[0].isspace():
            self._entry(line.strip(), where)
            return
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        header_keys = _HEADER_KEYS + _OPTIONAL_HEADER_KEYS
        if keyword in header_keys and self.category is None and self.rule is None and not self.section:
            if keyword in self.header:
                raise RulePackError(f"{where}: '{keyword}' is given twice")
            if not rest:
                raise RulePackError(f"{where}: '{keyword}' needs a value")
            self.header[keyword] = (rest, where)
        elif keyword in ("rule", "set"):
            self._start_rule(rest, where, is_set=keyword == "set")
        elif keyword in ("allow", "warn") and not rest:
            self._finish_header(where)
            self._check_rule_done()
            self.rule, self.section = None, keyword
        else:
            raise RulePackError(
                f"{where}: expected a header line, 'rule <id>', 'set <id>', 'allow', 'warn' or an indented term, "
                f"got '{line.strip()}'"
            )

    def _finish_header(self, where: str) -> Category:
        if self.category is None:
            missing = [k for k in _HEADER_KEYS if k not in self.header]
            if missing:
                raise RulePackError(f"{where}: the header misses {', '.join(missing)}")
            cid, cid_where = self.header["category"]
            if not _SLUG.match(cid):
                raise RulePackError(f"{cid_where}: category id '{cid}' must be lower-case letters, digits, '_' or '-'")
            if cid != self.path.stem:
                raise RulePackError(f"{cid_where}: category '{cid}' must live in a file named {cid}.rules")
            severity = _parse_enum(Severity, *self.header["severity"])
            decision = _parse_enum(Decision, *self.header["decision"])
            review, block = DEFAULT_REVIEW, DEFAULT_BLOCK
            if "review" in self.header:
                review = _number(*self.header["review"], "review threshold", low=0.01)
            if "block" in self.header:
                block = _number(*self.header["block"], "block threshold", low=0.01)
            if block < review:
                raise RulePackError(
                    f"{self.header.get('block', (0, where))[1]}: block {block:g} is below review {review:g}"
                )
            disguised = None
            if "disguised" in self.header:
                disguised = _number(*self.header["disguised"], "disguised weight", low=0)
            title = self.header["title"][0]
            self.category = Category(cid, title, Severity(severity), Decision(decision), review, block, disguised)
        return self.category

    def _check_rule_done(self) -> None:
        """A rule or set with nothing to match is refused: it would change the version and do nothing."""
        if self.rule is not None and not self.rule.terms and not self.rule.conditions:
            raise RulePackError(f"{self.rule.where}: '{self.rule.id}' has no terms or conditions")

    def _start_rule(self, rest: str, where: str, *, is_set: bool) -> None:
        category = self._finish_header(where)
        self._check_rule_done()
        slug, *options = rest.split() or [""]
        if not _SLUG.match(slug):
            raise RulePackError(f"{where}: rule id '{slug}' must be lower-case letters, digits, '_' or '-'")
        if slug == DISGUISED_SLUG:
            raise RulePackError(f"{where}: '{slug}' names the rule every category has for words written in disguise")
        severity, decision = category.severity, category.decision
        weight: float | None = None
        context, pinyin, variants = DEFAULT_CONTEXT, True, True
        for option in options:
            key, _, value = option.partition("=")
            if key in ("pinyin", "variants") and value in ("yes", "no"):
                pinyin = value == "yes" if key == "pinyin" else pinyin
                variants = value == "yes" if key == "variants" else variants
            elif is_set:
                raise RulePackError(f"{where}: unknown set option '{option}' (pinyin=no, variants=no)")
            elif key == "severity":
                severity = Severity(_parse_enum(Severity, value, where))
            elif key == "decision":
                decision = Decision(_parse_enum(Decision, value, where))
            elif key == "weight":
                weight = _number(value, where, "weight", low=0.01)
            elif key == "context":
                context = _number(value, where, "context", low=0, high=1)
            else:
                raise RulePackError(
                    f"{where}: unknown rule option '{option}' "
                    "(weight=, severity=, decision=, context=, pinyin=no, variants=no)"
                )
        if weight is None:  # a plain rule decides alone: it weighs its decision's threshold
            weight = category.block if decision == Decision.BLOCK else category.review
        self.rule = _Draft(
            f"{category.id}.{slug}",
            category,
            severity,
            decision,
            0.0 if is_set else weight,
            context,
            where,
            pinyin,
            variants,
        )
        self.drafts.append(self.rule)
        self.section = ""

    def _entry(self, text: str, where: str) -> None:
        if self.section:
            self.entries.append(_Entry(text, where, self.section))
            return
        if self.rule is None:
            raise RulePackError(f"{where}: a term must follow a 'rule <id>', 'set <id>', 'allow' or 'warn' line")
        if (condition := _CONDITION.match(text)) is not None:
            self._condition(condition, text, where)
        else:
            self.rule.terms += 1
            self.entries.append(_Entry(text, where, self.rule.id))

    def _condition(self, condition: re.Match[str], text: str, where: str) -> None:
        assert self.rule is not None
        if not self.rule.weight:
            raise RulePackError(f"{where}: a set holds terms only; a combination needs a 'rule' with a weight")
        mode, within, listed = condition.groups()
        positions = [[alternative.strip() for alternative in item.split("|")] for item in listed.split(",")]
        if not listed.strip() or any(not a for p in positions for a in p):
            raise RulePackError(f"{where}: '{mode}:' needs atoms separated by commas (and '|' for alternatives)")
        if mode == "any" and within:
            raise RulePackError(f"{where}: 'within' needs 'all' (one atom of 'any' has no window)")
        if mode == "all" and len(positions) < 2:
            raise RulePackError(f"{where}: 'all:' needs two atoms or more; one is a plain term or 'any:'")
        self.rule.conditions.append((mode == "all", int(within) if within else None, positions, where, text))


def _split_slots(text: str, where: str) -> list[tuple[bool, str]]:
    """A term as (is_slot, text) pieces: ``转发到{n}个群`` -> literal, slot n, literal."""
    pieces: list[tuple[bool, str]] = []
    for index, piece in enumerate(_SLOT.split(text)):
        if index % 2:
            if piece not in _SLOT_PATTERNS:
                raise RulePackError(f"{where}: unknown slot '{{{piece}}}' (slots: {{n}}, {{price}})")
            pieces.append((True, piece))
        elif piece.strip():
            pieces.append((False, piece.strip()))
    return pieces


class SlotNeeds(NamedTuple):
    """What a text must hold for a term with slots to match in it."""

    literals: tuple[str, ...]  # the term's literal parts, as its pattern matches them
    number_words: bool  # whether a number word may fill every slot ({n}); else ({price}) a SLOT_DIGITS character must


def slot_needs(term: Term) -> SlotNeeds:
    """What a text must hold for ``term`` (a term with slots) to match in it."""
    pieces = _split_slots(term.text, term.where)
    literals = _normalise([text for slot, text in pieces if not slot])
    return SlotNeeds(tuple(literals), all(text == "n" for slot, text in pieces if slot))


def _slot_pattern(pieces: list[tuple[bool, str]]) -> re.Pattern[str]:
    """The whole term with slots as a regex over normal text; a Latin end of the term ends a word."""
    parts = [_SLOT_PATTERNS[text] if slot else re.escape(text) for slot, text in pieces]
    head, tail = pieces[0], pieces[-1]
    start = r"(?<![a-z0-9])" if head[0] or (head[1][0].isascii() and head[1][0].isalnum()) else ""
    end = r"(?![a-z0-9])" if tail[0] or (tail[1][-1].isascii() and tail[1][-1].isalnum()) else ""
    return re.compile(start + r"\s?".join(parts) + end)


def _lookalikes(root: Path, digest: Any) -> dict[str, str]:
    """``lookalikes.txt``: a character, then the characters written in its place to evade filters."""
    path = root / "lookalikes.txt"
    if not path.exists():
        return {}
    raw = path.read_bytes()
    digest.update(b"lookalikes.txt\0" + raw)
    table: dict[str, str] = {}
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        fields = _strip_comment(line).split()
        if not fields:
            continue
        if len(fields) < 2 or any(len(f) != 1 for f in fields):
            raise RulePackError(f"{path}:{number}: expected a character and its look-alikes, one character each")
        table[fields[0]] = table.get(fields[0], "") + "".join(f for f in fields[1:] if f != fields[0])
    return table


@lru_cache(maxsize=_TERMS_REMEMBERED)
def _syllables(normal: str, style: str) -> tuple[str, ...]:
    """The pinyin of a term in a pypinyin ``Style`` (by name), remembered: a pack reloaded after an edit asks again
    for every term's."""
    # Imported here: its dictionaries take half a second to load, and only a pack being built, not one read back
    # from the cache (every worker start but a machine's first), needs them.
    from pypinyin import Style, lazy_pinyin  # noqa: PLC0415

    return tuple(lazy_pinyin(normal, style=Style.__members__[style], errors="ignore"))


def _mixed_pinyin(normal: str, syllables: tuple[str, ...]) -> list[str]:
    """A short term with pinyin for some of its characters (冰du, 摇tou丸, 摇touwan), in order. The first character
    stays, so the variant never begins as a Latin word: short pinyin at a word's start is common in English."""
    mixed = [normal[:index] + syllables[index] + normal[index + 1 :] for index in range(1, len(normal))]
    return list(dict.fromkeys([*mixed, normal[0] + "".join(syllables[1:])]))


def _variants(normal: str, draft: _Draft, lookalikes: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(kind, text) of every variant generated from a Chinese term: pinyin (joined, spaced, with tone numbers, mixed
    with the characters), initials, look-alikes."""
    if not _HAN.match(normal) or len(normal) < 2:
        return
    if draft.pinyin:
        syllables = _syllables(normal, "NORMAL")
        letters = len("".join(syllables)) if len(syllables) == len(normal) else 0
        if letters >= _PINYIN_LETTERS:
            yield "pinyin", "".join(syllables)
        if letters >= _SPACED_PINYIN_LETTERS:  # spaced or with tone numbers, short pinyin is no English word
            yield "pinyin", " ".join(syllables)
            # Tone numbers, as typed without a pinyin keyboard (du4bo2); tone marks are accents, which fold away.
            numbered = _syllables(normal, "TONE3")
            if len(numbered) == len(normal) and numbered != syllables:
                yield "pinyin", "".join(numbered)
                yield "pinyin", " ".join(numbered)
        if len(syllables) == len(normal) <= _MIXED_PINYIN_CHARACTERS:
            yield from (("pinyin", mixed) for mixed in _mixed_pinyin(normal, syllables))
        initials = _syllables(normal, "FIRST_LETTER")
        if len(initials) == len(normal) and len(set(initials)) > 1:  # "xxxx" stands for anything in chat
            yield "initials", "".join(initials)
    if draft.variants:
        made = 0
        for index, character in enumerate(normal):
            for substitute in lookalikes.get(character, ""):
                if made == _MOST_LOOKALIKES:
                    return
                made += 1
                yield "lookalike", normal[:index] + substitute + normal[index + 1 :]


def _normalise(texts: list[str]) -> list[str]:
    """Normal forms of many texts in one batch (one at a time is ~10x slower)."""
    return [normal.strip() for normal in normalize_joined(texts).split(BOUNDARY)] if texts else []


def _terms(
    entries: list[_Entry], drafts: Mapping[str, _Draft], rules: Mapping[str, Rule], lookalikes: Mapping[str, str]
) -> tuple[list[Term], list[AllowPhrase], list[AllowPhrase]]:
    """Every term (written, then generated), allow phrase and warning frame, normalised; duplicates refused."""
    pieces = [[(False, e.text)] if e.owner in ("allow", "warn") else _split_slots(e.text, e.where) for e in entries]
    normals = iter(_normalise([text for entry in pieces for slot, text in entry if not slot]))
    terms: list[Term] = []
    allow: list[AllowPhrase] = []
    warn: list[AllowPhrase] = []
    seen: dict[tuple[str, str], Term] = {}
    for entry, parts in zip(entries, pieces, strict=True):
        normal_parts = [(slot, text if slot else next(normals)) for slot, text in parts]
        literal = [text for slot, text in normal_parts if not slot]
        longest = max(literal, key=len, default="")
        if len(longest) < _MIN_TERM_CHARS:
            beside = " beside its slots" if len(parts) > 1 else ""
            raise RulePackError(
                f"{entry.where}: '{entry.text}' is shorter than {_MIN_TERM_CHARS} characters{beside} after "
                "normalisation"
            )
        if entry.owner in ("allow", "warn"):
            (allow if entry.owner == "allow" else warn).append(AllowPhrase(entry.text, longest, entry.where))
            continue
        rule = rules[entry.owner]
        pattern = _slot_pattern(normal_parts) if len(normal_parts) > 1 else None
        term = Term(entry.text, longest, rule, entry.where, pattern)
        key = (term.normal, pattern.pattern if pattern else "")
        if (first := seen.setdefault(key, term)) is not term:
            raise RulePackError(
                f"{term.where}: term '{term.text}' is the same as '{first.text}' at {first.where} after normalisation"
            )
        terms.append(term)
    written = len(terms)
    generated = [
        (kind, text, term)
        for term in terms[:written]
        if term.pattern is None and (draft := drafts.get(term.rule.id)) is not None
        for kind, text in _variants(term.normal, draft, lookalikes)
    ]
    shared: set[tuple[str, str]] = set()  # short initials stand for many terms: kept once per key and rule
    for (kind, _, term), normal in zip(generated, _normalise([text for _, text, _ in generated]), strict=True):
        if len(normal) < _MIN_TERM_CHARS or (normal, "") in seen:
            continue
        variant = Term(term.text, normal, term.rule, term.where, variant=kind)
        if not variant.needs_company:
            seen[normal, ""] = variant
        elif (normal, term.rule.id) in shared:
            continue
        else:
            shared.add((normal, term.rule.id))
        terms.append(variant)
    return terms, allow, warn


def _resolve(drafts: list[_Draft], entries: list[_Entry]) -> dict[str, Rule]:
    """The rules with their conditions' atoms as ids: rule and set ids, ``<signal>``s; inline quoted terms become
    sets of their own (``<rule id>/<n>``), whose entries are added to ``entries``."""
    by_id = {draft.id: draft for draft in drafts}
    rules: dict[str, Rule] = {}
    for draft in drafts:
        conditions = []
        for every, within, positions, where, text in draft.conditions:
            atoms = []
            for position in positions:
                alternatives = set()
                for atom in position:
                    alternatives.update(_atom(atom, draft, by_id=by_id, rules=rules, entries=entries, where=where))
                atoms.append(frozenset(alternatives))
            conditions.append(Condition(every, within, tuple(atoms), where, text))
        rules[draft.id] = Rule(
            draft.id,
            draft.category.id,
            draft.severity,
            draft.decision,
            draft.weight,
            draft.context,
            tuple(conditions),
        )
    named = {atom for rule in rules.values() for c in rule.conditions for position in c.atoms for atom in position}
    for draft in drafts:  # a set scores nothing alone: one no condition names is a typo or a leftover
        if draft.weight == 0 and draft.id not in named:
            raise RulePackError(f"{draft.where}: set '{draft.id}' is named by no condition, so it counts for nothing")
    return rules


def _atom(
    atom: str, draft: _Draft, *, by_id: Mapping[str, _Draft], rules: dict[str, Rule], entries: list[_Entry], where: str
) -> set[str]:
    """The atom ids one written atom stands for."""
    if atom.startswith("<") and atom.endswith(">"):
        signal = atom[1:-1]
        if signal == "contact":
            return {f"<{kind}>" for kind in CONTACTS}
        if signal not in SIGNALS:
            raise RulePackError(f"{where}: unknown signal '{atom}' (one of <contact>, {', '.join(sorted(SIGNALS))})")
        return {atom}
    if (slot := _SLOT.fullmatch(atom)) is not None:
        if slot.group(1) not in SLOTS:
            raise RulePackError(f"{where}: unknown slot '{atom}' (slots: {{n}}, {{price}})")
        return {f"<{SLOTS[slot.group(1)]}>"}
    if (quoted := _QUOTED.match(atom)) is not None:
        inline = f"{draft.id}/{sum(r.startswith(draft.id + '/') for r in rules) + 1}"
        rules[inline] = Rule(inline, draft.category.id, draft.severity, draft.decision)
        entries.append(_Entry(quoted.group(1), where, inline))  # no generated variants: write them as terms
        return {inline}
    ref = atom if "." in atom else f"{draft.category.id}.{atom}"
    target = by_id.get(ref)
    if target is None:
        raise RulePackError(
            f"{where}: '{atom}' names no rule or set of the pack (write '<category>.<id>' for another category's)"
        )
    if not target.terms:
        raise RulePackError(f"{where}: '{atom}' has no terms of its own; a combination can only name rules with terms")
    if target is draft:
        raise RulePackError(f"{where}: a rule cannot name itself")
    return {ref}


def load_pack(directory: Path | str) -> RulePack:
    """Load ``pack.toml`` and every ``*.rules`` file of a folder, or raise RulePackError."""
    root = Path(directory)
    manifest = root / "pack.toml"
    try:
        raw_manifest = manifest.read_bytes()
        meta = tomllib.loads(raw_manifest.decode())
    except FileNotFoundError:
        raise RulePackError(f"{manifest}: missing; a rule pack folder needs pack.toml with name and version") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulePackError(f"{manifest}: {exc}") from None
    for key in ("name", "version"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise RulePackError(f"{manifest}: '{key}' must be a non-empty string")

    digest = hashlib.sha256(raw_manifest)
    categories: dict[str, Category] = {}
    drafts: list[_Draft] = []
    entries: list[_Entry] = []
    files = sorted(root.glob("*.rules"))
    if not files:
        raise RulePackError(f"{root}: no *.rules files")
    for path in files:
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw)
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise RulePackError(f"{path}:{line}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        parser = _FileParser(path)
        parser.parse(text)
        assert parser.category is not None
        categories[parser.category.id] = parser.category
        drafts.extend(parser.drafts)
        entries.extend(parser.entries)
    seen_ids: dict[str, _Draft] = {}
    for draft in drafts:
        if seen_ids.setdefault(draft.id, draft) is not draft:
            raise RulePackError(f"{draft.where}: rule '{draft.id}' is defined twice")
    lookalikes = _lookalikes(root, digest)
    rules = _resolve(drafts, entries)
    for category in categories.values():  # a word of the category's sets written in disguise: see disguise.py
        disguised = Rule(
            f"{category.id}.{DISGUISED_SLUG}",
            category.id,
            category.severity,
            category.decision,
            category.disguised_weight,
        )
        if disguised.scores:
            rules[disguised.id] = disguised
    terms, allow, warn = _terms(entries, {d.id: d for d in drafts}, rules, lookalikes)
    domains = _blocklists(root, meta, categories, digest)
    version = f"{meta['version']}+{digest.hexdigest()[:12]}"
    return RulePack(meta["name"], version, categories, terms, allow, domains, warn, rules)


# -- domain blocklists -------------------------------------------------------------------------------------------

_DOMAIN = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_LOCAL_NAMES = frozenset(  # hosts files list these for the machine itself
    {"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0", "ip6-localhost"}  # noqa: S104
)


def _ascii(domain: str) -> str:
    """Internationalised domains compare in their ASCII (punycode) form; an invalid one is left as it is."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def parse_domain_line(line: str) -> str | None:
    """The domain of one blocklist line, in any of the common formats; None for a line that blocks nothing.

    Plain (``evil.example``, ``*.evil.example``, a URL), hosts file (``0.0.0.0 evil.example``) and Adblock-style
    domain rules (``||evil.example^``). Raises ValueError for anything else, so a list is never half understood.
    """
    text = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip().lower()  # '#' opens a comment after a space
    if not text or text.startswith(("!", "[")):  # blank, a comment, or an Adblock header
        return None
    fields = text.split()
    if len(fields) == 2 and fields[0] in ("0.0.0.0", "127.0.0.1", "::", "::1"):  # noqa: S104 - a hosts file entry
        text = fields[1]
        if text in _LOCAL_NAMES:
            return None
    elif len(fields) != 1:
        raise ValueError(f"not a domain, hosts entry or ||domain^ rule: {line.strip()!r}")
    if text.startswith("||"):
        text = text[2:].split("$", 1)[0].removesuffix("^")
    elif "://" in text:
        text = text.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    domain = text.removeprefix("*.").removeprefix("www.").rstrip(".")
    domain = _ascii(domain)
    if not _DOMAIN.match(domain):
        raise ValueError(f"not a valid domain: {line.strip()!r}")
    return domain


def _blocklists(root: Path, meta: dict[str, object], categories: dict[str, Category], digest: Any) -> dict[str, Rule]:
    """Domains from the files pack.toml lists under [[blocklist]], each with the rule a hit on it counts as."""
    entries = meta.get("blocklist", [])
    manifest = root / "pack.toml"
    if not isinstance(entries, list):
        raise RulePackError(f"{manifest}: 'blocklist' must be a list of tables ([[blocklist]])")
    domains: dict[str, Rule] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{manifest}: blocklist {number}"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("file"), str)
            or not isinstance(entry.get("rule"), str)
        ):
            raise RulePackError(f'{where}: needs file = "<path>" and rule = "<category>.<name>"')
        category_id, _, name = entry["rule"].partition(".")
        if category_id not in categories or not _SLUG.match(name):
            raise RulePackError(f"{where}: rule {entry['rule']!r} must be <category>.<name> of a category in the pack")
        category = categories[category_id]
        try:
            severity = Severity[str(entry.get("severity", category.severity.label)).upper()]
            decision = Decision[str(entry.get("decision", category.decision.label)).upper()]
        except KeyError:
            raise RulePackError(f"{where}: severity is low..critical and decision review or block") from None
        weight = category.block if decision == Decision.BLOCK else category.review
        rule = Rule(entry["rule"], category_id, severity, decision, weight, context=1.0)
        path = root / entry["file"]
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise RulePackError(f"{where}: {path} is missing") from None
        digest.update(entry["file"].encode() + b"\0" + raw)
        for line_number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            try:
                domain = parse_domain_line(line)
            except ValueError as exc:
                raise RulePackError(f"{path}:{line_number}: {exc}") from None
            if domain is not None:
                domains.setdefault(domain, rule)
    return domains
