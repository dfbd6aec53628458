"""Home Assistant MQTT discovery: one retained config message per entity.

Topic: ``<discovery_prefix>/<component>/<hub id>/<object id>/config``. Each record
becomes a ``sensor`` (``v``, ``vs``) or a ``binary_sensor`` (``vb``) reading its
retained latest value from ``P/HUB/sensor/<record>``; a few diagnostic entities read
the hub's health JSON. All of them belong to one device per hub and are available
while ``P/HUB/status`` is ``online``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from pihub import __version__
from pihub.config import Config
from pihub.readings import RecordSpec
from pihub.topics import Topics

#: SenML unit -> (Home Assistant unit, the device class that unit implies).
UNITS: dict[str, tuple[str | None, str | None]] = {
    "Cel": ("°C", "temperature"),
    "%RH": ("%", "humidity"),
    "Pa": ("Pa", "pressure"),
    "hPa": ("hPa", "pressure"),
    "m": ("m", "distance"),
    "V": ("V", "voltage"),
    "A": ("A", "current"),
    "W": ("W", "power"),
    "Hz": ("Hz", "frequency"),
    "lx": ("lx", "illuminance"),
    "s": ("s", "duration"),
    "%": ("%", None),
    # A SenML ratio (0..1) has no unit in Home Assistant.
    "/": (None, None),
}

#: (object id, component, name, JSON field, extra config) for the hub's own health.
HEALTH_ENTITIES: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    ("connected", "binary_sensor", "MQTT connected", "connected",
     {"device_class": "connectivity", "payload_on": "ON", "payload_off": "OFF",
      "value_template": "{{ 'ON' if value_json.connected else 'OFF' }}"}),
    ("spool_depth", "sensor", "Backlog", "spool_depth",
     {"state_class": "measurement", "unit_of_measurement": "readings"}),
    ("dropped", "sensor", "Dropped readings", "dropped",
     {"state_class": "total_increasing", "unit_of_measurement": "readings"}),
    ("reconnects", "sensor", "MQTT reconnects", "reconnects",
     {"state_class": "total_increasing"}),
    ("uptime", "sensor", "Uptime", "uptime_s",
     {"device_class": "duration", "state_class": "measurement", "unit_of_measurement": "s"}),
)

_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def object_id(name: str) -> str:
    """The discovery object id of a record: ``climate/temperature`` -> ``climate_temperature``."""
    return _INVALID.sub("_", name)


def _unique_ids(names: Sequence[str]) -> list[str]:
    """Object ids for ``names``; a later name whose id is taken gets a hash suffix."""
    ids: list[str] = []
    for name in names:
        oid = object_id(name)
        if oid in ids:
            oid = f"{oid}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
        while oid in ids:
            oid += "_"
        ids.append(oid)
    return ids


def discovery_messages(config: Config, records: Sequence[RecordSpec]) -> list[tuple[str, bytes]]:
    """Every retained discovery message for this hub: ``(topic, JSON payload)``."""
    hub = config.hub.id
    topics = Topics(config.mqtt.topic_prefix, hub)
    prefix = config.mqtt.discovery_prefix
    common: dict[str, Any] = {
        "availability": [{"topic": topics.status, "payload_available": "online",
                          "payload_not_available": "offline"}],
        "device": {"identifiers": [f"pihub_{hub}"], "name": hub, "model": "pihub",
                   "manufacturer": "pihub", "sw_version": __version__},
        "origin": {"name": "pihub", "sw_version": __version__},
    }
    health_names = [f"hub_{oid}" for oid, *_ in HEALTH_ENTITIES]
    ids = _unique_ids([spec.name for spec in records] + health_names)

    messages: list[tuple[str, bytes]] = []

    def add(component: str, oid: str, entity: dict[str, Any]) -> None:
        payload = {**entity, **common, "unique_id": f"pihub_{hub}_{oid}"}
        topic = f"{prefix}/{component}/{hub}/{oid}/config"
        messages.append((topic, json.dumps(payload, sort_keys=True).encode()))

    for spec, oid in zip(records, ids, strict=False):
        component, entity = _record_entity(spec)
        entity["state_topic"] = topics.sensor(spec.name)
        add(component, oid, entity)
    for (_, component, name, field, extra), oid in zip(
        HEALTH_ENTITIES, ids[len(records):], strict=True
    ):
        add(component, oid, {
            "name": name, "state_topic": topics.health, "entity_category": "diagnostic",
            "value_template": f"{{{{ value_json.{field} }}}}", **extra,
        })
    return messages


def _record_entity(spec: RecordSpec) -> tuple[str, dict[str, Any]]:
    entity: dict[str, Any] = {"name": spec.name}
    if spec.kind == "vb":
        entity.update(payload_on="ON", payload_off="OFF")
        if spec.device_class:
            entity["device_class"] = spec.device_class
        return "binary_sensor", entity
    if spec.kind == "vs":
        return "sensor", entity
    unit, implied_class = UNITS.get(spec.unit, (spec.unit, None)) if spec.unit else (None, None)
    device_class = spec.device_class or implied_class
    entity["state_class"] = "measurement"
    if unit is not None:
        entity["unit_of_measurement"] = unit
    if device_class is not None:
        entity["device_class"] = device_class
    return "sensor", entity
