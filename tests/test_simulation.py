"""The simulated world: every sensor type reads moving values, repeatably when seeded."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pihub.readings import Reading
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor
from pihub.simulation import SimulatedHardware, signals
from tests.waiting import wait_until

#: One sensor of every type, on pins and addresses a user might pick.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "door": ("digital", {"pin": "17"}),
    "hall": ("motion", {"pin": "BOARD13"}),
    "ldr": ("light", {"pin": "GPIO22", "charge_time_limit": 0.02}),
    "gap": ("distance", {"echo": "23", "trigger": "24", "max_distance": 2.0}),
    "pot": ("analog", {"chip": "mcp3208", "channel": 5, "vref": 5.0}),
    "cpu": ("cpu_temperature", {}),
    "load": ("load_average", {}),
    "disk": ("disk_usage", {"path": "/var"}),
    "water": ("ds18b20", {"device": "28-0316a2790eff"}),
    "climate": ("bme280", {"bus": 3, "address": "0x77"}),
}


def open_sensor(hardware: SimulatedHardware, name: str) -> Sensor:
    type_name, options = CONFIGS[name]
    cls = SENSOR_TYPES[type_name]
    return cls(name, cls.Options(**options), hardware)


@pytest.fixture
def fast() -> Iterator[SimulatedHardware]:
    """A running simulation fifty times faster than life: doors open every half second."""
    with SimulatedHardware(seed=2, speed=50.0, tick=0.05) as hardware:
        yield hardware


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["ldr", "gap", "pot", "cpu", "load", "disk", "water",
                                  "climate"])
def test_values_move_by_themselves(fast: SimulatedHardware, name: str) -> None:
    seen: dict[str, set[object]] = {}
    with open_sensor(fast, name) as sensor:
        def moved() -> bool:
            for reading in sensor.read():
                seen.setdefault(reading.name, set()).add(reading.value)
            return len(seen) == len(sensor.records()) and all(
                len(values) >= 3 for values in seen.values())

        wait_until(moved, timeout=30, every=0.05, what=f"{name} to change")
        units = {spec.name: spec.unit for spec in sensor.records()}
        assert {r.name: r.unit for r in sensor.read()} == units


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["door", "hall"])
def test_switches_make_edges_by_themselves(fast: SimulatedHardware, name: str) -> None:
    edges: list[Reading] = []
    with open_sensor(fast, name) as sensor:
        sensor.on_edge(edges.append)
        wait_until(lambda: {e.value for e in edges} == {True, False}, timeout=30,
                   what=f"{name} to go both ways")
    assert all(e.edge and e.name == name for e in edges)


@pytest.mark.timeout(20)
def test_drive_forces_an_edge_at_once(sim_hardware: SimulatedHardware) -> None:
    edges: list[Reading] = []
    with open_sensor(sim_hardware, "door") as door:
        door.on_edge(edges.append)
        before = door.read()[0].value
        sim_hardware.drive("17", bool(before))  # a pulled-up contact: high is open
        assert [e.value for e in edges] == [not before]
        for _ in range(2000):  # a held pin ignores the door's own movements
            sim_hardware.step(0.5)
        assert door.read()[0].value is (not before)
        assert len(edges) == 1
        sim_hardware.drive("17", None)

        def moved_again() -> bool:
            sim_hardware.step(1.0)
            return len(edges) > 1

        wait_until(moved_again, what="the released door to move again")


def snapshot(hardware: SimulatedHardware) -> list[object]:
    values: list[object] = []
    for name in ("pot", "cpu", "load", "disk", "water", "climate"):
        with open_sensor(hardware, name) as sensor:
            values += [r.value for r in sensor.read()]
    return values


def test_a_seed_makes_the_world_repeatable() -> None:
    worlds = [SimulatedHardware(seed=11, autostart=False) for _ in range(2)]
    try:
        for world in worlds:
            snapshot(world)  # build every part
            for _ in range(300):
                world.step()
        first, second = (snapshot(world) for world in worlds)
        assert first == second
        with SimulatedHardware(seed=12, autostart=False) as other:
            snapshot(other)
            for _ in range(300):
                other.step()
            assert snapshot(other) != first
    finally:
        for world in worlds:
            world.close()


def test_a_sensor_reopened_finds_its_part_again(sim_hardware: SimulatedHardware) -> None:
    with open_sensor(sim_hardware, "climate") as climate:
        climate.read()
    chip = sim_hardware.bme280(bus=3, address=0x77)
    with open_sensor(sim_hardware, "climate") as climate:
        climate.read()
    assert sim_hardware.bme280(bus=3, address=0x77) is chip
    assert chip.measurements == 2


def test_two_analog_channels_share_one_chip(sim_hardware: SimulatedHardware) -> None:
    cls = SENSOR_TYPES["analog"]
    with cls("a", cls.Options(channel=0), sim_hardware) as a, \
            cls("b", cls.Options(channel=1), sim_hardware) as b:
        adc = sim_hardware.adc()
        adc.voltages[0], adc.voltages[1] = 0.5, 2.5
        assert float(a.read()[0].value) == pytest.approx(adc.voltages[0], abs=0.01)
        assert float(b.read()[0].value) == pytest.approx(adc.voltages[1], abs=0.01)


@pytest.mark.timeout(20)
def test_close_stops_the_signal_thread() -> None:
    hardware = SimulatedHardware(seed=1)
    assert any(t.name == "pihub-simulation" for t in threading.enumerate())
    hardware.close()
    hardware.close()
    assert not any(t.name == "pihub-simulation" for t in threading.enumerate())
    assert "closed" in repr(hardware)


def test_wander_stays_in_bounds_and_moves() -> None:
    wander = signals.Wander(random.Random(1), mean=20.0, spread=5.0, tau=10.0, low=10.0,
                            high=30.0)
    values = []
    for _ in range(5000):
        wander.step(0.5)
        values.append(wander.value)
    assert 10.0 <= min(values) < 18.0 and 22.0 < max(values) <= 30.0


def test_door_changes_every_ten_to_thirty_seconds() -> None:
    door = signals.Toggle(random.Random(1), rest=(8.0, 25.0), active=(2.0, 8.0))
    changes, last = 0, door.value
    for _ in range(36000):  # an hour in tenths of a second
        door.step(0.1)
        changes += door.value != last
        last = door.value
    assert 3600 / 35 < changes / 2 < 3600 / 10


def test_pir_bursts_have_several_pulses() -> None:
    pir = signals.Bursts(random.Random(1), rest=(8.0, 25.0))
    rises, last = 0, pir.value
    for _ in range(36000):
        pir.step(0.1)
        rises += pir.value > last
        last = pir.value
    assert 3600 / 35 < rises < 3600 / 2
