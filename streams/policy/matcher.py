"""Multi-keyword matching with pyahocorasick, allow phrases and English word boundaries.

The automaton runs over the UTF-8 bytes of the normalised text viewed as latin-1: a node then has at most 256
children instead of the ~2,000 first characters of a Chinese word list, which makes the scan ~4x faster. Offsets are
byte offsets; they are turned into character offsets only for the few messages that match.

Most chat holds no term, so in a batch the automaton scans only the texts where one may start (``Prefilter``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from operator import itemgetter

import ahocorasick
import numpy as np

from streams.policy.normalize import NormalBatch
from streams.policy.prefilter import Prefilter
from streams.policy.rules import RulePack, Term

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _as_bytes(text: str) -> str:
    return text.encode().decode("latin-1")


@dataclass(frozen=True, slots=True)
class Hit:
    """A term found in normalised text; start and end are character offsets into that text."""

    term: Term
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Entry:
    term: Term | None  # None: an allow phrase
    length: int  # in bytes
    check_start: bool  # a Latin term must not continue a word on its left...
    check_end: bool  # ...or on its right


class Matcher:
    """Finds every term of a pack in normalised text, minus the hits that allow phrases cover."""

    def __init__(self, pack: RulePack) -> None:
        automaton = ahocorasick.Automaton()
        entries: dict[str, list[_Entry]] = {}
        for term in pack.terms:
            key = _as_bytes(term.normal)
            entries.setdefault(key, []).append(
                _Entry(term, len(key), term.normal[0] in _ALNUM, term.normal[-1] in _ALNUM),
            )
        for phrase in pack.allow:
            key = _as_bytes(phrase.normal)
            entries.setdefault(key, []).append(_Entry(None, len(key), check_start=False, check_end=False))
        # A node looks its children up one by one, in the order keys were added: adding the keys that start with
        # a multi-byte character first puts the lead bytes of Chinese characters at the front of the root's list.
        for key, found in sorted(entries.items(), key=lambda entry: entry[0].isascii()):
            automaton.add_word(key, tuple(found))
        automaton.make_automaton()
        self._automaton = automaton
        # An allow phrase alone hits nothing; an English term begins a word (check_start).
        self.prefilter = Prefilter((term.normal for term in pack.terms), word_starts=True)
        self._longest_allow = max((len(_as_bytes(p.normal)) for p in pack.allow), default=0)
        self.size = len(entries)

    def find(self, normal: str) -> list[Hit]:
        """Hits in ``normal`` (the output of ``normalize``), in text order."""
        return self._scan(normal).get(0, [])

    def find_batch(self, batch: NormalBatch) -> dict[int, list[Hit]]:
        """Hits per text of a batch: text index -> hits with offsets into that text's normal form. Only the texts
        where a term may start are scanned, joined again: one pass of the automaton."""
        chosen = self.prefilter.texts(batch.codes)
        hits = self._scan(batch.pick(chosen)[0])
        return {chosen[index]: found for index, found in hits.items()}

    def _scan(self, joined: str) -> dict[int, list[Hit]]:
        """Hits per text of texts joined by BOUNDARY, by their index there."""
        encoded = joined.encode()
        data = encoded.decode("latin-1")
        raw: list[tuple[int, int, Term]] = []
        allowed: list[tuple[int, int]] = []
        for last, found in self._automaton.iter(data):
            for entry in found:
                start, end = last + 1 - entry.length, last + 1
                if entry.term is None:
                    allowed.append((start, end))
                elif not (entry.check_start and start > 0 and data[start - 1] in _ALNUM) and not (
                    entry.check_end and end < len(data) and data[end] in _ALNUM
                ):
                    raw.append((start, end, entry.term))
        if not raw:
            return {}
        starts = [0, *(np.flatnonzero(np.frombuffer(encoded, dtype=np.uint8) == 0) + 1).tolist()]
        allowed_ends = [end for _, end in allowed]  # the automaton reports matches in order of their end
        hits: dict[int, list[Hit]] = {}
        # Byte offsets become character offsets walking forward, each text decoded once however many hits it has.
        raw.sort(key=itemgetter(0))
        index, byte_at, char_at = -1, 0, 0
        for start, end, term in raw:
            if _covered(allowed, allowed_ends, start, end, self._longest_allow):
                continue
            if index < 0 or (index + 1 < len(starts) and start >= starts[index + 1]):
                index = bisect_right(starts, start) - 1
                byte_at, char_at = starts[index], 0
            char_at += len(data[byte_at:start].encode("latin-1").decode())
            byte_at = start
            hits.setdefault(index, []).append(Hit(term, char_at, char_at + len(term.normal)))
        for found_hits in hits.values():
            found_hits.sort(key=lambda h: (h.start, h.end))
        return hits


def _covered(allowed: list[tuple[int, int]], ends: list[int], start: int, end: int, longest: int) -> bool:
    """Whether an allow phrase spans [start, end): only those ending between end and start + longest can."""
    index = bisect_left(ends, end)
    while index < len(ends) and ends[index] <= start + longest:
        if allowed[index][0] <= start:
            return True
        index += 1
    return False
