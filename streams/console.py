"""What the commands show a person at a terminal, drawn with rich: progress bars on standard error."""

from __future__ import annotations

import os
import stat
import time
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


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
