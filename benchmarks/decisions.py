"""The standing tables' pure decisions (streams/state/tables.py), without Kafka: CPU time a violation.

    python -m benchmarks.decisions [--violations 20000] [--users 20000] [--groups 2000] [--rounds 7] [--links]

Each violation of the standing benchmark's workload is decided by the user table, and the violation it forwards by
the group table (and with --links by the link table of each domain it links to, as the stage does), with the
records kept in dicts, as a batched stage applies them. Times are CPU time of this process
(so other work on the machine matters less), best and median of the rounds. The digest covers every record and
output byte, so two versions of the code can be shown to decide the same.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from benchmarks.standing import _policy, violations
from streams.state.tables import Applied, Tables, parse
from streams.topics import GROUP_ACTIONS, LINK_ACTIONS

START_MS = 1_899_000_000_000  # fixed, so the digest does not depend on the day


def decide_all(
    tables: Tables, pairs: list[tuple[bytes, bytes]], *, links: bool = False
) -> tuple[dict[bytes, bytes], list[Applied]]:
    records: dict[bytes, bytes] = {}
    applied: list[Applied] = []
    now = START_MS + len(pairs)
    for key, value in pairs:
        user = tables.user(records.get(b"u/" + key), key, parse(value), now)
        records[b"u/" + key] = user.record or b""
        applied.append(user)
        for out in user.outputs:
            if out.topic == GROUP_ACTIONS:
                group = tables.group(records.get(b"g/" + out.key), out.key, parse(out.value), now)
                records[b"g/" + out.key] = group.record or b""
                applied.append(group)
            elif out.topic == LINK_ACTIONS and links:
                link = tables.link(records.get(b"l/" + out.key), out.key, parse(out.value), now)
                records[b"l/" + out.key] = link.record or b""
                applied.append(link)
    return records, applied


def digest(records: dict[bytes, bytes], applied: list[Applied]) -> str:
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
    args = parser.parse_args(argv)
    if min(args.violations, args.users, args.groups, args.rounds) < 1:
        parser.error("--violations, --users, --groups and --rounds must be at least 1")
    policy, version, rules = _policy()
    work = violations(args.violations, args.users, args.groups, rules, version, start_ms=START_MS)
    seconds = []
    for _ in range(args.rounds):
        tables = Tables(policy, version)  # each round from nothing, as the first
        started = time.process_time()
        records, applied = decide_all(tables, work.pairs, links=args.links)
        seconds.append(time.process_time() - started)
    per = [s * 1e6 / args.violations for s in seconds]
    tables_used = "user, group and link tables" if args.links else "user then group table"
    print(
        f"decisions: {args.violations:,} violations ({tables_used}): best {min(per):.1f} us/violation, "
        f"median {statistics.median(per):.1f} us of CPU; digest {digest(records, applied)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
