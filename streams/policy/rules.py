"""Loading and validating rule packs (format: rules/README.md). A pack with any error is refused whole."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from streams.policy.normalize import normalize


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


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    title: str
    severity: Severity
    decision: Decision


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # "<category>.<slug>"
    category: str
    severity: Severity
    decision: Decision


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # as written in the pack
    normal: str  # as matched
    rule: Rule
    where: str  # "file:line", for error messages and explanations


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

    def ids(self) -> set[str]:
        """Every category and rule id: what a sanctions file may name."""
        return {t.rule.id for t in self.terms} | set(self.categories)


class RulePackError(ValueError):
    """A pack that cannot be loaded; the message names the file and line."""


_SLUG = re.compile(r"^[a-z][a-z0-9_-]*$")
_MIN_TERM_CHARS = 2
_HEADER_KEYS = ("category", "title", "severity", "decision")


def _parse_enum(kind: type[Severity] | type[Decision], value: str, where: str) -> Severity | Decision:
    choices = {m.label: m for m in kind if m.value > 0}  # none and allow are outcomes, not settings
    if value not in choices:
        raise RulePackError(f"{where}: {kind.__name__.lower()} '{value}' is not one of {' | '.join(choices)}")
    return choices[value]


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    return re.sub(r"\s#.*$", "", line).rstrip()


@dataclass
class _FileParser:
    path: Path
    category: Category | None = None
    header: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (value, "file:line")
    rule: Rule | None = None
    in_allow: bool = False
    rule_ids: set[str] = field(default_factory=set)
    terms: list[Term] = field(default_factory=list)
    allow: list[AllowPhrase] = field(default_factory=list)

    def parse(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw)
            if line.strip():
                self._line(line, f"{self.path}:{number}")
        if self.category is None:
            self._finish_header(f"{self.path}:1")

    def _line(self, line: str, where: str) -> None:
        if line[0].isspace():
            self._entry(line.strip(), where)
            return
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword in _HEADER_KEYS and self.category is None and self.rule is None and not self.in_allow:
            if keyword in self.header:
                raise RulePackError(f"{where}: '{keyword}' is given twice")
            if not rest:
                raise RulePackError(f"{where}: '{keyword}' needs a value")
            self.header[keyword] = (rest, where)
        elif keyword == "rule":
            self._start_rule(rest, where)
        elif keyword == "allow" and not rest:
            self._finish_header(where)
            self.rule, self.in_allow = None, True
        else:
            raise RulePackError(
                f"{where}: expected a header line, 'rule <id>', 'allow' or an indented term, got '{line.strip()}'"
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
            self.category = Category(cid, self.header["title"][0], Severity(severity), Decision(decision))
        return self.category

    def _start_rule(self, rest: str, where: str) -> None:
        category = self._finish_header(where)
        slug, *options = rest.split() or [""]
        if not _SLUG.match(slug):
            raise RulePackError(f"{where}: rule id '{slug}' must be lower-case letters, digits, '_' or '-'")
        rule_id = f"{category.id}.{slug}"
        if rule_id in self.rule_ids:
            raise RulePackError(f"{where}: rule '{rule_id}' is defined twice")
        self.rule_ids.add(rule_id)
        severity, decision = category.severity, category.decision
        for option in options:
            key, _, value = option.partition("=")
            if key == "severity":
                severity = Severity(_parse_enum(Severity, value, where))
            elif key == "decision":
                decision = Decision(_parse_enum(Decision, value, where))
            else:
                raise RulePackError(f"{where}: unknown rule option '{option}' (severity=..., decision=...)")
        self.rule, self.in_allow = Rule(rule_id, category.id, severity, decision), False

    def _entry(self, text: str, where: str) -> None:
        normal = normalize(text).strip()
        if len(normal) < _MIN_TERM_CHARS:
            raise RulePackError(f"{where}: '{text}' is shorter than {_MIN_TERM_CHARS} characters after normalisation")
        if self.in_allow:
            self.allow.append(AllowPhrase(text, normal, where))
        elif self.rule is not None:
            self.terms.append(Term(text, normal, self.rule, where))
        else:
            raise RulePackError(f"{where}: a term must follow a 'rule <id>' or 'allow' line")


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
    terms: list[Term] = []
    allow: list[AllowPhrase] = []
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
        terms.extend(parser.terms)
        allow.extend(parser.allow)

    seen: dict[str, Term] = {}
    for term in terms:
        if (first := seen.setdefault(term.normal, term)) is not term:
            raise RulePackError(
                f"{term.where}: term '{term.text}' is the same as '{first.text}' at {first.where} after normalisation",
            )
    return RulePack(meta["name"], f"{meta['version']}+{digest.hexdigest()[:12]}", categories, terms, allow)
