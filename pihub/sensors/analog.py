"""``analog``: one channel of an MCP3xxx ADC on SPI0 (gpiozero), scaled to any unit."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import gpiozero

from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import Sensor, checked, device_errors

#: The MCP3xxx parts gpiozero drives → how many single-ended channels each has.
CHANNELS: dict[str, int] = {
    "mcp3001": 1, "mcp3002": 2, "mcp3004": 4, "mcp3008": 8,
    "mcp3201": 1, "mcp3202": 2, "mcp3204": 4, "mcp3208": 8,
    "mcp3301": 1, "mcp3302": 4, "mcp3304": 8,
}


@dataclasses.dataclass(frozen=True)
class AnalogOptions:
    channel: int = key(min=0, max=7, help="the ADC input the signal is wired to")
    chip: str = key("mcp3008", choices=tuple(CHANNELS))
    vref: float = key(3.3, above=0, max=5.5, help="the ADC's reference voltage (VREF pin)")
    scale: float = key(1.0, help="value = volts * scale + offset")
    offset: float = key(0.0)
    unit: str = key("V", help="the unit of the scaled value (SenML), empty for none")

    def __post_init__(self) -> None:
        channels = CHANNELS.get(self.chip.lower())
        if channels is not None and self.channel >= channels:
            inputs = "only channel 0" if channels == 1 else f"channels 0..{channels - 1}"
            raise ValueError(f"channel: {self.channel} does not exist on an "
                             f"{self.chip.lower()} (it has {inputs})")


class Analog(Sensor):
    """``analog``: ``NAME`` = the channel's voltage * ``scale`` + ``offset``."""

    type_name: ClassVar[str] = "analog"
    Options: ClassVar[type[Any]] = AnalogOptions

    def __init__(self, name: str, options: AnalogOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        chip = options.chip.lower()
        cls = getattr(gpiozero, chip.upper())
        kwargs: dict[str, Any] = {"max_voltage": options.vref,
                                  "pin_factory": hardware.pin_factory}
        if CHANNELS[chip] > 1:  # the one-input parts take no channel
            kwargs["channel"] = options.channel
        with device_errors(f"cannot open the {chip} on SPI0"):
            self._device = cls(**kwargs)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        unit = options.unit or None
        return (RecordSpec(name, "v", unit, "voltage" if unit == "V" else None),)

    def read(self) -> list[Reading]:
        with device_errors(f"reading the {self.options.chip} channel {self.options.channel}"):
            volts = float(self._device.voltage)
        value = volts * self.options.scale + self.options.offset
        return [Reading(self.name, round(checked(self.name, value, -math.inf, math.inf), 6),
                        time.time(), self.options.unit or None)]

    def close(self) -> None:
        if not self._closed:
            self._device.close()
        super().close()
