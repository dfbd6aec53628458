"""``ds18b20``: a 1-Wire temperature sensor read through the kernel's w1-therm driver.

The driver exposes ``<w1_dir>/<device>/w1_slave``: two lines, the first ending in the
CRC verdict (``YES``/``NO``), the second in ``t=`` and millidegrees Celsius::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from pihub.errors import SensorError
from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import Sensor, checked

DEVICE_PATTERN = r"28-[0-9a-fA-F]{12}"


@dataclasses.dataclass(frozen=True)
class DS18B20Options:
    device: str = key(pattern=DEVICE_PATTERN, pattern_help="28- and 12 hex digits",
                      help="the sensor's folder name under w1_dir")
    w1_dir: str = key("/sys/bus/w1/devices")


def parse_w1_slave(text: str) -> float:
    """Degrees Celsius from the contents of a ``w1_slave`` file; raise if it is not valid."""
    lines = text.strip().splitlines()
    if len(lines) < 2 or "crc=" not in lines[0]:
        raise SensorError(f"unreadable w1_slave contents: {text.strip()[:80]!r}")
    if not lines[0].rstrip().endswith("YES"):
        raise SensorError("1-Wire CRC check failed (crc=.. NO): a noisy or long line, "
                          "or a loose wire")
    _, sep, milli = lines[1].rpartition("t=")
    try:
        if not sep:
            raise ValueError(lines[1])
        return int(milli) / 1000.0
    except ValueError:
        raise SensorError(f"no temperature in w1_slave line {lines[1]!r}") from None


class DS18B20(Sensor):
    """``ds18b20``: ``NAME`` in °C."""

    type_name: ClassVar[str] = "ds18b20"
    Options: ClassVar[type[Any]] = DS18B20Options

    def __init__(self, name: str, options: DS18B20Options, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        self._file = hardware.path(f"{options.w1_dir.rstrip('/')}/{options.device}/w1_slave")
        if not self._file.parent.is_dir():
            if not hardware.path(options.w1_dir).is_dir():
                raise SensorError(f"no 1-Wire bus: {options.w1_dir} does not exist (add "
                                  "dtoverlay=w1-gpio to /boot/firmware/config.txt)")
            raise SensorError(f"1-Wire device {options.device} not found in {options.w1_dir} "
                              "(check its wiring and the 4.7 kΩ pull-up)")

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", "Cel", "temperature"),)

    def read(self) -> list[Reading]:
        try:
            text = self._file.read_text(encoding="ascii", errors="replace")
        except OSError as e:
            # the device folder vanishes when the sensor drops off the bus
            raise SensorError(f"1-Wire device {self.options.device} cannot be read "
                              f"({e.strerror or e})") from e
        value = checked(self.name, parse_w1_slave(text), -55.0, 125.0)
        return [Reading(self.name, round(value, 3), time.time(), "Cel")]
