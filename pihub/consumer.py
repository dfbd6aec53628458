"""The consumer thread: readings off the queue → batches → the spool.

A batch is committed when it holds ``max_readings`` readings, when its oldest reading
has waited ``max_latency`` seconds, or at once when an edge arrives. Committing to the
spool is what *accepts* a reading (it gets its ``seq`` there); the publisher is then
told there is something to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from pihub.errors import SpoolError
from pihub.health import Health
from pihub.readingqueue import ReadingQueue
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

#: When readings queue faster than batches commit, up to this many full batches are
#: committed in one transaction (one fsync), still as one pack each.
GROUP_COMMIT = 10


class Accepts(Protocol):
    """Where batches are committed (:class:`pihub.spool.Spool`)."""

    def append(self, readings: Sequence[Reading], per_pack: int | None = None,
               ) -> object: ...


class Consumer(StoppableThread):
    """Takes readings off ``source`` and commits them to ``spool`` in batches.

    ``committed`` is called with each committed batch's readings (the publisher uses it
    for the retained latest values and to wake up).
    """

    def __init__(self, source: ReadingQueue, spool: Accepts, health: Health, *,
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
        take = self._source.take
        most = self._max_readings
        limit = most  # this commit's size: a batch, or several when more are waiting
        # After a commit the consumer gathers: it sleeps max_latency (or until a batch is
        # queued, or an edge) and then commits what came, so readings that trickle in
        # cost one wake-up per batch, not one for the first reading and one for the
        # deadline. Every reading still waits at most max_latency. When a gathering
        # finds nothing, it waits idle until the next reading.
        gathering = False
        while True:
            self.beats += 1
            if batch:
                # Sleep until the batch can be filled, an edge comes, or it is due.
                room = limit - len(batch)
                items = take(room, room, deadline - time.monotonic())
                opened = time.monotonic() + self._max_latency  # for any after a flush
            elif gathering:
                opened = time.monotonic() + self._max_latency
                items = take(most, most, self._max_latency)
                gathering = bool(items)
            else:
                items = take(1, most, IDLE_WAIT)
                opened = time.monotonic() + self._max_latency
            if not items and not batch and self.stopping.is_set():
                return
            for item in items:
                if item is END:
                    self._flush(batch)
                    return
                assert isinstance(item, Reading)
                if not batch:
                    deadline, limit = opened, most
                batch.append(item)
                if item.edge:
                    batch, gathering = self._flush(batch), True
                elif len(batch) >= limit:
                    if limit < most * GROUP_COMMIT and self._source.qsize() >= most:
                        limit += most  # a full batch is waiting: commit it with this one
                    else:
                        batch, gathering = self._flush(batch), True
            if batch and time.monotonic() >= deadline:
                batch, gathering = self._flush(batch), True

    def _flush(self, batch: list[Reading]) -> list[Reading]:
        """Commit ``batch``; return a fresh, empty one."""
        if not batch:
            return batch
        try:
            self._spool.append(batch, self._max_readings)
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
