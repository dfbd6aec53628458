"""Mock pin factories and a mock MCP3xxx ADC that speak gpiozero's pin protocol.

:class:`MockFactory` is gpiozero's, with one fix: gpiozero 2.0's bit-banged SPI bus
builds its ``Device`` base without the factory it was given, so on a machine with no pin
library it tries (and fails) to load the global default factory. pihub never touches the
global ``Device.pin_factory``, so its mock factory hands its own SPI classes out.
"""

from __future__ import annotations

from threading import RLock
from typing import Any

from gpiozero import Device, OutputDevice
from gpiozero.input_devices import InputDevice
from gpiozero.mixins import SharedMixin
from gpiozero.pins import SPI
from gpiozero.pins.mock import MockFactory as GpiozeroMockFactory
from gpiozero.pins.mock import MockPin, MockSPIDevice
from gpiozero.pins.spi import SPISoftware, SPISoftwareBus

from pihub.errors import NoPinLibrary

# The SPI pins of SPI0 (BCM numbering) and its two chip selects, as gpiozero uses them.
SPI0_CLOCK, SPI0_MOSI, SPI0_MISO = 11, 10, 9
SPI0_SELECT = (8, 7)


class _FactorySPIBus(SPISoftwareBus):  # type: ignore[misc]
    """gpiozero's bit-banged bus, built on the factory it is given (see module doc)."""

    def __init__(self, clock_pin: Any, mosi_pin: Any, miso_pin: Any, *,
                 pin_factory: Any) -> None:
        self.lock: Any = None
        self.clock: Any = None
        self.mosi: Any = None
        self.miso: Any = None
        Device.__init__(self, pin_factory=pin_factory)
        self.lock = RLock()
        try:
            self.clock = OutputDevice(clock_pin, active_high=True, pin_factory=pin_factory)
            if mosi_pin is not None:
                self.mosi = OutputDevice(mosi_pin, pin_factory=pin_factory)
            if miso_pin is not None:
                self.miso = InputDevice(miso_pin, pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _shared_key(cls, clock_pin: Any, mosi_pin: Any, miso_pin: Any, *,
                    pin_factory: Any = None) -> tuple[Any, ...]:
        # gpiozero keeps every shared instance in one dict: keep factories apart
        return ("pihub-spi-bus", id(pin_factory), clock_pin, mosi_pin, miso_pin)


class _FactorySPI(SPISoftware):  # type: ignore[misc]
    """gpiozero's ``SPISoftware`` on a :class:`_FactorySPIBus`."""

    def __init__(self, clock_pin: Any, mosi_pin: Any, miso_pin: Any, select_pin: Any, *,
                 pin_factory: Any) -> None:
        self._bus: Any = None
        self._select: Any = None
        SPI.__init__(self, pin_factory=pin_factory)
        try:
            self._clock_phase = False
            self._lsb_first = False
            self._bits_per_word = 8
            self._bus = _FactorySPIBus(clock_pin, mosi_pin, miso_pin, pin_factory=pin_factory)
            self._select = OutputDevice(select_pin, active_high=False, pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise


class _SharedFactorySPI(SharedMixin, _FactorySPI):  # type: ignore[misc]
    @classmethod
    def _shared_key(cls, clock_pin: Any, mosi_pin: Any, miso_pin: Any, select_pin: Any,
                    pin_factory: Any = None) -> tuple[Any, ...]:
        return ("pihub-spi", id(pin_factory), clock_pin, select_pin)


class MockFactory(GpiozeroMockFactory):  # type: ignore[misc]
    """gpiozero's ``MockFactory`` whose software SPI stays on this factory."""

    def _get_spi_class(self, shared: bool, hardware: bool) -> type[Any]:
        return _SharedFactorySPI if shared else _FactorySPI


class DrivenPin(MockPin):  # type: ignore[misc]
    """A mock input pin driven by something outside (a switch, a PIR's output).

    A driven line ignores the pull resistor: gpiozero's MockPin jumps to its pull's level
    when a device sets the pull, which would hide the level until the next change.
    """

    def __init__(self, factory: Any, info: Any) -> None:
        super().__init__(factory, info)
        self.driven: bool | None = None

    def drive(self, level: bool) -> None:
        """Drive the line to ``level``; an edge calls the device's handler at once."""
        self.driven = level
        if self._function != "input":
            return
        if level:
            self.drive_high()
        else:
            self.drive_low()

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.driven is not None:
            self.drive(self.driven)


class UnwiredFactory(MockFactory):
    """The factory of a machine with no pin library: clocks work, pins do not.

    Internal devices (CPU temperature, load average, disk usage) only need the clock;
    any GPIO or SPI device fails to open with :class:`~pihub.errors.NoPinLibrary`.
    """

    def __init__(self, reasons: str) -> None:
        super().__init__()
        self.reasons = reasons

    def pin(self, name: Any, pin_class: Any = None, **kwargs: Any) -> Any:
        raise NoPinLibrary(f"cannot use pin {name}: no GPIO pin library could be loaded "
                           f"({self.reasons}); install pihub[pi] on a Pi, or set "
                           "simulate = true")


#: chip → (result bits, channels, command bits after the start bit, bits sent back).
#: The bits sent back count from the clock after the last command bit: the sample and
#: null bits, then the result, as each datasheet's timing diagram shows.
MCP3XXX_CHIPS: dict[str, tuple[int, int, int, int]] = {
    "mcp3001": (10, 1, 0, 13),
    "mcp3002": (10, 2, 3, 11),
    "mcp3004": (10, 4, 4, 12),
    "mcp3008": (10, 8, 4, 12),
    "mcp3201": (12, 1, 0, 15),
    "mcp3202": (12, 2, 3, 13),
    "mcp3204": (12, 4, 4, 14),
    "mcp3208": (12, 8, 4, 14),
    "mcp3301": (12, 1, 0, 16),
    "mcp3302": (12, 4, 4, 15),
    "mcp3304": (12, 8, 4, 15),
}


class MockMCP3xxx(MockSPIDevice):  # type: ignore[misc]
    """The chip side of an MCP3xxx ADC on mock SPI pins, answering with :attr:`voltages`.

    Single-ended reads only (pihub does not configure differential mode); the one-channel
    parts (3x01) answer with channel 0 as their IN+ minus IN- voltage.
    """

    def __init__(self, chip: str, vref: float, *, pin_factory: Any, select_pin: Any = 8) -> None:
        super().__init__(SPI0_CLOCK, SPI0_MOSI, SPI0_MISO, select_pin, pin_factory=pin_factory)
        self.chip = chip
        self.bits, channels, self._command_bits, self._reply_bits = MCP3XXX_CHIPS[chip]
        self.rx_buf: list[int] = []
        self.vref: float = vref
        self.voltages: list[float] = [0.0] * channels
        self._state = "idle"
        self.conversions = 0

    def code(self, channel: int) -> int:
        """The ADC code for the voltage now on ``channel``, clipped to 0..vref."""
        fraction = min(1.0, max(0.0, self.voltages[channel] / self.vref))
        code: int = round(fraction * (2 ** int(self.bits) - 1))
        return code

    def on_start(self) -> None:
        super().on_start()
        if self._command_bits == 0:
            self._reply(0)
        else:
            self._state = "idle"

    def on_bit(self) -> None:
        if self._state == "idle":
            if self.rx_buf[-1]:  # the start bit ends the leading zeros
                self._state = "command"
                self.rx_buf = []
        elif self._state == "command" and len(self.rx_buf) == self._command_bits:
            # 30x4/30x8/33xx: M D2 D1 D0; 3xx2: M C MSBF
            channel_bits = self.rx_buf[1:] if self._command_bits == 4 else self.rx_buf[1:2]
            channel = 0
            for bit in channel_bits:
                channel = channel << 1 | bit
            self._reply(channel % len(self.voltages))

    def _reply(self, channel: int) -> None:
        self._state = "reply"
        self.conversions += 1
        self.tx_word(self.code(channel), self._reply_bits)
