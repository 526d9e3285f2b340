"""A broker outage in a few log lines: the first error said, one a minute while it lasts, one when it is over."""

from __future__ import annotations

import logging

from streams.kafka.outage import OutageLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str, name: str = "aiokafka.conn", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def test_an_outage_is_one_line_then_one_a_minute_then_one_when_it_is_over() -> None:
    clock = Clock()
    outage = OutageLog(remind_seconds=60, quiet_seconds=5, clock=clock)
    shown = []
    for second in range(150):  # 40 connection errors a second, as aiokafka and Faust log them while the broker is gone
        clock.now = 1000.0 + second
        for n in range(40):
            line = record(f"Unable connect to node with id 111: [Errno 111] Connect call failed ({n})")
            if outage.filter(line):
                shown.append(line.getMessage())
        assert outage.recovered() is None
    assert len(shown) == 3  # at 0 s, 60 s and 120 s
    assert shown[0].startswith("lost the connection to the Kafka broker (Unable connect to node")
    assert shown[1].startswith("the Kafka broker is still unreachable after 60 s (2399 more lines")
    assert shown[2].startswith("the Kafka broker is still unreachable after 120 s")
    clock.now += 4
    assert outage.recovered() is None  # 4 s without an error: not yet
    clock.now += 1
    back = outage.recovered()
    assert back is not None
    assert back.startswith("the Kafka broker answers again after 149 s")
    assert outage.recovered() is None  # said once
    again = record("Unable connect to node with id 111")
    assert outage.filter(again)  # a new outage is said again
    assert again.getMessage().startswith("lost the connection")


def test_other_lines_pass_untouched_and_only_connection_trouble_starts_an_outage() -> None:
    clock = Clock()
    outage = OutageLog(clock=clock)
    ours = record("sending a batch failed: KafkaConnectionError: Unable connect", name="streams.agents.classify")
    info = record("Joined group 'groupwarden'", level=logging.INFO)
    commit = record("Heartbeat failed: local member_id was not recognized", level=logging.WARNING)
    for line in (ours, info, commit):
        assert outage.filter(line)
    assert commit.getMessage() == "Heartbeat failed: local member_id was not recognized"
    assert outage.lost_since is None
    assert outage.filter(record("Failed fetch messages from 111: NodeNotReadyError: node not ready"))
    assert not outage.filter(record("Heartbeat session expired - marking coordinator dead", level=logging.WARNING))
    assert outage.filter(ours)  # the worker's own lines are never held back


def test_lines_with_a_traceback_and_critical_lines_pass_whole_and_start_no_outage() -> None:
    outage = OutageLog(clock=Clock())
    error = ConnectionError("Connect call failed")
    crash = logging.LogRecord(
        "faust.tables.recovery",
        logging.ERROR,
        __file__,
        1,
        "Crashed reason=KafkaConnectionError()",
        (),
        (None, error, None),
    )
    critical = record("We experienced a crash! Unable connect to node", name="mode.worker", level=logging.CRITICAL)
    for line in (crash, critical):
        assert outage.filter(line)
    assert crash.exc_info is not None
    assert critical.getMessage() == "We experienced a crash! Unable connect to node"
    assert outage.lost_since is None
    assert outage.filter(record("Unable connect to node with id 111"))  # the outage starts
    assert outage.filter(crash)  # and still lets a crash report through
