"""The standing benchmark's own logic (benchmarks/standing.py)."""

from __future__ import annotations

from benchmarks.standing import heard_all


def test_a_restart_is_done_once_its_decision_and_the_sanctions_expected_are_in() -> None:
    decided_ms = 1_000_000
    assert not heard_all(None, [], ["ban"], 1_000.0)
    assert heard_all(decided_ms, ["ban"], ["ban"], 1_000.1)  # at once, not a second later
    assert not heard_all(decided_ms, [], ["ban"], 1_000.5)  # the sanctions may still be on their way
    assert heard_all(decided_ms, ["warning"], ["ban"], 1_001.0)  # a second on, what came is what there is
