"""Sensor types, one module per family, found by their ``type`` name."""

from __future__ import annotations

from pihub.sensors.analog import Analog
from pihub.sensors.base import Sensor
from pihub.sensors.bme280 import BME280
from pihub.sensors.gpio import Digital, Distance, Light, Motion
from pihub.sensors.onewire import DS18B20
from pihub.sensors.system import CPUTemp, DiskUse, LoadAvg

#: ``type =`` name → class. Filled from the family modules below.
SENSOR_TYPES: dict[str, type[Sensor]] = {
    cls.type_name: cls
    for cls in (Digital, Motion, Light, Distance, Analog, CPUTemp, LoadAvg, DiskUse,
                DS18B20, BME280)
}

__all__ = ["SENSOR_TYPES", "Sensor"]
