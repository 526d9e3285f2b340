"""Shared fixtures and helpers for the unit tests: small rule packs written to tmp_path, and the shipped pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.policy.reload import load_classifier
from streams.policy.rules import RulePack, load_pack

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACK_DIR = ROOT / "rules"
DATA_DIR = ROOT / "tests" / "data"

MANIFEST = 'name = "test"\nversion = "1.2.3"\n'


def header(category: str, *, title: str = "Test category", severity: str = "high", decision: str = "block") -> str:
    """The four header lines of a ``<category>.rules`` file."""
    return f"category {category}\ntitle    {title}\nseverity {severity}\ndecision {decision}\n"


def write_pack(directory: Path, files: dict[str, str | bytes], *, manifest: str | None = MANIFEST) -> Path:
    """Write ``pack.toml`` (unless ``manifest`` is None) and one ``<stem>.rules`` file per entry; return the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    if manifest is not None:
        (directory / "pack.toml").write_text(manifest, encoding="utf-8")
    for stem, content in files.items():
        path = directory / f"{stem}.rules"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return directory


def make_pack(directory: Path, files: dict[str, str | bytes], *, manifest: str | None = MANIFEST) -> RulePack:
    """Write a pack (see ``write_pack``) and load it."""
    return load_pack(write_pack(directory, files, manifest=manifest))


@pytest.fixture(scope="session")
def default_pack() -> RulePack:
    """The pack shipped in rules/, loaded once for the whole run (read back from the suite's cache folder)."""
    return load_classifier(DEFAULT_PACK_DIR).pack
