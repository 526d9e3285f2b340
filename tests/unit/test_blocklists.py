"""Domain blocklists: third-party formats read as published, a listed domain blocks its subdomains, errors refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from conftest import MANIFEST, header, write_pack

from streams.policy import classify as classify_module
from streams.policy.classify import Classifier
from streams.policy.rules import Decision, RulePack, RulePackError, Severity, load_pack, parse_domain_line
from streams.records import parse_message

SCAM = header("scam") + "\nrule task-rebate\n  刷单返利\n"
GAMBLING = header("gambling", severity="medium", decision="review") + "\nrule casino\n  在线赌场\n"


def pack_with(tmp_path: Path, lists: dict[str, str], entries: str) -> Path:
    write_pack(tmp_path, {"scam": SCAM, "gambling": GAMBLING}, manifest=MANIFEST + entries)
    for name, text in lists.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def entry(file: str, rule: str, extra: str = "") -> str:
    return f'\n[[blocklist]]\nfile = "{file}"\nrule = "{rule}"\n{extra}'


@pytest.mark.parametrize(
    ("line", "domain"),
    [
        pytest.param("evil.example", "evil.example", id="plain"),
        pytest.param("  Evil.Example.  ", "evil.example", id="case-and-trailing-dot"),
        pytest.param("*.evil.example", "evil.example", id="wildcard"),
        pytest.param("www.evil.example", "evil.example", id="www"),
        pytest.param("https://evil.example:8443/login?x=1", "evil.example", id="url"),
        pytest.param("0.0.0.0 evil.example", "evil.example", id="hosts"),
        pytest.param("127.0.0.1\tevil.example # ads", "evil.example", id="hosts-tab-comment"),
        pytest.param("||evil.example^", "evil.example", id="adblock"),
        pytest.param("||evil.example^$third-party", "evil.example", id="adblock-options"),
        pytest.param("诈骗.中国", "诈骗.中国".encode("idna").decode(), id="idn-as-punycode"),
        pytest.param("", None, id="blank"),
        pytest.param("# a comment", None, id="comment"),
        pytest.param("! Title: a list", None, id="adblock-comment"),
        pytest.param("[Adblock Plus 2.0]", None, id="adblock-header"),
        pytest.param("127.0.0.1 localhost", None, id="hosts-localhost"),
        pytest.param("0.0.0.0 0.0.0.0", None, id="hosts-self"),
    ],
)
def test_a_line_in_any_common_format(line: str, domain: str | None) -> None:
    assert parse_domain_line(line) == domain


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("evil", id="no-dot"),
        pytest.param("evil..example", id="empty-label"),
        pytest.param("-evil.example", id="leading-hyphen"),
        pytest.param("evil.example extra words", id="words"),
        pytest.param("@@||good.example^", id="adblock-exception"),
        pytest.param("example.com##.banner", id="adblock-cosmetic"),
    ],
)
def test_a_line_that_is_not_a_domain_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_domain_line(line)


def test_a_pack_reads_each_list_with_its_rule(tmp_path: Path) -> None:
    lists = {"lists/phish.hosts": "# hosts\n0.0.0.0 phish.example\n", "lists/casino.txt": "||casino.example^\n"}
    entries = entry("lists/phish.hosts", "scam.phishing-domain") + entry(
        "lists/casino.txt", "gambling.casino-domain", 'severity = "high"\ndecision = "block"\n'
    )
    pack = load_pack(pack_with(tmp_path, lists, entries))
    phish, casino = pack.domains["phish.example"], pack.domains["casino.example"]
    assert (phish.id, phish.category, phish.severity, phish.decision) == (
        "scam.phishing-domain",
        "scam",
        Severity.HIGH,  # the category's
        Decision.BLOCK,
    )
    assert (casino.id, casino.severity, casino.decision) == ("gambling.casino-domain", Severity.HIGH, Decision.BLOCK)
    assert {"scam.phishing-domain", "gambling.casino-domain"} <= pack.ids()


def test_a_listed_domain_blocks_its_subdomains_only(tmp_path: Path) -> None:
    pack = load_pack(pack_with(tmp_path, {"l.txt": "evil.example\n"}, entry("l.txt", "scam.bad-domain")))
    assert pack.blocked("evil.example") == ("evil.example", pack.domains["evil.example"])
    assert pack.blocked("a.b.evil.example") == ("evil.example", pack.domains["evil.example"])
    assert pack.blocked("notevil.example") is None
    assert pack.blocked("evil.example.org") is None


def test_the_version_changes_with_a_list(tmp_path: Path) -> None:
    directory = pack_with(tmp_path, {"l.txt": "evil.example\n"}, entry("l.txt", "scam.bad-domain"))
    before = load_pack(directory).version
    (directory / "l.txt").write_text("evil.example\nworse.example\n", encoding="utf-8")
    assert load_pack(directory).version != before


@pytest.mark.parametrize(
    ("lists", "entries", "error"),
    [
        pytest.param({}, entry("missing.txt", "scam.x"), "missing.txt is missing", id="missing-file"),
        pytest.param(
            {"l.txt": "ok.example\nnot a domain\n"}, entry("l.txt", "scam.x"), "l.txt:2: not a", id="bad-line"
        ),
        pytest.param({"l.txt": "a.example\n"}, entry("l.txt", "weapons.x"), "of a category in the pack", id="category"),
        pytest.param({"l.txt": "a.example\n"}, entry("l.txt", "scam"), "<category>.<name>", id="no-name"),
        pytest.param({"l.txt": "a.example\n"}, '\n[[blocklist]]\nrule = "scam.x"\n', "needs file", id="no-file"),
        pytest.param(
            {"l.txt": "a.example\n"}, entry("l.txt", "scam.x", 'severity = "dire"\n'), "severity", id="severity"
        ),
    ],
)
def test_a_broken_blocklist_refuses_the_pack(tmp_path: Path, lists: dict[str, str], entries: str, error: str) -> None:
    with pytest.raises(RulePackError, match=error.replace(".", r"\.").replace("<", "<")):
        load_pack(pack_with(tmp_path, lists, entries))


def verdict(pack: RulePack, text: str, links: list[str] | None = None) -> dict:
    doc = {"message_id": "m1", "group_id": "g", "sender_id": "u", "sent_at": 1, "text": text}
    return Classifier(pack).classify(parse_message(orjson.dumps(doc | ({"links": links} if links else {}))), 0)


def test_a_link_to_a_listed_domain_is_a_match_explained_by_its_span(tmp_path: Path) -> None:
    pack = load_pack(pack_with(tmp_path, {"l.txt": "evil.example\n"}, entry("l.txt", "scam.bad-domain")))
    text = "点这里 https://ｗｗｗ.login.evil.example/x"
    found = verdict(pack, text)
    assert found["decision"] == "block"
    [match] = found["matches"]
    assert (match["rule_id"], match["term"], match["category"]) == ("scam.bad-domain", "evil.example", "scam")
    start, end = match["span"]
    assert text[start:end].startswith("https://")
    assert "width" in match["normalisations"]  # the full-width www had to be folded


def test_an_attached_link_to_a_listed_domain_blocks_without_a_span(tmp_path: Path) -> None:
    pack = load_pack(pack_with(tmp_path, {"l.txt": "||evil.example^\n"}, entry("l.txt", "scam.bad-domain")))
    found = verdict(pack, "看看这个", links=["https://evil.example/card"])
    assert found["decision"] == "block"
    assert [(m["rule_id"], m["span"]) for m in found["matches"]] == [("scam.bad-domain", None)]
    assert verdict(pack, "看看这个", links=["https://fine.example/"])["decision"] == "allow"


def test_the_shipped_pack_blocks_the_demo_domains() -> None:
    pack = load_pack(Path(__file__).resolve().parents[2] / "rules")
    assert pack.blocked("hongbao.example") is not None
    assert verdict(pack, "领取 http://hongbao.example/")["decision"] == "block"


def test_a_campaign_domain_blocks_until_lifted(tmp_path: Path) -> None:
    pack = load_pack(pack_with(tmp_path, {}, ""))
    classifier = Classifier(pack)
    doc = {"message_id": "m1", "group_id": "g", "sender_id": "u", "sent_at": 1, "text": "看 http://x.spread.example/"}
    message = parse_message(orjson.dumps(doc))
    assert classifier.classify(message, 0)["decision"] == "allow"

    assert not classifier.block_campaign("spread.example", ["unknown-category"])  # not in this pack: nothing to cite
    assert classifier.block_campaign("spread.example", ["unknown-category", "gambling"])
    found = classifier.classify(message, 0)
    assert found["decision"] == "block"  # a campaign blocks, whatever the category's own decision (review here)
    assert [(m["rule_id"], m["term"], m["severity"]) for m in found["matches"]] == [
        ("gambling.campaign-domain", "spread.example", "medium")
    ]
    classifier.lift_campaign("spread.example")
    assert classifier.classify(message, 0)["decision"] == "allow"


def test_the_domains_a_classifier_remembers_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classify_module, "_DOMAINS_REMEMBERED", 3)  # links in chat are anyone's to choose
    pack = load_pack(pack_with(tmp_path, {"l.txt": "||evil.example^\n"}, entry("l.txt", "scam.bad-domain")))
    classifier = Classifier(pack)

    def decision(text: str) -> str:
        doc = {"message_id": "m", "group_id": "g", "sender_id": "u", "sent_at": 1, "text": text}
        return str(classifier.classify(parse_message(orjson.dumps(doc)), 0)["decision"])

    for n in range(10):
        assert decision(f"看 http://d{n}.example/") == "allow"
        assert len(classifier._blocked_domains) <= 3
    assert decision("看 http://x.evil.example/") == "block"


def test_blacklist_records_block_and_lift_campaign_domains(tmp_path: Path) -> None:
    classifier = Classifier(load_pack(pack_with(tmp_path, {}, "")))
    entry = orjson.dumps({"key": "link:spread.example", "categories": ["gambling"]})
    assert classifier.follow_blacklist(b"user:u1", entry) is None  # users and groups are not domains
    assert classifier.follow_blacklist(b"link:bad.example", b"{not json") == (
        "blacklist entry for bad.example is not JSON; ignored"
    )
    assert classifier.follow_blacklist(b"link:spread.example", entry) == "campaign domain spread.example blocked"
    assert classifier.campaigns() == {"spread.example"}
    assert (
        classifier.follow_blacklist(b"link:spread.example", None) == "campaign domain spread.example no longer blocked"
    )
    assert classifier.campaigns() == frozenset()
