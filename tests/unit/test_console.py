"""The second line of the live summary: sanctions by kind, and what the blacklist restricts now."""

from __future__ import annotations

import orjson

from streams.console import Standing


def sanction(kind: str, *, revoked: bool = False) -> bytes:
    return orjson.dumps({"kind": kind, "revoked": revoked})


def entry(kind: str, *restrictions: str) -> bytes:
    return orjson.dumps(
        {"type": kind, "restrictions": [{"kind": r, "until_ms": None, "reason": ""} for r in restrictions]}
    )


def test_sanctions_are_counted_by_kind_and_revocations_apart() -> None:
    standing = Standing()
    for value in (sanction("warning"), sanction("warning"), sanction("mute"), sanction("mute", revoked=True)):
        standing.sanction(value)
    assert standing.line().startswith("sanctions 3 (warning 2, mute 1; 1 revoked)  ")


def test_the_blacklist_is_counted_as_it_stands_now() -> None:
    standing = Standing()
    standing.blacklist(b"user:u1", entry("user", "mute"))
    standing.blacklist(b"user:u2", entry("user", "ban"))
    standing.blacklist(b"user:u2", None)  # a tombstone: nothing restricts u2 any more
    standing.blacklist(b"link:x.example", entry("link", "link_blacklisted"))
    standing.blacklist(b"group:g1", entry("group", "group_suspension"))
    standing.blacklist(b"group:g2", entry("group", "group_suspension"))
    standing.blacklist(b"group:g2", entry("group", "group_suspension", "group_shutdown"))  # the latest entry counts
    standing.blacklist(b"group:g3", entry("group", "group_shutdown"))
    assert standing.line() == (
        "sanctions 0 (-; 0 revoked)  blacklist users 1 groups 3 links 1  groups suspended 1 shut 2"
    )
