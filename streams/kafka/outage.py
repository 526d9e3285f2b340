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

REMIND_SECONDS = 60.0
QUIET_SECONDS = 10.0  # connection errors come many a second while the broker is gone: this long without one, it is back

_CLIENT_LOGGERS = ("aiokafka", "faust", "mode")
_CONNECTION_TROUBLE = re.compile(
    r"Unable connect|Connect call failed|Unable to update metadata|NodeNotReady|KafkaConnectionError"
    r"|Connection at \S+ closed|Connection reset|Coordinator ?NotAvailable|coordinator dead"
    r"|Coordinator Request failed",
    re.IGNORECASE,
)


class OutageLog(logging.Filter):
    """A filter for the handlers of a worker's log (it rewrites the records it lets through, so add it to one).
    It holds back only the clients' own lines about the connection: the worker's lines, tracebacks and critical
    lines always pass."""

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
        if not self._about_the_broker(record):
            return True
        now = self._clock()
        if self.lost_since is None:
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

    @staticmethod
    def _about_the_broker(record: logging.LogRecord) -> bool:
        """A client's warning or error that the broker cannot be reached, and nothing more: a line with a traceback
        (a crash report, say) or a critical one is always shown whole."""
        return (
            logging.WARNING <= record.levelno < logging.CRITICAL
            and not record.exc_info
            and record.name.startswith(_CLIENT_LOGGERS)
            and _CONNECTION_TROUBLE.search(record.getMessage()) is not None
        )


def _rewrite(record: logging.LogRecord, template: str) -> None:
    """The line says ``template``, with the record's own message in it."""
    record.msg, record.args = template, (record.getMessage(),)
