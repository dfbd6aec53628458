"""The bounded queue from the sensor threads to the consumer.

A :class:`queue.Queue` with two additions. It marks readings taken while the wall clock
was not synced (``synced=False``, counted in health). And it lets its one consumer wait
for a *batch* instead of a reading: :meth:`ReadingQueue.take` sleeps until the number
of readings the consumer asked for is queued, an urgent item arrives (an edge, or the
consumer's end-of-readings sentinel) or the timeout passes, and then takes up to a
batch under one lock. A put wakes the consumer only when what it waits for is there.

Waking the consumer for every reading, and taking them one ``get()`` at a time, cost two
thread switches per reading: at thousands of readings a second most of the hub's CPU
time went to the kernel switching threads (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import queue
import threading

from pihub.clock import Clock
from pihub.health import Health
from pihub.readings import Reading


class ReadingQueue(queue.Queue[object]):
    """The hub's reading queue, holding at most ``maxsize`` items (0: unbounded).

    ``put``/``get`` behave as :class:`queue.Queue`'s, except that while :meth:`take` is
    waiting a put only wakes it once enough is queued: one consumer at a time.
    A reading put while ``clock`` is not synced is marked and counted in ``health``;
    the put comes right after the read, so this is the clock the sensor stamped it with.
    """

    def __init__(self, maxsize: int, clock: Clock | None = None,
                 health: Health | None = None) -> None:
        super().__init__(maxsize)
        self._clock = clock
        self._health = health
        self._wanted = 1  # wake a waiting getter once this many items are queued
        self._urgent = False  # an edge or a non-reading is queued: wake at once
        self.not_empty = _WakeWhenWanted(self)  # put() notifies it after every item

    def _put(self, item: object) -> None:
        # Runs under the queue's mutex: the counter has a single writer at a time.
        if isinstance(item, Reading):
            clock = self._clock
            if clock is not None and not clock.synced and item.synced:
                item = item._replace(synced=False)
                if self._health is not None:
                    self._health.unsynced_readings += 1
            if item.edge:
                self._urgent = True
        else:
            self._urgent = True
        self.queue.append(item)

    def take(self, wanted: int, most: int, timeout: float) -> list[object]:
        """Wait at most ``timeout`` seconds until ``wanted`` items are queued or an
        urgent one is; then take up to ``most`` (oldest first). May return fewer than
        ``wanted``, or none when the timeout passed with nothing queued."""
        with self.not_empty:
            items = self.queue
            if len(items) < wanted and not self._urgent and timeout > 0:
                self._wanted = max(1, wanted)
                try:
                    self.not_empty.wait(timeout)
                finally:
                    self._wanted = 1
            n = min(len(items), most)
            if not n:
                return []
            popleft = items.popleft
            taken = [popleft() for _ in range(n)]
            if not items:
                self._urgent = False  # else one may still be queued: take again at once
            self.not_full.notify(n)
            return taken


class _WakeWhenWanted(threading.Condition):
    """A :class:`ReadingQueue`'s ``not_empty``: ``queue.Queue.put`` notifies it after
    every item, and it passes the notification on only when the waiting taker has what
    it asked for (a getter asks for one) or something urgent is queued."""

    def __init__(self, owner: ReadingQueue) -> None:
        super().__init__(owner.mutex)
        self._owner = owner

    def notify(self, n: int = 1) -> None:
        owner = self._owner
        if owner._urgent or len(owner.queue) >= owner._wanted:
            super().notify(n)
