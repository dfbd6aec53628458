"""The stoppable thread every pihub worker is built on, and a rate-limited logger.

Modelled on gpiozero's ``threads.py``: a worker waits on its ``stopping`` event instead
of sleeping, ``stop()`` sets the event and joins with a timeout, and raises if the
thread did not die. Unlike a bare thread, a worker never dies silently: whatever escapes
:meth:`StoppableThread.loop` is logged as CRITICAL with its traceback and kept in
:attr:`StoppableThread.crash` for the supervisor to see.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from pihub.errors import ZombieThread

log = logging.getLogger("pihub.threads")


class StopEvent(threading.Event):
    """A one-way stop flag with a cheap timed wait, :meth:`sleep`.

    ``Event.wait`` runs a Condition's Python code and allocates a lock on every call; a
    sensor thread polled at 10 kHz waits 10,000 times a second. :meth:`sleep` blocks on
    one lock that :meth:`set` releases: a single C call that gives up the GIL.
    """

    def __init__(self) -> None:
        super().__init__()
        self._gate = threading.Lock()
        self._gate.acquire()  # open (released) once set
        self._setting = threading.Lock()

    def set(self) -> None:
        with self._setting:
            if not self.is_set():
                super().set()
                self._gate.release()

    def clear(self) -> None:
        raise RuntimeError("a StopEvent cannot be cleared")

    def sleep(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for :meth:`set`; True if it was set."""
        if self._gate.acquire(True, max(0.0, min(timeout, threading.TIMEOUT_MAX))):
            self._gate.release()
            return True
        return self.is_set()


class StoppableThread(threading.Thread):
    """A daemon thread running :meth:`loop` until :meth:`stop`. Subclasses provide ``loop``.

    ``loop`` must return soon after ``self.stopping`` is set; it should wait with
    ``self.stopping.wait(timeout)`` or ``self.stopping.sleep(timeout)`` (cheaper, one
    waiter at a time) rather than ``time.sleep``.
    """

    def __init__(self, name: str) -> None:
        # Daemon: a thread stuck in a read that never returns must not keep the
        # process alive after the supervisor gave up on it.
        super().__init__(name=name, daemon=True)
        self.stopping = StopEvent()
        self.crash: BaseException | None = None
        #: Called from this thread as it ends, whatever the reason (the supervisor's
        #: cue to look at its threads instead of polling them).
        self.on_exit: Callable[[StoppableThread], None] | None = None

    def loop(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        name_native_thread(self.name)
        try:
            self.loop()
        except BaseException as exc:
            self.crash = exc
            log.critical("thread %s died: %s", self.name, exc, exc_info=True)
        finally:
            if self.on_exit is not None:
                try:
                    self.on_exit(self)
                except Exception:
                    log.exception("exit hook of thread %s failed", self.name)

    @property
    def died(self) -> bool:
        """True if the thread ended without being asked to (a crash or a bug)."""
        return self.ident is not None and not self.is_alive() and not self.stopping.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait at most ``timeout`` seconds for it."""
        self.stopping.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self.ident is None:  # never started
            return
        super().join(timeout)
        if self.is_alive():
            raise ZombieThread(f"thread {self.name} did not stop within {timeout} s")


def name_native_thread(name: str) -> None:
    """Give the calling OS thread the Python thread's name (its first 15 bytes), so
    ``top -H``, ``ps -L`` and ``/proc/PID/task/*/comm`` tell the hub's threads apart.

    Written to ``/proc/self/task/TID/comm`` (Linux) rather than through ctypes' prctl: a
    foreign call from each of 4,000 sensor threads touched 9 KiB more of each one's stack
    and heap (36 MiB at the scale benchmark)."""
    try:
        fd = os.open(f"/proc/self/task/{threading.get_native_id()}/comm", os.O_WRONLY)
    except OSError:
        return  # not Linux, or no /proc: the names are a convenience
    try:
        os.write(fd, name.encode(errors="replace")[:15])
    except OSError:
        pass
    finally:
        os.close(fd)


class RateLimitedLog:
    """Logs the first occurrence at once, then at most one line per ``every`` seconds,
    saying how many were suppressed in between. Used for errors that can repeat at the
    rate of a sensor's poll or of a queue that stays full."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self._logger = logger
        self._every = every
        self._next = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()  # taken by any thread that logs through this

    def log(self, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._next = now + self._every
        if suppressed:
            msg += " (%d more like this since the last report)"
            args = (*args, suppressed)
        self._logger.log(level, msg, *args)
