"""The one door to the hardware: a pin factory, I2C buses and system files.

Sensors never import a GPIO, I2C or file-system library themselves: they are handed a
:class:`Hardware` and ask it. On a Pi it is a thin wrapper around a gpiozero pin factory,
``smbus2`` and the real ``/sys`` and ``/proc``; in simulation
(:class:`pihub.simulation.SimulatedHardware`) the same calls reach mock pins, a fake I2C
bus and fake files that signal generators keep moving.

Backends are imported only when chosen, so a desktop without any Pi library still
imports every module of pihub.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from pihub.errors import HardwareError, PinFactoryUnavailable, UnknownPinFactory

if TYPE_CHECKING:
    from pihub.sensors.base import Sensor

log = logging.getLogger("pihub.hardware")

#: ``pin_factory`` name → gpiozero factory class, imported only when chosen.
BACKENDS: dict[str, str] = {
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "pigpio": "gpiozero.pins.pigpio:PiGPIOFactory",
    "native": "gpiozero.pins.native:NativeFactory",
    "mock": "pihub.simulation.pins:MockFactory",
}
PIN_FACTORIES = ("auto", *BACKENDS)


class I2CBus(Protocol):
    """The part of ``smbus2.SMBus`` that pihub's I2C sensors use."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def close(self) -> None: ...


class Hardware:
    """What a sensor may touch: ``pin_factory``, :meth:`i2c_bus`, :meth:`path`, :meth:`statvfs`.

    ``root``, when given, is where absolute system paths are looked up instead of ``/``
    (tests and the simulation use it). A Hardware owns its pin factory and the buses it
    opened: :meth:`close` releases them, after the sensors using them are closed.
    """

    simulated = False

    def __init__(self, pin_factory: Any, *, backend: str = "custom",
                 root: str | os.PathLike[str] | None = None) -> None:
        self._pin_factory = pin_factory
        self.backend = backend
        self.root = None if root is None else Path(root)
        self._buses: list[I2CBus] = []
        self._lock = threading.Lock()  # guards _buses: sensors open buses from their threads
        self._closed = False

    @property
    def pin_factory(self) -> Any:
        """The gpiozero ``Factory`` every device must be created with (``pin_factory=``)."""
        if self._closed:
            raise HardwareError(f"{self!r} is closed")
        return self._pin_factory

    @property
    def closed(self) -> bool:
        return self._closed

    def prepare(self, sensor: Sensor) -> None:
        """Hear that ``sensor`` is about to open its device. Real hardware needs nothing.

        The simulation overrides this to build the part the sensor will find (its mock
        pins, the ADC on the SPI bus, the 1-Wire folder, the BME280 on the I2C bus).
        """

    def i2c_bus(self, bus: int) -> I2CBus:
        """A new handle on I2C bus ``bus`` (``/dev/i2c-<bus>``), closed by its user.

        One handle per user: ``smbus2`` sets the peripheral's address per file handle, so
        two sensors sharing a handle from two threads could talk to each other's chip.
        """
        try:
            from smbus2 import SMBus
        except ImportError as e:
            raise HardwareError(f"I2C needs the smbus2 package ({e})") from e
        try:
            handle: I2CBus = SMBus(bus)
        except FileNotFoundError as e:
            raise HardwareError(f"I2C bus {bus} (/dev/i2c-{bus}) does not exist: enable I2C "
                                "(raspi-config → Interface Options → I2C) or fix 'bus'") from e
        except PermissionError as e:
            raise HardwareError(f"no permission to open /dev/i2c-{bus}: add the service "
                                "user to the i2c group") from e
        return self._keep(handle)

    def _keep(self, handle: I2CBus) -> I2CBus:
        with self._lock:
            if self._closed:
                handle.close()
                raise HardwareError(f"{self!r} is closed")
            self._buses.append(handle)
        return handle

    def path(self, p: str) -> Path:
        """Where the system file ``p`` (e.g. ``/sys/bus/w1/devices``) really is."""
        if self.root is None or not os.path.isabs(p):
            return Path(p)
        return self.root / p.lstrip("/")

    def statvfs(self, p: str) -> Any:
        """``os.statvfs`` of the file system holding ``p`` (an ``os.statvfs_result``)."""
        return os.statvfs(self.path(p))

    def close(self) -> None:
        """Release the buses and the pin factory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            buses, self._buses = self._buses, []
        for handle in buses:
            # already closed by its sensor, or the bus went away
            with contextlib.suppress(OSError):
                handle.close()
        try:
            self._pin_factory.close()
        except Exception:  # a factory half-torn-down must not stop the rest of shutdown
            log.warning("closing the %s pin factory failed", self.backend, exc_info=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        root = f" root={str(self.root)!r}" if self.root is not None else ""
        return f"<{type(self).__name__} backend={self.backend}{root} {state}>"


SIMULATION_SPEED_ENV = "PIHUB_SIMULATION_SPEED"


def _simulation_speed() -> float:
    """How much faster than real time the simulated world moves (``$PIHUB_SIMULATION_SPEED``,
    default 1): tests and impatient demos turn it up so doors open every second."""
    text = os.environ.get(SIMULATION_SPEED_ENV, "1")
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not 0 < speed <= 1000:
        raise HardwareError(f"${SIMULATION_SPEED_ENV}: {text!r} is not a number in (0, 1000]")
    return speed


def open_hardware(pin_factory: str, *, simulate: bool, seed: int | None = None) -> Hardware:
    """The hardware of this hub: ``pin_factory`` is one of :data:`PIN_FACTORIES`.

    ``simulate=True`` ignores ``pin_factory`` and returns a
    :class:`~pihub.simulation.SimulatedHardware` (``seed`` makes it repeatable).
    ``auto`` lets gpiozero choose (it honours ``$GPIOZERO_PIN_FACTORY``); when no pin
    library loads (a desktop), the hub still runs the sensors that need no pins and every
    GPIO sensor fails to open with :class:`~pihub.errors.NoPinLibrary` saying why.
    """
    if simulate:
        from pihub.simulation import SimulatedHardware
        return SimulatedHardware(seed=seed, speed=_simulation_speed())
    name = pin_factory.lower()
    if name == "auto":
        return _auto()
    if name not in BACKENDS:
        raise UnknownPinFactory(f"pin_factory {pin_factory!r} is unknown; choose one of "
                                + ", ".join(PIN_FACTORIES))
    return Hardware(_load(name), backend=name)


def _load(name: str) -> Any:
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)()
    except Exception as e:
        hint = ("install pihub[pi] (it brings lgpio)" if name == "lgpio"
                else "install its library, or choose pin_factory = lgpio")
        raise PinFactoryUnavailable(
            f"pin_factory = {name}: gpiozero's {name} backend cannot be loaded here "
            f"({type(e).__name__}: {e}); {hint}, or set simulate = true") from e


def _auto() -> Hardware:
    from gpiozero import Device
    with warnings.catch_warnings(record=True) as fallbacks:
        warnings.simplefilter("always")
        try:
            # gpiozero's own choice, without setting its global Device.pin_factory
            factory = Device._default_pin_factory()
        except Exception as e:
            reasons = "; ".join(str(w.message) for w in fallbacks) or str(e)
            from pihub.simulation.pins import UnwiredFactory
            log.warning("no GPIO pin library could be loaded (%s): sensors on GPIO pins "
                        "will fail to open; install pihub[pi] on a Pi, or set "
                        "simulate = true", reasons)
            return Hardware(UnwiredFactory(reasons), backend="none")
    name = type(factory).__name__.removesuffix("Factory").lower()
    for w in fallbacks:
        log.info("pin factory: %s", w.message)
    return Hardware(factory, backend=name)
