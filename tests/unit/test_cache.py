"""The on-disk cache of built packs and tables: read back when nothing changed, built again when anything did."""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from streams.policy import cache, reload
from streams.policy.reload import load_classifier
from streams.policy.rules import RulePackError
from streams.records import ChatMessage
from tests.unit.conftest import header, write_pack


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GROUPWARDEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Builds:
    """A build function that counts its calls."""

    def __init__(self, value: object) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def test_an_entry_is_built_once_and_read_back(folder: Path) -> None:
    build = Builds({"a": [1, 2]})
    assert cache.remembered("thing", cache.key(b"one"), build) == {"a": [1, 2]}
    assert cache.remembered("thing", cache.key(b"one"), build) == {"a": [1, 2]}
    assert build.calls == 1
    assert cache.remembered("thing", cache.key(b"two"), build) == {"a": [1, 2]}
    assert build.calls == 2  # another key, another entry
    assert len(list(folder.glob("thing-*.pickle"))) == 2


def _remember_slowly(cache_dir: str, key: str, log: str, start: Barrier) -> None:
    """In a process of its own: wait for the other one, then ask for an entry whose build takes half a second."""
    os.environ["GROUPWARDEN_CACHE_DIR"] = cache_dir

    def build() -> str:
        with Path(log).open("a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough for the other process to miss the entry too
        return "built"

    start.wait()
    assert cache.remembered("slow", key, build) == "built"


def test_processes_that_miss_an_entry_at_once_build_it_once(folder: Path, tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    start, log = spawn.Barrier(2), tmp_path / "builds.log"
    args = (str(folder), cache.key(b"slow"), str(log), start)
    processes = [spawn.Process(target=_remember_slowly, args=args) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert len(log.read_text().split()) == 1, "the second process read what the first one built"


def test_keys_differ_with_their_parts() -> None:
    assert cache.key(b"a", b"bc") != cache.key(b"ab", b"c")
    assert cache.key(b"a") == cache.key(b"a")


def test_a_damaged_entry_is_built_again(folder: Path) -> None:
    build = Builds([1])
    cache.remembered("thing", "k", build)
    (folder / "thing-k.pickle").write_bytes(b"not a pickle")
    assert cache.remembered("thing", "k", build) == [1]
    assert build.calls == 2
    assert cache.remembered("thing", "k", build) == [1]
    assert build.calls == 2  # and stored whole again


def test_off_builds_every_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GROUPWARDEN_CACHE_DIR", "off")
    monkeypatch.chdir(tmp_path)
    build = Builds(1)
    cache.remembered("thing", "k", build)
    cache.remembered("thing", "k", build)
    assert build.calls == 2
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_only_costs_the_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("GROUPWARDEN_CACHE_DIR", str(blocked / "cache"))
    build = Builds(1)
    assert cache.remembered("thing", "k", build) == 1
    assert cache.remembered("thing", "k", build) == 1
    assert build.calls == 2


def test_a_failed_build_stores_nothing(folder: Path) -> None:
    def broken() -> object:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        cache.remembered("thing", "k", broken)
    assert not folder.exists() or not list(folder.iterdir())


def test_not_kept_when_the_sources_changed_during_the_build(folder: Path) -> None:
    build = Builds(1)
    cache.remembered("thing", "k", build, keep=lambda: False)
    cache.remembered("thing", "k", build)
    assert build.calls == 2


def test_only_the_most_recently_used_entries_stay(folder: Path) -> None:
    kept = cache._ENTRIES_KEPT
    for number in range(kept + 3):
        cache.remembered("thing", f"k{number}", Builds(number))
        os.utime(folder / f"thing-k{number}.pickle", (number, number))  # one second apart, oldest first
    cache.remembered("thing", "k0", Builds(0))  # not stored any more: built and stored again, as the newest
    names = {path.name for path in folder.glob("*.pickle")}
    assert len(names) == kept
    assert "thing-k0.pickle" in names
    assert "thing-k1.pickle" not in names


RULES = header("scam") + "rule prize\n  you have won a prize\n"


def test_a_pack_is_read_back_until_its_files_change(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_dir = write_pack(tmp_path / "pack", {"scam": RULES})
    first = load_classifier(pack_dir)
    message = ChatMessage("m1", "g1", "u1", 0, "You have WON a prize!")

    def no_build(directory: Path) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(reload, "load_pack", no_build)
    again = load_classifier(pack_dir)
    assert again.version == first.version
    assert again.classify(message, 0)["decision"] == first.classify(message, 0)["decision"] == "block"
    monkeypatch.undo()
    monkeypatch.setenv("GROUPWARDEN_CACHE_DIR", str(folder))
    (pack_dir / "scam.rules").write_text(RULES + "  claim your reward\n", encoding="utf-8")
    edited = load_classifier(pack_dir)
    assert edited.version != first.version
    assert edited.classify(ChatMessage("m2", "g1", "u1", 0, "claim your reward"), 0)["decision"] == "block"


def test_broken_sanctions_are_refused_before_the_classifier_is_built(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the default pack's classifier takes seconds: a worker refuses a broken sanctions file without it."""
    pack_dir = write_pack(tmp_path / "pack", {"scam": RULES})
    (pack_dir / "sanctions.toml").write_text('[user.severe]\nscam = "no such kind"\n', encoding="utf-8")

    def no_build(pack: object) -> None:
        raise AssertionError("classifier built")

    monkeypatch.setattr(reload, "Classifier", no_build)
    with pytest.raises(RulePackError, match=r"sanctions\.toml"):
        reload.load_rules(pack_dir, with_policy=True)
