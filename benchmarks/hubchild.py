"""The hub under test: ``pihub run`` plus a cheap test sensor type and an edge driver.

``python -m benchmarks.hubchild -c FILE [--edges PIN,COUNT,PERIOD,OUT]`` runs exactly
what ``pihub run -c FILE`` runs (:func:`pihub.supervisor.run`, sd_notify included),
after registering the sensor type ``bench``: a sensor whose ``read()`` returns one
float reading and costs next to nothing, for scenarios where the
simulation's own signal generators would be what is measured.

``--edges`` drives a simulated pin from a thread in this process once the hub is up:
COUNT edges, PERIOD seconds apart, each one's ``time.time()`` (taken just before the
drive) appended to OUT, so the subscriber's receipt times can be matched to them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from pihub.readings import Reading, RecordSpec
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    pass


class BenchSensor(Sensor):
    """``bench``: one float reading per poll, no device."""

    type_name: ClassVar[str] = "bench"
    Options: ClassVar[type[Any]] = BenchOptions

    def __init__(self, name: str, options: Any, hardware: Any) -> None:
        # No hardware.prepare(): the simulation has no model of it and needs none.
        super().__init__(name, options, None)  # type: ignore[arg-type]
        self._value = 0.0
        # PIHUB_BENCH_POLLS=FILE: keep each poll's monotonic time, written at close.
        self._log_to = os.environ.get("PIHUB_BENCH_POLLS")
        self._polls: list[float] = []

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", None, None),)

    def read(self) -> list[Reading]:
        if self._log_to:
            self._polls.append(time.monotonic())
        self._value += 0.25
        return [Reading(self.name, self._value, time.time(), None)]


    def close(self) -> None:
        if self._log_to and self._polls:
            with open(f"{self._log_to}.{self.name}", "a") as out:
                out.write("\n".join(repr(t) for t in self._polls) + "\n")
            self._polls = []
        super().close()


def register() -> None:
    SENSOR_TYPES.setdefault(BenchSensor.type_name, BenchSensor)


def drive_edges(hub: Any, pin: str, count: int, period: float, out_path: str,
                stop: threading.Event) -> None:
    """Toggle ``pin`` ``count`` times; write each edge's wall-clock time to ``out_path``."""
    assert hub.hardware is not None
    stamps: list[float] = []
    level = True
    # Let the hub connect and publish its start-up state before the first edge.
    deadline = time.monotonic() + 10
    while not (hub.link is not None and hub.link.connected) and time.monotonic() < deadline:
        stop.wait(0.05)
    stop.wait(1.0)
    due = time.monotonic()
    for _ in range(count):
        due += period
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        stamps.append(time.time())
        hub.hardware.drive(pin, level)
        level = not level
    with open(out_path, "w") as out:
        out.write("\n".join(repr(s) for s in stamps) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.hubchild")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--edges", help="PIN,COUNT,PERIOD,OUTFILE")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    register()
    from pihub.cli import setup_logging
    from pihub.config import load_config
    from pihub.supervisor import Hub, run

    setup_logging(args.log_level)
    stop = threading.Event()

    def started(hub: Hub) -> None:
        if args.edges:
            pin, count, period, out = args.edges.split(",")
            threading.Thread(target=drive_edges, name="edge-driver", daemon=True,
                             args=(hub, pin, int(count), float(period), out, stop)).start()

    return run(load_config(args.config), stop, started=started)


if __name__ == "__main__":
    sys.exit(main())
