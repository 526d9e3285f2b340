"""Synthetic group-chat traffic for demos: realistic chat, a few percent of spam, a little malformed input.

Deterministic for a seed, and bounded: the embedded broker keeps everything in memory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from importlib import resources

import orjson


def _lines(name: str) -> list[str]:
    text = resources.files("streams.demo_data").joinpath(name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def messages(
    count: int, seed: int = 7, groups: int = 200, spam_ratio: float = 0.03, malformed_ratio: float = 0.002
) -> Iterator[tuple[bytes, bytes]]:
    """``count`` (key, value) pairs for chat.messages.v1, keyed by group id."""
    rng = random.Random(seed)
    chat, spam = _lines("chat.txt"), _lines("spam.txt")
    members = {f"g{g:05d}": [f"u{rng.randrange(10**7):07d}" for _ in range(rng.randint(3, 500))] for g in range(groups)}
    group_ids = list(members)
    clients = ("android", "ios", "desktop", "web")
    for n in range(count):
        group_id = rng.choice(group_ids)
        key = group_id.encode()
        roll = rng.random()
        if roll < malformed_ratio:
            yield key, rng.choice((b"{not json", b'{"message_id": "x"}', b"\xff\xfe broken", b"[1, 2]"))
            continue
        text = rng.choice(spam) if roll < malformed_ratio + spam_ratio else rng.choice(chat)
        message = {
            "message_id": f"m{seed}-{n}",
            "group_id": group_id,
            "sender_id": rng.choice(members[group_id]),
            "sent_at": int(time.time() * 1000),
            "text": text,
            "client": rng.choice(clients),
        }
        yield key, orjson.dumps(message)
