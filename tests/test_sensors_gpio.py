"""digital, motion, light and distance on gpiozero mock pins."""

from __future__ import annotations

import re
from typing import Any

import pytest
from gpiozero.pins.mock import MockChargingPin, MockPin, MockTriggerPin

from pihub.errors import SensorError
from pihub.hardware import Hardware
from pihub.readings import Reading, RecordSpec
from pihub.schema import rule_of
from pihub.sensors.gpio import (
    Digital,
    DigitalOptions,
    Distance,
    DistanceOptions,
    Light,
    LightOptions,
    Motion,
    MotionOptions,
)
from tests.waiting import wait_until


def pin_pattern() -> str:
    field = DigitalOptions.__dataclass_fields__["pin"]
    pattern = rule_of(field).pattern
    assert pattern is not None
    return pattern


def test_pin_pattern_accepts_gpiozero_names_and_rejects_garbage() -> None:
    for good in ("17", "GPIO17", "gpio4", "BCM27", "BOARD11", "J8:11"):
        assert re.fullmatch(pin_pattern(), good), good
    for bad in ("", "GPIO", "17a", "pin 17", "123"):
        assert not re.fullmatch(pin_pattern(), bad), bad


def test_digital_reads_the_contact(mock_hardware: Hardware) -> None:
    with Digital("door", DigitalOptions(pin="17"), mock_hardware) as door:
        pin = mock_hardware.pin_factory.pin(17)
        assert door.records() == (RecordSpec("door", "vb", None, None),)
        [reading] = door.read()
        # pulled up and open: inactive
        assert reading.name == "door" and reading.value is False and not reading.edge
        pin.drive_low()  # the contact closes the pin to ground
        assert door.read()[0].value is True
    assert door.closed


def test_digital_without_pull_up_is_active_high(mock_hardware: Hardware) -> None:
    with Digital("button", DigitalOptions(pin="GPIO5", pull_up=False), mock_hardware) as button:
        pin = mock_hardware.pin_factory.pin(5)
        assert button.read()[0].value is False
        pin.drive_high()
        assert button.read()[0].value is True


@pytest.mark.timeout(10)
def test_digital_edges_are_readings_at_once(mock_hardware: Hardware) -> None:
    edges: list[Reading] = []
    with Digital("door", DigitalOptions(pin="17", bounce_time=None), mock_hardware) as door:
        door.on_edge(edges.append)
        pin = mock_hardware.pin_factory.pin(17)
        pin.drive_low()
        wait_until(lambda: len(edges) == 1, what="the closing edge")
        pin.drive_high()
        wait_until(lambda: len(edges) == 2, what="the opening edge")
    assert [(e.name, e.value, e.edge, e.unit) for e in edges] == [
        ("door", True, True, None), ("door", False, True, None)]
    assert edges[0].time <= edges[1].time


def test_digital_bad_pin_is_a_sensor_error(mock_hardware: Hardware) -> None:
    with pytest.raises(SensorError, match="pin 99"):
        Digital("door", DigitalOptions(pin="99"), mock_hardware)


def test_digital_pin_in_use_is_a_sensor_error(mock_hardware: Hardware) -> None:
    with Digital("a", DigitalOptions(pin="17"), mock_hardware), \
            pytest.raises(SensorError, match="pin 17"):
        Digital("b", DigitalOptions(pin="17"), mock_hardware)


@pytest.mark.timeout(10)
def test_motion_reads_and_reports_edges(mock_hardware: Hardware) -> None:
    edges: list[Reading] = []
    with Motion("hall", MotionOptions(pin="4"), mock_hardware) as pir:
        assert pir.records() == (RecordSpec("hall", "vb", None, "motion"),)
        pir.on_edge(edges.append)
        assert pir.read()[0].value is False
        mock_hardware.pin_factory.pin(4).drive_high()
        wait_until(lambda: edges, what="the motion edge")
        assert edges[0] == Reading("hall", True, edges[0].time, None, edge=True)
        assert pir.read()[0].value is True


@pytest.mark.timeout(20)
def test_light_measures_the_charge_time(mock_hardware: Hardware) -> None:
    pin = mock_hardware.pin_factory.pin(18, pin_class=MockChargingPin, charge_time=0.05)
    with Light("ldr", LightOptions(pin="18", charge_time_limit=0.1), mock_hardware) as ldr:
        assert ldr.records() == (RecordSpec("ldr", "v", "/", None),)
        [reading] = ldr.read()
        assert reading.unit == "/"
        # charged in half the limit: about half bright (thread timing adds a little)
        assert 0.3 < float(reading.value) < 0.55
        pin.charge_time = 0.2  # longer than the limit: dark
        wait_until(lambda: ldr.read()[0].value == 0.0, what="darkness")


@pytest.mark.timeout(20)
def test_distance_measures_the_echo(mock_hardware: Hardware) -> None:
    factory: Any = mock_hardware.pin_factory
    echo = factory.pin(23)
    factory.pin(24, pin_class=MockTriggerPin, echo_pin=echo, echo_time=2 * 0.3 / 343.26)
    options = DistanceOptions(echo="23", trigger="24", max_distance=1.0)
    with Distance("gap", options, mock_hardware) as gap:
        assert gap.records() == (RecordSpec("gap", "v", "m", "distance"),)
        [reading] = gap.read()
        assert reading.unit == "m"
        assert float(reading.value) == pytest.approx(0.3, abs=0.05)


@pytest.mark.timeout(20)
def test_distance_without_echo_is_a_sensor_error(mock_hardware: Hardware) -> None:
    mock_hardware.pin_factory.pin(23, pin_class=MockPin)
    mock_hardware.pin_factory.pin(24, pin_class=MockPin)  # a trigger wired to nothing
    with Distance("gap", DistanceOptions(echo="23", trigger="24"), mock_hardware) as gap, \
            pytest.raises(SensorError, match=r"no samples|no echo"):
        gap.read()


def test_close_is_idempotent_and_frees_the_pin(mock_hardware: Hardware) -> None:
    door = Digital("door", DigitalOptions(pin="17"), mock_hardware)
    door.close()
    door.close()
    assert "closed" in repr(door)
    Digital("again", DigitalOptions(pin="17"), mock_hardware).close()

