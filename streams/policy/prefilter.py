"""Which texts of a batch may hold one of many strings, found with a few whole-array operations over the batch: the
keyword automaton then scans only those. Most chat holds no keyword.

Each string is known by its first characters (``_gram``), hashed into a bitset. A position whose next characters
hash to an unset bit begins none of the strings; a hash collision only makes a position look like a start, which
costs a scan.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from streams.policy.normalize import BOUNDARY

# The bitset has at least this many bits a gram, rounded up to a power of two: 10,000 grams set 0.06% of its 2**24
# bits (2 MiB).
_BITS_PER_GRAM = 1024
_MULTIPLIER = np.uint32(0x9E3779B1)  # Knuth's multiplicative hash: the top bits of the product pick the bit
_PRIME = np.uint32(0x01000193)  # combines a gram's code points into one number


def _gram(string: str) -> str:
    """The first characters of ``string``, which index it: four if they are ASCII (any two letters begin some word
    of an English list), else two."""
    return string[:4] if string[:4].isascii() else string[:2]


class Prefilter:
    """Where one of ``strings`` may begin: where the first characters of one occur."""

    def __init__(self, strings: Iterable[str]) -> None:
        grams = {_gram(string) for string in strings if string}
        self._lengths = sorted({len(gram) for gram in grams})
        index_bits = min(max((len(grams) * _BITS_PER_GRAM).bit_length(), 5), 30)
        self._shift = np.uint32(32 - index_bits)
        self._bits = np.zeros(1 << (index_bits - 5), dtype=np.uint32)
        for length in self._lengths:  # the grams of one length side by side, each hashed where it begins
            same = np.array([[ord(c) for c in gram] for gram in grams if len(gram) == length], dtype=np.uint32)
            slots = self._slots(same.ravel(), length, np.arange(0, same.size, length))
            np.bitwise_or.at(self._bits, slots >> 5, np.uint32(1) << (slots & 31))

    def texts(self, joined: str) -> list[int]:
        """The indices of the texts of ``joined`` (texts joined by BOUNDARY) where one of the strings may begin."""
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ends = np.flatnonzero(codes == ord(BOUNDARY))
        return list(np.unique(np.searchsorted(ends, self.starts(codes))).tolist())

    def starts(self, codes: NDArray[np.uint32]) -> NDArray[np.intp]:
        """Positions in ``codes`` where one of the strings may begin, possibly some twice, in no particular order."""
        found = []
        for length in self._lengths:
            if length <= 2:
                found.append(np.flatnonzero(self._indexed(self._slots(codes, length))))
            else:  # grams this long are ASCII: only an ASCII character can begin one
                at = np.flatnonzero(codes[: max(len(codes) - length + 1, 0)] < 128)
                found.append(at[self._indexed(self._slots(codes, length, at))])
        return np.concatenate(found) if found else np.arange(0, dtype=np.intp)

    def _slots(self, codes: NDArray[np.uint32], length: int, at: NDArray[np.intp] | None = None) -> NDArray[np.uint32]:
        """The bit of the ``length``-character gram at every position of ``codes`` that has one, or at ``at``."""
        if at is None:
            count = max(len(codes) - length + 1, 0)
            windows = [codes[offset : offset + count] for offset in range(length)]
        else:
            windows = [codes.take(at + offset) for offset in range(length)]
        number = windows[0]
        for window in windows[1:]:
            number = number * _PRIME + window
        return (number * _MULTIPLIER) >> self._shift

    def _indexed(self, slots: NDArray[np.uint32]) -> NDArray[np.bool_]:
        return ((self._bits.take(slots >> 5) >> (slots & 31)) & 1).astype(np.bool_)
