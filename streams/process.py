"""Child processes: the embedded broker and the workers that `up`, the tests and the benchmarks start."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Ask a child to stop (SIGTERM, so it finishes its batch and commits); kill it if it has not within ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
