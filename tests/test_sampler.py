"""The sensor thread: a steady schedule, errors counted, edges queued, drops counted."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence

import pytest

from pihub.health import FAILING, OK, STALE, Health
from pihub.readings import Reading, RecordSpec
from pihub.sampler import SensorThread
from pihub.sensors.base import EdgeCallback, NoOptions, Sensor


class VirtualTime:
    """A clock and a ``stopping`` event in one: waiting advances the clock at once."""

    def __init__(self, polls: int) -> None:
        self.now = 1000.0
        self.polls_left = polls
        self._set = False

    def clock(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float) -> bool:
        assert timeout >= 0, "the thread asked to wait a negative time"
        self.now += timeout
        self.polls_left -= 1
        if self.polls_left <= 0:
            self._set = True
        return self._set

    sleep = wait


class ScriptedSensor(Sensor):
    """Reads take ``work`` virtual seconds (or raise when ``work`` is an exception)."""

    type_name = "scripted"
    Options = NoOptions

    def __init__(self, vt: VirtualTime, works: Sequence[float | Exception]) -> None:
        super().__init__("s", NoOptions(), None)  # type: ignore[arg-type]
        self.vt = vt
        self.works = list(works)
        self.read_times: list[float] = []
        self.edge: EdgeCallback | None = None

    def records(self) -> list[RecordSpec]:
        return [RecordSpec("s", "v")]

    def read(self) -> list[Reading]:
        self.read_times.append(self.vt.now)
        work = self.works.pop(0) if self.works else 0.0
        if isinstance(work, Exception):
            raise work
        self.vt.now += work
        return [Reading("s", 1.0, 0.0)]

    def on_edge(self, callback: EdgeCallback) -> None:
        self.edge = callback


def run_virtual(works: Sequence[float | Exception], polls: int, interval: float = 0.1,
                out: queue.Queue[object] | None = None,
                health: Health | None = None) -> tuple[ScriptedSensor, SensorThread]:
    vt = VirtualTime(polls)
    sensor = ScriptedSensor(vt, works)
    thread = SensorThread("s", interval, lambda: sensor, out or queue.Queue(),
                          health or Health("h"), clock=vt.clock)
    thread.stopping = vt  # type: ignore[assignment]
    thread.loop()  # synchronously, in virtual time
    return sensor, thread


def test_polls_stay_on_the_grid_whatever_each_read_costs() -> None:
    works = [0.0, 0.03, 0.09, 0.01, 0.05] * 40
    sensor, _ = run_virtual(works, polls=200)
    start = sensor.read_times[0]
    assert len(sensor.read_times) == 200
    for k, t in enumerate(sensor.read_times):
        assert t == pytest.approx(start + k * 0.1, abs=1e-9), f"poll {k} drifted"


def test_an_overrunning_read_skips_missed_slots_instead_of_bursting() -> None:
    # poll 1 starts at 0.1 and ends at 0.35: slots 2 and 3 (0.2, 0.3) are gone.
    sensor, _ = run_virtual([0.0, 0.25, 0.0, 0.0], polls=4)
    start = sensor.read_times[0]
    offsets = [round((t - start) / 0.1, 6) for t in sensor.read_times]
    assert offsets == [0, 1, 4, 5]


def test_a_failing_read_is_counted_and_a_good_one_recovers() -> None:
    health = Health("h")
    out: queue.Queue[object] = queue.Queue()
    run_virtual([OSError("bus error"), OSError("bus error"), 0.0], polls=2, out=out,
                health=health)
    status = health.sensors["s"]
    assert status.errors == 2
    assert status.last_error == "bus error"
    assert status.state(time.monotonic()) == FAILING
    # the third poll happened later in a fresh run of the same health record
    vt = VirtualTime(1)
    good = ScriptedSensor(vt, [0.0])
    again = SensorThread("s", 0.1, lambda: good, out, health, clock=vt.clock)
    again.stopping = vt  # type: ignore[assignment]
    again.loop()
    assert status.state(time.monotonic()) == OK
    assert out.qsize() == 1


def test_a_sensor_that_cannot_open_is_failing_and_retried() -> None:
    health = Health("h")
    vt = VirtualTime(3)
    attempts: list[float] = []

    def open_sensor() -> Sensor:
        attempts.append(vt.now)
        raise OSError("no such device")

    thread = SensorThread("s", 0.1, open_sensor, queue.Queue(), health, clock=vt.clock)
    thread.stopping = vt  # type: ignore[assignment]
    thread.loop()
    assert len(attempts) == 3
    assert health.sensors["s"].state(vt.now) == FAILING
    assert "no such device" in (health.sensors["s"].last_error or "")


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    health = Health("h")
    out: queue.Queue[object] = queue.Queue(maxsize=2)
    run_virtual([0.0] * 5, polls=5, out=out, health=health)
    assert out.qsize() == 2
    assert health.dropped_queue == 3


def test_no_reading_for_three_intervals_is_stale() -> None:
    health = Health("h")
    status = health.sensor("x", 1.0)
    status.read_ok()
    assert status.state(status.last_reading + 2.9) == OK  # type: ignore[operator]
    assert status.state(status.last_reading + 3.1) == STALE  # type: ignore[operator]


@pytest.mark.timeout(10)
def test_edges_go_to_the_queue_at_once_and_stop_is_prompt() -> None:
    out: queue.Queue[object] = queue.Queue()
    opened = threading.Event()

    class EdgeSensor(Sensor):
        type_name = "edge"

        def records(self) -> list[RecordSpec]:
            return [RecordSpec("door", "vb")]

        def read(self) -> list[Reading]:
            return []

        def on_edge(self, callback: EdgeCallback) -> None:
            self.callback = callback
            opened.set()

    sensor = EdgeSensor("door", NoOptions(), None)  # type: ignore[arg-type]
    thread = SensorThread("door", 3600.0, lambda: sensor, out, Health("h"))
    thread.start()
    try:
        assert opened.wait(5)
        sensor.callback(Reading("door", True, 1.0, edge=True))
        assert out.get(timeout=5) == Reading("door", True, 1.0, edge=True)
    finally:
        thread.stop(timeout=5)
    assert not thread.is_alive()
    assert sensor.closed
