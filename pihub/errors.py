"""The exceptions pihub raises: one small class per mistake under :class:`PihubError`."""

from __future__ import annotations


class PihubError(Exception):
    """Base class for every error pihub raises on purpose."""


class ConfigError(PihubError, ValueError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SensorError(PihubError, RuntimeError):
    """A sensor read failed or returned a value that cannot be true."""


class SensorRangeError(SensorError, ValueError):
    """A sensor value is not finite or lies outside the part's physical range."""


class SpoolError(PihubError, OSError):
    """The on-disk spool could not be used."""


class ZombieThread(PihubError, RuntimeError):
    """A thread did not stop within its join timeout."""


class HardwareError(PihubError, RuntimeError):
    """The hardware layer (pin factory, buses, system files) could not be used."""


class UnknownPinFactory(HardwareError, ValueError):
    """``pin_factory`` names no backend pihub knows."""


class PinFactoryUnavailable(HardwareError):
    """The chosen pin backend cannot be loaded on this machine (library or board missing)."""


class NoPinLibrary(HardwareError):
    """A GPIO pin was asked for, but no pin library could be loaded (``pin_factory = auto``)."""
