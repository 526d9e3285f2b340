"""A deterministic Chinese-heavy chat workload: a 10k-keyword pack and 200k messages, many keywords evaded.

10,000 keywords (7,000 Chinese of 2-6 characters from the 3,755 common GB2312 characters, 3,000 English);
messages average ~45 characters with Zipf-distributed characters, 31% carry emoji, 4% a URL, 2% a keyword, and
60% of those keywords are evaded (separators, traditional characters, zero-width, full-width, styled letters).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import opencc

_EMOJI = "😀😂🤣😊😍🙏👍🎉🔥💰🧧❤️✨🌹"
_PUNCT = "，。！？、 ,.!?~"
_SEPARATORS = ("*", " ", "-", "🔥", "·", "_", ".", "  ")


def _common_chinese() -> list[str]:
    """GB2312 level 1: the 3,755 most common characters, in frequency-ish order."""
    chars = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


@dataclass
class Workload:
    chinese: list[str]
    english: list[str]
    texts: list[str]
    keyword_messages: int


def make(messages: int = 200_000, seed: int = 2026) -> Workload:
    rng = random.Random(seed)
    pool = _common_chinese()
    rng.shuffle(pool)
    weights = list(accumulate(1 / (rank + 10) for rank in range(len(pool))))
    s2t = opencc.OpenCC("s2t")

    def han(n: int) -> str:
        return "".join(rng.choices(pool, cum_weights=weights, k=n))

    chinese: set[str] = set()
    while len(chinese) < 7000:
        chinese.add("".join(rng.choices(pool, k=rng.choice((2, 3, 3, 4, 4, 4, 5, 6)))))
    english: set[str] = set()
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(english) < 3000:
        word = "".join(rng.choices(letters, k=rng.randint(5, 10)))
        english.add(word if rng.random() < 0.8 else f"{word} {''.join(rng.choices(letters, k=rng.randint(3, 7)))}")
    chinese_list, english_list = sorted(chinese), sorted(english)

    def evade(term: str) -> str:
        how = rng.randrange(5)
        if how == 0:
            return rng.choice(_SEPARATORS).join(term)
        if how == 1:
            return s2t.convert(term)
        if how == 2:
            return "\u200b".join(term)
        if term.isascii():
            base = 0xFF21 if how == 3 else 0x1D400  # full-width or bold capitals
            return "".join(chr(base + ord(c) - 97) if c.isalpha() else c for c in term)
        return rng.choice(_SEPARATORS).join(s2t.convert(term))

    texts = []
    with_keyword = 0
    for _ in range(messages):
        parts = []
        length = 0
        target = rng.randint(8, 80)
        while length < target:
            if rng.random() < 0.12:
                piece = rng.choice(("ok", "hello", "lol", "zoom", "wifi", "app", "ppt", "666", "2026", "12:30"))
            else:
                piece = han(rng.randint(2, 12))
            parts.append(piece)
            parts.append(rng.choice(_PUNCT))
            length += len(piece) + 1
        text = "".join(parts)
        if rng.random() < 0.31:
            text += rng.choice(_EMOJI) * rng.randint(1, 3)
        if rng.random() < 0.04:
            host = rng.choice(("example.com", "news.cn", "shop.example.net"))
            text += f" https://{host}/p/{rng.randrange(10**6)}"
        if rng.random() < 0.02:
            with_keyword += 1
            term = rng.choice(chinese_list) if rng.random() < 0.75 else rng.choice(english_list)
            term = evade(term) if rng.random() < 0.6 else term
            cut = rng.randint(0, len(text))
            pad = " " if term.isascii() else ""
            text = f"{text[:cut]}{pad}{term}{pad}{text[cut:]}"
        texts.append(text)
    return Workload(chinese_list, english_list, texts, with_keyword)


def write_pack(workload: Workload, folder: Path) -> Path:
    """The keywords as a rule pack: 11 categories, 20 rules each, plus some allow phrases."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pack.toml").write_text('name = "benchmark"\nversion = "1"\n')
    terms = workload.chinese + workload.english
    categories = [f"c{n:02d}" for n in range(11)]
    for index, category in enumerate(categories):
        lines = [f"category {category}", "title Benchmark", "severity high", "decision block"]
        mine = terms[index :: len(categories)]
        for rule in range(20):
            lines.append(f"rule r{rule}")
            lines.extend(f"  {term}" for term in mine[rule::20])
        if index == 0:
            lines.append("allow")
            lines.extend(f"  防范{term}提醒" for term in workload.chinese[:100])
        (folder / f"{category}.rules").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
