"""The hub watching itself: ``cpu_temperature``, ``load_average``, ``disk_usage`` (gpiozero).

gpiozero's internal devices read ``/sys`` and ``/proc`` directly; pihub gives them the
paths :meth:`Hardware.path` maps (the simulation keeps fake ones) and asks the hardware
layer for ``statvfs``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from gpiozero import CPUTemperature, DiskUsage, LoadAverage

from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import NoOptions, Sensor, checked, device_errors


class _SystemSensor(Sensor):
    _device: Any

    def close(self) -> None:
        if not self._closed:
            self._device.close()
        super().close()


@dataclasses.dataclass(frozen=True)
class CPUTemperatureOptions:
    sensor_file: str = key("/sys/class/thermal/thermal_zone0/temp",
                           help="a thermal zone's temp file (millidegrees Celsius)")


class CPUTemp(_SystemSensor):
    """``cpu_temperature``: ``NAME`` in °C."""

    type_name: ClassVar[str] = "cpu_temperature"
    Options: ClassVar[type[Any]] = CPUTemperatureOptions

    def __init__(self, name: str, options: CPUTemperatureOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot read {options.sensor_file}"):
            self._device = CPUTemperature(str(hardware.path(options.sensor_file)),
                                          pin_factory=hardware.pin_factory)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", "Cel", "temperature"),)

    def read(self) -> list[Reading]:
        with device_errors(f"reading {self.options.sensor_file}"):
            value = float(self._device.temperature)
        return [Reading(self.name, round(checked(self.name, value, -40.0, 125.0), 2),
                        time.time(), "Cel")]


class LoadAvg(_SystemSensor):
    """``load_average``: ``NAME`` = the 1-minute load average (no unit)."""

    type_name: ClassVar[str] = "load_average"
    Options: ClassVar[type[Any]] = NoOptions
    LOADAVG = "/proc/loadavg"

    def __init__(self, name: str, options: Any, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot read {self.LOADAVG}"):
            self._device = LoadAverage(str(hardware.path(self.LOADAVG)), minutes=1,
                                       pin_factory=hardware.pin_factory)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", None, None),)

    def read(self) -> list[Reading]:
        with device_errors(f"reading {self.LOADAVG}"):
            value = float(self._device.load_average)
        return [Reading(self.name, round(checked(self.name, value, 0.0, math.inf), 2),
                        time.time())]


class _HubDiskUsage(DiskUsage):  # type: ignore[misc]
    """gpiozero's DiskUsage, asking pihub's hardware layer for ``statvfs``."""

    def __init__(self, filesystem: str, *, statvfs: Any, pin_factory: Any) -> None:
        self._statvfs = statvfs
        super().__init__(filesystem, pin_factory=pin_factory)

    @property
    def value(self) -> float:
        # df's "Use%", as gpiozero computes it, without its clamp at 100 % (a full disk
        # is out of range, not hidden)
        vfs = self._statvfs(self.filesystem)
        used = vfs.f_blocks - vfs.f_bfree
        total = used + vfs.f_bavail
        return float(used / total) if total else math.nan


@dataclasses.dataclass(frozen=True)
class DiskUsageOptions:
    path: str = key("/", help="any path on the file system to watch")


class DiskUse(_SystemSensor):
    """``disk_usage``: ``NAME`` = percent of the file system in use, as ``df`` shows it."""

    type_name: ClassVar[str] = "disk_usage"
    Options: ClassVar[type[Any]] = DiskUsageOptions

    def __init__(self, name: str, options: DiskUsageOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot stat {options.path}"):
            self._device = _HubDiskUsage(str(hardware.path(options.path)),
                                         statvfs=self._statvfs,
                                         pin_factory=hardware.pin_factory)

    def _statvfs(self, _mapped: str) -> Any:
        return self.hardware.statvfs(self.options.path)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", "%", None),)

    def read(self) -> list[Reading]:
        with device_errors(f"reading the usage of {self.options.path}"):
            value = float(self._device.usage)
        return [Reading(self.name, round(checked(self.name, value, 0.0, 100.0), 2),
                        time.time(), "%")]
