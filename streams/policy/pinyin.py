"""Pinyin written in one run: where its syllables may part, so a term's pinyin is found inside a longer run.

Spammers write a phrase's pinyin joined, capitalised, with tone marks or with tone numbers ("DianZanGuanZhuYiDan",
"diǎnzànguānzhù", "dian3zan4guan1zhu4"); normalisation folds the case and the marks away, and what is left is one
Latin word. A Latin term matches whole words only, so the generated pinyin of 点赞 ("dianzan") would be found only
where the writer happened to stop after it. A run that reads wholly as pinyin syllables may part between any two of
them, in some reading of the run: the matcher lets a term's generated pinyin begin and end there.
"""

from __future__ import annotations

from functools import cache, lru_cache

# Interjections without a vowel (m, n, ng, hm, hng) and ê are in no term, and they would let English read as pinyin.
_NOT_IN_TERMS = frozenset({"m", "n", "ng", "hm", "hng", "ê"})
_TONE_NUMBERS = "12345"  # 5: the neutral tone, as typed without a pinyin keyboard (le5)
_LONGEST = len("zhuang") + 1  # a syllable and its tone number


@cache
def syllables() -> frozenset[str]:
    """Every syllable of the pinyin of the CJK Unified Ideographs (pypinyin), toneless, ü written as v and as u (as
    normalisation folds it), each also with a tone number."""
    # Imported here, as for the generated variants: a pack read back from its cache needs neither.
    from pypinyin import Style, pinyin  # noqa: PLC0415

    characters = "".join(chr(code) for code in range(0x4E00, 0xA000))
    readings = pinyin(characters, style=Style.NORMAL, heteronym=True, errors="ignore")
    toneless = {syllable for heteronyms in readings for syllable in heteronyms} - _NOT_IN_TERMS
    toneless |= {syllable.replace("v", "u") for syllable in toneless}
    return frozenset(toneless | {syllable + tone for syllable in toneless for tone in _TONE_NUMBERS})


@cache
def readings() -> dict[str, str]:
    """Each CJK Unified Ideograph's most common reading, toneless (pypinyin), for reading a text as pinyin."""
    from pypinyin import Style, lazy_pinyin  # noqa: PLC0415

    read = {}
    for code in range(0x4E00, 0xA000):
        character = chr(code)
        syllable = lazy_pinyin(character, style=Style.NORMAL, errors="ignore")  # one at a time: no phrase's reading
        if syllable and syllable[0].isascii() and syllable[0].isalpha():
            read[character] = syllable[0].replace("v", "u")  # ü as normalisation folds it
    return read


@lru_cache(maxsize=1 << 16)  # chat repeats its words
def cuts(run: str, known: frozenset[str]) -> tuple[int, ...] | None:
    """The offsets inside ``run`` (lower-case letters and tone numbers) where two syllables of ``known`` meet in some
    reading of the whole run as syllables (none for one syllable); None if it does not read wholly as pinyin."""
    size = len(run)
    ahead = [False] * (size + 1)  # ahead[i]: run[:i] reads as syllables
    ahead[0] = True
    for start in range(size):
        if ahead[start]:
            for end in range(start + 1, min(size, start + _LONGEST) + 1):
                if run[start:end] in known:
                    ahead[end] = True
    if not ahead[size]:
        return None
    behind = [False] * (size + 1)  # behind[i]: run[i:] reads as syllables
    behind[size] = True
    for start in range(size - 1, 0, -1):
        behind[start] = any(
            behind[end] and run[start:end] in known for end in range(start + 1, min(size, start + _LONGEST) + 1)
        )
    return tuple(at for at in range(1, size) if ahead[at] and behind[at])
