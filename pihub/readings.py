"""What flows through the hub: a :class:`Reading`, and what a sensor declares it records."""

from __future__ import annotations

from typing import NamedTuple

#: A reading's value: ``v`` (float), ``vb`` (bool) or ``vs`` (str) in SenML terms.
Value = float | bool | str


class Reading(NamedTuple):
    """One value of one record, stamped with wall-clock time when it was taken.

    ``name`` is the record name (``door`` or ``climate/temperature``), without the hub
    id. ``edge`` marks a reading caused by a pin edge: the consumer flushes its batch at
    once for it. ``synced`` is False when the wall clock was not known to be set (no NTP
    sync yet) as the reading was taken, so ``time`` may be wrong (:mod:`pihub.clock`).
    """

    name: str
    value: Value
    time: float
    unit: str | None = None
    edge: bool = False
    synced: bool = True


class RecordSpec(NamedTuple):
    """What a sensor will record under one name, known before any reading is taken.

    Used for Home Assistant discovery and ``pihub check``. ``kind`` is ``"v"``
    (number), ``"vb"`` (boolean) or ``"vs"`` (string). ``device_class`` is Home
    Assistant's (``temperature``, ``motion``, ``door``…) or None.
    """

    name: str
    kind: str
    unit: str | None = None
    device_class: str | None = None
