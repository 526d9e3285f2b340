"""The commands as a user runs them, when something is missing: one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import types
from collections.abc import Coroutine
from typing import Any

import pytest

from streams import __main__ as entry
from streams import cli
from streams.kafka.broker import EmbeddedBroker, free_port

COMMANDS = [
    ["worker"],
    ["topics", "create"],
    ["produce", "-"],
    ["replay", "--topic", "chat.messages.v1"],
    ["diff", "--topic", "chat.messages.v1", "--candidate", "rules"],
]


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command, stopped as Ctrl-C would stop it if it runs on past ``timeout`` (so it leaves nothing behind)."""
    command = subprocess.Popen(
        [sys.executable, "-W", "always", "-m", "streams", *args],
        env=os.environ | env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = command.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=60)
        pytest.fail(f"still running after {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(command.args, command.returncode, out, err)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_no_broker_is_one_line_naming_the_address_and_the_setting(args: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    done = run(args, {"GROUPWARDEN_BOOTSTRAP_SERVERS": address})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert address in line
    assert "GROUPWARDEN_BOOTSTRAP_SERVERS" in line
    assert "groupwarden broker" in line  # what to run


def test_up_refuses_a_metrics_port_already_taken_in_one_line() -> None:
    with socket.socket() as other:  # another worker's metrics endpoint
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = run(["up"], {"GROUPWARDEN_METRICS_PORT": str(port)})
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert f"127.0.0.1:{port}" in line
    assert "GROUPWARDEN_METRICS_PORT" in line
    assert done.stdout == ""


COMMAND_NAMES = ["classify", "validate", "up", "broker", "worker", "replay", "diff", "produce", "topics create"]


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_every_option_of_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*command.split(), "--help"])
    assert exited.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    options = lines[next(n for n, line in enumerate(lines) if line.endswith(":") and "options" in line) :]
    for n, line in enumerate(options):
        if not line.startswith("  -"):
            continue
        described_here = "  " in line.strip()  # option names, then two spaces or more, then the help
        described_below = n + 1 < len(options) and options[n + 1].startswith(" " * 10)
        assert described_here or described_below, f"{command}: {line.strip()} has no help"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_that_comes_before_the_loop_watches_for_it_stops_the_run_quietly(
    signum: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` prints "Ctrl-C stops everything" just before its loop starts: a Ctrl-C at once is a stop, not an error."""
    run_loop = asyncio.run

    def signalled_first(main: Coroutine[Any, Any, None]) -> None:
        os.kill(os.getpid(), signum)  # its handler runs as this returns, before the loop exists
        run_loop(main)

    monkeypatch.setattr(asyncio, "run", signalled_first)
    seen: list[bool] = []

    async def main(stop: asyncio.Event) -> None:
        seen.append(stop.is_set())

    cli._run_until_stopped(main)
    assert seen == [True]


def test_a_stop_signal_while_running_sets_the_flag_and_the_handlers_are_given_back() -> None:
    before = signal.getsignal(signal.SIGINT)

    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(stop.wait(), 10)

    cli._run_until_stopped(main)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_ctrl_c_while_the_command_loads_ends_it_with_130_and_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    class Loading(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "streams.cli", Loading("streams.cli"))
    assert entry.main() == 130


def test_a_ctrl_c_while_the_embedded_broker_starts_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """It runs in a session of its own (a Ctrl-C in the terminal reaches only us): it must not outlive us."""

    def interrupted(*args: Any, **kwargs: Any) -> socket.socket:
        raise KeyboardInterrupt

    broker = EmbeddedBroker()
    monkeypatch.setattr(socket, "create_connection", interrupted)
    with pytest.raises(KeyboardInterrupt):
        broker.start()
    assert broker.exit_code() is not None
