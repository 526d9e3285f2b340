"""Multi-keyword matching with pyahocorasick: terms with slots, allow phrases, warning frames, English word
boundaries, and a second pass over the second view of the texts that show leetspeak or repeated letters.

The automaton runs over the UTF-8 bytes of the normalised text viewed as latin-1: a node then has at most 256
children instead of the ~2,000 first characters of a Chinese word list, which makes the scan ~4x faster. Offsets are
byte offsets; they are turned into character offsets only for the few messages that match.

Most chat holds no term, so in a batch the automaton scans only the texts where one may start (``Prefilter``).
A term with slots (``转发到{n}个群``) is found by its longest literal part, then checked whole by its pattern.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from operator import itemgetter
from typing import NamedTuple

import ahocorasick
import numpy as np
from numpy.typing import NDArray

from streams.policy import pinyin
from streams.policy.normalize import BOUNDARY, BOUNDARY_CODE, Fold, NormalBatch, second_form, second_view
from streams.policy.prefilter import Prefilter
from streams.policy.rules import INITIALS_ALONE, NUMBER_WORD, SLOT_DIGITS, RulePack, SlotNeeds, Term, slot_needs

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_SLOT_REACH = 40  # how far around its literal part a term with slots is looked for, in characters
_TERM, _ALLOW, _WARN = 0, 1, 2
_MASKS_REMEMBERED = 100_000  # atom sets whose answer the matcher keeps
# Short initials (fp for 发票) are whole Latin words of 2 or 3 letters, read only in texts written in Chinese: a Han
# character and no kana (Japanese writes Han characters too, and its Latin words are no pinyin).
_HAN = (0x3400, 0x9FFF)  # CJK Unified Ideographs and Extension A
_KANA = (0x3040, 0x30FF)


_FEWEST_LATIN_SECOND = 4  # letters a Latin word keeps in the second view to be looked for there


def _readable_second(form: str) -> bool:
    """Whether a term is looked for in the second view: not if it reads as a short Latin word there ("rrss" as "rs",
    "good" as "god"), which common words would match once their repeated letters are read as one. Initials are left
    out too: they are abbreviations, not words spelled with repeats or leet."""
    return not form.isascii() or len(form.replace(" ", "")) >= _FEWEST_LATIN_SECOND


def _as_bytes(text: str) -> str:
    return text.encode().decode("latin-1")


class Hit(NamedTuple):
    """A term found in normalised text; start and end are character offsets into that text. A tuple: chat with
    common words makes many, and a frozen dataclass costs several times as much to build."""

    term: Term
    start: int
    end: int
    folds: Fold = Fold.NONE  # what the second view undid to find it: LEET, REPEAT


_HIT_ORDER = itemgetter(1, 2)  # a Hit's start and end: hits are sorted by them, with a key read in C


@dataclass(slots=True)
class Found:
    """What a batch holds: hits per text index, the texts that hold a warning frame, and those where a word may be
    written in disguise (``NormalBatch.disguised``), whose hits are all kept."""

    hits: dict[int, list[Hit]] = field(default_factory=dict)
    warned: set[int] = field(default_factory=set)
    disguised: set[int] = field(default_factory=set)


class _Entry(NamedTuple):  # a named tuple: packs hold hundreds of thousands, read back from the cache
    term: Term | None  # None: an allow phrase or a warning frame
    kind: int  # _TERM, _ALLOW or _WARN
    length: int  # in bytes
    chars: int  # in characters: the key, which is not the term's normal form in the second view
    check_start: bool  # a Latin term must not continue a word on its left...
    check_end: bool  # ...or on its right
    bit: int  # the bit of the term's atom (its rule or set) in ``Matcher``'s atom masks; 0 for a phrase
    breaks_words: int  # a Latin term may begin or end inside letters where a join or deletion broke a word (1), or
    # there and where two pinyin syllables meet (2, generated pinyin), or anywhere in a run of initials (3)...
    spaces: tuple[int, ...]  # ...and a key of a term's words written together holds only where it had its spaces


# Spelled-out words lose the spaces between them ("f r e e c a s h" is "freecash"), so a Latin term of this many
# characters or more, but no initials, is also found where such a join breaks a word.
_FEWEST_BREAKING = 4
_SYLLABLES = 2  # ``breaks_words`` of generated pinyin: also where two syllables meet in a run of pinyin
_INITIALS = 3  # ``breaks_words`` of generated initials: also anywhere inside a run of initials
# A run of letters without a vowel this long, in a text written in Chinese, is initials of several words written
# together (dgzhcqs: 对公账户, 长期收): the initials of a term may begin and end anywhere inside it.
_INITIALS_RUN = 5
# A run of Latin letters (and tone numbers) this long may hold a term's pinyin beside more pinyin: in a text with
# Chinese characters, or, longer, in one without (a message written wholly in pinyin).
_PINYIN_RUN = 6
_PINYIN_RUN_ALONE = 9


class _Automaton:
    """One automaton over a set of keys, and where the keys may begin. The automaton stores ints, the index of a
    key's entries in ``entries``: it then pickles in one block, and with the pack, not a copy of it per key."""

    def __init__(
        self, keyed: Iterable[tuple[str, Term | None, int]], bits: Mapping[str, int], *, spelled: bool = False
    ) -> None:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        by_key: dict[str, list[_Entry]] = {}
        written: set[str] = set()
        starts: list[str] = []
        longest_allow = 0
        for normal, term, kind in keyed:
            key = _as_bytes(normal)
            boundaries = kind == _TERM and term is not None and term.pattern is None  # a pattern checks its own
            breaks = int(
                spelled
                and boundaries
                and term is not None
                and term.variant != "initials"
                and len(normal) >= _FEWEST_BREAKING
                and normal.isascii()
            )
            if spelled and boundaries and term is not None and term.variant == "pinyin" and " " not in normal:
                breaks = _SYLLABLES
            elif spelled and boundaries and term is not None and term.variant == "initials":
                breaks = _INITIALS
            entry = _Entry(
                term,
                kind,
                len(key),
                len(normal),
                check_start=boundaries and normal[0] in _ALNUM,
                check_end=boundaries and normal[-1] in _ALNUM,
                bit=bits[term.rule.id] if term is not None else 0,
                breaks_words=breaks,
                spaces=(),
            )
            by_key.setdefault(key, []).append(entry)
            written.add(key)
            if breaks and " " in normal:  # its words written together, as spelling them out leaves them
                together = normal.replace(" ", "")
                spaces = tuple(at - number for number, at in enumerate(i for i, c in enumerate(normal) if c == " "))
                by_key.setdefault(together, []).append(
                    entry._replace(length=len(together), chars=len(together), spaces=spaces)
                )
                starts.append(together)
            if kind == _TERM:
                starts.append(normal)
            elif kind == _ALLOW:
                longest_allow = max(longest_allow, len(key))
        # A node looks its children up one by one, in the order keys were added: adding the keys that start with
        # a multi-byte character first puts the lead bytes of Chinese characters at the front of the root's list.
        self.entries: list[tuple[_Entry, ...]] = []
        for key, found in sorted(by_key.items(), key=lambda entry: entry[0].isascii()):
            automaton.add_word(key, len(self.entries))
            self.entries.append(tuple(found))
        # Per key, when no entry of it has a check to make (most Chinese terms), its matches' (length, term,
        # characters, bit), which the scan adds as they are; else None.
        self.unchecked: list[tuple[tuple[int, Term, int, int], ...] | None] = [
            tuple((e.length, e.term, e.chars, e.bit) for e in found if e.term is not None)
            if all(e.kind == _TERM and not (e.check_start or e.check_end or e.spaces) for e in found)
            else None
            for found in self.entries
        ]
        automaton.make_automaton()
        self.automaton = automaton
        # Allow phrases and warning frames alone hit nothing; an English term begins a word (check_start).
        self.prefilter = Prefilter(starts, word_starts=True)
        # What a text must hold for each term with slots, by its pattern: most texts where the literal part of one
        # occurs ("at" in "at {n}/{n}") hold no number, and looking for the whole term around it is the slow part.
        self.slot_needs = {
            term.pattern: slot_needs(term) for _, term, _ in keyed if term is not None and term.pattern is not None
        }
        self.longest_allow = longest_allow
        self.size = len(written)  # the keys of the pack, not those of words written together


class Matcher:
    """Finds every term of a pack in normalised text, minus the hits that allow phrases cover.

    ``fires`` tells whether a text whose terms hit some atoms (rule and set ids) may fire a rule: with it, the hits
    of texts that cannot are left out, without the work of checking and placing them. A scored pack's sets hold
    common words (dates, pronouns, everyday verbs) that fire nothing alone, and half of ordinary chat hits one."""

    def __init__(self, pack: RulePack, fires: Callable[[Collection[str]], bool] | None = None) -> None:
        # Each atom a term belongs to has a bit: a text's atoms are then one int, cheap to build and to look up.
        self._atoms = sorted({term.rule.id for term in pack.terms})
        self._bits = {atom: 1 << number for number, atom in enumerate(self._atoms)}
        keyed: list[tuple[str, Term | None, int]] = [
            (term.normal, term, _TERM) for term in pack.terms if not term.needs_company
        ]
        self._initials: dict[str, list[Term]] = {}  # short initials: looked up word by word, in Chinese texts only
        for term in pack.terms:
            if term.needs_company:
                self._initials.setdefault(term.normal, []).append(term)
        # Whether a number ``_initials_hits`` makes of a word is that of initials: one look-up for a whole batch.
        self._initials_keys = np.zeros(32 ** (INITIALS_ALONE - 1), dtype=np.bool_)
        self._initials_keys[[key for word in self._initials if (key := _initials_key(word)) is not None]] = True
        keyed += [(phrase.normal, None, _ALLOW) for phrase in pack.allow]
        keyed += [(phrase.normal, None, _WARN) for phrase in pack.warn]
        self._normal = _Automaton(keyed, self._bits, spelled=True)
        # The syllables a run of pinyin is read by, and the characters' readings, if the pack has generated pinyin to
        # find inside a run or in a text written half in pinyin.
        generated = any(term.variant == "pinyin" for term in pack.terms)
        self._syllables = pinyin.syllables() if generated else frozenset()
        self._readings = pinyin.readings() if generated else {}
        # The second view: terms as it reads them, allow phrases, which must cancel there too, and warning frames, as
        # a text may hold terms only the second view finds and so never be scanned in the normal view.
        second: list[tuple[str, Term | None, int]] = [
            (form, term, _TERM)
            for term in pack.terms
            if term.pattern is None
            and term.variant != "initials"
            and _readable_second(form := second_form(term.normal))
        ]
        second += [(second_form(phrase.normal), None, _ALLOW) for phrase in pack.allow]
        second += [(second_form(phrase.normal), None, _WARN) for phrase in pack.warn]
        self._second = _Automaton(second, self._bits)
        self._fires = fires
        self._disguise = any(category.disguised_weight > 0 for category in pack.categories.values())
        self._firing: dict[int, bool] = {}  # what ``fires`` said, by atom bits: chat repeats its few common words
        self.prefilter = self._normal.prefilter
        self.size = self._normal.size

    def find(self, normal: str) -> list[Hit]:
        """Hits in ``normal`` (the output of ``normalize``), in text order."""
        return self.find_batch(NormalBatch([normal])).hits.get(0, [])

    def find_batch(self, batch: NormalBatch) -> Found:
        """Hits per text of a batch: text index -> hits with offsets into that text's normal form. Only the texts
        where a term may start are scanned, joined again: one pass of the automaton; then the same for the second
        view of the texts that have one. With ``fires``, only the texts whose terms, in either view, may fire a rule
        have hits."""
        second, second_warned = self._second_hits(batch)
        latin = _Latin(batch)
        for index, hits in [*self._initials_hits(batch, latin).items(), *self._half_pinyin_hits(batch, latin).items()]:
            second[index] = [*second.get(index, ()), *hits]
        chosen = self._normal.prefilter.texts(batch.codes)
        fires = self._fires is not None
        also = {index: self._bits_of(hits) for index, hits in second.items()} if fires else {}
        disguised: set[int] = set()
        if self._disguise:  # a word written in disguise fires a rule whatever else the text holds
            disguised = batch.disguised()
            disguised.update(i for i, hits in second.items() if any(hit.folds & Fold.LEET for hit in hits))

        def worth(at: int, bits: int) -> bool:
            return chosen[at] in disguised or self._may_fire(bits | also.get(chosen[at], 0))

        apart, syllables, initials = batch.apart(), self._syllable_breaks(batch, latin), _initials_breaks(batch, latin)
        if apart or syllables or initials:  # a text with letters joined is scanned whatever the prefilter says: its
            starts = batch.starts()  # words may begin anywhere
            breaking = (*apart, *syllables, *initials)
            chosen = sorted({*chosen, *(bisect_right(starts, position) - 1 for position in breaking)})
        picked = batch.pick(chosen)[0]
        scanned = _scan(
            picked,
            self._normal,
            worth if fires else None,
            tuple(_apart_by_text(batch, chosen, positions) for positions in (apart, syllables, initials)),
        )
        found = Found(
            {chosen[index]: hits for index, hits in scanned.hits.items()},
            {chosen[i] for i in scanned.warned} | second_warned,
            disguised,
        )
        for index, hits in second.items():  # the second view's and initials' hits the normal view did not find
            if fires and index not in found.hits and index not in disguised and not self._may_fire(also[index]):
                continue  # its normal hits were left out, or it has none: its atoms fire nothing either way
            # A term once, however many ways it was found: as written, a generated variant of it, in either view.
            known = {(hit.term.rule.id, hit.term.text) for hit in found.hits.get(index, ())}
            for hit in hits:
                if (key := (hit.term.rule.id, hit.term.text)) not in known:
                    found.hits.setdefault(index, []).append(hit)
                    known.add(key)
            if index in found.hits:
                found.hits[index].sort(key=_HIT_ORDER)
        return found

    def _bits_of(self, hits: Iterable[Hit]) -> int:
        bits = 0
        for hit in hits:
            bits |= self._bits[hit.term.rule.id]
        return bits

    def _may_fire(self, bits: int) -> bool:
        """What ``fires`` says of the atoms with these bits."""
        try:
            return self._firing[bits]
        except KeyError:
            pass
        assert self._fires is not None
        if len(self._firing) >= _MASKS_REMEMBERED:
            self._firing.clear()
        atoms = [atom for number, atom in enumerate(self._atoms) if bits >> number & 1]
        self._firing[bits] = firing = self._fires(atoms)
        return firing

    def _initials_hits(self, batch: NormalBatch, latin: _Latin) -> dict[int, list[Hit]]:
        """The hits of short initials per text written in Chinese, in text order: whole Latin words of 2 or 3 letters
        (not next to a digit either), found for the whole batch at once and looked up by their letters as a number,
        so only the words that are initials reach Python."""
        if not self._initials:
            return {}
        codes, bounds, letters, chinese = batch.codes, latin.bounds, latin.letters, latin.chinese
        if not chinese.any():
            return {}
        edges = np.flatnonzero(np.diff(letters, prepend=False, append=False))
        begins, ends = edges[0::2], edges[1::2]  # the runs of letters: [begin, end)
        lengths = ends - begins
        short = (lengths >= 2) & (lengths < INITIALS_ALONE)
        begins, ends = begins[short], ends[short]
        digits = np.concatenate(((codes >= ord("0")) & (codes <= ord("9")), [False]))  # [-1] and [len]: no digit
        texts = np.searchsorted(bounds, begins, side="right") - 1
        words = ~digits[begins - 1] & ~digits[ends] & chinese[texts]
        begins, ends, texts = begins[words], ends[words], texts[words]
        keys = np.zeros(len(begins), dtype=np.int64)
        for offset in range(INITIALS_ALONE - 1):  # a letter's place in the word, as a digit of base 32
            inside = begins + offset < ends
            letter = np.where(inside, codes[np.minimum(begins + offset, len(codes) - 1)] - ord("a") + 1, 0)
            keys = keys * 32 + letter
        known = self._initials_keys[keys]
        text = batch.text
        found: dict[int, list[Hit]] = {}
        for begin, end, index in zip(begins[known].tolist(), ends[known].tolist(), texts[known].tolist(), strict=True):
            start = int(bounds[index])
            hits = found.setdefault(index, [])
            hits.extend(Hit(term, begin - start, end - start) for term in self._initials[text[begin:end]])
        return found

    def _syllable_breaks(self, batch: NormalBatch, latin: _Latin) -> list[int]:
        """Positions in ``batch.text`` where two pinyin syllables meet inside a run of letters and tone numbers that
        reads wholly as pinyin: runs of ``_PINYIN_RUN`` letters in texts written in Chinese, of ``_PINYIN_RUN_ALONE``
        in others. The runs are found for the whole batch at once; most texts have none."""
        if not self._syllables:
            return []
        begins, ends = latin.runs
        lengths = ends - begins
        long = lengths >= _PINYIN_RUN
        if not long.any():
            return []
        begins, ends, lengths = begins[long], ends[long], lengths[long]
        runs = latin.chinese[latin.run_texts[long]] | (lengths >= _PINYIN_RUN_ALONE)
        text, known = batch.text, self._syllables
        return [
            begin + at
            for begin, end in zip(begins[runs].tolist(), ends[runs].tolist(), strict=True)
            for at in pinyin.cuts(text[begin:end], known) or ()
        ]

    def _half_pinyin_hits(self, batch: NormalBatch, latin: _Latin) -> dict[int, list[Hit]]:
        """Hits of generated pinyin in texts written half in characters, half in pinyin (弹簧dao, yinhang流水), or
        wholly in pinyin with its tone marks or tone numbers (duàn yī tiáo tuǐ, yin2 hang2): the texts written in
        Chinese where a run of letters that reads as pinyin touches a character, and those that show pinyin's tones
        (``_toned``), are read wholly as pinyin, and a term's pinyin found there counts if the writer wrote some of
        it in letters."""
        if not self._readings:
            return {}
        candidates = _toned(batch, latin)
        if latin.chinese.any():
            candidates |= self._touching_pinyin(batch, latin)
        found = {}
        bounds, text = latin.bounds, batch.text
        for index in sorted(candidates):
            if hits := self._read_as_pinyin(text[bounds[index] : bounds[index + 1] - 1]):
                found[index] = hits
        return found

    def _touching_pinyin(self, batch: NormalBatch, latin: _Latin) -> set[int]:
        """The texts written in Chinese where a run of letters that reads as pinyin touches a character."""
        han, texts = latin.han, latin.run_texts
        begins, ends = latin.runs
        touching = latin.chinese[texts] & (han[begins - 1] | han[ends])
        text, known = batch.text, self._syllables
        candidates: set[int] = set()
        reads: dict[str, bool] = {}  # per run of letters, whether it reads as pinyin: chat repeats its words
        for begin, end, index in zip(
            begins[touching].tolist(), ends[touching].tolist(), texts[touching].tolist(), strict=True
        ):
            if index in candidates:
                continue
            run = text[begin:end]
            if (pinyin_run := reads.get(run)) is None:
                pinyin_run = reads[run] = pinyin.cuts(run, known) is not None
            if pinyin_run:
                candidates.add(index)
        return candidates

    def _read_as_pinyin(self, normal: str) -> list[Hit]:
        """The hits of generated pinyin in ``normal`` read as pinyin: each character as its reading, runs of letters
        as written (pinyin without its tone numbers), the spaces between pinyin left out (shen fen zheng), anything
        else a space; a term may begin and end where two syllables meet. Only hits the writer wrote some of in letters
        count: the rest the normal view finds, or they are homophones (病毒 is no 冰毒)."""
        readings, known = self._readings, self._syllables
        view: list[str] = []
        origin: list[int] = []  # per character of the view, its offset in ``normal``
        written: list[bool] = []  # per character of the view, whether it is written so in ``normal``
        breaks: set[int] = set()
        at, size = 0, len(normal)
        pinyin_end = -1  # where in ``normal`` the last character or run read as pinyin ends

        def reads_as_pinyin(at: int) -> bool:
            if normal[at] in readings:
                return True
            end = at
            while end < size and normal[end] in _ALNUM:
                end += 1
            return end > at and pinyin.cuts(normal[at:end], known) is not None

        while at < size:
            if normal[at] == " " and pinyin_end == at:
                after = at + 1  # a space after pinyin: left out if pinyin follows
                if after < size and reads_as_pinyin(after):
                    at = after
                    continue
            if (syllable := readings.get(normal[at])) is not None:
                breaks.update((len(origin), len(origin) + len(syllable)))
                view.append(syllable)
                origin += [at] * len(syllable)
                written += [False] * len(syllable)
                at = pinyin_end = at + 1
            elif normal[at] in _ALNUM:
                end = at + 1
                while end < size and normal[end] in _ALNUM:
                    end += 1
                run, offsets = normal[at:end], list(range(at, end))
                if pinyin.cuts(run, known) is not None:  # as pinyin, without tone numbers: some may have none
                    if not run.isalpha():
                        offsets = [offset for offset in offsets if normal[offset].isalpha()]
                        run = "".join(normal[offset] for offset in offsets)
                    cut = () if run in known else (pinyin.cuts(run, known) or ())  # a syllable is read as one
                    breaks.update((len(origin), len(origin) + len(run), *(len(origin) + c for c in cut)))
                    pinyin_end = end
                view.append(run)
                origin += offsets
                written += [True] * len(run)
                at = end
            else:
                view.append(" ")
                origin.append(at)
                written.append(False)
                at += 1
        raw, _, _ = _matches("".join(view), self._normal, ((), breaks, ()))
        return sorted(
            (
                Hit(term, origin[start], origin[end - 1] + 1)
                for start, end, term, _, _ in raw
                if term.variant == "pinyin" and any(written[start:end])
            ),
            key=_HIT_ORDER,
        )

    def _second_hits(self, batch: NormalBatch) -> tuple[dict[int, list[Hit]], set[int]]:
        """The second view's hits per text, in normal text, that cover what the view undid, in text order; and the
        texts it scanned that hold a warning frame."""
        view = second_view(batch.codes, starts=batch.starts())  # the batch found its texts' starts already
        chosen = self._second.prefilter.texts(view.codes)
        if not chosen:
            return {}, set()
        starts = [0, *(np.flatnonzero(view.codes == BOUNDARY_CODE) + 1).tolist(), len(view.codes) + 1]
        text = view.text
        picked = BOUNDARY.join(text[starts[index] : starts[index + 1] - 1] for index in chosen)
        normal_starts = batch.starts()
        second: dict[int, list[Hit]] = {}
        scanned = _scan(picked, self._second)
        for at, hits in scanned.hits.items():
            index = chosen[at]
            for hit in hits:
                low, high = starts[index] + hit.start, starts[index] + hit.end
                undone = view.undone[low:high]
                if not undone.any():
                    continue
                repeats = (view.last[low:high] > view.first[low:high]) & undone
                folds = (Fold.REPEAT if repeats.any() else Fold(0)) | (
                    Fold.LEET if (undone & ~repeats).any() else Fold(0)
                )
                start = int(view.first[low]) - normal_starts[index]
                end = int(view.last[high - 1]) + 1 - normal_starts[index]
                second.setdefault(index, []).append(Hit(hit.term, start, end, folds))
        return second, {chosen[at] for at in scanned.warned}


# Pinyin's tone marks that other languages written in Latin letters hardly use: macrons and carons on its vowels.
_TONE_MARKS = "āēīōūǖǎěǐǒǔǚ"
_TONE_CODES = np.array(sorted({ord(mark) for mark in _TONE_MARKS + _TONE_MARKS.upper()}), dtype=np.uint32)
_TONES_SHOWN = 2  # tone marks or numbers a text shows to be read wholly as pinyin...
_TONED_SHARE = 0.3  # ...and for this share of its words at least


def _toned(batch: NormalBatch, latin: _Latin) -> set[int]:
    """The texts of a batch that show pinyin's tones: tone marks in the original text (the
    normal form has folded them away), or tone numbers after letters (yin2 hang2), two or more of either."""
    codes, bounds = batch.codes, latin.bounds
    numbered = latin.letters[:-1] & (codes[1:] >= ord("1")) & (codes[1:] <= ord("5"))
    at = (np.flatnonzero(numbered) + 1).tolist()
    if marks := _tone_marks(batch.originals()):
        originals = [0, *accumulate(len(text) + 1 for text in batch.texts)]
        at += [bounds[bisect_right(originals, mark) - 1] for mark in marks]
    if len(at) < _TONES_SHOWN:
        return set()
    texts, counts = np.unique(np.searchsorted(bounds, at, side="right") - 1, return_counts=True)
    # Most of a text in pinyin shows tones, a tone mark or number every two or three words; English with a version
    # number or two (sha1, mp3) does not.
    words = np.bincount(np.searchsorted(bounds, latin.words[0], side="right") - 1, minlength=len(bounds) - 1)
    toned = (counts >= _TONES_SHOWN) & (counts >= _TONED_SHARE * words[texts])
    return set(texts[toned].tolist())


def _tone_marks(codes: NDArray[np.uint32]) -> list[int]:
    """Where the code points of original texts hold a tone mark, in either case: a pass of two comparisons, where a
    regular expression that ignores case checks every character's other case."""
    near = np.flatnonzero((codes >= _TONE_CODES[0]) & (codes <= _TONE_CODES[-1]))
    marks: list[int] = near[np.isin(codes[near], _TONE_CODES)].tolist()
    return marks


def _initials_breaks(batch: NormalBatch, latin: _Latin) -> list[int]:
    """Positions in ``batch.text`` inside runs of ``_INITIALS_RUN`` letters or more without a vowel, in texts written
    in Chinese: initials of several words written together, where the initials of one may begin or end anywhere."""
    if not latin.chinese.any():
        return []
    begins, ends = latin.words
    long = ends - begins >= _INITIALS_RUN
    if not long.any():
        return []
    begins, ends = begins[long], ends[long]
    texts = np.searchsorted(latin.bounds, begins, side="right") - 1
    chinese = latin.chinese[texts]
    text = batch.text
    return [
        at
        for begin, end in zip(begins[chinese].tolist(), ends[chinese].tolist(), strict=True)
        if _NO_VOWEL.fullmatch(text, begin, end)
        for at in range(begin + 1, end)
    ]


_NO_VOWEL = re.compile("[b-df-hj-np-tv-z]+")


class _Latin:
    """A batch's Latin letters, its Chinese characters, and which of its texts are written in Chinese with letters:
    what the short initials and the pinyin both look for, found once, for the whole batch at once."""

    def __init__(self, batch: NormalBatch) -> None:
        self._codes = codes = batch.codes
        self.bounds = np.asarray(batch.starts())  # where each text begins, and where one more would
        self.letters = (codes >= ord("a")) & (codes <= ord("z"))

    @cached_property
    def han(self) -> NDArray[np.bool_]:
        """Per code of the batch, whether it is a Chinese character; one more, False, for the index -1 and the end."""
        codes = self._codes
        return np.concatenate(((codes >= _HAN[0]) & (codes <= _HAN[1]), [False]))

    @cached_property
    def chinese(self) -> NDArray[np.bool_]:
        """Per text, whether it is written in Chinese (no kana) and holds at least two Latin letters."""
        latin = self._per_text(self.letters) >= 2  # the shortest initials
        if not latin.any():
            return latin
        codes = self._codes
        kana = self._per_text((codes >= _KANA[0]) & (codes <= _KANA[1])) == 0
        chinese: NDArray[np.bool_] = latin & (self._per_text(self.han[:-1]) > 0) & kana
        return chinese

    @cached_property
    def words(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """The runs of letters: where each begins, and where each ends."""
        edges = np.flatnonzero(np.diff(self.letters, prepend=False, append=False))
        return edges[0::2], edges[1::2]

    @cached_property
    def runs(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """The runs of letters and tone numbers (1 to 5): where each begins, and where each ends."""
        codes = self._codes
        in_runs = self.letters | ((codes >= ord("1")) & (codes <= ord("5")))
        edges = np.flatnonzero(np.diff(in_runs, prepend=False, append=False))
        return edges[0::2], edges[1::2]

    @cached_property
    def run_texts(self) -> NDArray[np.intp]:
        """Per run of ``runs``, the text it is in."""
        return np.searchsorted(self.bounds, self.runs[0], side="right") - 1

    def _per_text(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        sums = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        counts: NDArray[np.int64] = sums[self.bounds[1:] - 1] - sums[self.bounds[:-1]]
        return counts


def _initials_key(word: str) -> int | None:
    """A word of 2 or 3 letters a-z as the number ``_initials_hits`` computes for it; None for any other word."""
    if not (2 <= len(word) < INITIALS_ALONE and word.isascii() and word.isalpha() and word.islower()):
        return None
    key = 0
    for offset in range(INITIALS_ALONE - 1):
        key = key * 32 + (ord(word[offset]) - ord("a") + 1 if offset < len(word) else 0)
    return key


_Raw = tuple[int, int, Term, int, int]  # a term's match: start and end byte, term, characters, its atom's bit


def _apart_by_text(batch: NormalBatch, chosen: list[int], positions: list[int]) -> dict[int, list[int]]:
    """``positions`` (``NormalBatch.apart``) in the texts ``chosen``, by their index in ``chosen``, in each text's
    characters."""
    if not positions:
        return {}
    starts = batch.starts()
    where = {text: at for at, text in enumerate(chosen)}
    apart: dict[int, list[int]] = {}
    for position in positions:
        text = bisect_right(starts, position) - 1
        if (at := where.get(text)) is not None:
            apart.setdefault(at, []).append(position - starts[text])
    return apart


def _scan(
    joined: str,
    automaton: _Automaton,
    worth: Callable[[int, int], bool] | None = None,
    breaking: tuple[Mapping[int, list[int]], ...] = (),
) -> Found:
    """Hits per text of texts joined by BOUNDARY, by their index there, and the texts with a warning frame. With
    ``worth``, only the texts it says yes to, given their index and the bits of the atoms their terms hit before
    allow phrases and slots are checked, have their hits checked and placed. ``breaking``: per text, the positions
    where a Latin term may begin or end inside a word, as a join or a deletion made it (``NormalBatch.apart``); then
    where a term's generated pinyin may, as two syllables meet in a run of pinyin; then where its generated initials
    may, inside a run of initials."""
    encoded = joined.encode()
    data = encoded.decode("latin-1")
    starts: list[int] | None = None
    breaks: tuple[Collection[int], ...] = ((), (), ())
    if any(breaking):
        starts = [0, *(np.flatnonzero(np.frombuffer(encoded, dtype=np.uint8) == 0) + 1).tolist(), len(encoded) + 1]
        joins, *more = (_byte_offsets(encoded, starts, positions) for positions in breaking)
        breaks = (joins, *(joins | offsets for offsets in more))
    raw, allowed, warnings = _matches(data, automaton, breaks)
    found = Found()
    if not raw:
        return found
    if starts is None:
        starts = [0, *(np.flatnonzero(np.frombuffer(encoded, dtype=np.uint8) == 0) + 1).tolist()]
    else:
        starts.pop()
    found.warned = {bisect_right(starts, at) - 1 for at in warnings}
    allowed_ends = [end for _, end in allowed]  # the automaton reports matches in order of their end
    texts: list[str] | None = None  # the texts, split only if a term with slots needs its text
    # Byte offsets become character offsets walking forward, each text decoded once however many hits it has.
    if worth is not None:  # before sorting: about half the matches are in texts not worth placing
        raw = _worth_placing(raw, starts, worth)
    raw.sort(key=itemgetter(0))
    index, byte_at, char_at = -1, 0, 0
    for start, end, term, chars, _ in raw:
        if _covered(allowed, allowed_ends, start, end, automaton.longest_allow):
            continue
        if index < 0 or (index + 1 < len(starts) and start >= starts[index + 1]):
            index = bisect_right(starts, start) - 1
            byte_at, char_at = starts[index], 0
        char_at += len(data[byte_at:start].encode("latin-1").decode())
        byte_at = start
        hit_start, hit_end = char_at, char_at + chars
        if term.pattern is not None:  # the literal part was found: is the whole term around it?
            texts = texts if texts is not None else joined.split(BOUNDARY)
            whole = _whole(term.pattern, automaton.slot_needs[term.pattern], texts[index], hit_start, hit_end)
            if whole is None:
                continue
            hit_start, hit_end = whole
        found.hits.setdefault(index, []).append(Hit(term, hit_start, hit_end))
    for found_hits in found.hits.values():
        found_hits.sort(key=_HIT_ORDER)
    return found


def _byte_offsets(
    encoded: bytes, starts: list[int] | None, positions_by_text: Mapping[int, list[int]] | None
) -> set[int]:
    """Character positions per text as byte offsets in ``encoded``, the texts joined, which begin at ``starts``."""
    offsets: set[int] = set()
    if not positions_by_text or starts is None:
        return offsets
    for at, positions in positions_by_text.items():
        text = encoded[starts[at] : starts[at + 1] - 1].decode()
        offsets.update(starts[at] + len(text[:position].encode()) for position in positions)
    return offsets


def _matches(
    data: str, automaton: _Automaton, breaks: tuple[Collection[int], ...] = ((), (), ())
) -> tuple[list[_Raw], list[tuple[int, int]], list[int]]:
    """What the automaton finds in ``data``: the terms' matches at word boundaries where a Latin term needs them
    (or, by its ``breaks_words``, at the byte offsets of ``breaks`` where a word may break inside letters: joins,
    and those and pinyin syllables or runs of initials), in the order of their end, the allow phrases' spans, and
    where warning frames start."""
    breaks_at = ((), *breaks)  # by ``breaks_words``
    word_breaks = breaks[0]
    raw: list[_Raw] = []
    allowed: list[tuple[int, int]] = []
    warnings: list[int] = []
    size = len(data)
    entries, unchecked = automaton.entries, automaton.unchecked
    for last, number in automaton.automaton.iter(data):
        if (found := unchecked[number]) is not None:
            end = last + 1
            for length, term, chars, bit in found:
                raw.append((end - length, end, term, chars, bit))
            continue
        end = last + 1
        # Unpacked: reading a named tuple's fields by name costs several times as much, on every match.
        for term, kind, length, chars, check_start, check_end, bit, breaks_words, spaces in entries[number]:
            start = end - length
            if kind == _ALLOW:
                allowed.append((start, end))
            elif kind == _WARN:
                warnings.append(start)
            elif (
                term is not None
                and not (
                    check_start
                    and start > 0
                    and data[start - 1] in _ALNUM
                    and not (breaks_words and start in breaks_at[breaks_words])
                )
                and not (
                    check_end
                    and end < size
                    and data[end] in _ALNUM
                    and not (breaks_words and end in breaks_at[breaks_words])
                )
                and not (spaces and any(start + space not in word_breaks for space in spaces))
            ):
                raw.append((start, end, term, chars, bit))
    return raw, allowed, warnings


def _worth_placing(raw: list[_Raw], starts: list[int], worth: Callable[[int, int], bool]) -> list[_Raw]:
    """The matches of the texts ``worth`` says yes to, given each text's index and atom bits; ``raw`` holds each
    text's matches together (sorted by start, or as the automaton reports them, by end), and so does the answer."""
    kept: list[_Raw] = []
    first, count = 0, len(raw)
    while first < count:
        index = bisect_right(starts, raw[first][0]) - 1
        end = starts[index + 1] if index + 1 < len(starts) else None  # None: the last text
        last, bits = first, 0
        while last < count and (end is None or raw[last][0] < end):
            bits |= raw[last][4]
            last += 1
        if worth(index, bits):
            kept += raw[first:last]
        first = last
    return kept


def _whole(pattern: re.Pattern[str], needs: SlotNeeds, text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span of a term with slots whose literal part is at [start, end) of ``text``, if it is there whole. Most
    texts where a literal part occurs ("at" of "at {n}/{n}") hold no number, nor its other parts: those are not
    searched, which is the slow part."""
    if not all(literal in text for literal in needs.literals):
        return None
    if not (SLOT_DIGITS.search(text) or (needs.number_words and NUMBER_WORD.search(text))):
        return None
    return next(
        (
            m.span()
            for m in pattern.finditer(text, max(0, start - _SLOT_REACH), end + _SLOT_REACH)
            if m.start() <= start and end <= m.end()
        ),
        None,
    )


def _covered(allowed: list[tuple[int, int]], ends: list[int], start: int, end: int, longest: int) -> bool:
    """Whether an allow phrase spans [start, end): only those ending between end and start + longest can."""
    index = bisect_left(ends, end)
    while index < len(ends) and ends[index] <= start + longest:
        if allowed[index][0] <= start:
            return True
        index += 1
    return False
