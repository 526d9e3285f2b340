"""Rule packs that change while the worker runs: noticing a changed folder cheaply, and loading what it now holds.

A folder is checked by the size, modification time and inode of each file under it (a few stat calls); only when
those change, and then stay still for one more check (a copy or an editor's save in progress is not loaded half
done), are the contents hashed. Loading is left to the caller, off the event loop: building the default pack takes
seconds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.policy import cache
from streams.policy.classify import Classifier
from streams.policy.rules import RulePack, load_pack
from streams.policy.sanctions import SanctionPolicy, load_sanctions

Stats = tuple[tuple[str, int, int, int], ...]
SANCTIONS_FILE = "sanctions.toml"  # the policy beside the pack: what violations lead to


def stats(directory: Path) -> Stats:
    """(relative path, size, mtime in ns, inode) of every file under ``directory``, sorted; empty if it is missing."""
    found = []
    for root, dirs, files in os.walk(directory):
        # Hidden names are editors' swap files and Kubernetes' ..data links, which the visible files point through.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)  # follows links: a pack swapped by re-pointing a symlink is seen
            except OSError:  # removed while we walked: the next check sees the folder as it is then
                continue
            found.append((os.path.relpath(path, directory), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sorted(found))


def digest(directory: Path, files: Stats) -> str:
    """A hash of the names and contents of ``files``."""
    sha = hashlib.sha256()
    for name, *_ in files:
        sha.update(name.encode() + b"\0")
        try:
            sha.update((directory / name).read_bytes())
        except OSError:
            sha.update(b"\0unreadable")
        sha.update(b"\0")
    return sha.hexdigest()


class FolderWatch:
    """Says when the files of a folder have changed since the last time it said so."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stats = stats(directory)
        self._digest = digest(directory, self._stats)
        self._moving: Stats | None = None  # stats seen changed once, waiting to be seen again unchanged

    def changed(self) -> bool:
        """True once per change of content, when the folder has stayed still for one check."""
        now = stats(self.directory)
        if now == self._stats:
            self._moving = None
            return False
        if now != self._moving:  # still being written, or first seen changed: wait for the next check
            self._moving = now
            return False
        self._stats, self._moving = now, None
        content = digest(self.directory, now)
        if content == self._digest:  # touched, or rewritten as it was
            return False
        self._digest = content
        return True


@dataclass(frozen=True, slots=True)
class Rules:
    """A rule pack ready to classify with, and the sanction policy that goes with it (none for a shadow pack)."""

    pack: RulePack
    classifier: Classifier
    policy: SanctionPolicy | None

    @property
    def version(self) -> str:
        return self.pack.version

    def same_as(self, other: Rules | None) -> bool:
        """Whether ``other`` decides exactly as these rules do (same pack and policy contents)."""
        return (
            other is not None
            and other.version == self.version
            and (other.policy.version if other.policy else None) == (self.policy.version if self.policy else None)
        )


def _pack_files(directory: Path) -> str:
    """A hash of a pack folder's files but the policy, which is read on its own (``load_sanctions``): editing it, the
    commonest change, rebuilds nothing."""
    return digest(directory, tuple(s for s in stats(directory) if s[0] != SANCTIONS_FILE))


def load_classifier(directory: Path, *, vet: Callable[[RulePack], object] | None = None) -> Classifier:
    """The classifier of the pack in ``directory``, built as ``load_pack`` reads it, or raise RulePackError. One built
    before from the same files by the same code is read back instead (``streams.policy.cache``). ``vet`` sees a pack
    before its classifier is built (seconds for the default pack), so that what it refuses is refused at once. The
    pack's summary is kept beside it, for workers that only decide standing (``load_summary``)."""

    def build() -> Classifier:
        pack = load_pack(directory)
        if vet is not None:
            vet(pack)
        return Classifier(pack)

    before = _pack_files(directory)
    entry = cache.key(before.encode())  # the files, not the folder: a copy of a pack is the same pack

    def unchanged() -> bool:  # not kept if the folder changed while it was read
        return _pack_files(directory) == before

    classifier = cache.remembered("classifier", entry, build, keep=unchanged)
    cache.remembered("summary", entry, lambda: PackSummary.of(classifier.pack), keep=unchanged)
    return classifier


@dataclass(frozen=True, slots=True)
class PackSummary:
    """What deciding standing needs of a pack, which it does not classify with: its version (stamped on what the
    tables decide), its category and rule ids (a sanctions file names them) and its categories (the metrics list
    them). Cached beside the built classifier: read back in milliseconds, where the classifier takes seconds."""

    version: str
    ids: frozenset[str]
    categories: tuple[str, ...]

    @classmethod
    def of(cls, pack: RulePack) -> PackSummary:
        return cls(pack.version, frozenset(pack.ids()), tuple(pack.categories))


def load_summary(directory: Path) -> PackSummary:
    """The summary of the pack in ``directory``, read back from the cache, else from the pack (``load_pack``, without
    building its classifier), or raise RulePackError."""
    before = _pack_files(directory)
    return cache.remembered(
        "summary",
        cache.key(before.encode()),
        lambda: PackSummary.of(load_pack(directory)),
        keep=lambda: _pack_files(directory) == before,
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """A sanction policy and the summary of the pack beside it: the rules of a worker that runs only the standing
    stage."""

    summary: PackSummary
    policy: SanctionPolicy

    @property
    def version(self) -> str:
        return self.summary.version

    def same_as(self, other: Policy | None) -> bool:
        """Whether ``other`` decides exactly as this does (same pack and policy contents)."""
        return other is not None and other.version == self.version and other.policy.version == self.policy.version


def load_policy(directory: Path) -> Policy:
    """Load and check a pack folder's sanctions.toml against the pack's ids, or raise RulePackError."""
    summary = load_summary(directory)
    return Policy(summary, load_sanctions(directory / SANCTIONS_FILE, set(summary.ids)))


def load_rules(directory: Path, *, with_policy: bool) -> Rules:
    """Load and check a pack folder (and its sanctions.toml against the pack's ids), or raise RulePackError."""
    sanctions = directory / SANCTIONS_FILE

    def policy_of(pack: RulePack) -> SanctionPolicy | None:
        return load_sanctions(sanctions, pack.ids()) if with_policy else None

    classifier = load_classifier(directory, vet=policy_of)
    return Rules(classifier.pack, classifier, policy_of(classifier.pack))


class Followed:
    """A rule-pack folder the worker follows while it runs, and the rules it last applied from it (None: none yet)."""

    def __init__(self, pack: str, directory: Path, *, with_policy: bool) -> None:
        self.pack = pack  # "active" or "shadow", as the metrics label it
        self.directory, self.with_policy = directory, with_policy
        self.watch = FolderWatch(directory)  # before the first load: a change made during it is seen at the next check
        self.rules: Rules | None = None

    def load(self) -> Rules:
        return load_rules(self.directory, with_policy=self.with_policy)
