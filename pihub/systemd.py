"""Talking to systemd: ``sd_notify`` (READY, STATUS, RELOADING, STOPPING) and the watchdog.

No dependency: the protocol is one datagram per message on the ``AF_UNIX`` socket named
by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``), each
message ``KEY=VALUE`` lines. Outside systemd the variable is unset and every call here
is a no-op, so the hub runs the same from a terminal.

The watchdog (``WatchdogSec=`` in the unit) is armed when ``$WATCHDOG_USEC`` is set and
``$WATCHDOG_PID`` is absent or ours. The hub then sends ``WATCHDOG=1`` every
``WATCHDOG_USEC / 2`` — but only while :class:`Watchdog` finds every part it watches
making progress. A part that stops is logged by name and the pings stop, so systemd
kills the wedged hub (SIGABRT; ``PYTHONFAULTHANDLER=1`` dumps every thread's stack) and
restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("pihub.systemd")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


class Notifier:
    """Sends ``sd_notify`` messages to ``address``; a no-op when ``address`` is None.

    A failed send is logged once and never raised: systemd going away must not stop the
    hub (the watchdog then does its job from systemd's side).
    """

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get(NOTIFY_SOCKET))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def __repr__(self) -> str:
        return f"<Notifier {self.address or 'disabled'}>"

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one message; True if it was sent."""
        if self.address is None:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]  # Linux abstract namespace
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(lines).encode(), target)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # systemd 253+ wants the monotonic time with RELOADING=1 (Type=notify-reload);
        # older ones ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        # One line: systemctl status shows the first line only.
        return self.notify("STATUS=" + " ".join(text.split()))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ: Mapping[str, str] | None = None,
                      pid: int | None = None) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None if no watchdog is armed
    for this process."""
    env = os.environ if environ is None else environ
    raw = env.get(WATCHDOG_USEC)
    if not raw:
        return None
    owner = env.get(WATCHDOG_PID)
    if owner and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a number of microseconds", WATCHDOG_USEC, raw)
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1e6


@dataclass
class _Progress:
    count: int
    since: float


class Watchdog:
    """Pings systemd every ``every`` seconds while every watched part makes progress.

    A part is a name, a counter that grows while it works, and how long it may go
    without growing (:meth:`watch`); or a name and a liveness test (:meth:`alive`).
    :meth:`tick` is called by the supervisor's loop; it pings when a ping is due and
    nothing is wedged, and logs a wedged part once when it wedges and again when it
    recovers.
    """

    def __init__(self, notifier: Notifier, every: float | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.every = every
        self._clock = clock
        self._progress: dict[str, _Progress] = {}
        self._next = 0.0
        self._wedged: set[str] = set()
        self.pings = 0

    @property
    def armed(self) -> bool:
        return self.every is not None

    def due_in(self) -> float:
        """Seconds until the next ping is due (for the supervisor's wait)."""
        if self.every is None:
            return float("inf")
        return max(0.0, self._next - self._clock())

    def stalled(self, name: str, count: int, limit: float) -> bool:
        """Whether the part ``name`` whose counter reads ``count`` made no progress for
        more than ``limit`` seconds."""
        now = self._clock()
        progress = self._progress.get(name)
        if progress is None or progress.count != count:
            self._progress[name] = _Progress(count, now)
            return False
        return now - progress.since > limit

    def forget(self, keep: set[str]) -> None:
        """Drop the progress of parts no longer watched (a removed or replaced thread)."""
        for name in list(self._progress):
            if name not in keep:
                del self._progress[name]

    def tick(self, wedged: Callable[[], list[str]]) -> bool:
        """Ping if one is due and ``wedged()`` names no part; True if it pinged."""
        if self.every is None:
            return False
        now = self._clock()
        if now < self._next:
            return False
        parts = wedged()
        now_wedged = set(parts)
        for part in sorted(now_wedged - self._wedged):
            log.error("watchdog: %s made no progress; not pinging systemd (it will restart "
                      "the hub if this lasts)", part)
        for part in sorted(self._wedged - now_wedged):
            log.warning("watchdog: %s is making progress again", part)
        self._wedged = now_wedged
        if parts:
            return False
        self._next = now + self.every
        if self.notifier.watchdog():
            self.pings += 1
        return True
