"""analog: MCP3xxx ADCs on the mock SPI pins, answered by the simulation's mock chip."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from gpiozero import OutputDevice

from pihub.errors import SensorError, SensorRangeError
from pihub.hardware import Hardware
from pihub.readings import RecordSpec
from pihub.sensors.analog import CHANNELS, Analog, AnalogOptions
from pihub.simulation.pins import MockFactory, MockMCP3xxx


@pytest.fixture
def adc_hardware() -> Iterator[Hardware]:
    with Hardware(MockFactory(), backend="mock") as hardware:
        yield hardware


def attach(hardware: Hardware, chip: str, vref: float = 3.3) -> MockMCP3xxx:
    return MockMCP3xxx(chip, vref, pin_factory=hardware.pin_factory)


def test_mcp3008_voltage_is_scaled(adc_hardware: Hardware) -> None:
    adc = attach(adc_hardware, "mcp3008")
    adc.voltages[3] = 1.65
    options = AnalogOptions(channel=3, scale=2.0, offset=-1.0, unit="bar")
    with Analog("tank", options, adc_hardware) as tank:
        assert tank.records() == (RecordSpec("tank", "v", "bar", None),)
        [reading] = tank.read()
        assert reading.unit == "bar"
        # 1.65 V * 2 - 1, within one LSB of a 10-bit converter
        assert float(reading.value) == pytest.approx(2.3, abs=2 * 3.3 / 1023)
        adc.voltages[3] = 0.0
        assert float(tank.read()[0].value) == pytest.approx(-1.0, abs=2 * 3.3 / 1023)


def test_volts_record_is_a_voltage(adc_hardware: Hardware) -> None:
    attach(adc_hardware, "mcp3008").voltages[0] = 3.3
    with Analog("v", AnalogOptions(channel=0), adc_hardware) as sensor:
        assert sensor.records() == (RecordSpec("v", "v", "V", "voltage"),)
        assert float(sensor.read()[0].value) == pytest.approx(3.3, abs=0.01)


@pytest.mark.parametrize("chip", sorted(CHANNELS))
def test_every_chip_reads_its_last_channel(adc_hardware: Hardware, chip: str) -> None:
    adc = attach(adc_hardware, chip, vref=5.0)
    channel = CHANNELS[chip] - 1
    adc.voltages[channel] = 1.25
    with Analog("a", AnalogOptions(chip=chip, channel=channel, vref=5.0), adc_hardware) as a:
        assert float(a.read()[0].value) == pytest.approx(1.25, abs=5.0 / 1000)
    assert adc.conversions == 1


def test_a_channel_the_chip_lacks_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"channels 0\.\.1"):
        AnalogOptions(chip="mcp3002", channel=2)
    with pytest.raises(ValueError, match="only channel 0"):
        AnalogOptions(chip="mcp3001", channel=1)


def test_a_value_that_is_not_finite_is_a_range_error(adc_hardware: Hardware) -> None:
    attach(adc_hardware, "mcp3008").voltages[0] = 1.0
    with Analog("a", AnalogOptions(channel=0, scale=math.inf), adc_hardware) as a, \
            pytest.raises(SensorRangeError):
        a.read()


def test_no_spi_pins_is_a_sensor_error(adc_hardware: Hardware) -> None:
    # something else holds the SPI clock pin
    with OutputDevice(11, pin_factory=adc_hardware.pin_factory), \
            pytest.raises(SensorError, match="mcp3008"):
        Analog("a", AnalogOptions(channel=0), adc_hardware)
