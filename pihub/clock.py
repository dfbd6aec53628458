"""Is the wall clock set yet?

A Raspberry Pi has no real-time clock: it boots at the time it last shut down (or in
1970) and jumps when NTP syncs. Schedules run on ``time.monotonic()`` and do not care,
but a reading's time is wall-clock, so readings taken before the sync are marked (health
``clock_synced``/``unsynced_readings`` and the SenML field ``tsync: false``).

How we tell, first answer wins:

1. the wall clock is before :data:`FLOOR` (this release was made after it): not synced;
2. ``/run/systemd/timesync/synchronized`` exists (systemd-timesyncd, Raspberry Pi OS's
   default, creates it at its first sync): synced;
3. the kernel's NTP status (``adjtimex``, Linux): ``STA_UNSYNC`` set means not synced.
   Every NTP daemon (timesyncd, chrony, ntpd) clears it when it disciplines the clock;
   it is set at boot. The unit's ``ProtectClock=yes`` may deny the call (EPERM): then
   this step has no answer;
4. no answer: synced (the clock is past the floor and nothing says otherwise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("pihub.clock")

#: 2025-01-01T00:00:00Z. A wall clock before it was certainly never synced.
FLOOR = 1735689600.0
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
#: From <linux/timex.h>.
STA_UNSYNC = 0x0040
TIME_ERROR = 5
#: How often :class:`Clock` asks again; cheap either way (a stat and a system call).
PROBE_EVERY = 2.0

Probe = Callable[[], bool]


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>: the fields we read, then room for the rest (the
    # kernel writes 208 bytes on 64-bit Linux; more padding is harmless).
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def kernel_synced() -> bool | None:
    """The kernel's view (``adjtimex`` with no change asked); None if it cannot tell."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        timex = _Timex()
        state = _libc().adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:  # EPERM under a seccomp filter (ProtectClock=yes)
        return None
    return not (timex.status & STA_UNSYNC or state == TIME_ERROR)


def probe_synced(*, now: Callable[[], float] = time.time,
                 flag: Path = TIMESYNCD_FLAG,
                 kernel: Callable[[], bool | None] = kernel_synced) -> bool:
    """Whether the wall clock is known good enough to stamp readings (see the module)."""
    if now() < FLOOR:
        return False
    try:
        if flag.exists():
            return True
    except OSError:
        pass
    answer = kernel()
    return True if answer is None else answer


class Clock:
    """The cached answer of ``probe`` (asked at most every ``every`` seconds).

    :attr:`synced` is read for every reading, so it is a plain attribute refreshed by
    :meth:`refresh`, which any thread may call; the supervisor calls it from its loop.
    """

    def __init__(self, probe: Probe = probe_synced, *, every: float = PROBE_EVERY,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self._every = every
        self._monotonic = monotonic
        self._lock = threading.Lock()  # serialises refreshes; readers never take it
        self._next = 0.0
        self.synced = True
        self.refresh(force=True)

    def __repr__(self) -> str:
        return f"<Clock {'synced' if self.synced else 'not synced'}>"

    def refresh(self, *, force: bool = False) -> bool:
        """Ask the probe again if it is due (or ``force``); the current answer."""
        now = self._monotonic()
        with self._lock:
            if not force and now < self._next:
                return self.synced
            self._next = now + self._every
            try:
                synced = bool(self._probe())
            except Exception:
                log.exception("clock probe failed; assuming the clock is set")
                synced = True
            if synced != self.synced:
                if synced:
                    log.info("the wall clock is synchronised now; readings are no longer "
                             "marked")
                else:
                    log.warning("the wall clock is not synchronised (no NTP sync yet?): "
                                "readings are marked tsync=false until it is")
            elif force and not synced:
                log.warning("the wall clock is not synchronised (no NTP sync yet?): "
                            "readings are marked tsync=false until it is")
            self.synced = synced
            return synced
