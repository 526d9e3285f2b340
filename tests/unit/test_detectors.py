"""Detectors: links, phone numbers, IM ids and ID-card numbers, on normalised text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy import detectors
from streams.policy.detectors import Signal, detect, detect_batch, detect_quiet, domain_of, id_card_valid
from streams.policy.normalize import BOUNDARY, NormalBatch, normalize, normalize_joined

# Computed here independently of the detector (GB 11643).
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def with_check_digit(first17: str) -> str:
    """An ID-card number: 17 digits and their check character (upper-case X, as printed on cards)."""
    assert len(first17) == 17
    assert first17.isdigit()
    return first17 + CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def wrong_check_digit(number: str) -> str:
    """The same number with a check character that does not match."""
    right = number[-1]
    return number[:-1] + next(c for c in "0123456789" if c != right)


def signals(text: str) -> list[tuple[str, str, str | None]]:
    """(kind, matched normalised text, value) for every signal in the normal form of ``text``; the same signals
    are found when the text is in a batch among clean ones."""
    normal = normalize(text)
    found = detect(normal)
    assert detect_batch(NormalBatch(["你好", text, "see you at 7"])) == ({1: found} if found else {})
    return [(s.kind, normal[s.start : s.end], s.value) for s in found]


def of_kind(text: str, kind: str) -> list[tuple[str, str | None]]:
    return [(matched, value) for k, matched, value in signals(text) if k == kind]


# --- links ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "matched", "domain"),
    [
        pytest.param(
            "看这里 https://Example.COM/path?x=1 快", "https://example.com/path?x=1", "example.com", id="https"
        ),
        pytest.param("http://www.bet365.com", "http://www.bet365.com", "bet365.com", id="http-www"),
        pytest.param("https://www.bet365.com:8080/x", "https://www.bet365.com:8080/x", "bet365.com", id="port"),
        pytest.param("www.Spam-Site.net/abc", "www.spam-site.net/abc", "spam-site.net", id="www"),
        pytest.param("WWW.BET365.COM", "www.bet365.com", "bet365.com", id="www-upper-case"),
        pytest.param("去 bet365.com 注册", "bet365.com", "bet365.com", id="bare-domain"),
        pytest.param("shop.taobao.com点击", "shop.taobao.com", "shop.taobao.com", id="bare-subdomain"),
        pytest.param("ＢＥＴ３６５．ＣＯＭ", "bet365.com", "bet365.com", id="full-width-domain"),
        pytest.param("bet365点com", "bet365点com", "bet365.com", id="dian-com"),
        pytest.param("bet365 dot com", "bet365 dot com", "bet365.com", id="space-dot-space-com"),
        pytest.param("bet365dotcom", "bet365dotcom", "bet365.com", id="dotcom"),
        pytest.param("Bet365 DOT Com", "bet365 dot com", "bet365.com", id="dot-com-upper-case"),
        pytest.param("bet365。com", "bet365。com", "bet365.com", id="ideographic-full-stop"),
    ],
)
def test_link_found_with_its_domain(text: str, matched: str, domain: str) -> None:
    assert of_kind(text, "link") == [(matched, domain)]


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        # A URL runs into the Chinese text that follows it: chat rarely puts a space there.
        pytest.param("访问www.bet365.com注册", "bet365.com", id="www-then-han"),
        pytest.param("打开https://bet365.com立即注册", "bet365.com", id="https-then-han"),
        # Full-width punctuation after a URL is ASCII once normalised.
        pytest.param("https://bet365.com，注册", "bet365.com", id="https-then-full-width-comma"),
        # The 点 / dot evasions after www.
        pytest.param("www.bet365点com", "bet365.com", id="www-dian-com"),
        pytest.param("www.bet365 dot com", "bet365.com", id="www-dot-com"),
    ],
)
def test_link_domain_is_the_host_only(text: str, domain: str) -> None:
    assert [value for _, value in of_kind(text, "link")] == [domain]


@pytest.mark.parametrize(
    "text",
    [
        "版本号 v1.2.3",
        "file.txt",
        "node.js",
        "e.g. this",
        "hello, world",
        "https://a",
        "see www.",
        "a.b",
        "the dot com bubble",
    ],
)
def test_no_link(text: str) -> None:
    assert of_kind(text, "link") == []


@pytest.mark.parametrize(
    ("link", "domain"),
    [
        ("https://WWW.Example.COM/path", "example.com"),
        ("http://example.com:8080", "example.com"),
        ("www.example.com.", "example.com"),
        ("  sub.example.org?q=1  ", "sub.example.org"),
        ("example", None),
        ("https://localhost/x", None),
        ("", None),
    ],
)
def test_domain_of(link: str, domain: str | None) -> None:
    assert domain_of(link) == domain


# --- phone numbers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        pytest.param("13800138000", "13800138000", id="plain"),
        pytest.param("电话13800138000。", "13800138000", id="between-han"),
        pytest.param("138-0013-8000", "138-0013-8000", id="dashes"),
        pytest.param("138 0013 8000", "138 0013 8000", id="spaces"),
        pytest.param("+86 138 0013 8000", "86 138 0013 8000", id="plus-86-spaces"),
        pytest.param("8613800138000", "8613800138000", id="86-prefix"),
        pytest.param("１３８００１３８０００", "13800138000", id="full-width-digits"),
        pytest.param("一三八零零一三八零零零", "一三八零零一三八零零零", id="chinese-numerals"),
        pytest.param("幺三八零零幺三八零零零", "幺三八零零幺三八零零零", id="chinese-numerals-yao"),
    ],
)
def test_phone_found_once(text: str, matched: str) -> None:
    assert of_kind(text, "phone") == [(matched, None)]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1380013800", id="10-digits"),
        pytest.param("138001380001", id="12-digits"),
        pytest.param("23800138000", id="not-starting-with-1"),
        pytest.param("12800138000", id="second-digit-2"),
        pytest.param("一三八零零一三八零零", id="10-chinese-numerals"),
        pytest.param("一三八零零一三八零零零零", id="12-chinese-numerals"),
        pytest.param("订单号 913800138000", id="inside-a-longer-number"),
    ],
)
def test_no_phone(text: str) -> None:
    assert of_kind(text, "phone") == []


def test_a_position_is_inside_a_span_from_its_start_to_before_its_end() -> None:
    spans = [(2, 5), (8, 9)]  # one pattern's matches: sorted, disjoint
    assert [at for at in range(11) if detectors._inside(spans, at)] == [2, 3, 4, 8]
    assert not detectors._inside([], 0)


def test_two_phones_in_one_text() -> None:
    assert of_kind("13800138000 或 13912345678", "phone") == [("13800138000", None), ("13912345678", None)]


# --- IM ids -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "matched"),
    [
        pytest.param("加V: abc12345", "wechat_id", "加v: abc12345", id="jia-v"),
        pytest.param("微信：xyz_888a", "wechat_id", "微信xyz_888a", id="weixin-full-width-colon"),  # as 扣扣 below
        pytest.param("vx abc123456", "wechat_id", "vx abc123456", id="vx"),
        pytest.param("WeChat: spam_seller", "wechat_id", "wechat: spam_seller", id="wechat"),
        pytest.param("微信号 abc_12345", "wechat_id", "微信号 abc_12345", id="weixin-hao"),
        pytest.param("WeChat ID: spam_seller", "wechat_id", "wechat id: spam_seller", id="wechat-space-id"),
        pytest.param("QQ 12345678", "qq_id", "qq 12345678", id="qq"),
        pytest.param("扣扣：1234567", "qq_id", "扣扣1234567", id="koukou"),  # the colon between 扣 and 1 goes
        pytest.param("QQ 一九二八三七四六五零", "qq_id", "qq 一九二八三七四六五零", id="qq-in-chinese-numerals"),
        pytest.param("企鹅：②捌3七4⑥", "qq_id", "企鹅2八3七46", id="qq-in-mixed-digit-forms"),
        pytest.param("tg @spam_bot1", "telegram_id", "tg @spam_bot1", id="tg"),
        pytest.param("Telegram: @spam_bot1", "telegram_id", "telegram: @spam_bot1", id="telegram"),
    ],
)
def test_im_id_found(text: str, kind: str, matched: str) -> None:
    assert of_kind(text, kind) == [(matched, None)]


IM_WORDS = {
    "wechat_id": (
        "微信",
        "威信",
        "薇信",
        "徽信",
        "v信",
        "vx",
        "wx",
        "weixin",
        "wechat",
        "加v",
        "加微",
        "卫星",
        "绿泡泡",
    ),
    "qq_id": ("qq", "扣扣", "企鹅", "q群", "qq群", "qq号"),
    "telegram_id": ("telegram", "tg", "飞机", "纸飞机", "飞机号"),
}


@pytest.mark.parametrize(
    ("word", "kind"), [pytest.param(word, kind, id=word) for kind, words in IM_WORDS.items() for word in words]
)
def test_every_word_that_introduces_an_id_names_its_kind(word: str, kind: str) -> None:
    ident = "123456789" if kind == "qq_id" else "spam_seller1"
    assert [s.kind for s in detect(f"请加{word}: {ident} 谢谢")] == [kind]


def test_words_for_two_kinds_may_not_start_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kind of a match is read off its first character.
    monkeypatch.setitem(detectors._IM_IDS, "whatsapp_id", (("wa",), ""))
    with pytest.raises(ValueError, match="start with 'w'"):
        detectors._kinds_by_first_character()


def test_an_id_is_reported_once_as_the_kind_its_word_names() -> None:
    assert [s.kind for s in detect("微信 qq123456")] == ["wechat_id"]  # not also a QQ number 123456


def test_ids_of_every_kind_in_one_text() -> None:
    text = normalize("微信号 abc_12345，QQ 12345678，tg @spam_bot1")
    assert [(s.kind, text[s.start : s.end]) for s in detect(text)] == [
        ("wechat_id", "微信号 abc_12345"),
        ("qq_id", "qq 12345678"),
        ("telegram_id", "tg @spam_bot1"),
    ]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("wx: ab", "wechat_id", id="wechat-too-short"),
        pytest.param("qq 1234", "qq_id", id="qq-too-short"),
        pytest.param("qq 01234567", "qq_id", id="qq-leading-zero"),
        pytest.param("qq群一二三", "qq_id", id="qq-too-few-chinese-numerals"),
        pytest.param("telegram: @abcd", "telegram_id", id="telegram-too-short"),
    ],
)
def test_no_im_id(text: str, kind: str) -> None:
    assert of_kind(text, kind) == []


# --- ID-card numbers --------------------------------------------------------------------------------------------

VALID_ID = with_check_digit("44030419900101123")  # ...3
VALID_ID_X = with_check_digit("11010519491231002")  # ...X


def test_check_digit_helper_agrees_with_published_examples() -> None:
    # The standard's own example number, and a made-up one ending in X.
    assert with_check_digit("11010519491231002") == "11010519491231002X"
    assert VALID_ID == "440304199001011233"


@pytest.mark.parametrize("number", [VALID_ID, VALID_ID_X.lower()])
def test_id_card_valid_accepts_valid_numbers(number: str) -> None:
    assert id_card_valid(number)


@pytest.mark.parametrize(
    "number",
    [
        wrong_check_digit(VALID_ID),
        VALID_ID_X,  # id_card_valid takes normalised text: 'x' lower-case
        VALID_ID[:-1],
        VALID_ID + "1",
        "4403041990010112a3",
        "",
    ],
)
def test_id_card_valid_refuses_invalid_numbers(number: str) -> None:
    assert not id_card_valid(number)


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        pytest.param(f"我的身份证{VALID_ID}", VALID_ID, id="digit-check"),
        pytest.param(f"身份证 {VALID_ID_X}", VALID_ID_X.lower(), id="upper-x"),
        pytest.param(f"身份证 {VALID_ID_X.lower()}", VALID_ID_X.lower(), id="lower-x"),
        pytest.param(
            "ｉｄ " + VALID_ID_X.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")),
            VALID_ID_X.lower(),
            id="full-width",
        ),
    ],
)
def test_valid_id_card_found(text: str, matched: str) -> None:
    assert of_kind(text, "id_card") == [(matched, None)]
    assert of_kind(text, "phone") == []


def test_id_card_with_wrong_check_digit_refused() -> None:
    assert of_kind(f"身份证{wrong_check_digit(VALID_ID)}", "id_card") == []


def test_id_card_with_impossible_month_refused() -> None:
    impossible = with_check_digit("11010519491331002")  # month 13, check digit right
    assert id_card_valid(impossible.lower())  # the checksum alone would pass...
    assert of_kind(f"身份证{impossible}", "id_card") == []  # ...the date does not


def test_id_card_inside_a_longer_number_refused() -> None:
    assert of_kind(f"单号9{VALID_ID}", "id_card") == []
    assert of_kind(f"单号{VALID_ID}5", "id_card") == []


# --- all together -----------------------------------------------------------------------------------------------


def test_signals_in_text_order_with_offsets() -> None:
    normal = normalize("加V: abc12345 电话 13800138000 网址 bet365点com")
    assert normal == "加v: abc12345电话13800138000网址 bet365点com"  # separators between digits and Chinese go
    assert detect(normal) == [
        Signal("wechat_id", 0, 12),
        Signal("phone", 14, 25),
        Signal("link", 28, 38, "bet365.com"),
    ]


# The name before a top-level domain, as a regex searching forwards defines it.
_NAME_BEFORE = re.compile(r"(?:https?://)?[a-z0-9](?:[a-z0-9.-]*[a-z0-9])? ?$")


@settings(max_examples=1000, deadline=None)
@given(st.text("ab9.-: /\nhtps你", max_size=30), st.integers(0, 300), st.sampled_from([0, 1, 2, 250, 260]))
def test_the_name_before_a_domain_is_the_one_a_regex_finds(text: str, padding: int, cut: int) -> None:
    normal = "x" * padding + text
    for end in (len(normal), max(0, len(normal) - cut)):
        reference = _NAME_BEFORE.search(normal, max(0, end - 253), end)
        expected = (reference.start(), reference.group().strip()) if reference else None
        assert detectors._name_before(normal, end) == expected


def test_clean_text_has_no_signals() -> None:
    assert detect(normalize("今天天气不错，一起吃饭吧 see you at 7")) == []


# Pieces of what the detectors look for, and of what comes near it.
_PIECES = [
    *("加v", "微信", "wechat", "vx", "qq", "扣扣", "tg", "telegram", "飞机", "号", "id", ":", "：", "@", "_"),
    *("abc_def12", "name_12", "123456", "13800138000", "一三八零零一三八零零零", "8", "6", "1", "-", " ", "x"),
    *("bet365", "点", ".", "。", "com", ".net", "cn", "dot", "www.", "http://", "https://", "/a?b=1", "games"),
    *("110105194912310029", "你好", "看", "ok"),
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join), min_size=1, max_size=6))
def test_a_batch_finds_what_each_of_its_texts_holds(texts: list[str]) -> None:
    # Texts that hold none of the words or numerals every match needs are not searched: none of them is missed.
    normals = normalize_joined(texts).split(BOUNDARY)
    expected = {index: found for index, normal in enumerate(normals) if (found := detect(normal))}
    assert detect_batch(NormalBatch(texts)) == expected


# --- the signals combinations name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        pytest.param("mail me: deals@promo-mail.co.uk today", "email", "deals@promo-mail.co.uk", id="email"),
        pytest.param("call +44 7700 900123 now", "intl_phone", "+44 7700 900123", id="intl-plus"),
        pytest.param("ring 001 415 555 0199 asap", "intl_phone", "001 415 555 0199", id="intl-00"),
        pytest.param("To claim call 09061701461.", "premium_phone", "09061701461", id="uk-09"),
        pytest.param("dial 1-900-555-0199 for more", "premium_phone", "1-900-555-0199", id="us-900"),
        pytest.param(
            "usdt到 0x52908400098527886e0f7030069857d2e4169ee7 即可",
            "wallet",
            "0x52908400098527886e0f7030069857d2e4169ee7",
            id="eth",
        ),
        pytest.param(
            "btc: bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "wallet",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            id="bech32",
        ),
    ],
)
def test_the_signals_a_combination_may_name(text: str, kind: str, found: str) -> None:
    normal = normalize(text)
    assert [normal[s.start : s.end] for s in detect(normal) if s.kind == kind] == [found]


def test_a_mainland_number_with_86_is_a_phone_not_an_international_one() -> None:
    normal = normalize("+86 138 0013 8000")
    assert [s.kind for s in detect(normal)] == ["phone"]


def test_an_e_mail_address_is_not_a_link_too() -> None:
    normal = normalize("write to bob@example.com")
    assert [s.kind for s in detect(normal)] == ["email"]


@pytest.mark.parametrize(
    ("text", "matched", "domain"),
    [
        pytest.param("see bit.ly/3xYz9 now", "bit.ly/3xyz9", "bit.ly", id="bit.ly"),
        pytest.param("goo.gl/abc", "goo.gl/abc", "goo.gl", id="goo.gl"),
        pytest.param("领取: is.gd/q1", "is.gd/q1", "is.gd", id="is.gd"),
        pytest.param("cutt.ly/win", "cutt.ly/win", "cutt.ly", id="cutt.ly"),
        pytest.param("rb.gy/x7", "rb.gy/x7", "rb.gy", id="rb.gy"),
        pytest.param("t.co/xyz", "t.co", "t.co", id="t.co"),
        pytest.param("t.cn/A6xyz", "t.cn", "t.cn", id="t.cn"),
        pytest.param("tinyurl.com/x", "tinyurl.com", "tinyurl.com", id="tinyurl"),
        pytest.param("url.cn/x", "url.cn", "url.cn", id="url.cn"),
        pytest.param("dwz.cn/x", "dwz.cn", "dwz.cn", id="dwz.cn"),
    ],
)
def test_a_short_link_without_a_scheme_is_a_link(text: str, matched: str, domain: str) -> None:
    assert of_kind(text, "link") == [(matched, domain)]
    in_batch = detect_batch(NormalBatch(["nothing here", text]))  # the batch's screen lets its text through
    assert [(s.kind, s.value) for s in in_batch[1]] == [("link", domain)]


@pytest.mark.parametrize("text", ["was.it/ok", "bit.ly", "she said so.it/was"])
def test_a_rare_top_level_domain_is_a_link_only_as_a_known_short_link(text: str) -> None:
    assert of_kind(text, "link") == []


@pytest.mark.parametrize(
    "text",
    ["false neg 34 3.09090909091", "ratio 2.13800138000", "3.0870 123 4567"],
)
def test_a_number_after_a_decimal_point_is_no_phone(text: str) -> None:
    normal = normalize(text)
    assert [s.kind for s in detect(normal)] == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("> From: fork-admin@xent.com\n> Sent: Monday", id="quoted-header"),
        pytest.param("bmn> To: Bob <bob@example.com>", id="quoted-header-with-initials"),
        pytest.param("Quoting cout@eircom.net (cout@eircom.net):", id="quoting"),
        pytest.param("On Sat, Tom <tom@example.com> wrote:", id="attribution"),
        pytest.param("R. A. Hettinga <mailto: rah@ibuc.com>", id="mailto"),
        pytest.param("RPM-List mailing list <RPM-List@freshrpms.net>", id="list-address"),
        pytest.param("bounced: postmaster@example.org", id="postmaster"),
    ],
)
def test_mail_machinery_addresses_are_not_contacts_nor_links(text: str) -> None:
    normal = normalize(text)
    assert [s.kind for s in detect(normal) if s.kind in {"email", "link"}] == []


def test_an_address_to_write_to_is_a_contact_even_after_from() -> None:
    normal = normalize("From now on write to bob@example.com, or to: alice@example.org")
    assert [normal[s.start : s.end] for s in detect(normal)] == ["bob@example.com", "alice@example.org"]


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        pytest.param("Txt WIN to 87121 now", "shortcode", ["87121"], id="shortcode"),
        pytest.param("回复1到10086", "shortcode", ["10086"], id="shortcode-zh"),
        pytest.param("Text MQUIZ to 82277.", "shortcode", ["82277"], id="shortcode-ends-a-sentence"),
        pytest.param("send it to 82277.5 people", "shortcode", [], id="not-a-decimal"),
        pytest.param("meet me at 10:30 near gate 12345", "shortcode", [], id="no-verb-no-shortcode"),
        pytest.param(
            "¥500 or 500元 or $1,000 or £900 or 150p", "money", ["¥500", "500元", "$1,000", "£900", "150p"], id="money"
        ),
        pytest.param("伍佰块", "money", ["五百块"], id="money-numerals"),
        pytest.param("转发十个群", "number", ["十"], id="number-numerals"),
    ],
)
def test_quiet_signals_are_found_only_when_asked(text: str, kind: str, found: list[str]) -> None:
    normal = normalize(text)
    assert [s.kind for s in detect(normal)] == []  # never reported alone
    assert [normal[s.start : s.end] for s in detect_quiet(normal) if s.kind == kind] == found
