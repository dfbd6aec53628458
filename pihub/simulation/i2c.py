"""A fake I2C bus (fake-rpi's ``SMBus``) with BME280 chips on it.

The chip holds a real part's calibration in its registers and, on each forced-mode
measurement, raw ADC values computed from the physical values it is given, so that the
datasheet's compensation in :mod:`pihub.sensors.bme280` gets those values back.
"""

from __future__ import annotations

import contextlib
import errno
import io
import threading
from collections.abc import Callable

from pihub.sensors import bme280 as chip

# fake-rpi greets on import and on every call; pihub's logs are no place for that
with contextlib.redirect_stdout(io.StringIO()):
    import fake_rpi.smbus
    from fake_rpi.wrappers import toggle_print
toggle_print(False)

#: Temperature and pressure trimming of the BMP280 datasheet's worked example (section
#: 3.12, the same algorithm as the BME280); humidity trimming of a real BME280.
EXAMPLE_CALIBRATION = chip.Calibration(
    t1=27504, t2=26435, t3=-1000,
    p1=36477, p2=-10685, p3=3024, p4=2855, p5=140, p6=-7, p7=15500, p8=-14600, p9=6000,
    h1=75, h2=362, h3=0, h4=313, h5=50, h6=30,
)


def _search(f: Callable[[int], float], target: float, top: int, rising: bool) -> int:
    """The integer in 0..top whose f is nearest ``target``, for a monotonic ``f``."""
    low, high = 0, top
    while low < high:
        mid = (low + high) // 2
        if (f(mid) < target) == rising:
            low = mid + 1
        else:
            high = mid
    best = low
    if low > 0 and abs(f(low - 1) - target) < abs(f(low) - target):
        best = low - 1
    return best


def raw_values(cal: chip.Calibration, temperature: float, pressure: float,
               humidity: float) -> tuple[int, int, int]:
    """(adc_t, adc_p, adc_h) that compensate to the given °C, Pa and %RH."""
    adc_t = _search(lambda a: chip.compensate_temperature(cal, a)[0], temperature,
                    0xFFFFF, rising=True)
    _, t_fine = chip.compensate_temperature(cal, adc_t)
    adc_p = _search(lambda a: chip.compensate_pressure(cal, a, t_fine), pressure,
                    0xFFFFF, rising=False)
    adc_h = _search(lambda a: chip.compensate_humidity(cal, a, t_fine), humidity,
                    0xFFFF, rising=True)
    return adc_t, adc_p, adc_h


class FakeBME280:
    """A BME280's register map; set :attr:`temperature`, :attr:`pressure`, :attr:`humidity`."""

    def __init__(self, calibration: chip.Calibration = EXAMPLE_CALIBRATION,
                 chip_id: int = chip.CHIP_ID) -> None:
        self.calibration = calibration
        self.temperature = 21.0
        self.pressure = 101325.0
        self.humidity = 45.0
        self.measurements = 0
        self.registers = bytearray(256)
        self.registers[chip.REG_CHIP_ID] = chip_id
        tp, h = calibration.to_registers()
        self.registers[chip.REG_CALIB_TP:chip.REG_CALIB_TP + 26] = bytes(tp)
        self.registers[chip.REG_CALIB_H:chip.REG_CALIB_H + 7] = bytes(h)
        self._reset_data()

    def _reset_data(self) -> None:
        # after power-on the data registers hold the "skipped" pattern
        self.registers[chip.REG_DATA:chip.REG_DATA + 8] = bytes(
            [0x80, 0, 0, 0x80, 0, 0, 0x80, 0])

    def read(self, register: int, length: int) -> list[int]:
        return list(self.registers[register:register + length])

    def write(self, register: int, value: int) -> None:
        if register == 0xE0:  # reset
            if value == 0xB6:
                self.registers[chip.REG_CTRL_HUM:chip.REG_CONFIG + 1] = bytes(4)
                self._reset_data()
            return
        self.registers[register] = value & 0xFF
        if register == chip.REG_CTRL_MEAS and value & 0b11 in (0b01, 0b10):
            self._measure()
            # a forced measurement ends with the chip back in sleep mode
            self.registers[register] = value & ~0b11 & 0xFF

    def _measure(self) -> None:
        adc_t, adc_p, adc_h = raw_values(self.calibration, self.temperature, self.pressure,
                                         self.humidity)
        self.registers[chip.REG_DATA:chip.REG_DATA + 8] = bytes([
            adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
            adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
            adc_h >> 8, adc_h & 0xFF,
        ])
        self.measurements += 1


class FakeI2CBus(fake_rpi.smbus.SMBus):  # type: ignore[misc]
    """One open handle on a fake bus: the chips at ``devices`` answer, nothing else does."""

    def __init__(self, bus: int, devices: dict[int, FakeBME280], lock: threading.RLock) -> None:
        # fake-rpi's constructor only prints; the bus is ours
        self.bus = bus
        self.devices = devices
        self._lock = lock  # the simulation's: it also moves the chips' physical values
        self.closed = False

    def _device(self, i2c_addr: int) -> FakeBME280:
        if self.closed:
            raise OSError(errno.EBADF, f"I2C bus {self.bus} handle is closed")
        try:
            return self.devices[i2c_addr]
        except KeyError:
            # what the kernel says when no chip acknowledges the address
            raise OSError(errno.EREMOTEIO, "Remote I/O error") from None

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        with self._lock:
            return self._device(i2c_addr).read(register, 1)[0]

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        with self._lock:
            return self._device(i2c_addr).read(register, length)

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        with self._lock:
            self._device(i2c_addr).write(register, value)

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"<FakeI2CBus {self.bus} devices={[hex(a) for a in sorted(self.devices)]}>"
