"""The BME280: Bosch's compensation against the datasheet, and the driver on a fake bus."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pihub.errors import SensorError, SensorRangeError
from pihub.hardware import Hardware, I2CBus
from pihub.readings import RecordSpec
from pihub.sensors import bme280
from pihub.sensors.bme280 import BME280, BME280Options, Calibration
from pihub.simulation.i2c import EXAMPLE_CALIBRATION, FakeBME280, FakeI2CBus, raw_values
from pihub.simulation.pins import MockFactory

#: The BMP280 datasheet's worked example (BST-BMP280-DS001, section 3.12), whose
#: temperature and pressure compensation the BME280 shares: these trimming values and
#: raw readings give 25.08 °C (t_fine 128422) and 100653.27 Pa. Bosch publishes no
#: humidity example; those trimming values come from a real BME280.
DATASHEET = Calibration(
    t1=27504, t2=26435, t3=-1000,
    p1=36477, p2=-10685, p3=3024, p4=2855, p5=140, p6=-7, p7=15500, p8=-14600, p9=6000,
    h1=75, h2=362, h3=0, h4=313, h5=50, h6=30,
)
ADC_T, ADC_P = 519888, 415148


def test_temperature_matches_the_datasheet_example() -> None:
    celsius, t_fine = bme280.compensate_temperature(DATASHEET, ADC_T)
    assert t_fine == 128422
    assert celsius == pytest.approx(25.08, abs=0.005)


def test_pressure_matches_the_datasheet_example() -> None:
    _, t_fine = bme280.compensate_temperature(DATASHEET, ADC_T)
    assert bme280.compensate_pressure(DATASHEET, ADC_P, t_fine) == pytest.approx(
        100653.27, abs=0.05)


def humidity_int32(cal: Calibration, adc_h: int, t_fine: int) -> float:
    """The datasheet's own 32-bit integer humidity formula (section 4.2.3), an independent
    check on the double-precision one (Python's >> floors, as C's does on these parts)."""
    v = t_fine - 76800
    v = (((adc_h << 14) - (cal.h4 << 20) - cal.h5 * v + 16384) >> 15) * (
        ((((((v * cal.h6) >> 10) * (((v * cal.h3) >> 11) + 32768)) >> 10) + 2097152)
         * cal.h2 + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * cal.h1) >> 4)
    v = min(max(v, 0), 419430400)
    return (v >> 12) / 1024.0


@pytest.mark.parametrize("adc_h", [22000, 26000, 30000, 34000, 38000])
def test_humidity_agrees_with_the_integer_formula(adc_h: int) -> None:
    _, t_fine = bme280.compensate_temperature(DATASHEET, ADC_T)
    expected = humidity_int32(DATASHEET, adc_h, t_fine)
    assert 0.0 < expected < 100.0
    assert bme280.compensate_humidity(DATASHEET, adc_h, t_fine) == pytest.approx(
        expected, abs=0.01)


def test_calibration_registers_round_trip_with_negative_h4_h5() -> None:
    odd = Calibration(**{**EXAMPLE_CALIBRATION.__dict__, "h2": -3, "h4": -300, "h5": -20,
                         "h6": -5})
    for cal in (DATASHEET, odd):
        tp, h = cal.to_registers()
        assert Calibration.from_registers(tp, h) == cal


def test_calibration_parses_the_register_layout() -> None:
    # dig_H4 = 0xE4[7:0] << 4 | 0xE5[3:0]; dig_H5 = 0xE6 << 4 | 0xE5[7:4]
    tp = [0] * 26
    tp[0:2] = [0x70, 0x6B]  # dig_T1 = 0x6B70 = 27504
    tp[25] = 75
    cal = Calibration.from_registers(tp, [0x6A, 0x01, 0x00, 0x13, 0x21, 0x03, 0x1E])
    assert (cal.t1, cal.h1, cal.h2, cal.h3, cal.h4, cal.h5, cal.h6) == (
        27504, 75, 362, 0, 0x131, 0x032, 30)


def test_the_fake_chip_gives_back_what_it_was_set_to() -> None:
    t, p, h = bme280.compensate(DATASHEET, ADC_T, ADC_P, 30000)
    assert raw_values(DATASHEET, t, p, h) == (ADC_T, ADC_P, 30000)
    adc = raw_values(DATASHEET, -12.3, 95432.1, 7.5)
    t, p, h = bme280.compensate(DATASHEET, *adc)
    # within one count of each converter: 0.0003 °C, 0.2 Pa, 0.006 %RH
    assert (t, p, h) == pytest.approx((-12.3, 95432.1, 7.5), abs=0.01, rel=3e-6)


class _I2C(Hardware):
    """Hardware whose I2C buses hold the given fake chips."""

    def __init__(self, chips: dict[int, FakeBME280]) -> None:
        super().__init__(MockFactory(), backend="mock")
        self.chips = chips
        self.handles: list[FakeI2CBus] = []

    def i2c_bus(self, bus: int) -> I2CBus:
        handle = FakeI2CBus(bus, self.chips, threading.RLock())
        self.handles.append(handle)
        return handle


@pytest.fixture
def chip() -> FakeBME280:
    return FakeBME280()


@pytest.fixture
def i2c(chip: FakeBME280) -> Iterator[_I2C]:
    with _I2C({0x76: chip}) as hardware:
        yield hardware


def test_reads_three_records(i2c: _I2C, chip: FakeBME280) -> None:
    chip.temperature, chip.pressure, chip.humidity = 19.5, 98765.4, 61.2
    with BME280("climate", BME280Options(), i2c) as sensor:
        assert [spec.name for spec in sensor.records()] == [
            "climate/temperature", "climate/humidity", "climate/pressure"]
        assert sensor.records()[2] == RecordSpec("climate/pressure", "v", "Pa", "pressure")
        readings = {r.name: r for r in sensor.read()}
    assert readings["climate/temperature"].value == pytest.approx(19.5, abs=0.01)
    assert readings["climate/temperature"].unit == "Cel"
    assert readings["climate/humidity"].value == pytest.approx(61.2, abs=0.02)
    assert readings["climate/humidity"].unit == "%RH"
    assert readings["climate/pressure"].value == pytest.approx(98765.4, abs=0.2)
    assert readings["climate/pressure"].unit == "Pa"
    assert len({r.time for r in readings.values()}) == 1
    assert chip.measurements == 1
    assert i2c.handles[0].closed  # the sensor closed its handle


def test_second_address(chip: FakeBME280) -> None:
    with _I2C({0x77: chip}) as hardware, \
            BME280("c", BME280Options(address="0x77"), hardware) as sensor:
        assert len(sensor.read()) == 3


def test_a_bmp280_is_refused(chip: FakeBME280) -> None:
    with _I2C({0x76: FakeBME280(chip_id=0x58)}) as hardware, \
            pytest.raises(SensorError, match="chip id 0x58"):
        BME280("climate", BME280Options(), hardware)
    assert hardware.handles[0].closed


def test_nothing_at_the_address(i2c: _I2C) -> None:
    with pytest.raises(SensorError, match="no answer from I2C bus 1 address 0x77"):
        BME280("climate", BME280Options(address="0x77"), i2c)


@pytest.mark.parametrize(("field", "value"), [
    ("temperature", 86.0), ("temperature", -41.0), ("humidity", 100.5),
    ("pressure", 29000.0), ("pressure", 110500.0)])
def test_out_of_range_values_are_range_errors(i2c: _I2C, chip: FakeBME280, field: str,
                                              value: float) -> None:
    setattr(chip, field, value)
    with BME280("climate", BME280Options(), i2c) as sensor, pytest.raises(SensorRangeError):
        sensor.read()


def test_a_skipped_measurement_is_an_error(i2c: _I2C, chip: FakeBME280) -> None:
    with BME280("climate", BME280Options(), i2c) as sensor:
        chip.write(bme280.REG_CTRL_MEAS, 0)
        # a chip that ignores forced mode leaves the power-on data in place
        chip.write = lambda register, value: None  # type: ignore[method-assign]
        with pytest.raises(SensorError, match="skipped"):
            sensor.read()


def test_a_bus_error_while_reading_is_a_sensor_error(i2c: _I2C, chip: FakeBME280) -> None:
    with BME280("climate", BME280Options(), i2c) as sensor:
        del i2c.chips[0x76]  # the chip fell off the bus
        with pytest.raises(SensorError, match="I2C read"):
            sensor.read()


def test_a_missing_bus_is_a_sensor_error() -> None:
    class NoBus(Hardware):
        def i2c_bus(self, bus: int) -> Any:
            return Hardware.i2c_bus(self, 250)

    with NoBus(MockFactory()) as hardware, pytest.raises(SensorError, match="i2c-250"):
        BME280("climate", BME280Options(bus=250), hardware)
