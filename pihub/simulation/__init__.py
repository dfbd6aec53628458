"""Simulated hardware for ``simulate = true``, the demo and tests.

:class:`SimulatedHardware` is a :class:`~pihub.hardware.Hardware` on gpiozero mock pins,
a mock MCP3xxx on the SPI pins, a fake I2C bus with BME280 chips and fake ``/sys`` and
``/proc`` files under a temporary root, all kept moving by :mod:`pihub.simulation.signals`.

Imported lazily: ``pin_factory = mock`` needs only :mod:`pihub.simulation.pins`, and the
world brings fake-rpi, whose package imports numpy (for its fake camera): 12 MiB of
memory a hub on mock pins has no use for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pihub.simulation.world import SimulatedHardware

__all__ = ["SimulatedHardware"]


def __getattr__(name: str) -> Any:
    if name == "SimulatedHardware":
        from pihub.simulation.world import SimulatedHardware
        return SimulatedHardware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
