"""Tests for pihub.check: what ``pihub check`` prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from pihub import sensors
from pihub.check import describe
from pihub.config import Config, load_config
from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import Sensor

SECRET = "hunter2-s3cr3t"


@dataclasses.dataclass(frozen=True)
class DoorOptions:
    pin: str = key()
    pull_up: bool = key(True)
    bounce_time: float | None = key(None)


@dataclasses.dataclass(frozen=True)
class ClimateOptions:
    bus: int = key(1)
    access_token: str = key("")


class Door(Sensor):
    type_name = "door"
    Options = DoorOptions

    @classmethod
    def record_specs(cls, name: str, options: object) -> Sequence[RecordSpec]:
        return [RecordSpec(name, "vb", None, "door")]

    def read(self) -> list[Reading]:
        return []


class Climate(Sensor):
    type_name = "climate"
    Options = ClimateOptions

    @classmethod
    def record_specs(cls, name: str, options: object) -> Sequence[RecordSpec]:
        return [RecordSpec(f"{name}/temperature", "v", "Cel"),
                RecordSpec(f"{name}/humidity", "v", "%RH")]

    def read(self) -> list[Reading]:
        return []


class Secretive(Sensor):
    """Knows its records only once open."""

    type_name = "secretive"

    def read(self) -> list[Reading]:
        return []


@pytest.fixture(autouse=True)
def fake_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sensors, "SENSOR_TYPES",
                        {"door": Door, "climate": Climate, "secretive": Secretive})


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.ini"
    path.write_text(text)
    return load_config(path, environ=environ or {})


FULL = """
[hub]
id = attic
state_dir = /srv/pihub
pin_factory = mock
simulate = yes
[mqtt]
host = broker.lan
port = 8883
username = hub
password_file = pw
protocol = 3.1.1
topic_prefix = home
[sensor:front]
type = door
pin = GPIO17
interval = 2
[sensor:air]
type = climate
access_token = {secret}
interval = 5
"""


def test_describe_shows_hub_broker_topics_and_sensors(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    text = describe(load(tmp_path, FULL.format(secret=SECRET)))
    lines = text.splitlines()
    assert "hub        attic" in lines
    assert "state dir  /srv/pihub" in lines
    assert "pins       factory mock, simulate yes" in lines
    assert any(line.startswith("broker     broker.lan:8883, MQTT 3.1.1,") for line in lines)
    assert "client id pihub-attic" in text
    assert "TLS        off" in lines
    assert f"login      username hub, password set (from password_file {tmp_path / 'pw'})" \
        in lines
    for topic in ("home/attic/status", "home/attic/readings", "home/attic/health",
                  "home/attic/sensor/front", "home/attic/sensor/air/temperature",
                  "home/attic/sensor/air/humidity"):
        assert any(line.strip().startswith(topic + " ") for line in lines), topic
    assert any(line.startswith("  homeassistant/…/config ")
               and line.endswith("  Home Assistant discovery: on") for line in lines)
    assert "sensors (2)" in lines
    front = next(line for line in lines if line.strip().startswith("front "))
    assert "door, every 2 s" in front
    assert "pin=GPIO17" in front and "pull_up=true" in front and "bounce_time=(none)" in front
    assert "records: front (on/off)" in front
    air = next(line for line in lines if line.strip().startswith("air "))
    assert "climate, every 5 s" in air and "bus=1" in air
    assert "records: air/temperature [Cel], air/humidity [%RH]" in air


def test_describe_never_shows_a_secret(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET)
    config = load(tmp_path, FULL.format(secret=SECRET))
    assert config.password == SECRET
    text = describe(config)
    assert SECRET not in text
    assert "access_token=(hidden)" in text


def test_describe_password_from_the_environment(tmp_path: Path) -> None:
    config = load(tmp_path, "[mqtt]\nusername = u\n", {"PIHUB_MQTT_PASSWORD": SECRET})
    text = describe(config)
    assert "login      username u, password set (from $PIHUB_MQTT_PASSWORD)" in text
    assert SECRET not in text


def test_describe_without_login_tls_on_discovery_off(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = load(tmp_path, "[hub]\nid = h\n[mqtt]\ntls = true\nca_certs = ca.pem\n"
                            "discovery = false\nhost = ::1\n")
    lines = describe(config).splitlines()
    assert "login      no username, no password" in lines
    assert f"TLS        on, CA {tmp_path / 'ca.pem'}" in lines
    assert "  Home Assistant discovery: off" in lines
    assert any(line.startswith("broker     [::1]:1883, MQTT 5,") for line in lines)
    assert "sensors (0)" in lines and "  none" in lines


def test_describe_a_sensor_whose_records_are_unknown(tmp_path: Path) -> None:
    text = describe(load(tmp_path, "[hub]\nid = h\n[sensor:box]\ntype = secretive\n"))
    assert "box  secretive, every 10 s; no options; records: (known once it is open)" in text
    assert "pihub/h/sensor/box…" in text
