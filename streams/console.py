"""What the commands show a person at a terminal, drawn with rich: progress bars on standard error, the live summary
of `groupwarden up` on standard output."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections import Counter
from types import TracebackType
from typing import IO

import orjson
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


def file_size(source: IO[bytes]) -> int | None:
    """The size of a regular file (standard input redirected from one too); None for a pipe or a terminal."""
    status = os.fstat(source.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


class ReadProgress:
    """A bar of the bytes of a file read so far, with the messages and their rate, on standard error while it is a
    terminal; nothing otherwise, so that logs and pipes get only the summary the command prints at the end."""

    def __init__(self, label: str, total_bytes: int | None) -> None:
        console = Console(stderr=True)
        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[messages]:,} messages, {task.fields[rate]:,.0f} msgs/s"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the command's summary line takes its place
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task(label, total=total_bytes, messages=0, rate=0.0)

    def __enter__(self) -> ReadProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, bytes_read: int, messages: int) -> None:
        rate = messages / max(time.monotonic() - self._started, 1e-9)
        self._progress.update(self._task, completed=bytes_read, messages=messages, rate=rate)


class Standing:
    """What the moderation has done so far, from the sanctions and blacklist topics: sanctions by kind, and what the
    blacklist restricts now (the latest entry of each key; a tombstone lifts it)."""

    def __init__(self) -> None:
        self.sanctions: Counter[str] = Counter()
        self.revoked = 0
        self._listed: dict[bytes, tuple[str, frozenset[str]]] = {}  # key: (type, restriction kinds)

    def sanction(self, value: bytes | None) -> None:
        doc = orjson.loads(value or b"{}")
        if doc.get("revoked"):
            self.revoked += 1
        else:
            self.sanctions[str(doc.get("kind"))] += 1

    def blacklist(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self._listed.pop(key, None)
            return
        doc = orjson.loads(value)
        self._listed[key] = (str(doc.get("type")), frozenset(str(r.get("kind")) for r in doc.get("restrictions", [])))

    def line(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.sanctions.most_common()) or "-"
        types = Counter(kind for kind, _ in self._listed.values())
        groups = [restrictions for kind, restrictions in self._listed.values() if kind == "group"]
        shut = sum("group_shutdown" in r for r in groups)
        suspended = sum("group_suspension" in r and "group_shutdown" not in r for r in groups)
        return (
            f"sanctions {self.sanctions.total()} ({kinds}; {self.revoked} revoked)  "
            f"blacklist users {types['user']} groups {types['group']} links {types['link']}  "
            f"groups suspended {suspended} shut {shut}"
        )


class LiveLines:
    """A few lines of status on standard output: redrawn in place on a terminal (rich), printed in turn otherwise.
    ``close`` leaves the last lines shown and the cursor after them."""

    def __init__(self) -> None:
        console = Console(highlight=False)
        self._live = Live(console=console, auto_refresh=False) if console.is_terminal else None
        if self._live is not None:
            self._live.start()

    def show(self, *lines: str) -> None:
        if self._live is not None:
            self._live.update(Text("\n".join(lines)), refresh=True)
        else:
            sys.stdout.write("".join(f"{line}\n" for line in lines))
            sys.stdout.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
