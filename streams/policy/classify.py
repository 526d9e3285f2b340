"""The classify decision: chat messages in, explained verdicts out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from streams.policy.detectors import Signal, detect_batch, domain_of
from streams.policy.matcher import Hit, Matcher
from streams.policy.normalize import Fold, Mapped, NormalBatch, fold_names
from streams.policy.rules import Decision, Rule, RulePack, Severity, covering
from streams.records import ChatMessage

VERDICT_SCHEMA = "moderation.verdict.v1"

# Detectors that are violations in themselves: rule id and the category whose severity and decision they take.
_DETECTOR_RULES = {"id_card": ("privacy.id-card-number", "privacy")}
_DOMAINS_REMEMBERED = 100_000


class Classifier:
    """Classifies messages against one rule pack. Build once per pack; classifying is pure."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self.version = pack.version
        # Every verdict key, in the published order: a verdict is a copy of a clean one with its message's values
        # filled in. Its JSON arrays are tuples, so a clean verdict holds no container and the garbage collector
        # does not track it: most verdicts are clean, and collections walking them cost several percent of a batch.
        self._clean: dict[str, Any] = {
            "schema": VERDICT_SCHEMA,
            "message_id": None,
            "group_id": None,
            "sender_id": None,
            "decision": Decision.ALLOW.label,
            "categories": (),
            "severity": Severity.NONE.label,
            "matches": (),
            "signals": (),
            "rules_version": self.version,
            "sent_at_ms": None,
            "classified_at_ms": None,
        }
        self._matcher = Matcher(pack)
        self._campaigns: dict[str, Rule] = {}  # domains blacklisted as spam campaigns (moderation.blacklist.v1)
        self._listed: dict[str, tuple[str, ...]] = {}  # every campaign domain learned, with its categories
        self._blocked_domains: dict[str, tuple[str, Rule] | None] = {}  # what _blocked found, until campaigns change

    def block_campaign(self, domain: str, categories: Sequence[str]) -> bool:
        """Links to ``domain`` now block, as its campaign's first category of this pack; False if none is known."""
        self._listed[domain] = tuple(categories)  # kept even if unknown here: a later pack may know the category
        category = next((self.pack.categories[c] for c in categories if c in self.pack.categories), None)
        if category is None:
            return False
        self._campaigns[domain] = Rule(f"{category.id}.campaign-domain", category.id, category.severity, Decision.BLOCK)
        self._blocked_domains.clear()
        return True

    def lift_campaign(self, domain: str) -> None:
        self._campaigns.pop(domain, None)
        self._listed.pop(domain, None)
        self._blocked_domains.clear()

    def carry_campaigns(self, previous: Classifier) -> None:
        """Block the campaign domains ``previous`` learned from the blacklist, as this pack's categories rate them."""
        for domain, categories in previous._listed.items():
            self.block_campaign(domain, categories)

    def campaigns(self) -> frozenset[str]:
        """The campaign domains blocked now."""
        return frozenset(self._campaigns)

    def follow_blacklist(self, key: bytes, value: bytes | None) -> str | None:
        """Apply one moderation.blacklist.v1 record: a link entry blocks its domain, its tombstone lifts it.
        Returns what changed, for the log, or None."""
        if not key.startswith(b"link:"):
            return None
        domain = key[len(b"link:") :].decode()
        if value is None:
            self.lift_campaign(domain)
            return f"campaign domain {domain} no longer blocked"
        try:
            entry = orjson.loads(value)
        except orjson.JSONDecodeError:
            return f"blacklist entry for {domain} is not JSON; ignored"
        categories = entry.get("categories", []) if isinstance(entry, dict) else []
        if self.block_campaign(domain, categories):
            return f"campaign domain {domain} blocked"
        return None

    def _blocked(self, domain: str) -> tuple[str, Rule] | None:
        """The blocklist entry or campaign that covers ``domain``; remembered, as chat links the same few domains."""
        try:
            return self._blocked_domains[domain]
        except KeyError:
            pass
        if len(self._blocked_domains) >= _DOMAINS_REMEMBERED:
            self._blocked_domains.clear()
        blocked = self.pack.blocked(domain) or (covering(self._campaigns, domain) if self._campaigns else None)
        self._blocked_domains[domain] = blocked
        return blocked

    def warm_up(self) -> None:
        """Classify one made-up message now, so the first batch does not wait for the normalisation tables (~1 s, if
        loading the pack has not built them) or for loading the compiled passes (compiling them, ~4 s, the first time
        on a machine)."""
        self.classify_batch([ChatMessage("warm-up", "warm-up", "warm-up", 0, "加v: abc12345, 13800138000 a.cn")], 0)

    def classify(self, message: ChatMessage, classified_at_ms: int) -> dict[str, Any]:
        return self.classify_batch([message], classified_at_ms)[0]

    def classify_each(self, messages: Sequence[ChatMessage], classified_at_ms: int) -> list[dict[str, Any] | Exception]:
        """One verdict per message, or the exception classifying it raised: a batch that fails is classified again
        message by message, so a message that trips a bug costs only itself."""
        try:
            return list(self.classify_batch(messages, classified_at_ms))
        except Exception:  # noqa: BLE001 - found message by message below
            results: list[dict[str, Any] | Exception] = []
            for message in messages:
                try:
                    results.append(self.classify(message, classified_at_ms))
                except Exception as exc:  # noqa: BLE001 - returned, for the caller to report
                    results.append(exc)
            return results

    def classify_batch(self, messages: Sequence[ChatMessage], classified_at_ms: int) -> list[dict[str, Any]]:
        """One verdict per message, in order, as published on ``moderation.verdicts.v1`` (no message text); the
        JSON arrays are tuples."""
        batch = NormalBatch([m.text for m in messages])
        hits = self._matcher.find_batch(batch)
        signals = detect_batch(batch)
        # Most messages are clean: every one gets the clean verdict, then the few with something to explain theirs.
        verdicts = [self._verdict(m, classified_at_ms) for m in messages]
        for index in sorted(hits.keys() | signals.keys() | {i for i, m in enumerate(messages) if m.links}):
            mapped = batch.mapped(index)
            self._explain(verdicts[index], messages[index], mapped, hits.get(index, ()), signals.get(index, ()))
        return verdicts

    def _explain(
        self,
        verdict: dict[str, Any],
        message: ChatMessage,
        mapped: Mapped,
        hits: Sequence[Hit],
        signals: Sequence[Signal],
    ) -> None:
        """Fill in a message's clean verdict with what its text and links hold: matches, signals and the decision."""
        matches: list[dict[str, Any]] = []
        found: list[dict[str, Any]] = []
        decision, severity = Decision.ALLOW, Severity.NONE
        for hit in hits:
            start, end = mapped.span(hit.start, hit.end)
            rule = hit.term.rule
            matches.append(
                _match(
                    rule.id,
                    rule.category,
                    hit.term.text,
                    span=(start, end),
                    folds=mapped.folds_between(start, end),
                    severity=rule.severity,
                    decision=rule.decision,
                )
            )
            decision, severity = max(decision, rule.decision), max(severity, rule.severity)
        for signal in signals:
            start, end = mapped.span(signal.start, signal.end)
            if signal.value:
                found.append({"kind": signal.kind, "span": (start, end), "domain": signal.value})
            else:
                found.append({"kind": signal.kind, "span": (start, end)})
            if signal.kind in _DETECTOR_RULES:
                rule_id, category_id = _DETECTOR_RULES[signal.kind]
                if (category := self.pack.categories.get(category_id)) is not None:
                    folds = mapped.folds_between(start, end) & ~Fold.SEPARATOR
                    matches.append(
                        _match(
                            rule_id,
                            category_id,
                            f"<{signal.kind}>",
                            span=(start, end),
                            folds=folds,
                            severity=category.severity,
                            decision=category.decision,
                        )
                    )
                    decision, severity = max(decision, category.decision), max(severity, category.severity)
        if message.links:  # attached cards and previews that are not in the text
            seen = {s.get("domain") for s in found}
            for link in message.links:
                domain = domain_of(link)
                if domain and domain not in seen:
                    seen.add(domain)
                    found.append({"kind": "link", "span": None, "domain": domain})
        for signal_found in found:  # links to blocklisted domains: rules/pack.toml [[blocklist]], and campaigns
            domain = signal_found.get("domain")
            if domain and (blocked := self._blocked(domain)) is not None:
                listed, rule = blocked
                span = signal_found["span"]
                matches.append(
                    _match(
                        rule.id,
                        rule.category,
                        listed,
                        span=span,
                        folds=mapped.folds_between(*span) if span else Fold(0),
                        severity=rule.severity,
                        decision=rule.decision,
                    )
                )
                decision, severity = max(decision, rule.decision), max(severity, rule.severity)
        verdict["decision"] = decision.label
        if matches:
            verdict["categories"] = tuple(sorted({m["category"] for m in matches}))
        verdict["severity"] = severity.label
        verdict["matches"] = tuple(matches)
        verdict["signals"] = tuple(found)

    def _verdict(self, message: ChatMessage, classified_at_ms: int) -> dict[str, Any]:
        """The one shape of a verdict, as for a clean message: allow, no categories, no matches, no signals."""
        verdict = self._clean.copy()  # the published key order stays in one place
        verdict["message_id"] = message.message_id
        verdict["group_id"] = message.group_id
        verdict["sender_id"] = message.sender_id
        verdict["sent_at_ms"] = message.sent_at_ms
        verdict["classified_at_ms"] = classified_at_ms
        return verdict


def _match(
    rule_id: str,
    category: str,
    term: str,
    *,
    span: tuple[int, int] | None,
    folds: Fold,
    severity: Severity,
    decision: Decision,
) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "category": category,
        "term": term,
        "span": span,  # None: a link attached to the message
        "normalisations": fold_names(folds),
        "severity": severity.label,
        "decision": decision.label,
    }
