"""Sensor types, one module per family, found by their ``type`` name."""

from __future__ import annotations

from pihub.sensors.base import Sensor

#: ``type =`` name → class. Filled from the family modules below.
SENSOR_TYPES: dict[str, type[Sensor]] = {}
