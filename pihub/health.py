"""Health: counters that each stage updates and one place reads.

Sensor threads, the consumer and the publisher each bump their own counters here; the
publisher reads a :meth:`Health.snapshot` and sends it to ``P/HUB/health``. Nothing here
calls back into a stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

OK = "ok"
FAILING = "failing"
STALE = "stale"

#: A sensor with no good reading for this many intervals is stale (e.g. a read that hangs)…
STALE_INTERVALS = 3
#: …and never sooner than this: a sensor polled every millisecond would otherwise flip
#: between ok and stale on every hiccup of the scheduler.
STALE_AFTER_AT_LEAST = 2.0


class SensorHealth:
    """One sensor's state, updated by its thread; read by :meth:`Health.snapshot`."""

    def __init__(self, name: str, interval: float, changed: threading.Event) -> None:
        self.name = name
        self.interval = interval
        # Only the sensor's own thread writes these; readers tolerate a torn view of
        # independent fields, so no lock: each assignment is atomic under the GIL.
        self.errors = 0
        self.last_error: str | None = None
        self.failing = False
        self.last_reading: float | None = None  # time.monotonic() of the last good read
        self.started = time.monotonic()
        self._changed = changed

    def read_ok(self) -> None:
        self.last_reading = time.monotonic()
        if self.failing:
            self.failing = False
            self._changed.set()

    def read_failed(self, error: str) -> None:
        self.errors += 1
        self.last_error = error
        if not self.failing:
            self.failing = True
            self._changed.set()

    def state(self, now: float) -> str:
        if self.failing:
            return FAILING
        since = self.last_reading if self.last_reading is not None else self.started
        limit = max(STALE_INTERVALS * self.interval, STALE_AFTER_AT_LEAST)
        return STALE if now - since > limit else OK

    def as_dict(self, now: float) -> dict[str, Any]:
        age = None if self.last_reading is None else round(now - self.last_reading, 3)
        return {"state": self.state(now), "errors": self.errors,
                "last_error": self.last_error, "last_reading_age_s": age}


class Health:
    """The hub's counters. Counters are bumped under one lock: it is taken per batch or per
    drop, never per reading on a hot path, so contention stays negligible."""

    def __init__(self, hub_id: str) -> None:
        self.hub_id = hub_id
        self.started = time.monotonic()
        #: Set by anything that makes the health worth publishing now (a sensor state change).
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self.sensors: dict[str, SensorHealth] = {}
        self.readings = 0  # accepted into the spool
        self.published = 0  # acknowledged by the broker
        self.dropped_queue = 0  # the queue was full
        self.dropped_spool = 0  # the spool could not take them (disk full, write error)
        self.refused = 0  # batches the broker refused (reason code >= 0x80)
        self.refused_reason: str | None = None
        #: Readings taken while the wall clock was not known to be set (pihub.clock);
        #: bumped only by the supervisor's reading queue, under that queue's own lock.
        self.unsynced_readings = 0
        # Wired by the supervisor to the live objects; read only in snapshot().
        self.queue_depth: Callable[[], int] = lambda: 0
        self.spool_depth: Callable[[], int] = lambda: 0
        self.spool_dropped: Callable[[], int] = lambda: 0
        self.link_state: Callable[[], tuple[bool, int, str | None]] = lambda: (False, 0, None)
        self.clock_synced: Callable[[], bool] = lambda: True

    def sensor(self, name: str, interval: float) -> SensorHealth:
        """The :class:`SensorHealth` for ``name``, created on first use and kept across restarts."""
        with self._lock:
            health = self.sensors.get(name)
            if health is None:
                health = self.sensors[name] = SensorHealth(name, interval, self.changed)
                self.changed.set()  # a new sensor in the health document
            return health

    def remove_sensor(self, name: str) -> None:
        with self._lock:
            self.sensors.pop(name, None)
        self.changed.set()

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_spool + self.spool_dropped()

    def sensor_states(self) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            return {name: s.state(now) for name, s in self.sensors.items()}

    def snapshot(self) -> dict[str, Any]:
        """The health payload of the contract (plus a breakdown of drops)."""
        now = time.monotonic()
        connected, reconnects, error = self.link_state()
        with self._lock:
            sensors = {name: s.as_dict(now) for name, s in sorted(self.sensors.items())}
            counters = (self.readings, self.published, self.dropped_queue,
                        self.dropped_spool, self.refused, self.refused_reason)
        readings, published, dropped_queue, dropped_spool, refused, refused_reason = counters
        spool_dropped = self.spool_dropped()
        return {
            "hub": self.hub_id,
            "uptime_s": round(now - self.started, 1),
            "connected": connected,
            "reconnects": reconnects,
            "mqtt_error": error,
            "readings": readings,
            "published": published,
            "dropped": dropped_queue + dropped_spool + spool_dropped,
            "queue_depth": self.queue_depth(),
            "spool_depth": self.spool_depth(),
            "sensors": sensors,
            "drops": {"queue_full": dropped_queue, "spool_error": dropped_spool,
                      "spool_bound": spool_dropped},
            "refused_batches": refused,
            "refused_reason": refused_reason,
            "clock_synced": self.clock_synced(),
            "unsynced_readings": self.unsynced_readings,
        }
