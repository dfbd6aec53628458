"""Signal generators: values that move like the real thing, one step at a time.

Each generator owns its own ``random.Random`` and advances only when :meth:`Signal.step`
is called with a time step, so a seeded world stepped the same way produces the same
values whatever the wall clock does.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod


class Signal(ABC):
    """A value that changes over time. Subclasses provide :meth:`step` and :attr:`value`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.t = 0.0

    @property
    @abstractmethod
    def value(self) -> float: ...

    @abstractmethod
    def step(self, dt: float) -> None:
        """Advance the signal by ``dt`` seconds."""


class Wander(Signal):
    """A slow random walk pulled back to ``mean`` (an Ornstein-Uhlenbeck process).

    ``spread`` is its long-run standard deviation, ``tau`` how many seconds it takes to
    forget where it was; it never leaves ``low..high``.
    """

    def __init__(self, rng: random.Random, mean: float, spread: float, tau: float,
                 low: float, high: float, start: float | None = None) -> None:
        super().__init__(rng)
        self.mean, self.spread, self.tau = mean, spread, tau
        self.low, self.high = low, high
        self.x = mean if start is None else start

    @property
    def value(self) -> float:
        return self.x

    def step(self, dt: float) -> None:
        self.t += dt
        pull = (self.mean - self.x) * dt / self.tau
        kick = self.spread * math.sqrt(2 * dt / self.tau) * self.rng.gauss(0.0, 1.0)
        self.x = min(self.high, max(self.low, self.x + pull + kick))


class DayCurve(Signal):
    """Daylight: a smooth rise and fall over ``period`` seconds with passing clouds."""

    def __init__(self, rng: random.Random, period: float, low: float = 0.05,
                 high: float = 0.95, start: float = 0.0) -> None:
        super().__init__(rng)
        self.period, self.low, self.high = period, low, high
        self.t = start * period  # the fraction of a day already gone
        self.clouds = Wander(rng, 0.0, 0.06, period / 20, -0.3, 0.3)

    @property
    def value(self) -> float:
        sun = 0.5 - 0.5 * math.cos(2 * math.pi * self.t / self.period)  # 0 at midnight
        level = self.low + (self.high - self.low) * sun + self.clouds.value
        return min(1.0, max(0.0, level))

    def step(self, dt: float) -> None:
        self.t += dt
        self.clouds.step(dt)


class Creep(Signal):
    """A value that creeps up at ``rate`` per second and falls back to ``reset`` at ``high``
    (a disk filling with logs until they are rotated)."""

    def __init__(self, rng: random.Random, start: float, rate: float, high: float,
                 reset: float) -> None:
        super().__init__(rng)
        self.x, self.rate, self.high, self.reset = start, rate, high, reset

    @property
    def value(self) -> float:
        return self.x

    def step(self, dt: float) -> None:
        self.t += dt
        self.x += self.rate * dt * self.rng.uniform(0.0, 2.0)
        if self.x >= self.high:
            self.x = self.reset


class Toggle(Signal):
    """Two states that each last a random while: a door, closed for ``rest`` seconds (a
    range), then open for ``active`` seconds. :attr:`value` is 1.0 while active."""

    def __init__(self, rng: random.Random, rest: tuple[float, float],
                 active: tuple[float, float]) -> None:
        super().__init__(rng)
        self.rest, self.active = rest, active
        self.on = False
        self.left = rng.uniform(*rest) / 2  # the first change comes sooner

    @property
    def value(self) -> float:
        return 1.0 if self.on else 0.0

    def step(self, dt: float) -> None:
        self.t += dt
        self.left -= dt
        while self.left <= 0:
            self.on = not self.on
            self.left += self.rng.uniform(*(self.active if self.on else self.rest))


class Bursts(Signal):
    """A PIR sensor: quiet for ``rest`` seconds, then a burst of a few short pulses while
    someone walks by. :attr:`value` is 1.0 during a pulse."""

    def __init__(self, rng: random.Random, rest: tuple[float, float],
                 pulse: tuple[float, float] = (0.6, 2.5),
                 gap: tuple[float, float] = (0.3, 1.5), pulses: tuple[int, int] = (1, 4)) -> None:
        super().__init__(rng)
        self.rest, self.pulse, self.gap, self.pulses = rest, pulse, gap, pulses
        self.on = False
        self.remaining = 0
        self.left = rng.uniform(*rest) / 2

    @property
    def value(self) -> float:
        return 1.0 if self.on else 0.0

    def step(self, dt: float) -> None:
        self.t += dt
        self.left -= dt
        while self.left <= 0:
            if self.on:
                self.on = False
                self.remaining -= 1
                self.left += self.rng.uniform(*(self.gap if self.remaining else self.rest))
            else:
                if self.remaining == 0:
                    self.remaining = self.rng.randint(*self.pulses)
                self.on = True
                self.left += self.rng.uniform(*self.pulse)
