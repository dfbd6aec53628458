"""The one small interface every sensor type implements."""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from pihub.errors import SensorError, SensorRangeError
from pihub.readings import Reading, RecordSpec

if TYPE_CHECKING:
    from pihub.hardware import Hardware

EdgeCallback = Callable[[Reading], None]


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A sensor type with no keys but ``interval``."""


class Sensor(ABC):
    """A sensor: ``read()`` returns readings or raises. It knows nothing of threads or MQTT.

    A subclass provides:

    - ``type_name``: the ``type =`` value in ``config.ini``;
    - ``Options``: a frozen dataclass of its keys, declared with :func:`pihub.schema.key`
      (``interval`` is common to all and not part of it);
    - :meth:`records`, :meth:`read`, and :meth:`close` if it holds a device;
    - :meth:`on_edge` if it can report pin edges as they happen.

    The constructor opens the device through ``hardware`` (never a GPIO library
    directly) and raises :class:`~pihub.errors.SensorError` when it cannot. A subclass
    whose records depend only on its name and options provides the classmethod
    :meth:`record_specs` instead of :meth:`records` (``pihub check`` uses it without
    opening anything).
    """

    type_name: ClassVar[str]
    Options: ClassVar[type[Any]] = NoOptions

    def __init__(self, name: str, options: Any, hardware: Hardware) -> None:
        self.name = name
        self.options = options
        self.hardware = hardware
        self._closed = False
        if hardware is not None:
            # the simulation builds the part this sensor is about to look for
            hardware.prepare(self)

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        """What a sensor of this type named ``name`` with ``options`` records."""
        raise NotImplementedError(f"{cls.__name__} describes its records only when open")

    def records(self) -> Sequence[RecordSpec]:
        """What this sensor records: one spec per record name, fixed for its life."""
        return self.record_specs(self.name, self.options)

    @abstractmethod
    def read(self) -> list[Reading]:
        """Take one reading of every record, stamped with ``time.time()``; raise on failure."""

    def on_edge(self, callback: EdgeCallback) -> None:
        """Call ``callback`` with a reading (``edge=True``) on every edge; default: no edges."""

    def close(self) -> None:
        """Release the device. Idempotent."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Sensor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.name!r} type={self.type_name} {state}>"


def checked(name: str, value: float, low: float, high: float) -> float:
    """``value`` if it is finite and within the part's physical range, else raise."""
    if not math.isfinite(value) or not low <= value <= high:
        raise SensorRangeError(f"{name}: {value!r} is outside the physical range {low}..{high}")
    return value


@contextmanager
def device_errors(doing: str) -> Iterator[None]:
    """Turn whatever a device library raises while ``doing`` something into a SensorError.

    gpiozero, smbus2 and the file system raise their own exception types (``PinInvalidPin``,
    ``OSError``…); the sensor thread should see one kind, worded for the user.
    """
    try:
        yield
    except SensorError:
        raise
    except Exception as e:
        raise SensorError(f"{doing}: {e}" if str(e) else f"{doing}: {type(e).__name__}") from e
