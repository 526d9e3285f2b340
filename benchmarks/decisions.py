"""The standing tables' pure decisions (streams/state/tables.py), without Kafka: CPU time a violation.

    python -m benchmarks.decisions [--violations 20000] [--users 20000] [--groups 2000] [--rounds 7] [--links]
                                   [--batch N]

Each violation of the standing benchmark's workload is decided by the user table, and the violation it forwards by
the group table (and with --links by the link table of each domain it links to, as the stage does), with the
records kept in dicts. By default each event decodes its record and encodes it again; with --batch N the records are
kept decoded and each changed one is encoded once every N violations, as a batched stage applies them. Times are CPU
time of this process (so other work on the machine matters less), best and median of the rounds, and of the best
round the first and the last tenth of its violations: records grow as a run goes on (a user's strikes, a group's
window, a campaign domain's sightings), and the last tenth's cost beside the first's says how much that costs. The
digest covers every record and output byte, so two versions of the code can be shown to decide the same.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.standing import _policy, violations
from streams.app import GC_THRESHOLDS
from streams.state import codec
from streams.state.tables import Applied, Tables, parse
from streams.topics import GROUP_ACTIONS, LINK_ACTIONS

START_MS = 1_899_000_000_000  # fixed, so the digest does not depend on the day
_DUMP: dict[bytes, Callable[[Any], bytes]] = {b"u": codec.dump_user, b"g": codec.dump_group, b"l": codec.dump_link}


def decide_all(
    tables: Tables,
    pairs: list[tuple[bytes, bytes]],
    *,
    links: bool = False,
    batch: int = 0,
    marks: list[float] | None = None,
) -> tuple[dict[bytes, bytes], list[Applied[Any]]]:
    """Every violation decided; ``batch``: records kept decoded, each changed one encoded every ``batch`` violations
    (0: decoded and encoded by each event). ``marks``: filled with the CPU time after each tenth of the violations."""
    records: dict[bytes, bytes] = {}
    decoded: dict[bytes, Any] = {}
    changed: set[bytes] = set()
    applied: list[Applied[Any]] = []
    now = START_MS + len(pairs)
    tenth = max(1, len(pairs) // 10)
    decides: dict[bytes, Callable[..., Applied[Any]]] = {
        b"u": tables.decide_user,
        b"g": tables.decide_group,
        b"l": tables.decide_link,
    }

    def one(prefix: bytes, key: bytes, value: bytes) -> Applied[Any]:
        if not batch:
            table: Callable[[bytes | None, bytes, dict[str, Any], int], Applied[bytes]]
            table = {b"u": tables.user, b"g": tables.group, b"l": tables.link}[prefix]
            done: Applied[Any] = table(records.get(prefix + b"/" + key), key, parse(value), now)
            records[prefix + b"/" + key] = done.record or b""
            return done
        done = decides[prefix](decoded.get(prefix + b"/" + key), key, parse(value), now)
        decoded[prefix + b"/" + key] = done.record
        changed.add(prefix + b"/" + key)
        return done

    def encode() -> None:
        for name in changed:
            records[name] = _DUMP[name[:1]](decoded[name])
        changed.clear()

    for n, (key, value) in enumerate(pairs, start=1):
        user = one(b"u", key, value)
        applied.append(user)
        applied += [
            one(b"g" if out.topic == GROUP_ACTIONS else b"l", out.key, out.value or b"")
            for out in user.outputs
            if out.topic == GROUP_ACTIONS or (out.topic == LINK_ACTIONS and links)
        ]
        if batch and n % batch == 0:
            encode()
        if marks is not None and n % tenth == 0:
            marks.append(time.process_time())
    encode()
    return records, applied


def digest(records: dict[bytes, bytes], applied: list[Applied[Any]]) -> str:
    h = hashlib.sha256()
    for key in sorted(records):
        h.update(key + b"\0" + records[key])
    for a in applied:
        for out in a.outputs:
            h.update(out.topic.encode() + b"\0" + out.key + b"\0" + (out.value or b"-"))
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decisions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--violations", type=int, default=20_000, help="violations decided a round (default 20000)")
    parser.add_argument("--users", type=int, default=20_000, help="users the violations come from (default 20000)")
    parser.add_argument("--groups", type=int, default=2_000, help="groups they are posted in (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; best and median are reported (default 7)")
    parser.add_argument(
        "--links", action="store_true", help="also decide the link table of each linked domain (default: no)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="keep records decoded, encoding each changed one every N violations (default 0: every event)",
    )
    args = parser.parse_args(argv)
    if min(args.violations, args.users, args.groups, args.rounds) < 1 or args.batch < 0:
        parser.error("--violations, --users, --groups and --rounds must be at least 1, --batch at least 0")
    gc.set_threshold(*GC_THRESHOLDS)  # the collector as a worker has it
    policy, version, rules = _policy()
    work = violations(args.violations, args.users, args.groups, rules, version, start_ms=START_MS)
    seconds = []
    tenths: list[list[float]] = []
    for _ in range(args.rounds):
        tables = Tables(policy, version)  # each round from nothing, as the first
        marks: list[float] = []
        started = time.process_time()
        records, applied = decide_all(tables, work.pairs, links=args.links, batch=args.batch, marks=marks)
        seconds.append(time.process_time() - started)
        tenths.append([started, *marks])
    per = [s * 1e6 / args.violations for s in seconds]
    tables_used = "user, group and link tables" if args.links else "user then group table"
    how = f"encoded every {args.batch:,} violations" if args.batch else "decoded and encoded each event"
    best = tenths[per.index(min(per))]
    tenth = max(1, args.violations // 10)
    first, last = (best[1] - best[0]) * 1e6 / tenth, (best[-1] - best[-2]) * 1e6 / tenth
    print(
        f"decisions: {args.violations:,} violations ({tables_used}, {how}): best {min(per):.1f} us/violation, "
        f"median {statistics.median(per):.1f} us of CPU; first tenth {first:.1f} us, last tenth {last:.1f} us "
        f"({last / first:.2f}x); digest {digest(records, applied)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
