"""cpu_temperature, load_average and disk_usage on fake system files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pihub.errors import SensorError, SensorRangeError
from pihub.hardware import Hardware
from pihub.readings import RecordSpec
from pihub.sensors.base import NoOptions
from pihub.sensors.system import (
    CPUTemp,
    CPUTemperatureOptions,
    DiskUsageOptions,
    DiskUse,
    LoadAvg,
)


def put(hardware: Hardware, path: str, text: str) -> None:
    real = hardware.path(path)
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(text)


def test_cpu_temperature(mock_hardware: Hardware) -> None:
    put(mock_hardware, "/sys/class/thermal/thermal_zone0/temp", "48312\n")
    with CPUTemp("cpu", CPUTemperatureOptions(), mock_hardware) as cpu:
        assert cpu.records() == (RecordSpec("cpu", "v", "Cel", "temperature"),)
        [reading] = cpu.read()
        assert (reading.name, reading.value, reading.unit) == ("cpu", 48.31, "Cel")
        put(mock_hardware, "/sys/class/thermal/thermal_zone0/temp", "126000\n")
        with pytest.raises(SensorRangeError):
            cpu.read()
        put(mock_hardware, "/sys/class/thermal/thermal_zone0/temp", "-41000\n")
        with pytest.raises(SensorRangeError):
            cpu.read()


def test_cpu_temperature_other_zone_and_missing_file(mock_hardware: Hardware) -> None:
    options = CPUTemperatureOptions(sensor_file="/sys/class/thermal/thermal_zone1/temp")
    with pytest.raises(SensorError, match="thermal_zone1"):
        CPUTemp("cpu", options, mock_hardware)
    put(mock_hardware, options.sensor_file, "40000")
    with CPUTemp("cpu", options, mock_hardware) as cpu:
        assert cpu.read()[0].value == 40.0
        mock_hardware.path(options.sensor_file).unlink()
        with pytest.raises(SensorError):
            cpu.read()


def test_load_average_is_the_one_minute_figure(mock_hardware: Hardware) -> None:
    put(mock_hardware, "/proc/loadavg", "0.52 0.58 0.61 1/234 5678\n")
    with LoadAvg("load", NoOptions(), mock_hardware) as load:
        assert load.records() == (RecordSpec("load", "v", None, None),)
        [reading] = load.read()
        assert (reading.value, reading.unit) == (0.52, None)
        put(mock_hardware, "/proc/loadavg", "nan 0.58 0.61 1/234 5678\n")
        with pytest.raises(SensorRangeError):
            load.read()


class _Disk(Hardware):
    """Hardware whose file system is ``percent`` full (as df counts it)."""

    percent = 42.0

    def statvfs(self, p: str) -> Any:
        blocks = 1000
        free = round(blocks * (1 - self.percent / 100))
        return os.statvfs_result((4096, 4096, blocks, free, free, 0, 0, 0, 0, 255))


def test_disk_usage(mock_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with _Disk(mock_factory, root=tmp_path) as hardware, \
            DiskUse("disk", DiskUsageOptions(path="/data"), hardware) as disk:
        assert disk.records() == (RecordSpec("disk", "v", "%", None),)
        [reading] = disk.read()
        assert (reading.value, reading.unit) == (42.0, "%")
        hardware.percent = 101.0  # past df's 100 %: only root can still write
        with pytest.raises(SensorRangeError):
            disk.read()


def test_disk_usage_of_the_real_root(mock_factory: Any) -> None:
    with Hardware(mock_factory) as hardware, \
            DiskUse("disk", DiskUsageOptions(), hardware) as disk:
        assert 0.0 <= float(disk.read()[0].value) <= 100.0


def test_disk_usage_of_a_missing_path(mock_hardware: Hardware) -> None:
    with pytest.raises(SensorError, match="/nowhere"):
        DiskUse("disk", DiskUsageOptions(path="/nowhere"), mock_hardware)
