"""The thread that runs one sensor: poll on a steady grid, stamp, queue.

It knows nothing of sensor types: it calls ``read()`` on whatever :class:`Sensor` its
factory opens, and puts the readings on the hub's shared queue.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections.abc import Callable

from pihub.health import Health, SensorHealth
from pihub.readings import Reading
from pihub.sensors.base import Sensor
from pihub.threads import RateLimitedLog, StoppableThread

log = logging.getLogger("pihub.sampler")

SensorFactory = Callable[[], Sensor]

#: How long before its next poll a sensor thread stops waiting for room in the queue.
PUT_MARGIN = 0.005



class SensorThread(StoppableThread):
    """Polls one sensor every ``interval`` seconds and feeds ``out``.

    Polls are scheduled on ``time.monotonic()`` deadlines (``start + k * interval``), so
    the schedule does not drift with the time a read takes and ignores wall-clock
    jumps; a poll that overruns skips the slots it missed rather than bursting to catch
    up. Readings keep the wall-clock time the sensor stamped them with.

    A read that raises is counted, logged (rate-limited) and shown as ``failing`` in
    health; the schedule goes on and a later good read sets the sensor back to ``ok``.
    Putting on a full queue never waits past the next poll's deadline; what cannot be
    queued is dropped and counted.
    """

    def __init__(self, name: str, interval: float, open_sensor: SensorFactory,
                 out: queue.Queue[object], health: Health, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name=f"sensor-{name}")
        self._clock = clock  # tests drive the schedule with a virtual clock
        self.sensor_name = name
        self.interval = interval
        self._open = open_sensor
        self._out = out
        self._health = health
        self.status: SensorHealth = health.sensor(name, interval)
        self.sensor: Sensor | None = None
        self.polls = 0  # read by the watchdog: progress made
        self._errors = RateLimitedLog(log)
        self._drops = RateLimitedLog(log)

    def __repr__(self) -> str:
        return f"<SensorThread {self.sensor_name!r} every {self.interval} s polls={self.polls}>"

    def loop(self) -> None:
        try:
            self._sample()
        finally:
            if self.sensor is not None:
                self._close_sensor()

    def _sample(self) -> None:
        start = self._clock()
        slot = 0
        while not self.stopping.is_set():
            deadline = start + (slot + 1) * self.interval
            if self.sensor is None:
                self._try_open()
            if self.sensor is not None:
                self._poll(deadline)
            self.polls += 1
            now = self._clock()
            # The next slot after now: skip any we overran rather than catch up in a burst.
            slot = max(slot + 1, math.floor((now - start) / self.interval) + 1)
            if self.stopping.sleep(start + slot * self.interval - now):
                return

    def _try_open(self) -> None:
        try:
            sensor = self._open()
        except Exception as exc:
            self.status.read_failed(f"cannot open: {exc}")
            self._errors.log(logging.ERROR, "[sensor:%s] cannot open: %s", self.sensor_name, exc)
            return
        sensor.on_edge(self._edge)
        self.sensor = sensor

    def _poll(self, deadline: float) -> None:
        assert self.sensor is not None
        try:
            readings = self.sensor.read()
        except Exception as exc:
            self.status.read_failed(str(exc) or type(exc).__name__)
            self._errors.log(logging.WARNING, "[sensor:%s] read failed: %s",
                             self.sensor_name, exc)
            return
        self.status.read_ok()
        # Wait for room in the queue, but give up a little before the next poll is due:
        # a poll that ends past its deadline would cost the next slot.
        until = deadline - min(0.1 * self.interval, PUT_MARGIN)
        for i, reading in enumerate(readings):
            try:
                self._out.put(reading, timeout=max(0.0, until - self._clock()))
            except queue.Full:
                self._dropped(len(readings) - i)  # the rest of this poll, at once
                return

    def _edge(self, reading: Reading) -> None:
        # Called from gpiozero's event thread: never block it.
        try:
            self._out.put_nowait(reading)
        except queue.Full:
            self._dropped(1)
        else:
            self.status.read_ok()

    def _dropped(self, n: int) -> None:
        self._health.add("dropped_queue", n)
        self._drops.log(logging.WARNING, "[sensor:%s] queue full: %d readings dropped",
                        self.sensor_name, n)

    def _close_sensor(self) -> None:
        assert self.sensor is not None
        try:
            self.sensor.close()
        except Exception:
            log.exception("[sensor:%s] close failed", self.sensor_name)
        self.sensor = None
