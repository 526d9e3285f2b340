"""Compiled passes: a folder numba cannot write its cache to costs start-up time, never the start."""

from __future__ import annotations

import pytest

from streams.policy.compiled import compiled


def test_a_function_numba_cannot_cache_is_compiled_without_a_cache(caplog: pytest.LogCaptureFixture) -> None:
    namespace: dict[str, object] = {}
    exec("def double(x):\n    return 2 * x\n", namespace)  # no source file, so no folder numba could cache it in
    double = compiled(namespace["double"])  # type: ignore[arg-type]
    assert double(21) == 42
    assert "NUMBA_CACHE_DIR" in caplog.text


def test_a_function_in_a_file_is_compiled_with_a_cache(caplog: pytest.LogCaptureFixture) -> None:
    def triple(x: int) -> int:
        return 3 * x

    assert compiled(triple)(14) == 42
    assert caplog.text == ""
