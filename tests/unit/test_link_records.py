"""Link records kept by group decide as the tuple of sightings they replaced did: checked against that reference on
random violations (groups seen again, times out of order, redeliveries, sightings leaving the window), with the
record encoded and read back now and then, as a restart reads it from its store."""

from __future__ import annotations

import random

from conftest import DEFAULT_PACK_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy.ladder import Violation
from streams.policy.rules import Severity
from streams.policy.sanctions import load_sanctions
from streams.policy.standing import LinkRecord, link_tick, link_violation
from streams.state import codec

POLICY = load_sanctions(DEFAULT_PACK_DIR / "sanctions.toml")
T0 = 1_800_000_000_000
HOUR_MS = 3_600_000

Sightings = tuple[tuple[str, int, str, tuple[str, ...]], ...]


def _reference(sightings: Sightings, violation: Violation) -> Sightings:
    """The sightings after a violation, as a tuple of them was kept before."""
    if violation.message_id in [m for _, _, m, _ in sightings]:
        return sightings
    since = violation.at_ms - POLICY.links.window_ms
    return (
        *[s for s in sightings if s[1] > since and s[0] != violation.group_id],
        (violation.group_id, violation.at_ms, violation.message_id, violation.categories),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_link_records_keep_the_sightings_a_tuple_of_them_did(seed: int) -> None:
    rng = random.Random(seed)
    record, expected = LinkRecord(), ()
    sent: list[Violation] = []
    clock = T0
    for n in range(rng.randrange(1, 120)):
        if sent and rng.random() < 0.15:  # a redelivery
            violation = rng.choice(sent)
        else:
            clock += rng.choice((1, 60_000, HOUR_MS, 6 * HOUR_MS))
            at = clock - rng.choice((0, 0, 0, 2 * HOUR_MS, 30 * HOUR_MS))  # some arrive late
            group = f"g{rng.randrange(8)}"
            violation = Violation(f"m{n}", "u1", group, at, Severity.HIGH, (rng.choice(("scam", "drugs")),), ())
            sent.append(violation)
        expected = _reference(expected, violation)
        record, outcome = link_violation(record, "d.example", violation, POLICY)
        assert tuple(record.sightings.values()) == expected
        assert set(record.messages) == {m for _, _, m, _ in expected}
        assert record.oldest_ms is None or all(at >= record.oldest_ms for _, at, _, _ in expected)
        for sanction in outcome.sanctions:  # the evidence: every sighting's message, in the order they were seen
            assert sanction.evidence == tuple(m for _, _, m, _ in expected)
        if rng.random() < 0.2:  # a restart: the record read back from its encoding
            raw = codec.dump_link(record)
            record = codec.load_link(raw)
            assert codec.dump_link(record) == raw
    record, _ = link_tick(record, clock + 40 * 24 * HOUR_MS)
    assert not record.listed
