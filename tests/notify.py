"""A fake systemd: a UNIX datagram socket that records every sd_notify message."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import NamedTuple


class Notification(NamedTuple):
    at: float  # time.monotonic() when it arrived
    fields: dict[str, str]


class FakeSystemd:
    """Bound at a short path (``address``) or, with ``abstract``, an abstract name
    (``@…``). Collects messages on a thread until closed."""

    def __init__(self, *, abstract: bool = False) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"pihub-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = self._dir / "notify"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.1)
        self.messages: list[Notification] = []
        # Guards messages: the reader thread appends and notifies, tests wait.
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, name="fake-systemd", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._changed:
                self.messages.append(Notification(time.monotonic(), fields))
                self._changed.notify_all()

    def snapshot(self) -> list[Notification]:
        with self._changed:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[Notification]], bool],
                 timeout: float = 10.0) -> list[Notification]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"not within {timeout} s; got {self.messages!r}")
                self._changed.wait(remaining)
            return list(self.messages)

    def count(self, key: str, value: str | None = None) -> int:
        return len(having(self.snapshot(), key, value))

    def close(self) -> None:
        self._closing.set()
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeSystemd:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def having(messages: list[Notification], key: str,
           value: str | None = None) -> list[Notification]:
    return [m for m in messages
            if key in m.fields and (value is None or m.fields[key] == value)]
