"""Bosch BME280 temperature, humidity and pressure sensor on I2C.

One forced-mode measurement per read (oversampling x1, filter off: Bosch's "weather
monitoring" setting), compensated with the double-precision formulas of the BME280
datasheet (BST-BME280-DS002, section 8.1). The formulas' clamps are left out on purpose:
a value outside the part's range is reported as an error, not pinned to the edge.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from pihub.errors import HardwareError, SensorError
from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import Sensor, checked

CHIP_ID = 0x60
REG_CALIB_TP = 0x88  # 0x88..0xA1: dig_T1..dig_P9, a reserved byte, dig_H1
REG_CHIP_ID = 0xD0
REG_CALIB_H = 0xE1  # 0xE1..0xE7: dig_H2..dig_H6
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7  # press[3], temp[3], hum[2]
STATUS_MEASURING = 0x08
OSRS_X1 = 0b001
MODE_FORCED = 0b01
#: Datasheet 9.1: at x1 oversampling a measurement takes at most 9.3 ms.
MAX_MEASUREMENT_TIME = 0.0093
#: What the data registers hold for a measurement that was skipped.
SKIPPED_20BIT, SKIPPED_16BIT = 0x80000, 0x8000


def _s16(lsb: int, msb: int) -> int:
    value = lsb | msb << 8
    return value - 0x10000 if value & 0x8000 else value


def _s8(byte: int) -> int:
    return byte - 0x100 if byte & 0x80 else byte


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The trimming parameters a BME280 holds in its NVM (datasheet table 16)."""

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: int
    h2: int
    h3: int
    h4: int
    h5: int
    h6: int

    @classmethod
    def from_registers(cls, tp: Sequence[int], h: Sequence[int]) -> Calibration:
        """From the 26 bytes at 0x88 and the 7 bytes at 0xE1."""
        if len(tp) != 26 or len(h) != 7:
            raise ValueError("a BME280 calibration is 26 bytes at 0x88 and 7 at 0xE1")
        words = [tp[i] | tp[i + 1] << 8 for i in range(0, 24, 2)]
        signed = [_s16(tp[i], tp[i + 1]) for i in range(0, 24, 2)]
        return cls(
            t1=words[0], t2=signed[1], t3=signed[2],
            p1=words[3], p2=signed[4], p3=signed[5], p4=signed[6], p5=signed[7],
            p6=signed[8], p7=signed[9], p8=signed[10], p9=signed[11],
            h1=tp[25], h2=_s16(h[0], h[1]), h3=h[2],
            # dig_H4 and dig_H5 are 12-bit signed values sharing the nibbles of 0xE5
            h4=_s8(h[3]) * 16 | (h[4] & 0x0F),
            h5=_s8(h[5]) * 16 | (h[4] >> 4),
            h6=_s8(h[6]),
        )

    def to_registers(self) -> tuple[list[int], list[int]]:
        """The inverse of :meth:`from_registers` (the simulation's chip holds these)."""
        tp: list[int] = []
        for word in (self.t1, self.t2, self.t3, self.p1, self.p2, self.p3, self.p4,
                     self.p5, self.p6, self.p7, self.p8, self.p9):
            tp += [word & 0xFF, (word >> 8) & 0xFF]
        tp += [0, self.h1 & 0xFF]
        h = [self.h2 & 0xFF, (self.h2 >> 8) & 0xFF, self.h3 & 0xFF,
             (self.h4 >> 4) & 0xFF, (self.h4 & 0x0F) | (self.h5 & 0x0F) << 4,
             (self.h5 >> 4) & 0xFF, self.h6 & 0xFF]
        return tp, h


def compensate_temperature(cal: Calibration, adc_t: int) -> tuple[float, int]:
    """Degrees Celsius and ``t_fine`` (which pressure and humidity need) from raw ``adc_t``."""
    var1 = (adc_t / 16384.0 - cal.t1 / 1024.0) * cal.t2
    var2 = (adc_t / 131072.0 - cal.t1 / 8192.0) ** 2 * cal.t3
    t_fine = int(var1 + var2)  # the datasheet's cast to a 32-bit int truncates
    return (var1 + var2) / 5120.0, t_fine


def compensate_pressure(cal: Calibration, adc_p: int, t_fine: int) -> float:
    """Pascal from raw ``adc_p``; 0.0 where the datasheet guards a division by zero."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal.p6 / 32768.0
    var2 = var2 + var1 * cal.p5 * 2.0
    var2 = var2 / 4.0 + cal.p4 * 65536.0
    var1 = (cal.p3 * var1 * var1 / 524288.0 + cal.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.p1
    if var1 == 0.0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.p9 * p * p / 2147483648.0
    var2 = p * cal.p8 / 32768.0
    return p + (var1 + var2 + cal.p7) / 16.0


def compensate_humidity(cal: Calibration, adc_h: int, t_fine: int) -> float:
    """Percent relative humidity from raw ``adc_h`` (not clamped to 0..100)."""
    var_h = t_fine - 76800.0
    var_h = (adc_h - (cal.h4 * 64.0 + cal.h5 / 16384.0 * var_h)) * (
        cal.h2 / 65536.0 * (1.0 + cal.h6 / 67108864.0 * var_h
                            * (1.0 + cal.h3 / 67108864.0 * var_h)))
    return var_h * (1.0 - cal.h1 * var_h / 524288.0)


def compensate(cal: Calibration, adc_t: int, adc_p: int, adc_h: int) -> tuple[float, float, float]:
    """(°C, Pa, %RH) from the three raw ADC values."""
    temperature, t_fine = compensate_temperature(cal, adc_t)
    return (temperature, compensate_pressure(cal, adc_p, t_fine),
            compensate_humidity(cal, adc_h, t_fine))


def parse_data(block: Sequence[int]) -> tuple[int, int, int]:
    """(adc_t, adc_p, adc_h) from the 8 data bytes at 0xF7."""
    adc_p = block[0] << 12 | block[1] << 4 | block[2] >> 4
    adc_t = block[3] << 12 | block[4] << 4 | block[5] >> 4
    adc_h = block[6] << 8 | block[7]
    return adc_t, adc_p, adc_h


@dataclasses.dataclass(frozen=True)
class BME280Options:
    bus: int = key(1, min=0, max=255, help="the I2C bus: /dev/i2c-<bus>")
    address: str = key("0x76", choices=("0x76", "0x77"),
                       help="0x76 with SDO to GND, 0x77 with SDO to VDDIO")


class BME280(Sensor):
    """``bme280``: ``NAME/temperature`` (Cel), ``NAME/humidity`` (%RH), ``NAME/pressure`` (Pa)."""

    type_name: ClassVar[str] = "bme280"
    Options: ClassVar[type[Any]] = BME280Options

    def __init__(self, name: str, options: BME280Options, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        self.address = int(options.address, 16)
        self._where = f"I2C bus {options.bus} address {options.address}"
        try:
            self._bus = hardware.i2c_bus(options.bus)
        except HardwareError as e:
            raise SensorError(str(e)) from e
        try:
            chip = self._bus.read_byte_data(self.address, REG_CHIP_ID)
            if chip != CHIP_ID:
                raise SensorError(
                    f"the chip at {self._where} is not a BME280 (chip id 0x{chip:02x}, "
                    f"expected 0x{CHIP_ID:02x}; 0x58 is a BMP280, which has no humidity)")
            tp = self._bus.read_i2c_block_data(self.address, REG_CALIB_TP, 26)
            h = self._bus.read_i2c_block_data(self.address, REG_CALIB_H, 7)
            self.calibration = Calibration.from_registers(tp, h)
            self._bus.write_byte_data(self.address, REG_CONFIG, 0x00)  # no IIR filter
        except OSError as e:
            self._bus.close()
            raise SensorError(f"no answer from {self._where} ({e}): check the wiring and "
                              "'address' (0x76 or 0x77)") from e
        except BaseException:
            self._bus.close()
            raise

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(f"{name}/temperature", "v", "Cel", "temperature"),
                RecordSpec(f"{name}/humidity", "v", "%RH", "humidity"),
                RecordSpec(f"{name}/pressure", "v", "Pa", "pressure"))

    def read(self) -> list[Reading]:
        try:
            block = self._measure()
        except OSError as e:
            raise SensorError(f"I2C read from {self._where} failed: {e}") from e
        adc_t, adc_p, adc_h = parse_data(block)
        if SKIPPED_20BIT in (adc_t, adc_p) or adc_h == SKIPPED_16BIT:
            raise SensorError(f"the BME280 at {self._where} skipped a measurement "
                              "(it was reset or lost power)")
        temperature, pressure, humidity = compensate(self.calibration, adc_t, adc_p, adc_h)
        now = time.time()
        return [
            Reading(f"{self.name}/temperature",
                    round(checked(f"{self.name}/temperature", temperature, -40.0, 85.0), 2),
                    now, "Cel"),
            Reading(f"{self.name}/humidity",
                    round(checked(f"{self.name}/humidity", humidity, 0.0, 100.0), 2),
                    now, "%RH"),
            Reading(f"{self.name}/pressure",
                    round(checked(f"{self.name}/pressure", pressure, 30000.0, 110000.0), 1),
                    now, "Pa"),
        ]

    def _measure(self) -> list[int]:
        self._bus.write_byte_data(self.address, REG_CTRL_HUM, OSRS_X1)  # applies on ctrl_meas
        self._bus.write_byte_data(self.address, REG_CTRL_MEAS,
                                  OSRS_X1 << 5 | OSRS_X1 << 2 | MODE_FORCED)
        deadline = time.monotonic() + 10 * MAX_MEASUREMENT_TIME
        # A hardware timing wait, not synchronisation: the chip needs this long to convert.
        time.sleep(MAX_MEASUREMENT_TIME)
        while self._bus.read_byte_data(self.address, REG_STATUS) & STATUS_MEASURING:
            if time.monotonic() > deadline:
                raise SensorError(f"the BME280 at {self._where} never finished measuring")
            time.sleep(0.001)
        return list(self._bus.read_i2c_block_data(self.address, REG_DATA, 8))

    def close(self) -> None:
        if not self._closed:
            self._bus.close()
        super().close()
