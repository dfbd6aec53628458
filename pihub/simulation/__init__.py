"""Simulated hardware for ``simulate = true``, the demo and tests.

:class:`SimulatedHardware` is a :class:`~pihub.hardware.Hardware` on gpiozero mock pins,
a mock MCP3xxx on the SPI pins, a fake I2C bus with BME280 chips and fake ``/sys`` and
``/proc`` files under a temporary root, all kept moving by :mod:`pihub.simulation.signals`.
"""

from __future__ import annotations

from pihub.simulation.world import SimulatedHardware

__all__ = ["SimulatedHardware"]
