"""Sensors on GPIO pins: ``digital``, ``motion``, ``light`` and ``distance`` (gpiozero).

``digital`` and ``motion`` report edges as they happen (:meth:`Sensor.on_edge`); their
polls re-state the current value. ``light`` and ``distance`` are gpiozero's smoothed
devices: a background thread of gpiozero's keeps sampling, and a read returns the median
of its recent samples once there are enough of them.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

from gpiozero import DigitalInputDevice, DistanceSensor, LightSensor, MotionSensor
from gpiozero.exc import PWMSoftwareFallback

from pihub.errors import SensorError
from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import EdgeCallback, Sensor, checked, device_errors

# gpiozero suggests pigpio for DistanceSensor on any other factory; pihub prefers lgpio
# (it works on every Pi) and the median of several echoes is good enough for it.
warnings.filterwarnings("ignore", category=PWMSoftwareFallback)

PIN_PATTERN = r"(?i)(GPIO|BCM|BOARD|WPI|J8:|P1:)?[0-9]{1,2}"
PIN_HELP = "a pin name such as 17, GPIO17 or BOARD11"
#: How long a read waits for a smoothed device's first samples.
FIRST_SAMPLES_TIMEOUT = 2.0


def _pin(default: Any = dataclasses.MISSING, help: str = "") -> Any:
    return key(default, pattern=PIN_PATTERN, pattern_help=PIN_HELP, help=help)


class _EdgeSensor(Sensor):
    """A two-state GPIO device whose edges are readings of their own."""

    device_class: ClassVar[str | None] = None
    _device: Any

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "vb", None, cls.device_class),)

    def on_edge(self, callback: EdgeCallback) -> None:
        # gpiozero calls these from its own event thread, as the pin changes
        def rose() -> None:
            callback(Reading(self.name, True, time.time(), None, edge=True))

        def fell() -> None:
            callback(Reading(self.name, False, time.time(), None, edge=True))

        self._device.when_activated = rose
        self._device.when_deactivated = fell

    def read(self) -> list[Reading]:
        with device_errors(f"reading pin {self.options.pin}"):
            value = bool(self._device.is_active)
        return [Reading(self.name, value, time.time())]

    def close(self) -> None:
        if not self._closed:
            self._device.close()
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pin={self.options.pin}"
        return f"<{type(self).__name__} {self.name!r} type={self.type_name} {state}>"


@dataclasses.dataclass(frozen=True)
class DigitalOptions:
    pin: str = _pin(help="the input pin (button, reed switch)")
    pull_up: bool = key(True, help="true: the switch connects the pin to ground")
    bounce_time: float | None = key(None, above=0, max=10,
                                    help="seconds to ignore further edges after one")


class Digital(_EdgeSensor):
    """``digital``: ``NAME`` true while the contact is closed (the pin is active)."""

    type_name: ClassVar[str] = "digital"
    Options: ClassVar[type[Any]] = DigitalOptions

    def __init__(self, name: str, options: DigitalOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot open pin {options.pin}"):
            self._device = DigitalInputDevice(
                options.pin, pull_up=options.pull_up, bounce_time=options.bounce_time,
                pin_factory=hardware.pin_factory)


@dataclasses.dataclass(frozen=True)
class MotionOptions:
    pin: str = _pin(help="the PIR's OUT pin")


class Motion(_EdgeSensor):
    """``motion``: a PIR sensor; ``NAME`` true while it sees motion."""

    type_name: ClassVar[str] = "motion"
    Options: ClassVar[type[Any]] = MotionOptions
    device_class: ClassVar[str | None] = "motion"

    def __init__(self, name: str, options: MotionOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot open pin {options.pin}"):
            self._device = MotionSensor(options.pin, pin_factory=hardware.pin_factory)


def _wait_for_samples(device: Any, what: str) -> None:
    """Wait until a gpiozero smoothed device has its first samples; raise if it never does.

    Its ``value`` would otherwise block for ever on a sensor that never answers.
    """
    queue = getattr(device, "_queue", None)
    full = getattr(queue, "full", None)
    if full is not None and not full.wait(FIRST_SAMPLES_TIMEOUT):
        raise SensorError(f"{what} gave no samples in {FIRST_SAMPLES_TIMEOUT} s")


@dataclasses.dataclass(frozen=True)
class LightOptions:
    pin: str = _pin(help="the pin between the LDR and the capacitor")
    charge_time_limit: float = key(0.01, above=0, max=1,
                                   help="seconds the capacitor takes to charge in the dark")


class Light(Sensor):
    """``light``: an LDR charging a capacitor; ``NAME`` 0 (dark) .. 1 (bright)."""

    type_name: ClassVar[str] = "light"
    Options: ClassVar[type[Any]] = LightOptions

    def __init__(self, name: str, options: LightOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot open pin {options.pin}"):
            self._device = LightSensor(options.pin, charge_time_limit=options.charge_time_limit,
                                       pin_factory=hardware.pin_factory)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", "/", None),)

    def read(self) -> list[Reading]:
        _wait_for_samples(self._device, f"the light sensor on pin {self.options.pin}")
        with device_errors(f"reading pin {self.options.pin}"):
            value = float(self._device.value)
        return [Reading(self.name, round(checked(self.name, value, 0.0, 1.0), 4),
                        time.time(), "/")]

    def close(self) -> None:
        if not self._closed:
            self._device.close()
        super().close()


class _TimedDistanceSensor(DistanceSensor):  # type: ignore[misc]
    """gpiozero's DistanceSensor, remembering when it last heard an echo.

    Its median keeps the last good samples for ever, so without this a sensor that
    stopped answering would go on reporting the distance it saw last.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.last_echo = time.monotonic()
        super().__init__(*args, **kwargs)

    def _read(self) -> float | None:
        value: float | None = super()._read()
        if value is not None:
            self.last_echo = time.monotonic()
        return value


@dataclasses.dataclass(frozen=True)
class DistanceOptions:
    echo: str = _pin(help="the HC-SR04's ECHO pin (through a voltage divider)")
    trigger: str = _pin(help="the HC-SR04's TRIG pin")
    max_distance: float = key(1.0, above=0, max=10, help="metres; farther reads as this")


class Distance(Sensor):
    """``distance``: an HC-SR04 ultrasonic sensor; ``NAME`` in metres."""

    type_name: ClassVar[str] = "distance"
    Options: ClassVar[type[Any]] = DistanceOptions
    #: A read fails when no echo came back for this long (samples are 60 ms apart).
    ECHO_TIMEOUT = 1.0

    def __init__(self, name: str, options: DistanceOptions, hardware: Any) -> None:
        super().__init__(name, options, hardware)
        with device_errors(f"cannot open pins echo={options.echo} trigger={options.trigger}"):
            self._device = _TimedDistanceSensor(
                echo=options.echo, trigger=options.trigger, max_distance=options.max_distance,
                pin_factory=hardware.pin_factory)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return (RecordSpec(name, "v", "m", "distance"),)

    def read(self) -> list[Reading]:
        what = f"the distance sensor on echo={self.options.echo}"
        _wait_for_samples(self._device, what)
        silent = time.monotonic() - self._device.last_echo
        if silent > self.ECHO_TIMEOUT:
            raise SensorError(f"{what} has heard no echo for {silent:.1f} s")
        with device_errors(f"reading {what}"):
            value = float(self._device.distance)
        return [Reading(self.name,
                        round(checked(self.name, value, 0.0, self.options.max_distance), 4),
                        time.time(), "m")]

    def close(self) -> None:
        if not self._closed:
            self._device.close()
        super().close()
