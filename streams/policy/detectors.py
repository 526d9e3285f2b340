"""Detectors for what keyword lists cannot enumerate: links, phone numbers, IM ids and ID-card numbers.

They run on normalised text (full-width digits and dots are already ASCII), one text or a whole joined batch.
Every pattern starts with a literal or a character class, never an alternation or a lookbehind, so the regex
engine can skip ahead quickly over the text that holds nothing: most chat. In a batch they search only the texts
that hold what every match needs (``detect_batch``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray

from streams.policy.compiled import compiled
from streams.policy.normalize import BOUNDARY_CODE, NormalBatch
from streams.policy.prefilter import Prefilter

_TLDS = (
    "com|net|org|cn|top|xyz|vip|cc|io|me|info|shop|club|app|link|site|online|live|bet|win|tk|ml|ga|cf|gq|ru|co|tv|"
    "hk|tw|biz|pro|fun|icu|cyou|asia|mobi|store|tech|work|life|one|ltd|loan|casino|games?"
)
# A URL runs on while its characters are ones a URL may hold (commas excepted: in chat they end the link).
_URL = re.compile(r"(?:https?://|www\.)[a-z0-9\-._~:/?#@!$&*+;=%]+")
# Bare domains are found by their top-level domain, also written with 点 or "dot" ("bet365点com"); the name
# before it is then read backwards (``_name_before``).
_TLD_DOT = re.compile(rf"[.点。]({_TLDS})(?![a-z0-9-])")
_TLD_WORD = re.compile(rf"dot ?({_TLDS})(?![a-z0-9-])")
_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789.-"
_LONGEST_NAME = 253
# "bet365 dot com" is an evasion, "the dot com bubble" is English: a spelled-out dot needs a name with a digit,
# a hyphen or a dot.
_NAME_NOT_A_WORD = re.compile(r"[0-9.-]")
_HOST = re.compile(r"^(?:https?://)?([^/:?#\s]+)")
# Link shorteners under top-level domains too rare in chat to be read as links on their own ("bit.ly/abc" is a
# link, "was.it" is a typo): a short link is one of these hosts followed by a path.
_SHORTENERS = frozenset(
    {
        "bit.ly",
        "ow.ly",
        "cutt.ly",
        "rebrand.ly",
        "buff.ly",
        "adf.ly",
        "goo.gl",
        "is.gd",
        "v.gd",
        "rb.gy",
        "shorturl.at",
        "s.id",
        "lnkd.in",
        "dlvr.it",
        "mcaf.ee",
        "bl.ink",
    }
)
_SHORT_TLD = re.compile(r"[.](ly|gl|gd|gy|at|id|in|it|ee|ink)/[a-z0-9_-]+")

# Mainland mobile numbers: 11 digits from 13x-19x, optionally +86, with spaces or dashes; also spelled out in
# Chinese numerals (一三八...), a common way around digit filters.
_PHONE = re.compile(r"1(?<![0-9]1)(?<![0-9][.,]1)[3-9][0-9](?:[ -]?[0-9]){8}(?![0-9])")
_PHONE_86 = re.compile(r"86(?<![0-9]86)[ -]?1[3-9][0-9](?:[ -]?[0-9]){8}(?![0-9])")
_NUMERAL_CHARACTERS = "0123456789〇零一幺二两三四五六七八九"
_NUMERALS = "0-9〇零一幺二两三四五六七八九"
_PHONE_SPELLED = re.compile(
    rf"[1一幺](?<![{_NUMERALS}][1一幺])(?<![0-9][.,]1)[3-9三四五六七八九][{_NUMERALS}]{{9}}(?![{_NUMERALS}])"
)

# IM ids: the words that introduce one, and what follows them up to the id's end. The three run as one pattern,
# each alternative a literal word, so the regex engine skips ahead on their first characters; the word's first
# character then tells the kind. An id is reported once, as the kind its word names: "微信 qq123456" is a WeChat id.
_IM_IDS = {
    "wechat_id": (
        ("微信", "威信", "薇信", "徽信", "v信", "vx", "wx", "weixin", "wechat", "加v", "加微", "卫星", "绿泡泡"),
        r"\s*(?:号|id)?\s*[:：]?\s*[a-z][a-z0-9_-]{5,19}(?![a-z0-9_-])",
    ),
    # A QQ number, in digits or spelled out in Chinese numerals (一九二八三七四六五零), as phone numbers are.
    "qq_id": (
        ("qq", "扣扣", "企鹅", "q群"),
        rf"(?:号|群)?\s*[:：]?\s*[1-9一幺二两三四五六七八九][{_NUMERALS}]{{4,11}}(?![{_NUMERALS}])",
    ),
    "telegram_id": (("telegram", "tg", "飞机", "纸飞机"), r"号?\s*[:：]?\s*@?[a-z][a-z0-9_]{4,31}(?![a-z0-9_])"),
}
_IM_ID = re.compile("|".join(word + tail for words, tail in _IM_IDS.values() for word in words))


def _kinds_by_first_character() -> dict[str, str]:
    """The kind of id each word introduces, by the word's first character: the words must tell it by that alone."""
    kinds: dict[str, str] = {}
    for kind, (words, _) in _IM_IDS.items():
        for word in words:
            if kinds.setdefault(word[0], kind) != kind:
                raise ValueError(f"words for two kinds of IM id start with {word[0]!r}")
    return kinds


_IM_KIND = _kinds_by_first_character()

_ID_CARD = re.compile(
    r"[1-9](?<![0-9][1-9])[0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9x](?![0-9a-z])",
)
_EMAIL = re.compile(r"[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?![a-z0-9-])")
# Addresses that are mail's own machinery, not a way to reach whoever wrote: a quoted or forwarded header line
# ("> From: ...", "Sent: ..."), an attribution ("... <a@b.c> wrote:"), a mailto: link, and the addresses of
# mailing lists and mail servers in their footers and bounces.
_HEADER_LINE = re.compile(r"(?:[a-z]{0,8}>|[\s>|])*(?:(?:from|to|cc|reply-to|sender|sent|return-path) ?:|quoting )")
_MACHINE_MAILBOX = re.compile(
    r"(?:postmaster|mailer-daemon|majordomo|listserv|owner-.*|.*-(?:admin|request|owner|bounces|list|users|devel"
    r"|announce|discuss))@"
)
_ATTRIBUTION = ("wrote:", "writes:", "said:")
# International numbers, +86 excepted (a mainland mobile is a phone): "+44 7700 900123", "001 415 555 0199".
_INTL_PHONE = re.compile(r"(?:\+|00)(?<![0-9]00)(?!86)[1-9][0-9]{0,2}[ -]?(?:[0-9][ -]?){6,11}[0-9](?![0-9])")
# Premium-rate lines: UK 09xx and 087x, North American 1-900 and 976. Neither they nor mobiles follow a decimal
# point: "3.09090909091" is a fraction.
_PREMIUM_PHONE = re.compile(
    r"0(?<![0-9]0)(?<![0-9][.,]0)(?:9[0-9]{2}|87[0-9])[ -]?[0-9]{3}[ -]?[0-9]{3,4}(?![0-9])"
    r"|1(?<![0-9]1)[ -]?(?:900|976)[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])"
)
# An SMS short code: 4-6 digits that a "text/send/reply ... to" points at ("txt WIN to 87121", "回复1到10086").
_SHORTCODE = re.compile(r"(?:to|on|至|到)\s?([0-9]{4,6})(?![0-9]|[.,][0-9])")  # "to 82277." ends a sentence
_SHORTCODE_VERB = re.compile(r"(?:txt|text|sms|send|reply|call|ring|dial|发送|回复|编辑|短信)")
_SHORTCODE_REACH = 40
# Crypto wallets: Ethereum-style hex, Bitcoin bech32 and base58, Tron (read lower-case, as normal text is).
_WALLET = re.compile(
    r"0x[0-9a-f]{40}(?![0-9a-z])|bc1[02-9ac-hj-np-z]{25,59}(?![0-9a-z])"
    r"|[13t](?<![0-9a-z][13t])(?=[a-z0-9]*[0-9])(?=[a-z0-9]*[a-z][a-z0-9]*[a-z])[1-9a-z]{25,34}(?![0-9a-z])"
)
# Amounts of money and numbers, read as the rule pack's {price} and {n} slots read them.
MONEY_PATTERN = (
    r"(?:(?:[$¥£€]|rmb|usd|us\$|hk\$) ?[0-9][0-9,]*(?:\.[0-9]+)?(?:k|m|w|万)?"
    r"|[0-9][0-9,]*(?:\.[0-9]+)? ?"
    r"(?:元|块|圆|美元|美金|万元|万|(?:rmb|usd|dollars?|bucks|pounds?|euros?|gbp|eur|pence|p|k|w)(?![a-z]))"
    r"|[一二两三四五六七八九十百千万]+(?:元|块))"
)
NUMBER_PATTERN = (
    r"(?:[0-9]+(?:[.,][0-9]+)*(?:st|nd|rd|th|k|w)?|[〇零一二两三四五六七八九十百千万几]+"
    r"|(?<![a-z])(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty"
    r"|hundred|thousand)(?![a-z]))"
)
_MONEY = re.compile(MONEY_PATTERN)
_NUMBER = re.compile(NUMBER_PATTERN)
# Signals that count only where a rule's combination names them: alone they are everyday chat.
QUIET = frozenset({"money", "number", "shortcode"})

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10x98765432"


@dataclass(frozen=True, slots=True)
class Signal:
    """Something found in the text; ``value`` is only kept where other services need it (link domains)."""

    kind: str  # link | phone | intl_phone | premium_phone | shortcode | email | wechat_id | qq_id | telegram_id |
    # wallet | id_card | money | number
    start: int  # offsets into the normalised text
    end: int
    value: str | None = None


def id_card_valid(number: str) -> bool:
    """The GB 11643 checksum of an 18-character mainland ID-card number (``x`` lower-case)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17]


def domain_of(link: str) -> str | None:
    """The host of a URL or bare domain, lower-case, without ``www.``."""
    m = _HOST.match(link.strip().lower())
    host = m.group(1).rstrip(".").removeprefix("www.") if m else ""
    return host if "." in host else None


def _name_before(normal: str, end: int) -> tuple[int, str] | None:
    """The domain name that ends at ``end`` or one space before it, and where it starts: letters, digits, dots and
    hyphens, first and last a letter or digit, at most 253 characters, after "http://" or "https://" if those come
    right before it. Read backwards with string methods: a regex searching forwards tries every start in reach."""
    low = max(0, end - _LONGEST_NAME)
    for before in "\n ":  # between name and end, as a regex's " ?$" allows: a space, a line break, or both
        if end > low and normal[end - 1] == before:
            end -= 1
    head = normal[low:end]
    name = head[len(head.rstrip(_NAME_CHARACTERS)) :].lstrip(".-")
    if not name or name[-1] in ".-":
        return None
    start = end - len(name)
    for scheme in ("https://", "http://"):
        if normal.startswith(scheme, max(low, start - len(scheme)), start):
            return start - len(scheme), f"{scheme}{name}"
    return start, name


def _inside(spans: list[tuple[int, int]], at: int) -> bool:
    """Whether ``at`` falls in one of ``spans``, one pattern's matches: sorted and disjoint. A joined batch may
    hold thousands of them."""
    index = bisect_right(spans, at, key=itemgetter(0)) - 1
    return index >= 0 and at < spans[index][1]


def _mail_machinery(normal: str, start: int, end: int) -> bool:
    """Whether the e-mail address at ``start:end`` is a header's, an attribution's, a mailto: link's or a mailing
    list's (``_HEADER_LINE``): mail carries them in every reply and footer."""
    line_start = normal.rfind("\n", 0, start) + 1
    line_end = normal.find("\n", end)
    before, after = normal[line_start:start], normal[end : None if line_end < 0 else line_end]
    return (
        _HEADER_LINE.match(before) is not None
        or before.endswith(("mailto:", "mailto: "))
        or any(word in after for word in _ATTRIBUTION)
        or _MACHINE_MAILBOX.match(normal, start, end) is not None
    )


def detect(normal: str) -> list[Signal]:
    """Every signal in normalised text but the quiet ones (``detect_quiet``), in text order."""
    signals: list[Signal] = []
    found_emails = [m.span() for m in _EMAIL.finditer(normal)]
    emails = [span for span in found_emails if not _mail_machinery(normal, *span)]
    signals.extend(Signal("email", start, end) for start, end in emails)
    urls = []
    for m in _URL.finditer(normal):
        if domain := domain_of(m.group()):
            signals.append(Signal("link", m.start(), m.end(), domain))
            urls.append(m.span())
    for pattern in (_TLD_DOT, _TLD_WORD):
        for m in pattern.finditer(normal):
            if _inside(urls, m.start()) or _inside(found_emails, m.start()):
                continue  # part of a URL or an e-mail address already found
            found = _name_before(normal, m.start())
            if not found or _inside(urls, found[0]):
                continue
            start, name = found
            if pattern is _TLD_WORD and not _NAME_NOT_A_WORD.search(name):
                continue
            if domain := domain_of(f"{name}.{m.group(1)}"):
                signals.append(Signal("link", start, m.end(), domain))
    for m in _SHORT_TLD.finditer(normal):
        found = _name_before(normal, m.start())
        if found and not _inside(urls, m.start()) and (domain := f"{found[1]}.{m.group(1)}") in _SHORTENERS:
            signals.append(Signal("link", found[0], m.end(), domain))
    phones: list[list[tuple[int, int]]] = []  # per pattern: a number the one before found is not found again
    for pattern in (_PHONE_86, _PHONE, _PHONE_SPELLED):
        phones.append(
            [m.span() for m in pattern.finditer(normal) if not any(_inside(found, m.start()) for found in phones)]
        )
    signals.extend(Signal("phone", start, end) for found in phones for start, end in found)
    taken = sorted(span for found in phones for span in found)
    for kind, pattern in (("premium_phone", _PREMIUM_PHONE), ("intl_phone", _INTL_PHONE)):
        spans = [m.span() for m in pattern.finditer(normal) if not _inside(taken, m.start())]
        signals.extend(Signal(kind, start, end) for start, end in spans)
        taken = sorted(taken + spans)
    signals.extend(Signal("wallet", *m.span()) for m in _WALLET.finditer(normal))
    signals.extend(Signal("id_card", m.start(), m.end()) for m in _ID_CARD.finditer(normal) if id_card_valid(m.group()))
    signals.extend(Signal(_IM_KIND[normal[m.start()]], m.start(), m.end()) for m in _IM_ID.finditer(normal))
    signals.sort(key=lambda s: (s.start, s.end))
    return signals


def detect_quiet(normal: str) -> list[Signal]:
    """The quiet signals of normalised text (``QUIET``): searched only in the texts where a combination needs them."""
    signals = [
        Signal("shortcode", *m.span(1))
        for m in _SHORTCODE.finditer(normal)
        if _SHORTCODE_VERB.search(normal, max(0, m.start() - _SHORTCODE_REACH), m.start())
    ]
    signals.extend(Signal("money", *m.span()) for m in _MONEY.finditer(normal))
    signals.extend(Signal("number", *m.span()) for m in _NUMBER.finditer(normal))
    return signals


# What every match holds: a phone or ID-card number eleven of _NUMERAL_CHARACTERS (at least), a link or IM id one
# of these words.
_FEWEST_NUMERALS = 11
_TLD_NAMES = [tld.removesuffix("s?") for tld in _TLDS.split("|")]  # "games?" -> "game"


@cache
def _signal_words() -> Prefilter:
    """Where a word begins that a link or IM id needs: a URL's start, a top-level domain after its dot, or the
    word that introduces an IM id."""
    tlds = [f"{dot}{tld}" for dot in ".点。" for tld in _TLD_NAMES]
    im_words = (word for words, _ in _IM_IDS.values() for word in words)
    return Prefilter(["http", "www.", "dot", "0x", "bc1", *tlds, *im_words, *_SHORTENERS])


@cache
def _numeral_table() -> NDArray[np.bool_]:
    table = np.zeros(max(map(ord, _NUMERAL_CHARACTERS)) + 1, dtype=np.bool_)
    table[[ord(c) for c in _NUMERAL_CHARACTERS]] = True
    return table


@compiled
def _texts_with_numerals(codes: NDArray[np.uint32], numerals: NDArray[np.bool_], fewest: int) -> NDArray[np.intp]:
    """The indices of the texts (joined by BOUNDARY) that hold at least ``fewest`` numerals."""
    found = np.empty(codes.size + 1, dtype=np.intp)
    count = text = seen = 0
    for code in codes:
        if code == BOUNDARY_CODE:
            text += 1
            seen = 0
        elif code < numerals.size and numerals[code]:
            seen += 1
            if seen == fewest:
                found[count] = text
                count += 1
    return found[:count]


def detect_batch(batch: NormalBatch) -> dict[int, list[Signal]]:
    """Signals per text of a batch: text index -> signals with offsets into that text's normal form. Only the texts
    that hold a link's or IM id's word or eleven numerals are searched, joined again: most chat holds none, and
    compiled passes find them sooner than the patterns would."""
    numerous = _texts_with_numerals(batch.codes, _numeral_table(), _FEWEST_NUMERALS).tolist()
    chosen = sorted({*_signal_words().texts(batch.codes), *numerous})
    picked, starts = batch.pick(chosen)
    found: dict[int, list[Signal]] = {}
    for signal in detect(picked) if chosen else ():
        index = bisect_right(starts, signal.start) - 1
        base = starts[index]
        found.setdefault(chosen[index], []).append(
            Signal(signal.kind, signal.start - base, signal.end - base, signal.value)
        )
    return found
