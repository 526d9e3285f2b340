"""Which texts of a batch may hold one of many strings, found in one compiled pass over the batch: the keyword
automaton then scans only those. Most chat holds no keyword.

Each string is known by its first characters (``_gram``), whose hash sets two bits of one 64-bit word of a bitset
(a Bloom filter of two probes in one word). A position whose next characters hash to a word missing either bit
begins none of the strings; a hash collision only makes a position look like a start, which costs a scan.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from streams.policy.compiled import compiled
from streams.policy.normalize import BOUNDARY_CODE

# The bitset has at least this many bits a gram, rounded up to a power of two: 10,000 grams take 2**21 bits
# (256 KiB), which stay in a core's cache between batches; two bits a gram make a collision rarer than one bit does
# in a bitset eight times larger, which would not stay there.
_BITS_PER_GRAM = 128
_WORD_BITS = 6  # log2 of the bits in a word
_FEWEST_WORD_BITS = 10  # 8 KiB at least: else a set of a few dozen strings collides with a common pair of letters
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hash: the product's top bits pick the word, ...
_FIRST_BIT, _SECOND_BIT = np.uint64(20), np.uint64(26)  # ... and six bits from each of these its two bits
_BIT = np.uint64(63)
_ONE = np.uint64(1)
_PRIME = np.uint64(0x01000193)  # combines a gram's code points into one number
_LOW_32 = np.uint64(0xFFFF_FFFF)  # a gram's number is 32 bits: what is above them is dropped after every product


def _gram(string: str) -> str:
    """The first characters of ``string``, which index it: four if those after the first are ASCII (any two letters
    begin some word of an English list, and "。c" many a Chinese sentence before "。com"), else two."""
    return string[:4] if string[1:4].isascii() else string[:2]


class Prefilter:
    """Where one of ``strings`` may begin: where the first characters of one occur. With ``word_starts``, a string
    that begins with a Latin letter or digit may begin only where a word does, after neither: the matcher's English
    terms must, and a URL or a longer word would otherwise hold many of their first letters."""

    def __init__(self, strings: Iterable[str], *, word_starts: bool = False) -> None:
        grams = {_gram(string) for string in strings if string}
        self._word_starts = word_starts
        self._lengths = np.zeros(max(map(len, grams), default=0) + 1, dtype=np.bool_)  # which lengths grams have
        word_index_bits = min(max((len(grams) * _BITS_PER_GRAM).bit_length() - _WORD_BITS, _FEWEST_WORD_BITS), 30)
        self._shift = np.uint64(64 - word_index_bits)
        self._words = np.zeros(1 << word_index_bits, dtype=np.uint64)
        for gram in grams:
            self._lengths[len(gram)] = True
            number = np.uint64(0)
            for character in gram:
                number = _mix(number, np.uint64(ord(character)))
            word, bits = _probe(number, self._shift)
            self._words[word] |= bits

    def texts(self, codes: NDArray[np.uint32]) -> list[int]:
        """The indices of the texts of ``codes`` (code points of texts joined by BOUNDARY) where one of the strings
        may begin, ascending."""
        return list(_texts_with_grams(codes, self._lengths, self._words, self._shift, self._word_starts).tolist())


@compiled
def _mix(number: np.uint64, code: np.uint64) -> np.uint64:
    """The hash of a gram one character longer: ``number`` is that of the characters before ``code``."""
    mixed: np.uint64 = (number * _PRIME + code) & _LOW_32
    return mixed


@compiled
def _probe(number: np.uint64, shift: np.uint64) -> tuple[np.uint64, np.uint64]:
    """The word of a gram whose characters mixed to ``number``, and its two bits there."""
    hashed = number * _MULTIPLIER
    bits = (_ONE << ((hashed >> _FIRST_BIT) & _BIT)) | (_ONE << ((hashed >> _SECOND_BIT) & _BIT))
    return hashed >> shift, bits


@compiled
def _latin(code: int) -> bool:
    """Whether ``code`` is a lower-case Latin letter or a digit, as normal text writes them."""
    return ord("a") <= code <= ord("z") or ord("0") <= code <= ord("9")


@compiled
def _texts_with_grams(
    codes: NDArray[np.uint32],
    lengths: NDArray[np.bool_],
    words: NDArray[np.uint64],
    shift: np.uint64,
    word_starts: bool,  # noqa: FBT001 - a compiled function takes its arguments by position
) -> NDArray[np.intp]:
    """The indices of the texts (joined by BOUNDARY) with a position where a gram of one of ``lengths`` has both its
    bits set; in grams longer than two, the characters after the first are ASCII. With ``word_starts``, a Latin
    letter or digit right after another begins none."""
    found = np.empty(codes.size + 1, dtype=np.intp)
    count = text = 0
    for at in range(codes.size):
        first = codes[at]
        if first == BOUNDARY_CODE:
            text += 1
            continue
        if count and found[count - 1] == text:
            continue  # this text is in already
        if word_starts and at > 0 and _latin(first) and _latin(codes[at - 1]):
            continue
        number = np.uint64(0)
        for length in range(1, min(lengths.size - 1, codes.size - at) + 1):
            if length > 2 and (codes[at + 1] >= 128 or codes[at + length - 1] >= 128):
                break
            number = _mix(number, np.uint64(codes[at + length - 1]))
            if lengths[length]:
                word, bits = _probe(number, shift)
                if (words[word] & bits) == bits:
                    found[count] = text
                    count += 1
                    break
    return found[:count]
