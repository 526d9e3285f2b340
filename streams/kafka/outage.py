"""A broker outage in a few log lines, not thousands.

While the broker is unreachable, aiokafka and Faust log every failed connection, metadata refresh, fetch and
heartbeat: thousands of lines a minute that bury everything else. ``OutageLog`` lets the first of them through as
one line, then one line a minute while the outage lasts, and ``recovered`` gives the line that says it is over.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from aiokafka.errors import KafkaError

REMIND_SECONDS = 60.0
QUIET_SECONDS = 10.0  # connection errors come many a second while the broker is gone: this long without one, it is back

# Loggers of the clients whose warnings and errors during an outage are all about it.
_CLIENT_LOGGERS = ("aiokafka", "faust", "mode")
_CONNECTION_TROUBLE = re.compile(
    r"Unable connect|Connect call failed|Unable to update metadata|NodeNotReady|KafkaConnectionError"
    r"|Connection at \S+ closed|Connection reset|Coordinator ?NotAvailable|coordinator dead",
    re.IGNORECASE,
)


class OutageLog(logging.Filter):
    """A filter for the handlers of a worker's log (it rewrites the records it lets through, so add it to one)."""

    def __init__(
        self,
        remind_seconds: float = REMIND_SECONDS,
        quiet_seconds: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._remind, self._quiet, self._clock = remind_seconds, quiet_seconds, clock
        self.lost_since: float | None = None
        self._said_at = self._last_seen = 0.0
        self._held = 0  # lines not shown since the last one said

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not self._about_the_broker(record):
            return True
        now = self._clock()
        if self.lost_since is None:
            if not _CONNECTION_TROUBLE.search(record.getMessage()):
                return True
            self.lost_since = self._said_at = self._last_seen = now
            self._held = 0
            _rewrite(record, "lost the connection to the Kafka broker (%s); retrying, a line a minute until it is back")
            return True
        self._last_seen = now
        if now - self._said_at < self._remind:
            self._held += 1
            return False
        held, self._held, self._said_at = self._held, 0, now
        _rewrite(
            record,
            f"the Kafka broker is still unreachable after {now - self.lost_since:.0f} s"
            f" ({held} more lines about it not shown); the last: %s",
        )
        return True

    def recovered(self) -> str | None:
        """The line that ends an outage, once no connection error has come for a while; None meanwhile."""
        if self.lost_since is None or self._clock() - self._last_seen < self._quiet:
            return None
        lost_for = self._last_seen - self.lost_since
        held, self.lost_since, self._held = self._held, None, 0
        return f"the Kafka broker answers again after {lost_for:.0f} s of errors ({held} more lines about it not shown)"

    def _about_the_broker(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_CLIENT_LOGGERS):
            return True
        error = record.exc_info[1] if record.exc_info else None
        return self.lost_since is not None and isinstance(error, KafkaError)  # ours, failing for the same reason


def _rewrite(record: logging.LogRecord, template: str) -> None:
    """One line saying ``template`` with the record's own message in it, without its traceback."""
    record.msg, record.args = template, (record.getMessage(),)
    record.exc_info, record.exc_text, record.stack_info = None, None, None
