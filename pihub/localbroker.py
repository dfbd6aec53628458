"""A private mosquitto on a free loopback port, for ``pihub demo`` and the tests.

It writes its own config file in a temporary folder, so it never touches the system
broker. It runs in a session of its own and dies with its owner (see
:func:`die_with_parent`). Two mosquitto traps are handled here: as root it switches to
the user ``mosquitto`` unless told ``user root``, and it silently drops QoS 1 messages
queued to a subscriber past 1000 unless ``max_queued_messages 0``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from pihub.errors import PihubError

LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Loaded here, not in the child: after a fork only the forking thread exists, and a
# dlopen() lock held by another thread at that moment would never be released.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class BrokerError(PihubError, RuntimeError):
    """The local mosquitto could not be found or started."""


def find_mosquitto() -> str:
    """The path of the mosquitto binary (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError("mosquitto is not installed: `sudo apt-get install mosquitto`")
    return found


def die_with_parent() -> None:
    """In a child between fork and exec: SIGTERM it when its parent dies, however it dies.

    A child in a session of its own is safe from the terminal's Ctrl-C (so its owner can
    stop things in order), but would outlive an owner that was SIGKILLed; Linux's
    ``PR_SET_PDEATHSIG`` closes that gap. Elsewhere this does nothing.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalBroker:
    """``start()`` a mosquitto on ``port`` (a free one by default); ``stop()`` it.

    ``extra`` lines are appended to its config file (listeners, ACLs, limits). The
    broker's own log is in :attr:`log_path`.
    """

    def __init__(self, port: int | None = None, *, extra: str = "",
                 workdir: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._own_dir = workdir is None
        self.dir = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="pihub-mqtt-"))
        self.extra = extra
        self.config_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalBroker {LOOPBACK}:{self.port} {state}>"

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} {LOOPBACK}",
            "allow_anonymous true",
            "max_queued_messages 0",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        return "\n".join(lines) + "\n" + self.extra + "\n"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Write the config file, start mosquitto and wait until its port accepts connections."""
        self.config_path.write_text(self.config_text())
        self.launch(timeout)

    def launch(self, timeout: float = 10.0) -> None:
        """Start mosquitto on the config file as it is now; wait until it listens."""
        self.process = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # prctl() is a plain system call, safe between fork and exec even with threads.
            start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if \
                    self.process.stderr else ""
                raise BrokerError(f"mosquitto exited at start: {err.strip()} {self.log_tail()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(f"mosquitto did not listen on port {self.port} "
                                      f"within {timeout} s") from None
                pause.wait(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
