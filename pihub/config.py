"""``config.ini`` → frozen, typed objects, once, at the edge.

The rest of pihub never sees configparser or a raw string: it gets a :class:`Config`.
Each section is a dataclass declared with :func:`pihub.schema.key`; sensor sections take
their keys from the sensor type's ``Options`` dataclass (see :mod:`pihub.sensors`).

PARSING IS NOT WRITTEN YET: :func:`load_config` is the one entry point.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pihub.schema import key

HUB_ID_PATTERN = r"[A-Za-z0-9_-]+"


@dataclasses.dataclass(frozen=True)
class HubConfig:
    """``[hub]``."""

    id: str = key("", pattern=HUB_ID_PATTERN, pattern_help="letters, digits, _ and -",
                  help="default: the host name")
    state_dir: str = key("/var/lib/pihub")
    pin_factory: str = key("auto", choices=("auto", "lgpio", "rpigpio", "pigpio", "native", "mock"))
    simulate: bool = key(False)
    queue_size: int = key(10000, min=1, max=10_000_000)
    shutdown_timeout: float = key(5.0, above=0, max=3600)


@dataclasses.dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``. The password is not here: see :attr:`Config.password`."""

    host: str = key("localhost")
    port: int = key(1883, min=1, max=65535)
    client_id: str = key("", help="default: pihub-<hub id>")
    username: str = key("")
    password_file: str = key("")
    tls: bool = key(False)
    ca_certs: str = key("")
    certfile: str = key("")
    keyfile: str = key("")
    keepalive: int = key(30, min=5, max=65535)
    qos: int = key(1, min=1, max=2, help="0 cannot keep the delivery promise")
    protocol: str = key("5", choices=("5", "3.1.1"))
    topic_prefix: str = key("pihub", pattern=r"[^#+\x00]+", pattern_help="no MQTT wildcards")
    discovery: bool = key(True)
    discovery_prefix: str = key("homeassistant", pattern=r"[^#+\x00]+",
                                pattern_help="no MQTT wildcards")


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """``[batch]``."""

    max_readings: int = key(100, min=1, max=100_000)
    max_latency: float = key(1.0, above=0, max=3600)
    #: A batch's SenML payload is capped in bytes too (brokers limit message size).
    max_bytes: int = key(262144, min=1024, max=268_435_455)


@dataclasses.dataclass(frozen=True)
class SpoolConfig:
    """``[spool]``."""

    max_bytes: int = key(67108864, min=65536)


@dataclasses.dataclass(frozen=True)
class SensorConfig:
    """One ``[sensor:NAME]`` section; ``options`` is the type's ``Options`` instance."""

    name: str
    type: str
    interval: float
    options: Any


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole, validated configuration."""

    path: Path
    hub: HubConfig
    mqtt: MqttConfig
    batch: BatchConfig
    spool: SpoolConfig
    sensors: tuple[SensorConfig, ...]
    #: From ``password_file`` or ``$PIHUB_MQTT_PASSWORD``; never shown.
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"pihub-{self.hub.id}"


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raise :class:`~pihub.errors.ConfigError` listing every problem."""
    raise NotImplementedError
