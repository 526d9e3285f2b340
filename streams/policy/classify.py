"""The classify decision: chat messages in, explained verdicts out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import reduce
from operator import or_
from typing import Any

import orjson

from streams.policy.detectors import QUIET, Signal, detect, detect_batch, detect_quiet, domain_of
from streams.policy.disguise import disguised
from streams.policy.matcher import Found, Hit, Matcher
from streams.policy.normalize import Fold, Mapped, NormalBatch, fold_names
from streams.policy.rules import DISGUISED_SLUG, Decision, Rule, RulePack, Severity, Term, covering
from streams.policy.scoring import Evidence, Fired, Scorer, quotations
from streams.records import ChatMessage

VERDICT_SCHEMA = "moderation.verdict.v1"

# Detectors that are violations in themselves: rule id and the category whose severity and decision they take.
_DETECTOR_RULES = {"id_card": ("privacy.id-card-number", "privacy")}
_DETECTOR_RULE_IDS = frozenset(rule_id for rule_id, _ in _DETECTOR_RULES.values())
_DOMAINS_REMEMBERED = 100_000
_CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CHINESE_REACH = 12  # characters either side of short initials where Chinese makes them read as initials
_CAPITAL_INITIALS = 3  # letters that capital initials need: two capitals are an acronym (CS, PK, AA)


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
            "scores": (),  # per category with evidence: its score, thresholds and what it decides
            "rules_version": self.version,
            "sent_at_ms": None,
            "classified_at_ms": None,
        }
        self._scorer = Scorer(pack)
        # Hits that can fire no rule (common words of sets, alone) are not worth placing: the matcher leaves them out.
        self._matcher = Matcher(pack, fires=self._scorer.may_fire)
        # Per category, its rule for words of its sets and weak rules written in disguise (streams/policy/disguise.py).
        self._disguise_rules = {
            category.id: rule
            for category in pack.categories.values()
            if (rule := pack.rules.get(f"{category.id}.{DISGUISED_SLUG}")) is not None
        }
        self._detector_rules = {
            kind: Rule(rule_id, category.id, category.severity, category.decision, category.block, context=1.0)
            for kind, (rule_id, category_id) in _DETECTOR_RULES.items()
            if (category := pack.categories.get(category_id)) is not None
        }
        self._campaigns: dict[str, Rule] = {}  # domains blacklisted as spam campaigns (moderation.blacklist.v1)
        self._listed: dict[str, tuple[str, ...]] = {}  # every campaign domain learned, with its categories
        self._blocked_domains: dict[str, tuple[str, Rule] | None] = {}  # what _blocked found, until campaigns change

    def block_campaign(self, domain: str, categories: Sequence[str]) -> bool:
        """Links to ``domain`` now block, as its campaign's first category of this pack; False if none is known."""
        self._listed[domain] = tuple(categories)  # kept even if unknown here: a later pack may know the category
        category = next((self.pack.categories[c] for c in categories if c in self.pack.categories), None)
        if category is None:
            return False
        self._campaigns[domain] = Rule(
            f"{category.id}.campaign-domain", category.id, category.severity, Decision.BLOCK, category.block, 1.0
        )
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
        found = self._matcher.find_batch(batch)
        signals = detect_batch(batch)
        # Most messages are clean: every one gets the clean verdict, then the few with something to explain theirs.
        verdicts = self._verdicts(messages, classified_at_ms)
        scorer = self._scorer
        mapped_texts: dict[int, Mapped] = {}  # each text's way back to its original, made once
        disguises = self._disguises(batch, found, mapped_texts)
        prospects = {
            index: scorer.prospects({h.term.rule.id for h in hits} | {e.atom for e in disguises.get(index, ())})
            for index, hits in found.hits.items()
        }
        hit = {index for index, (fires, _, _) in prospects.items() if fires}
        for index in sorted(hit | signals.keys() | {i for i, m in enumerate(messages) if m.links}):
            mapped = mapped_texts.get(index) or batch.mapped(index)
            hits = found.hits.get(index, ()) if index in hit else ()
            text_signals = signals.get(index, [])
            if hits:  # a combination may name signals the detectors' screen did not look for in this text
                _, loud, quiet = prospects[index]
                if loud and index not in signals:
                    text_signals = detect(mapped.text)
                if quiet:
                    text_signals = [*text_signals, *detect_quiet(mapped.text)]
            self._explain(
                verdicts[index],
                messages[index],
                mapped,
                hits,
                text_signals,
                warned=index in found.warned,
                disguises=disguises.get(index, ()),
            )
        return verdicts

    def _disguises(self, batch: NormalBatch, found: Found, mapped: dict[int, Mapped]) -> dict[int, list[Evidence]]:
        """Per text, its words written in disguise, as evidence for their categories' rules for them; ``mapped``
        keeps the texts' ``Mapped`` it made."""
        rules, categories = self._disguise_rules, self.pack.categories

        def counts(rule: Rule) -> bool:  # a set's or a weak rule's: a rule that blocks alone needs no more
            return rule.category in rules and rule.weight < categories[rule.category].block

        evidence: dict[int, list[Evidence]] = {}
        for index in found.disguised & found.hits.keys():
            hits = found.hits[index]
            mapped[index] = text = batch.mapped(index)
            if not (words := disguised(text, hits, counts)):
                continue
            # A word inside a term that blocks alone is that term's: 刷*单*返*利 is a scam, not also a false claim.
            decided = [(h.start, h.end) for h in hits if h.term.rule.weight >= categories[h.term.rule.category].block]
            if kept := [h for h in words if not any(start <= h.start and h.end <= end for start, end in decided)]:
                evidence[index] = [Evidence(rules[h.term.rule.category].id, h.start, h.end, h) for h in kept]
        return evidence

    def _explain(
        self,
        verdict: dict[str, Any],
        message: ChatMessage,
        mapped: Mapped,
        hits: Sequence[Hit],
        signals: Sequence[Signal],
        *,
        warned: bool,
        disguises: Sequence[Evidence] = (),
    ) -> None:
        """Fill in a message's clean verdict with what its text and links hold: the rules that scored, the signals,
        the scores per category and the decision."""
        found = self._reported(message, mapped, signals)
        fixed = [
            Fired(
                rule,
                (Evidence(f"<{signal.kind}>", signal.start, signal.end, signal),),
                None,
                rule.weight,
                discounted=False,
            )
            for signal in signals
            if (rule := self._detector_rules.get(signal.kind)) is not None
        ]
        listed_as: dict[int, tuple[str, tuple[int, int] | None]] = {}  # id of a blocklist's Fired -> entry, span
        blocked_links: list[Evidence] = []
        for signal_found in found:  # links to blocklisted domains: rules/pack.toml [[blocklist]], and campaigns
            domain = signal_found.get("domain")
            if domain and (blocked := self._blocked(domain)) is not None:
                listed, rule = blocked
                link = next((s for s in signals if s.value == domain), None)
                if link is not None:
                    blocked_links.append(Evidence("<blocked_link>", link.start, link.end, link))
                fixed.append(fired := Fired(rule, (), None, rule.weight, discounted=False))
                listed_as[id(fired)] = listed, signal_found["span"]
        if not hits and not fixed and not self._scorer.signals_alone:  # most: a link or a phone number, no more
            verdict["signals"] = tuple(found)
            return
        evidence = [
            Evidence(hit.term.rule.id, hit.start, hit.end, hit, hit.term.needs_company)
            for hit in hits
            if not hit.term.needs_company or _read_as_initials(mapped, hit.start, hit.end)
        ]
        evidence += disguises
        evidence += [Evidence(f"<{signal.kind}>", signal.start, signal.end, signal) for signal in signals]
        evidence += blocked_links
        quotes = quotations(message.text)

        def quoted(start: int, end: int) -> bool:
            original_start, original_end = mapped.span(start, end)
            return any(low <= original_start and original_end <= high for low, high in quotes)

        scored = self._scorer.score(evidence, warned=warned, quoted=quoted if quotes else None, fixed=fixed)
        matches: list[dict[str, Any]] = []
        for fired in scored.fired:
            if (listed_span := listed_as.get(id(fired))) is not None:
                listed, span = listed_span
                matches.append(_match(fired, listed, span, mapped.folds_between(*span) if span else Fold(0)))
            elif fired.rule.id in _DETECTOR_RULE_IDS:
                item = fired.evidence[0]
                start, end = mapped.span(item.start, item.end)
                folds = mapped.folds_between(start, end) & ~Fold.SEPARATOR
                matches.append(_match(fired, item.atom, (start, end), folds))
            else:
                matches.extend(self._fired_matches(fired, mapped))
        verdict["decision"] = scored.decision.label
        verdict["categories"] = tuple(scored.deciding())
        verdict["severity"] = scored.severity().label
        verdict["matches"] = tuple(matches)
        verdict["signals"] = tuple(found)
        verdict["scores"] = tuple(
            {
                "category": category,
                "score": round(score, 2),
                "review": self.pack.categories[category].review,
                "block": self.pack.categories[category].block,
                "decision": scored.decisions[category].label,
            }
            for category, score in sorted(scored.scores.items())
        )

    @staticmethod
    def _reported(message: ChatMessage, mapped: Mapped, signals: Sequence[Signal]) -> list[dict[str, Any]]:
        """The signals a verdict reports: those found in the text, quiet ones aside, and the links attached."""
        found: list[dict[str, Any]] = []
        for signal in signals:
            if signal.kind in QUIET:
                continue  # reported only where a combination used it
            span = mapped.span(signal.start, signal.end)
            if signal.value:
                found.append({"kind": signal.kind, "span": span, "domain": signal.value})
            else:
                found.append({"kind": signal.kind, "span": span})
        if message.links:  # attached cards and previews that are not in the text
            seen = {s.get("domain") for s in found}
            for link in message.links:
                domain = domain_of(link)
                if domain and domain not in seen:
                    seen.add(domain)
                    found.append({"kind": "link", "span": None, "domain": domain})
        return found

    @staticmethod
    def _fired_matches(fired: Fired, mapped: Mapped) -> list[dict[str, Any]]:
        """A fired rule as a verdict's matches: one per term it fired on, or one for the condition that held, with the
        span of all its evidence in the original text and every atom it held on."""
        spans = [mapped.span(e.start, e.end) for e in fired.evidence]
        folds = [  # as ints: or-ing Folds runs Python code
            int(mapped.folds_between(*span)) | int(item.source.folds) if isinstance(item.source, Hit) else 0
            for span, item in zip(spans, fired.evidence, strict=True)
        ]
        if fired.condition is None:
            return [
                _match(fired, item.source.term.text, span, fold) | _variant(item.source.term)
                for item, span, fold in zip(fired.evidence, spans, folds, strict=True)
                if isinstance(item.source, Hit)
            ]
        span = (min(s for s, _ in spans), max(e for _, e in spans))
        match = _match(fired, fired.condition.text, span, reduce(or_, folds, 0))
        match["atoms"] = tuple(
            {"atom": item.atom, "term": item.source.term.text, "span": span} | _variant(item.source.term)
            if isinstance(item.source, Hit)
            else {"atom": item.atom, "term": None, "span": span}
            for item, span in zip(fired.evidence, spans, strict=True)
        )
        return [match]

    def _verdicts(self, messages: Sequence[ChatMessage], classified_at_ms: int) -> list[dict[str, Any]]:
        """The one shape of a verdict, as for a clean message (allow, no categories, no matches, no signals), for each
        message. In one loop: a call per message costs a tenth of a verdict's time."""
        clean = self._clean.copy()  # the published key order stays in one place
        clean["classified_at_ms"] = classified_at_ms
        verdicts = []
        for message in messages:
            verdict = clean.copy()
            verdict["message_id"] = message.message_id
            verdict["group_id"] = message.group_id
            verdict["sender_id"] = message.sender_id
            verdict["sent_at_ms"] = message.sent_at_ms
            verdicts.append(verdict)
        return verdicts


def _read_as_initials(mapped: Mapped, start: int, end: int) -> bool:
    """Whether the letters at [start, end) of normal text read as pinyin initials: Chinese is written within reach
    (in English "my", "by" and "st" are words), and they are lower-case or three capitals written into the Chinese
    (收YHK); capitals set apart, and two capitals anywhere, are acronyms (SC 认证, COACH / MK, 真人CS, PK赛)."""
    text = mapped.text
    if _CHINESE.search(text, max(0, start - _CHINESE_REACH), end + _CHINESE_REACH) is None:
        return False
    written = mapped.original[slice(*mapped.span(start, end))]
    if written.islower():
        return True
    if len(written) < _CAPITAL_INITIALS:
        return False
    beside = (text[start - 1] if start else "") + text[end : end + 1]
    return _CHINESE.search(beside) is not None


def _variant(term: Term) -> dict[str, str]:
    """How a generated term stands for the written one (``fp``, the initials of 发票); nothing for a written term."""
    return {"variant": term.variant, "generated": term.normal} if term.variant else {}


def _match(fired: Fired, term: str, span: tuple[int, int] | None, folds: int) -> dict[str, Any]:
    rule = fired.rule
    return {
        "rule_id": rule.id,
        "category": rule.category,
        "term": term,
        "span": span,  # None: a link attached to the message
        "normalisations": fold_names(folds),
        "severity": rule.severity.label,
        "decision": rule.decision.label,
        "weight": round(fired.weight, 2),
        "discounted": fired.discounted,
        "counted": fired.counted,
    }
