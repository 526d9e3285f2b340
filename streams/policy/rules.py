"""Loading and validating rule packs (format: rules/README.md). A pack with any error is refused whole."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

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
    domains: dict[str, Rule] = field(default_factory=dict)  # blocked domain -> the blocklist's rule

    def ids(self) -> set[str]:
        """Every category and rule id: what a sanctions file may name."""
        return {t.rule.id for t in self.terms} | {r.id for r in self.domains.values()} | set(self.categories)

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
    entries: list[tuple[str, str, Rule | None]] = field(default_factory=list)  # text, where, rule (None: allow)

    def parse(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw)
            if line.strip():
                self._line(line, f"{self.path}:{number}")
        if self.category is None:
            self._finish_header(f"{self.path}:1")
        self._normalise_entries()

    def _normalise_entries(self) -> None:
        """Every term and allow phrase of the file, normalised in one batch (one at a time is ~10x slower)."""
        texts = [text for text, _, _ in self.entries]
        normals = [normal.strip() for normal in normalize_joined(texts).split(BOUNDARY)] if texts else []
        for (text, where, rule), normal in zip(self.entries, normals, strict=True):
            if len(normal) < _MIN_TERM_CHARS:
                raise RulePackError(
                    f"{where}: '{text}' is shorter than {_MIN_TERM_CHARS} characters after normalisation"
                )
            if rule is None:
                self.allow.append(AllowPhrase(text, normal, where))
            else:
                self.terms.append(Term(text, normal, rule, where))

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
        if not self.in_allow and self.rule is None:
            raise RulePackError(f"{where}: a term must follow a 'rule <id>' or 'allow' line")
        self.entries.append((text, where, None if self.in_allow else self.rule))


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

    domains = _blocklists(root, meta, categories, digest)
    seen: dict[str, Term] = {}
    for term in terms:
        if (first := seen.setdefault(term.normal, term)) is not term:
            raise RulePackError(
                f"{term.where}: term '{term.text}' is the same as '{first.text}' at {first.where} after normalisation",
            )
    version = f"{meta['version']}+{digest.hexdigest()[:12]}"
    return RulePack(meta["name"], version, categories, terms, allow, domains)


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
        rule = Rule(entry["rule"], category_id, severity, decision)
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
