"""Built rule packs and normalisation tables kept on disk, so a process starts in a second or two.

Building the default pack's classifier takes several seconds (tens of thousands of terms normalised, their pinyin,
second forms and automata) and the normalisation tables two more; reading them back takes a fraction of that. Every
CLI command, worker and test process that classifies would otherwise pay it again.

An entry's key is a hash of what built it: the pack folder's files, this package's source and the versions of
Python and of the libraries that shape the result. Any edit to one of them builds afresh; nothing is ever stale.
The folder is ``GROUPWARDEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/groupwarden``, else ``~/.cache/groupwarden``; set
``GROUPWARDEN_CACHE_DIR=off`` to build every time. A folder that cannot be written, or an entry that cannot be read,
only costs the build. Entries are pickles: the folder must be as private as the user's home, like any cache.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TypeVar, cast

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_ENTRIES_KEPT = 32  # the most recently used entries stay; packs edited often (tests, rule authors) make many
_LIBRARIES = ("numpy", "numba", "OpenCC", "pypinyin", "pyahocorasick", "confusable-homoglyphs")
_PACKAGE = Path(__file__).resolve().parents[1]  # the streams package


def cache_dir() -> Path | None:
    """The folder entries live in, or None when caching is off."""
    chosen = os.environ.get("GROUPWARDEN_CACHE_DIR")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "groupwarden"


@cache
def _code() -> bytes:
    """What the code that builds entries is: this package's source, Python's version and the libraries'."""
    sha = hashlib.sha256(sys.version.encode())
    for library in _LIBRARIES:
        try:
            sha.update(f"\0{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            sha.update(f"\0{library}=?".encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        sha.update(b"\0" + path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return sha.digest()


def key(*parts: bytes) -> str:
    """An entry's key: ``parts`` (what the entry is built from) and the code that builds it."""
    sha = hashlib.sha256(_code())
    for part in parts:
        sha.update(len(part).to_bytes(8, "big") + part)
    return sha.hexdigest()[:32]


def remembered(kind: str, entry_key: str, build: Callable[[], _T], *, keep: Callable[[], bool] | None = None) -> _T:
    """The value an earlier ``build`` stored under ``kind`` and ``entry_key``, else ``build()``, then stored unless
    ``keep`` says the key no longer describes it (its sources changed during the build). An exception from ``build``
    passes through and nothing is stored. Processes that miss the same entry at once build it once: the others wait
    for it and read it back."""
    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / f"{kind}-{entry_key}.pickle"
    found = _read(path)
    if found is not _MISSING:
        return cast("_T", found)
    with _building(folder, path):
        found = _read(path)  # built meanwhile by the process that held the lock
        if found is not _MISSING:
            return cast("_T", found)
        value = build()
        if keep is None or keep():
            _store(folder, path, value)
    return value


_MISSING = object()


def _read(path: Path) -> object:
    """The entry at ``path``, or _MISSING."""
    try:
        with path.open("rb") as file, _no_collections():
            value: object = pickle.load(file)  # noqa: S301 - the user's own cache folder, written only by this module
    except FileNotFoundError:
        return _MISSING
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign entry is rebuilt, whatever unpickling raised
        log.debug("cache entry %s unreadable (%s): building it again", path, exc)
        return _MISSING
    with suppress(OSError):
        os.utime(path)  # used now: pruning keeps the most recently used
    return value


def _lock_path(entry: Path) -> Path:
    return entry.with_name(f".{entry.stem}.lock")  # hidden: the folder's listing shows entries


@contextmanager
def _building(folder: Path, path: Path) -> Iterator[None]:
    """Held while one process builds an entry (an advisory lock, released by the system if the process dies). A
    folder that cannot be written leaves every process to build on its own."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock_path(path).open("a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield  # closing the file releases the lock
        except BaseException:
            with suppress(OSError):  # no entry for it to serve: the processes waiting build on their own, and fail
                _lock_path(path).unlink()
            raise


@contextmanager
def _no_collections() -> Iterator[None]:
    """The garbage collector paused: reading an entry makes hundreds of thousands of objects, and the collections
    they would set off find nothing to free but take most of the time (3-4x)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _store(folder: Path, path: Path, value: object) -> None:
    """Write ``value`` to ``path`` whole or not at all (a process reading meanwhile sees the old file or none)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".tmp", delete=False) as file:
            try:
                with _no_collections():
                    pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                os.unlink(file.name)
                raise
        os.replace(file.name, path)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:  # what pickling an odd object raises
        log.debug("cache folder %s not used (%s)", folder, exc)
        return
    _prune(folder)


def _prune(folder: Path) -> None:
    """Remove all but the most recently used entries."""
    try:
        entries = [(entry.stat().st_mtime, entry) for entry in folder.glob("*.pickle")]
    except OSError:
        return
    for _, entry in sorted(entries, reverse=True)[_ENTRIES_KEPT:]:
        with suppress(OSError):
            entry.unlink()
        with suppress(OSError):
            _lock_path(entry).unlink()
