"""Settings for the whole suite."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The suite's processes (and the workers and commands they start, which inherit the environment) share a cache
    folder of their own: the default pack is built once per run, and the user's cache is left alone."""
    if "GROUPWARDEN_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="groupwarden-cache-")
        os.environ["GROUPWARDEN_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
