"""When each table record next changes by itself (a mute ends, a suspension lapses): a per-worker schedule.

The schedule is memory only. It is filled as records are written and rebuilt from the table after every recovery,
so a restarted worker still sends each tombstone on time.
"""

from __future__ import annotations

import heapq


class Expiries:
    def __init__(self) -> None:
        self._heap: list[tuple[int, str, bytes]] = []
        self._due: dict[tuple[str, bytes], int] = {}

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, inbox: str, key: bytes, due_ms: int | None) -> None:
        """Look at ``key`` again at ``due_ms``; None cancels. The latest call for a key wins."""
        if due_ms is None:
            self._due.pop((inbox, key), None)
        elif self._due.get((inbox, key)) != due_ms:
            self._due[inbox, key] = due_ms
            heapq.heappush(self._heap, (due_ms, inbox, key))

    def next_due(self) -> int | None:
        """The earliest time a key is due, if any."""
        while self._heap and self._due.get((self._heap[0][1], self._heap[0][2])) != self._heap[0][0]:
            heapq.heappop(self._heap)  # rescheduled or cancelled since
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> list[tuple[str, bytes]]:
        """The keys due at ``now_ms``, each once, removed from the schedule."""
        due = []
        while self._heap and self._heap[0][0] <= now_ms:
            at, inbox, key = heapq.heappop(self._heap)
            if self._due.get((inbox, key)) == at:  # else rescheduled or cancelled since
                del self._due[inbox, key]
                due.append((inbox, key))
        return due
