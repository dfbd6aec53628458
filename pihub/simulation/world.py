"""The simulated hardware: mock pins, a fake SPI ADC, I2C chips and system files, all
moved by signal generators on a thread of their own.

Parts are built on demand: when a sensor opens, :meth:`SimulatedHardware.prepare` builds
what that sensor's options name (its pins, the ADC on its chip select, its 1-Wire
folder, the BME280 at its address), so any configuration runs in simulation.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero.exc import PinInvalidPin
from gpiozero.pins.mock import MockChargingPin, MockPin, MockTriggerPin

from pihub.hardware import Hardware, I2CBus
from pihub.simulation import signals
from pihub.simulation.i2c import FakeBME280, FakeI2CBus
from pihub.simulation.pins import DrivenPin, MockFactory, MockMCP3xxx
from pihub.threads import RateLimitedLog, StoppableThread

log = logging.getLogger("pihub.simulation")

SPEED_OF_SOUND = 343.26  # m/s, as gpiozero's DistanceSensor assumes

Action = Callable[[], None]


class _Part:
    """One simulated part: :meth:`step` moves its signals and returns pin changes to make
    outside the simulation's lock (they call into gpiozero, which calls the sensors)."""

    def step(self, dt: float) -> list[Action]:
        raise NotImplementedError


class _SwitchPart(_Part):
    """A pin driven to a level by a two-state signal (a door contact, a PIR output)."""

    def __init__(self, pin: Any, signal: signals.Signal, level: Callable[[bool], bool]) -> None:
        self.pin, self.signal, self.level = pin, signal, level
        self.forced: bool | None = None
        self.apply()

    def wanted(self) -> bool:
        return self.forced if self.forced is not None else self.level(self.signal.value > 0.5)

    def step(self, dt: float) -> list[Action]:
        self.signal.step(dt)
        return [self.apply]

    def apply(self) -> None:
        self.pin.drive(self.wanted())


class _LightPart(_Part):
    def __init__(self, pin: Any, signal: signals.Signal, limit: float) -> None:
        self.pin, self.signal, self.limit = pin, signal, limit
        self.step(0.0)

    def step(self, dt: float) -> list[Action]:
        self.signal.step(dt)
        # gpiozero reads 1 - charge_time / limit: a bright LDR charges the capacitor fast
        self.pin.charge_time = (1.0 - self.signal.value) * self.limit
        return []


class _DistancePart(_Part):
    def __init__(self, trigger: Any, signal: signals.Signal) -> None:
        self.trigger, self.signal = trigger, signal
        self.step(0.0)

    def step(self, dt: float) -> list[Action]:
        self.signal.step(dt)
        self.trigger.echo_time = 2 * self.signal.value / SPEED_OF_SOUND
        return []


class _ValuePart(_Part):
    """Signals copied into something on every step: ADC inputs, chip registers, files."""

    def __init__(self, update: Callable[[], None], *parts: signals.Signal) -> None:
        self.update, self.signals = update, parts
        update()

    def step(self, dt: float) -> list[Action]:
        for signal in self.signals:
            signal.step(dt)
        self.update()
        return []


def _write_atomically(path: Any, text: str) -> None:
    # a reader must never see a half-written file, as with the kernel's
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)


def w1_slave_text(celsius: float) -> str:
    """What the kernel's w1-therm driver shows for a DS18B20 at ``celsius``, real CRC and all."""
    raw = round(celsius * 16) & 0xFFFF
    scratchpad = [raw & 0xFF, raw >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10]
    scratchpad.append(_crc8(scratchpad))
    hexes = " ".join(f"{b:02x}" for b in scratchpad)
    milli = round((raw - 0x10000 if raw & 0x8000 else raw) * 1000 / 16)
    return f"{hexes} : crc={scratchpad[-1]:02x} YES\n{hexes} t={milli}\n"


def _crc8(data: list[int]) -> int:
    """Dallas/Maxim 1-Wire CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected)."""
    crc = 0
    for byte in data:
        for bit in range(8):
            mix = (crc ^ byte >> bit) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
    return crc


class SimulatedHardware(Hardware):
    """Hardware for ``simulate = true`` and tests: every sensor type works on it.

    ``seed`` makes every signal repeatable; ``speed`` runs the signals' time faster than
    the wall clock (tests use it to see doors open in a second); with ``autostart=False``
    nothing moves until :meth:`step` is called. :meth:`drive` forces a pin, for tests.
    """

    simulated = True

    def __init__(self, *, seed: int | None = None, speed: float = 1.0, tick: float = 0.1,
                 autostart: bool = True) -> None:
        self._tmp = tempfile.mkdtemp(prefix="pihub-sim-")
        super().__init__(MockFactory(), backend="simulation", root=self._tmp)
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2 ** 32)
        self.speed = speed
        self.tick = tick
        self.time = 0.0  # simulated seconds so far
        # Guards _parts, the chips and every signal: the signal thread steps them while
        # sensor threads build parts (prepare) and talk to the fake I2C chips.
        self._sim_lock = threading.RLock()
        self._parts: dict[str, _Part] = {}
        self._i2c: dict[int, dict[int, FakeBME280]] = {}
        self._disks: dict[str, signals.Signal] = {}
        self._adcs: dict[int, _SimulatedADC] = {}
        self._shared: dict[str, signals.Signal] = {}
        self._thread: _SignalThread | None = None
        if autostart:
            self._thread = _SignalThread(self)
            self._thread.start()

    # -- what tests use --------------------------------------------------------------

    def rng(self, part: str) -> random.Random:
        """The random source of one part: its own, so parts do not disturb each other."""
        return random.Random(f"{self.seed}:{part}")

    def step(self, dt: float | None = None) -> None:
        """Move every signal on by ``dt`` simulated seconds (default: one tick)."""
        actions: list[Action] = []
        with self._sim_lock:
            dt = self.tick * self.speed if dt is None else dt
            self.time += dt
            for signal in self._shared.values():
                signal.step(dt)
            for part in self._parts.values():
                actions += part.step(dt)
        for action in actions:
            action()

    def pin(self, name: str | int) -> Any:
        """The mock pin called ``name`` (``17``, ``"GPIO17"``…)."""
        return self.pin_factory.pin(name)

    def drive(self, pin: str | int, value: bool | None) -> None:
        """Hold ``pin`` high (True) or low (False) until released with None; an edge, if
        the level changes, happens before this returns."""
        mock = self.pin(pin)
        with self._sim_lock:
            part = self._parts.get(self._pin_key(str(pin)))
            if isinstance(part, _SwitchPart):
                part.forced = value
                apply = part.apply
            elif value is None:
                return
            else:
                apply = mock.drive_high if value else mock.drive_low
        apply()

    def adc(self, select_pin: int = 8) -> MockMCP3xxx:
        """The mock ADC on chip select ``select_pin`` (built when an analog sensor opened)."""
        return self._adcs[select_pin]

    def bme280(self, bus: int = 1, address: int = 0x76) -> FakeBME280:
        """The fake chip at ``address`` on ``bus`` (built when a bme280 sensor opened)."""
        return self._i2c[bus][address]

    # -- the Hardware interface --------------------------------------------------------

    def prepare(self, sensor: Any) -> None:
        build = getattr(self, f"_build_{sensor.type_name}", None)
        if build is None:
            log.warning("simulation has no model of a %s sensor", sensor.type_name)
            return
        with self._sim_lock:
            build(sensor.options)

    def i2c_bus(self, bus: int) -> I2CBus:
        with self._sim_lock:
            devices = self._i2c.setdefault(bus, {})
        return self._keep(FakeI2CBus(bus, devices, self._sim_lock))

    def statvfs(self, p: str) -> Any:
        with self._sim_lock:
            usage = self._disks.get(p)
            percent = None if usage is None else usage.value
        if percent is None:
            return super().statvfs(p)
        blocks = 4_000_000
        free = round(blocks * (1 - percent / 100))
        return os.statvfs_result((4096, 4096, blocks, free, free, 1 << 20, 1 << 19, 1 << 19,
                                  0, 255))

    def close(self) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.stop(timeout=5.0)
        if self.closed:
            return
        with self._sim_lock:
            devices = list(self._adcs.values())
        for device in devices:
            device.close()
        super().close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"t={self.time:.1f}s parts={len(self._parts)}"
        return f"<SimulatedHardware seed={self.seed} speed={self.speed} {state}>"

    # -- the parts, one builder per sensor type ---------------------------------------

    def _add(self, key: str, make: Callable[[], _Part]) -> None:
        if key not in self._parts:  # a sensor reopened after an error finds its part again
            self._parts[key] = make()

    def _pin_key(self, name: str) -> str:
        # named without creating the pin: its class is chosen when the part is built
        for _header, info in self.pin_factory.board_info.find_pin(name):
            return f"pin:{info.name}"
        raise PinInvalidPin(f"{name} is not a valid pin name")

    def _build_digital(self, options: Any) -> None:
        key = self._pin_key(options.pin)
        pull_up = options.pull_up
        # a door: the reed switch is closed while the door is; it opens now and then
        door = signals.Toggle(self.rng(key), rest=(8.0, 25.0), active=(2.0, 8.0))
        self._add(key, lambda: _SwitchPart(self.pin_factory.pin(options.pin, pin_class=DrivenPin),
                                           door,
                                           lambda is_open: (not is_open) != pull_up))

    def _build_motion(self, options: Any) -> None:
        key = self._pin_key(options.pin)
        pir = signals.Bursts(self.rng(key), rest=(8.0, 25.0))
        self._add(key, lambda: _SwitchPart(self.pin_factory.pin(options.pin, pin_class=DrivenPin),
                                           pir,
                                           lambda moving: moving))

    def _build_light(self, options: Any) -> None:
        key = self._pin_key(options.pin)
        day = signals.DayCurve(self.rng(key), period=300.0, start=0.3)
        self._add(key, lambda: _LightPart(
            self.pin_factory.pin(options.pin, pin_class=MockChargingPin), day,
            options.charge_time_limit))

    def _build_distance(self, options: Any) -> None:
        key = self._pin_key(options.trigger)
        top = options.max_distance
        wander = signals.Wander(self.rng(key), mean=0.5 * top, spread=0.2 * top, tau=15.0,
                                low=0.05 * top, high=0.95 * top)

        def make() -> _Part:
            echo = self.pin_factory.pin(options.echo, pin_class=MockPin)
            trigger = self.pin_factory.pin(options.trigger, pin_class=MockTriggerPin,
                                           echo_pin=echo)
            return _DistancePart(trigger, wander)

        self._add(key, make)

    def _build_analog(self, options: Any) -> None:
        key = "spi:8"  # gpiozero's MCP3xxx use SPI0 with chip select CE0 (GPIO8)
        self._add(key, lambda: self._adc_part(options))
        device = self._adcs[8]
        channel = options.channel % len(device.voltages)
        name = f"{key}:{channel}"
        if name not in self._shared:
            vref = device.vref
            self._shared[name] = signals.Wander(self.rng(name), mean=0.5 * vref,
                                                spread=0.15 * vref, tau=20.0, low=0.0, high=vref)

    def _adc_part(self, options: Any) -> _Part:
        device = _SimulatedADC(options.chip.lower(), options.vref, pin_factory=self.pin_factory)
        device.inputs = self._shared
        self._adcs[8] = device
        return _ValuePart(device.update)

    def _load(self) -> signals.Signal:
        if "load" not in self._shared:
            self._shared["load"] = signals.Wander(self.rng("load"), mean=0.6, spread=0.35,
                                                  tau=30.0, low=0.0, high=4.0)
        return self._shared["load"]

    def _build_cpu_temperature(self, options: Any) -> None:
        path = self.path(options.sensor_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        load = self._load()
        key = f"file:{options.sensor_file}"  # the unmapped name: the root is random
        noise = signals.Wander(self.rng(key), mean=0.0, spread=1.5, tau=10.0,
                               low=-5.0, high=5.0)

        def update() -> None:
            celsius = 46.0 + 6.0 * load.value + noise.value
            _write_atomically(path, f"{round(celsius * 1000)}\n")

        self._add(key, lambda: _ValuePart(update, noise))

    def _build_load_average(self, options: Any) -> None:
        path = self.path("/proc/loadavg")
        path.parent.mkdir(parents=True, exist_ok=True)
        load = self._load()
        slower = [load.value, load.value]  # the 5- and 15-minute averages follow

        def update() -> None:
            slower[0] += (load.value - slower[0]) * self.tick / 30
            slower[1] += (load.value - slower[1]) * self.tick / 90
            _write_atomically(path, f"{load.value:.2f} {slower[0]:.2f} {slower[1]:.2f} "
                                    f"2/187 {4000 + int(self.time)}\n")

        self._add("file:/proc/loadavg", lambda: _ValuePart(update))

    def _build_disk_usage(self, options: Any) -> None:
        self.path(options.path).mkdir(parents=True, exist_ok=True)
        if options.path not in self._disks:
            rng = self.rng(f"disk:{options.path}")
            self._disks[options.path] = signals.Creep(rng, start=rng.uniform(30.0, 60.0),
                                                      rate=0.01, high=92.0, reset=35.0)
            self._shared[f"disk:{options.path}"] = self._disks[options.path]

    def _build_ds18b20(self, options: Any) -> None:
        folder = self.path(f"{options.w1_dir.rstrip('/')}/{options.device}")
        folder.mkdir(parents=True, exist_ok=True)
        rng = self.rng(f"w1:{options.device}")
        water = signals.Wander(rng, mean=rng.uniform(15.0, 22.0), spread=1.5, tau=60.0,
                               low=-10.0, high=45.0)

        def update() -> None:
            _write_atomically(folder / "w1_slave", w1_slave_text(water.value))

        self._add(f"w1:{options.device}", lambda: _ValuePart(update, water))

    def _build_bme280(self, options: Any) -> None:
        address = int(options.address, 16)
        key = f"i2c:{options.bus}:{address:#x}"
        rng = self.rng(key)
        temperature = signals.Wander(rng, mean=21.0, spread=1.5, tau=120.0, low=-10.0, high=40.0)
        humidity = signals.Wander(rng, mean=45.0, spread=8.0, tau=90.0, low=5.0, high=95.0)
        pressure = signals.Wander(rng, mean=101325.0, spread=500.0, tau=300.0,
                                  low=97000.0, high=104000.0)

        def make() -> _Part:
            chip = self._i2c.setdefault(options.bus, {}).setdefault(address, FakeBME280())

            def update() -> None:
                chip.temperature = temperature.value
                chip.humidity = humidity.value
                chip.pressure = pressure.value

            return _ValuePart(update, temperature, humidity, pressure)

        self._add(key, make)


class _SimulatedADC(MockMCP3xxx):
    """The ADC with its channel voltages taken from the simulation's signals."""

    def __init__(self, chip: str, vref: float, *, pin_factory: Any) -> None:
        super().__init__(chip, vref, pin_factory=pin_factory)
        self.inputs: dict[str, signals.Signal] = {}

    def update(self) -> None:
        for channel in range(len(self.voltages)):
            signal = self.inputs.get(f"spi:8:{channel}")
            if signal is not None:
                self.voltages[channel] = signal.value


class _SignalThread(StoppableThread):
    """Steps the simulation every ``tick`` seconds of wall-clock time."""

    def __init__(self, world: SimulatedHardware) -> None:
        super().__init__(name="pihub-simulation")
        self.world = world
        self._errors = RateLimitedLog(log)

    def loop(self) -> None:
        tick = self.world.tick
        due = time.monotonic() + tick
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            due += tick
            if time.monotonic() - due > 1.0:  # fell far behind (a suspended laptop)
                due = time.monotonic() + tick
            try:
                self.world.step()
            except Exception as e:
                self._errors.log(logging.ERROR, "simulation step failed: %s", e)
