"""The consumer thread: readings off the queue → batches → the spool.

A batch is committed when it holds ``max_readings`` readings, when its oldest reading
has waited ``max_latency`` seconds, or at once when an edge arrives. Committing to the
spool is what *accepts* a reading (it gets its ``seq`` there); the publisher is then
told there is something to send.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from pihub.errors import SpoolError
from pihub.health import Health
from pihub.readings import Reading
from pihub.threads import RateLimitedLog, StoppableThread

log = logging.getLogger("pihub.consumer")


class _Sentinel:
    def __repr__(self) -> str:
        return "<end of readings>"


#: Put on the queue by the supervisor after the sensors stopped: drain, commit, exit.
END = _Sentinel()

#: How long the consumer waits for a reading when it holds none (bounds how late it
#: notices ``stopping`` if the sentinel could not be queued).
IDLE_WAIT = 1.0


class Accepts(Protocol):
    """Where batches are committed (:class:`pihub.spool.Spool`)."""

    def append(self, readings: Sequence[Reading]) -> object: ...


class Consumer(StoppableThread):
    """Takes readings off ``source`` and commits them to ``spool`` in batches.

    ``committed`` is called with each committed batch's readings (the publisher uses it
    for the retained latest values and to wake up).
    """

    def __init__(self, source: queue.Queue[object], spool: Accepts, health: Health, *,
                 max_readings: int, max_latency: float,
                 committed: Callable[[list[Reading]], None]) -> None:
        super().__init__(name="consumer")
        self._source = source
        self._spool = spool
        self._health = health
        self._max_readings = max_readings
        self._max_latency = max_latency
        self._committed = committed
        self.batches = 0  # read by the watchdog: progress made
        self.beats = 0  # bumped on every wake-up, busy or idle
        self._errors = RateLimitedLog(log)

    def loop(self) -> None:
        batch: list[Reading] = []
        deadline = 0.0
        get = self._source.get
        while True:
            self.beats += 1
            timeout = max(0.0, deadline - time.monotonic()) if batch else IDLE_WAIT
            try:
                first = get(timeout=timeout)
            except queue.Empty:
                if batch:
                    batch = self._flush(batch)
                elif self.stopping.is_set():
                    return
                continue
            for item in self._more(first):
                if item is END:
                    self._flush(batch)
                    return
                assert isinstance(item, Reading)
                if not batch:
                    deadline = time.monotonic() + self._max_latency
                batch.append(item)
                if item.edge or len(batch) >= self._max_readings:
                    batch = self._flush(batch)

    def _more(self, first: object) -> list[object]:
        """``first`` and whatever else is already queued, up to a batch's worth, in order.

        Taken under the queue's lock in one go: a ``get()`` per reading costs a lock
        round-trip and a wake-up of a sensor thread each, which at thousands of readings
        a second was most of this thread's time (see docs/PERFORMANCE.md).
        """
        source = self._source
        with source.mutex:
            n = min(source._qsize(), self._max_readings)
            if not n:
                return [first]
            items = [first]
            take = source._get
            for _ in range(n):
                items.append(take())
            source.not_full.notify(n)
        return items

    def _flush(self, batch: list[Reading]) -> list[Reading]:
        """Commit ``batch``; return a fresh, empty one."""
        if not batch:
            return batch
        try:
            self._spool.append(batch)
        except (SpoolError, ValueError) as exc:
            # Not accepted, so never promised: count it and keep going. A SpoolError
            # (disk full) clears by itself when the disk has room again; a ValueError is
            # a reading SenML cannot carry, which no retry would fix.
            self._health.add("dropped_spool", len(batch))
            self._errors.log(logging.ERROR, "spool write failed, %d readings dropped: %s",
                             len(batch), exc)
            return []
        self._health.add("readings", len(batch))
        self.batches += 1
        self._committed(batch)
        return []
