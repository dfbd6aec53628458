"""Tests for pihub.config: defaults, every kind of problem, password sources, lookup, fuzz."""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pihub import config as config_module
from pihub import sensors
from pihub.config import (
    BatchConfig,
    Config,
    HubConfig,
    MqttConfig,
    SpoolConfig,
    default_hub_id,
    load_config,
    resolve_config_path,
    sensor_records,
)
from pihub.errors import ConfigError
from pihub.readings import Reading, RecordSpec
from pihub.schema import key
from pihub.sensors.base import NoOptions, Sensor

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.ini"
SECRET = "hunter2-s3cr3t"


# -- small sensor types of our own, so these tests do not depend on the real ones --------

@dataclasses.dataclass(frozen=True)
class SwitchOptions:
    pin: str = key()
    pull_up: bool = key(True)
    bounce_time: float | None = key(None, above=0, max=10)


@dataclasses.dataclass(frozen=True)
class RangerOptions:
    echo: str = key()
    trigger: str = key()
    max_distance: float = key(1.0, above=0, max=10)


@dataclasses.dataclass(frozen=True)
class ChipOptions:
    bus: int = key(1, min=0, max=10)
    address: int = key(0x76, min=0x03, max=0x77)
    label: str | None = key(None)
    api_token: str = key("")
    mode: str = key("normal", choices=("normal", "forced"))


@dataclasses.dataclass(frozen=True)
class CheckedOptions:
    low: float = key(0.0)
    high: float = key(1.0)

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise ValueError("low must be below high")


class FakeSensor(Sensor):
    def records(self) -> Sequence[RecordSpec]:
        return [RecordSpec(self.name, "v", "Cel")]

    def read(self) -> list[Reading]:
        return []


class Switch(FakeSensor):
    type_name = "switch"
    Options = SwitchOptions

    def records(self) -> Sequence[RecordSpec]:
        return [RecordSpec(self.name, "vb", None, "door")]


class Ranger(FakeSensor):
    type_name = "ranger"
    Options = RangerOptions


class Chip(FakeSensor):
    type_name = "chip"
    Options = ChipOptions

    def records(self) -> Sequence[RecordSpec]:
        return [RecordSpec(f"{self.name}/temperature", "v", "Cel"),
                RecordSpec(f"{self.name}/humidity", "v", "%RH")]


class Checked(FakeSensor):
    type_name = "checked"
    Options = CheckedOptions


class Clashing(FakeSensor):
    """Records under a fixed name, so two of them collide."""

    type_name = "clashing"

    @classmethod
    def record_specs(cls, name: str, options: Any) -> Sequence[RecordSpec]:
        return [RecordSpec("shared", "v")]


class Plain(FakeSensor):
    type_name = "plain"
    Options = NoOptions


FAKE_TYPES: dict[str, type[Sensor]] = {
    cls.type_name: cls for cls in (Switch, Ranger, Chip, Checked, Clashing, Plain)
}


@pytest.fixture
def fake_types(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sensors, "SENSOR_TYPES", dict(FAKE_TYPES))
    yield


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in ``tmp_path`` so messages start with ``config.ini:`` as a user would see them."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def no_credstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's /etc/credstore (if any) must not leak into the tests."""
    store = tmp_path / "credstore"
    monkeypatch.setattr(config_module, "CREDSTORE", store)
    return store


def write(tmp_path: Path, text: str, name: str = "config.ini") -> Path:
    """Write the file; return its path relative to the current directory, as a user gives it."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return Path(os.path.relpath(path))


def load(path: Path, environ: dict[str, str] | None = None) -> Config:
    return load_config(path, environ={} if environ is None else environ)


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ)
    assert info.value.problems, "a ConfigError must say what is wrong"
    return info.value.problems


def one_problem(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    found = problems(write(tmp_path, text), environ)
    assert len(found) == 1, found
    return found[0]


# -- defaults -----------------------------------------------------------------------------

def test_defaults_for_every_key(tmp_path: Path, fake_types: None) -> None:
    config = load(write(tmp_path, ""))
    assert config.hub == HubConfig(id=default_hub_id())
    assert config.hub.state_dir == "/var/lib/pihub"
    assert config.hub.pin_factory == "auto"
    assert config.hub.simulate is False
    assert config.hub.queue_size == 10000
    assert config.hub.shutdown_timeout == 5
    assert config.mqtt == MqttConfig()
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.keepalive) == ("localhost", 1883, 30)
    assert (config.mqtt.username, config.mqtt.password_file, config.mqtt.client_id) == ("", "", "")
    assert (config.mqtt.tls, config.mqtt.ca_certs, config.mqtt.certfile, config.mqtt.keyfile) \
        == (False, "", "", "")
    assert (config.mqtt.qos, config.mqtt.protocol) == (1, "5")
    assert (config.mqtt.topic_prefix, config.mqtt.discovery, config.mqtt.discovery_prefix) \
        == ("pihub", True, "homeassistant")
    assert config.batch == BatchConfig()
    assert (config.batch.max_readings, config.batch.max_latency) == (100, 1.0)
    assert config.spool == SpoolConfig()
    assert config.spool.max_bytes == 67108864
    assert config.sensors == ()
    assert config.password is None and config.password_source is None
    assert config.client_id == f"pihub-{config.hub.id}"


def test_sensor_defaults(tmp_path: Path, fake_types: None) -> None:
    config = load(write(tmp_path, "[sensor:door]\ntype = switch\npin = GPIO17\n"))
    (door,) = config.sensors
    assert (door.name, door.type, door.interval) == ("door", "switch", 10.0)
    assert door.options == SwitchOptions(pin="GPIO17", pull_up=True, bounce_time=None)


def test_hub_id_defaults_to_sanitised_host_name(tmp_path: Path, fake_types: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "pi_4 b.lan")
    assert default_hub_id() == "pi_4-b"
    assert load(write(tmp_path, "[hub]\nid =\n")).hub.id == "pi_4-b"
    monkeypatch.setattr(socket, "gethostname", lambda: "...")
    assert default_hub_id() == "pihub"


def test_values_are_parsed_and_typed(tmp_path: Path, fake_types: None) -> None:
    path = write(tmp_path, """
[hub]
id = Living_room-1
pin_factory = LGPIO      ; choices ignore case
simulate = Yes
queue_size = 1_000
[mqtt]
port = 8883 # a comment after a hash
client_id = a#b%c;d
protocol = 3.1.1
[sensor:door]
Type = switch
PIN = 17
pull_up = off
bounce_time = 0.05
interval = 0.5
[sensor:climate]
type = CHIP
address = 0x77
label =
""")
    config = load(path)
    assert config.hub.id == "Living_room-1"
    assert config.hub.pin_factory == "lgpio"
    assert config.hub.simulate is True
    assert config.hub.queue_size == 1000
    assert config.mqtt.port == 8883
    assert config.mqtt.client_id == "a#b%c;d"  # no interpolation; inline comments need a space
    assert config.mqtt.protocol == "3.1.1"
    door, climate = config.sensors
    assert door.options == SwitchOptions(pin="17", pull_up=False, bounce_time=0.05)
    assert door.interval == 0.5
    assert climate.type == "chip"
    assert climate.options == ChipOptions(address=0x77, label=None)


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path,
                                                          fake_types: None) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "pw").write_text("pw\n")
    path = write(folder, "[hub]\nstate_dir = ./state\n[mqtt]\nusername = u\npassword_file = pw\n")
    config = load(path)
    assert config.hub.state_dir == str(folder / "state")
    assert config.mqtt.password_file == str(folder / "pw")
    assert not (folder / "state").exists(), "the runtime creates state_dir, not the loader"


def test_config_is_frozen(tmp_path: Path, fake_types: None) -> None:
    config = load(write(tmp_path, "[sensor:door]\ntype = switch\npin = 5\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hub = HubConfig()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sensors[0].options.pin = "6"


# -- one test per kind of problem ---------------------------------------------------------

def test_unknown_key_suggests_the_close_one_as_written(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[hub]\nQueue_Sise = 5\n")
    assert line == "config.ini: [hub] Queue_Sise: unknown key (did you mean 'queue_size'?)"


def test_unknown_sensor_key_lists_the_known_ones(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:door]\ntype = switch\npin = 5\nzzz = 1\n")
    assert line.startswith("config.ini: [sensor:door] zzz: unknown key (known: ")
    assert "pull_up" in line


@pytest.mark.parametrize(("section", "hint"), [
    ("mqqt", "did you mean 'mqtt'?"),
    ("sensors:door", "did you mean 'sensor:door'?"),
    ("DEFAULT", ""),
])
def test_unknown_section(tmp_path: Path, fake_types: None, section: str, hint: str) -> None:
    line = one_problem(tmp_path, f"[{section}]\nx = 1\n")
    assert line.startswith(f"config.ini: [{section}] unknown section")
    assert hint in line


def test_bad_sensor_name(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:front door]\ntype = switch\npin = 5\n")
    assert line.startswith("config.ini: [sensor:front door] ")
    assert "letters, digits, _ and -" in line


@pytest.mark.parametrize(("text", "expected"), [
    ("[mqtt]\nport = abc\n", "config.ini: [mqtt] port: 'abc' is not a whole number"),
    ("[mqtt]\nport = 1.5\n", "config.ini: [mqtt] port: '1.5' is not a whole number"),
    ("[hub]\nshutdown_timeout = soon\n",
     "config.ini: [hub] shutdown_timeout: 'soon' is not a number"),
    ("[hub]\nsimulate = maybe\n", "config.ini: [hub] simulate: 'maybe' is not true or false "
     "(say true/false, yes/no, on/off or 1/0)"),
])
def test_wrong_types(tmp_path: Path, fake_types: None, text: str, expected: str) -> None:
    assert one_problem(tmp_path, text) == expected


@pytest.mark.parametrize("word", ["true", "yes", "on", "1", "TRUE", "On"])
def test_bool_true_words(tmp_path: Path, fake_types: None, word: str) -> None:
    assert load(write(tmp_path, f"[hub]\nsimulate = {word}\n")).hub.simulate is True


@pytest.mark.parametrize("word", ["false", "no", "off", "0", "False"])
def test_bool_false_words(tmp_path: Path, fake_types: None, word: str) -> None:
    assert load(write(tmp_path, f"[mqtt]\ndiscovery = {word}\n")).mqtt.discovery is False


@pytest.mark.parametrize(("text", "expected"), [
    ("[mqtt]\nport = 70000\n",
     "config.ini: [mqtt] port: '70000' is out of range (must be 1..65535)"),
    ("[mqtt]\nqos = 0\n", "config.ini: [mqtt] qos: '0' is out of range (must be 1..2)"),
    ("[sensor:door]\ntype = switch\npin = 5\ninterval = 0\n",
     "config.ini: [sensor:door] interval: '0' is out of range (must be above 0 and at most 86400)"),
    ("[spool]\nmax_bytes = 10\n",
     "config.ini: [spool] max_bytes: '10' is out of range (must be at least 65536)"),
])
def test_out_of_range_says_the_range(tmp_path: Path, fake_types: None, text: str,
                                     expected: str) -> None:
    assert one_problem(tmp_path, text) == expected


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999", "NaN"])
def test_non_finite_numbers_are_rejected(tmp_path: Path, fake_types: None, value: str) -> None:
    line = one_problem(tmp_path, f"[batch]\nmax_latency = {value}\n")
    assert line == f"config.ini: [batch] max_latency: {value!r} is not a finite number"


@pytest.mark.parametrize("value", ["9" * 30, "9" * 5000, "-" + "9" * 25])
def test_huge_whole_numbers_are_rejected(tmp_path: Path, fake_types: None, value: str) -> None:
    line = one_problem(tmp_path, f"[spool]\nmax_bytes = {value}\n")
    assert line.startswith("config.ini: [spool] max_bytes: ")
    assert len(line) < 200, "a huge value is shortened, not echoed whole"


def test_missing_required_key(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:door]\ntype = switch\n")
    assert line == "config.ini: [sensor:door] pin: required key is missing"


def test_empty_required_key(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:door]\ntype = switch\npin =\n")
    assert line == "config.ini: [sensor:door] pin: required key is empty"


def test_missing_sensor_type(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:door]\npin = 5\n")
    assert line == "config.ini: [sensor:door] type: required key is missing"


def test_unknown_sensor_type_suggests(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:door]\ntype = swtich\npin = 5\n")
    assert line == ("config.ini: [sensor:door] type: unknown sensor type 'swtich' "
                    "(did you mean 'switch'?)")
    line = one_problem(tmp_path, "[sensor:door]\ntype = zzzzzz\n")
    assert "(known: checked, chip, clashing, plain, ranger, switch)" in line


def test_value_not_among_choices(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[hub]\npin_factory = gpio\n")
    assert line == ("config.ini: [hub] pin_factory: 'gpio' is not one of "
                    "auto, lgpio, rpigpio, pigpio, native, mock")


@pytest.mark.parametrize(("text", "where"), [
    ("[hub]\nid = living room\n", "[hub] id: 'living room' is not valid (allowed: letters"),
    ("[mqtt]\ntopic_prefix = a/#\n", "[mqtt] topic_prefix: 'a/#' is not valid (allowed: any"),
])
def test_pattern(tmp_path: Path, fake_types: None, text: str, where: str) -> None:
    assert one_problem(tmp_path, text).startswith(f"config.ini: {where}")


def test_options_post_init_problem(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:x]\ntype = checked\nlow = 2\nhigh = 1\n")
    assert line == "config.ini: [sensor:x] low must be below high"


def test_password_in_the_file_is_refused_and_never_echoed(tmp_path: Path,
                                                          fake_types: None) -> None:
    line = one_problem(tmp_path, f"[mqtt]\nusername = u\nPassword = {SECRET}\n")
    assert line.startswith("config.ini: [mqtt] Password: ")
    assert "password_file" in line and "$PIHUB_MQTT_PASSWORD" in line
    assert SECRET not in line


def test_values_of_secret_keys_are_never_echoed(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, f"[sensor:x]\ntype = chip\napi_token = {SECRET}\nbus = {SECRET}\n")
    assert line.startswith("config.ini: [sensor:x] bus: ")
    line = one_problem(tmp_path, f"[sensor:x]\ntype = chip\nlabel = ok\napi_token = {SECRET}\x01\n")
    assert line.startswith("config.ini: [sensor:x] api_token: ")
    assert SECRET not in line


def test_bad_lines_are_never_echoed(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, f"[mqtt]\nusername = u\n{SECRET}\n")
    assert line.startswith("config.ini: line 3: ")
    assert SECRET not in line


def test_every_problem_is_reported(tmp_path: Path, fake_types: None) -> None:
    found = problems(write(tmp_path, """
[hub]
queue_size = 0
[mqtt]
port = abc
[mqqt]
[sensor:door]
type = switch
"""))
    assert [line.split(":")[1].strip() for line in found] == [
        "[hub] queue_size", "[mqtt] port", "[mqqt] unknown section (did you mean 'mqtt'?)",
        "[sensor",
    ]
    assert found[3] == "config.ini: [sensor:door] pin: required key is missing"


def test_the_file_is_named_as_given(tmp_path: Path, fake_types: None) -> None:
    path = write(tmp_path, "[hub]\nsimulate = 2\n", name="other.ini")
    (line,) = problems(path)
    assert line.startswith(f"{path}: [hub] simulate: ")


# -- files that are not a valid INI file --------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.ini") == [f"{tmp_path / 'nope.ini'}: no such file"]


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    (line,) = problems(tmp_path)
    assert line.startswith(f"{tmp_path}: ") and "directory" in line


@pytest.mark.parametrize(("data", "expected"), [
    (b"[hub]\nid = a\n[hub]\n", "config.ini: [hub] line 3: the section appears twice"),
    (b"[hub]\nid = a\nid = b\n", "config.ini: [hub] id: line 3: the key appears twice in this "
                                 "section"),
    (b"[hub]\nid = a\nID = b\n", "config.ini: [hub] ID: the key appears twice (also as 'id')"),
    (b"id = a\n", "config.ini: line 1: a key before any [section] header"),
    (b"[hub]\njust words\n", "config.ini: line 2: is neither [section], key = value nor a comment"),
    (b"[hub]\nid = \xff\xfe\n", "config.ini: line 2: is not UTF-8 text"),
    (b"\x7fELF\x00\x00\x01", "config.ini: holds NUL bytes; is it a text file?"),
    (b"[hub]\nid = a\n  b\n", "config.ini: [hub] id: the value spans several lines (is the next "
                              "line indented?)"),
    (b"[hub]\nid = a\x1bb\n", "config.ini: [hub] id: the value holds control characters"),
])
def test_not_valid_ini(tmp_path: Path, fake_types: None, data: bytes, expected: str) -> None:
    (tmp_path / "config.ini").write_bytes(data)
    assert problems(Path("config.ini")) == [expected]


def test_utf8_bom_and_non_ascii_values_are_fine(tmp_path: Path, fake_types: None) -> None:
    path = tmp_path / "config.ini"
    path.write_bytes("\ufeff[mqtt]\nusername = jürgen\n".encode())
    assert load(path).mqtt.username == "jürgen"


# -- the password -------------------------------------------------------------------------

def test_password_file_strips_one_newline(tmp_path: Path, fake_types: None) -> None:
    (tmp_path / "pw").write_text(f"{SECRET}\n\n")
    config = load(write(tmp_path, "[mqtt]\nusername = u\npassword_file = pw\n"))
    assert config.password == f"{SECRET}\n"
    assert config.password_source == "password_file"
    assert SECRET not in repr(config)


def test_unreadable_password_file_names_the_key_not_the_content(tmp_path: Path,
                                                                fake_types: None) -> None:
    line = one_problem(tmp_path, f"[mqtt]\nusername = u\npassword_file = {SECRET}\n")
    assert line.startswith("config.ini: [mqtt] password_file: cannot read the password file")
    assert SECRET not in line
    (tmp_path / "bad").write_bytes(b"\xff" + SECRET.encode())
    line = one_problem(tmp_path, "[mqtt]\nusername = u\npassword_file = bad\n")
    assert line == "config.ini: [mqtt] password_file: the password file is not UTF-8 text"


def test_password_precedence(tmp_path: Path, fake_types: None) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-credentials\n")
    (tmp_path / "pw").write_text("from-file")
    env = {"PIHUB_MQTT_PASSWORD": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    with_file = write(tmp_path, "[mqtt]\nusername = u\npassword_file = pw\n")
    assert load(with_file, env).password == "from-file"
    without_file = write(tmp_path, "[mqtt]\nusername = u\n", name="b.ini")
    config = load(without_file, env)
    assert (config.password, config.password_source) == \
        ("from-credentials", "$CREDENTIALS_DIRECTORY/mqtt_password")
    (creds / "mqtt_password").unlink()
    config = load(without_file, env)
    assert (config.password, config.password_source) == ("from-env", "$PIHUB_MQTT_PASSWORD")
    assert load(without_file, {}).password is None


def test_environment_password_is_read_from_os_environ(tmp_path: Path, fake_types: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIHUB_MQTT_PASSWORD", "from-env")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert load_config(write(tmp_path, "[mqtt]\nusername = u\n")).password == "from-env"


def test_username_without_password_is_fine(tmp_path: Path, fake_types: None) -> None:
    config = load(write(tmp_path, "[mqtt]\nusername = u\n"))
    assert (config.mqtt.username, config.password) == ("u", None)


def test_password_without_username(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[mqtt]\n", {"PIHUB_MQTT_PASSWORD": SECRET})
    assert line.startswith("config.ini: [mqtt] username: a password is set")
    assert SECRET not in line


# -- TLS ----------------------------------------------------------------------------------

def test_tls_files_must_exist(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[mqtt]\ntls = true\nca_certs = ca.pem\n")
    assert line.startswith("config.ini: [mqtt] ca_certs: cannot read ")
    (tmp_path / "ca.pem").write_text("x")
    assert load(write(tmp_path, "[mqtt]\ntls = true\nca_certs = ca.pem\n")).mqtt.tls is True


def test_tls_files_with_tls_off(tmp_path: Path, fake_types: None) -> None:
    (tmp_path / "ca.pem").write_text("x")
    line = one_problem(tmp_path, "[mqtt]\nca_certs = ca.pem\n")
    assert line == "config.ini: [mqtt] ca_certs: is set but tls = false; set tls = true"


def test_a_client_key_from_the_credential_mqtt_key(tmp_path: Path, fake_types: None,
                                                    no_credstore: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_key").write_text("key")
    text = "[mqtt]\ntls = on\ncertfile = c.pem\n"
    config = load(write(tmp_path, text), {"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.mqtt.keyfile == str(creds / "mqtt_key")
    # Outside the service, root's shell reads the file the unit would load.
    no_credstore.mkdir()
    (no_credstore / "pihub.mqtt_key").write_text("key")
    assert load(write(tmp_path, text)).mqtt.keyfile == str(no_credstore / "pihub.mqtt_key")


def test_the_password_from_the_credstore_outside_systemd(tmp_path: Path, fake_types: None,
                                                         no_credstore: Path) -> None:
    no_credstore.mkdir()
    (no_credstore / "pihub.mqtt_password").write_text("stored\n")
    config = load(write(tmp_path, "[mqtt]\nusername = u\n"))
    assert (config.password, config.password_source) == (
        "stored", str(no_credstore / "pihub.mqtt_password"))


def test_certfile_needs_keyfile(tmp_path: Path, fake_types: None) -> None:
    (tmp_path / "c.pem").write_text("x")
    line = one_problem(tmp_path, "[mqtt]\ntls = on\ncertfile = c.pem\n")
    assert line.startswith("config.ini: [mqtt] keyfile: certfile and keyfile go together")
    both = load(write(tmp_path, "[mqtt]\ntls = on\ncertfile = c.pem\nkeyfile = c.pem\n"))
    assert both.mqtt.certfile == both.mqtt.keyfile == str(tmp_path / "c.pem")


# -- across sections ----------------------------------------------------------------------

def test_a_pin_used_twice(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:a]\ntype = switch\npin = GPIO17\n"
                                 "[sensor:b]\ntype = switch\npin = 17\n")
    assert line == "config.ini: [sensor:b] pin: GPIO17 is already used by [sensor:a] pin"
    line = one_problem(tmp_path, "[sensor:r]\ntype = ranger\necho = BCM5\ntrigger = GPIO5\n")
    assert line == "config.ini: [sensor:r] trigger: GPIO5 is already used by [sensor:r] echo"


def test_a_record_name_produced_twice(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[sensor:a]\ntype = clashing\n[sensor:b]\ntype = clashing\n")
    assert line == "config.ini: [sensor:b] records 'shared', which [sensor:a] records too"


def test_batch_latency_must_fit_the_shutdown(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[hub]\nshutdown_timeout = 2\n[batch]\nmax_latency = 3\n")
    assert line.startswith("config.ini: [batch] max_latency: 3 s must be below [hub] "
                           "shutdown_timeout (2 s)")


def test_a_batch_must_fit_the_spool(tmp_path: Path, fake_types: None) -> None:
    line = one_problem(tmp_path, "[batch]\nmax_bytes = 100000\n[spool]\nmax_bytes = 70000\n")
    assert line.startswith("config.ini: [batch] max_bytes: 100000 is more than [spool] max_bytes")


def test_sensor_records(tmp_path: Path, fake_types: None) -> None:
    config = load(write(tmp_path, "[sensor:c]\ntype = chip\n[sensor:p]\ntype = plain\n"))
    chip, plain = config.sensors
    assert [spec.name for spec in sensor_records(chip) or ()] == ["c/temperature", "c/humidity"]
    assert sensor_records(plain) == (RecordSpec("p", "v", "Cel"),)


def test_annotations_read_as_text() -> None:
    from pihub.schema import base_type

    assert base_type("float | None") == (float, True)
    assert base_type("int") == (int, False)
    assert base_type("Optional[bool]") == (bool, True)
    assert base_type("SomethingElse") == (str, False)
    assert base_type(int | None) == (int, True)


# -- where the file is --------------------------------------------------------------------

def test_resolve_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", tmp_path / "etc.ini")
    monkeypatch.delenv("PIHUB_CONFIG", raising=False)
    assert resolve_config_path(None) == tmp_path / "etc.ini"
    (tmp_path / "config.ini").write_text("")
    assert resolve_config_path(None) == Path("config.ini")
    monkeypatch.setenv("PIHUB_CONFIG", "/from/env.ini")
    assert resolve_config_path(None) == Path("/from/env.ini")
    assert resolve_config_path("given.ini") == Path("given.ini")
    monkeypatch.setenv("PIHUB_CONFIG", "")
    assert resolve_config_path(None) == Path("config.ini")


def test_system_config_is_the_contracts() -> None:
    assert Path("/etc/pihub/config.ini") == config_module.SYSTEM_CONFIG


# -- the example file ---------------------------------------------------------------------

def test_example_shows_every_key_of_the_plain_sections() -> None:
    text = EXAMPLE.read_text()
    lines = [line.lstrip(";").split("=")[0].strip() for line in text.splitlines()]
    for section, cls in config_module._SECTIONS.items():
        assert f"[{section}]" in text
        for field in dataclasses.fields(cls):
            assert field.name in lines, f"[{section}] {field.name} is not in config.ini"


CONTRACT_TYPES = {"digital", "motion", "light", "distance", "analog", "cpu_temperature",
                  "load_average", "disk_usage", "ds18b20", "bme280"}


@pytest.mark.skipif(not set(sensors.SENSOR_TYPES) >= CONTRACT_TYPES,
                    reason="waits for the real sensor types in pihub.sensors.SENSOR_TYPES")
def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIHUB_MQTT_PASSWORD", raising=False)
    config = load(EXAMPLE)
    assert {sensor.type for sensor in config.sensors} == CONTRACT_TYPES
    assert config.hub.simulate is True
    assert config.hub.state_dir == str(REPO / "state")
    assert (config.mqtt.host, config.mqtt.port) == ("localhost", 1883)


def test_example_config_parses_with_stand_in_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the real types land: every type known, any keys, so only the INI is checked."""
    stand_ins = {name: type(name, (Plain,), {"type_name": name, "Options": _any_options(name)})
                 for name in CONTRACT_TYPES}
    monkeypatch.setattr(sensors, "SENSOR_TYPES", stand_ins)
    config = load(EXAMPLE)
    assert len(config.sensors) == 10


def _any_options(name: str) -> type[Any]:
    keys = ("pin", "pull_up", "bounce_time", "charge_time_limit", "echo", "trigger",
            "max_distance", "chip", "channel", "vref", "scale", "offset", "unit",
            "sensor_file", "path", "device", "w1_dir", "bus", "address")
    fields = [(k, str | None, dataclasses.field(default=None)) for k in keys]
    return dataclasses.make_dataclass(f"{name}_options", fields, frozen=True)


# -- whatever the file holds: a Config or a ConfigError, nothing else ----------------------

KNOWN_KEYS = sorted({f.name for cls in config_module._SECTIONS.values()
                     for f in dataclasses.fields(cls)} | {"type", "interval", "pin", "echo",
                                                          "trigger", "bus", "address", "label",
                                                          "password", "low", "high"})
SECTION_NAMES = st.one_of(
    st.sampled_from(["hub", "mqtt", "batch", "spool", "DEFAULT", "sensor:", "sensor:a"]),
    st.builds(lambda n: f"sensor:{n}", st.text(min_size=0, max_size=8)),
    st.text(min_size=1, max_size=10),
)
VALUES = st.one_of(
    st.sampled_from(["", "true", "nan", "inf", "-1", "0", "0x76", "1e999", "17", "GPIO17",
                     "switch", "chip", "ranger", "checked", "clashing", "plain", "%(x)s",
                     "a;b", "a #b", "3.1.1", "5"]),
    st.integers().map(str),
    st.floats().map(str),
    st.text(max_size=20),
)
ENTRIES = st.lists(st.tuples(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=10)),
                             VALUES), max_size=6)
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_anything(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.ini"
        path.write_bytes(data)
        try:
            result = load_config(path, environ={})
        except ConfigError as e:
            assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        else:
            assert isinstance(result, Config)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_bytes(fake_types: None, data: bytes) -> None:
    _load_anything(data)


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_text(fake_types: None, text: str) -> None:
    _load_anything(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.lists(st.tuples(SECTION_NAMES, ENTRIES), max_size=5))
def test_fuzz_sections_and_keys(fake_types: None,
                                sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in entries)
                   for name, entries in sections)
    _load_anything(text.encode("utf-8", "surrogatepass"))


def test_fuzz_helpers_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzz's assertion is real: a loader raising anything else fails it."""

    def broken(path: Path, out: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(config_module, "read_ini", broken)
    with pytest.raises(KeyError):
        _load_anything(b"[hub]\n")


REAL_VALUES = st.one_of(VALUES, st.sampled_from(
    ["digital", "motion", "light", "distance", "analog", "cpu_temperature", "load_average",
     "disk_usage", "ds18b20", "bme280", "mcp3008", "0x77", "28-00000a1b2c3d", "GPIO4", "BOARD7"]))
REAL_KEYS = st.sampled_from(["type", "interval", "pin", "echo", "trigger", "channel", "chip",
                             "vref", "device", "bus", "address", "path", "unit", "bounce_time"])


@FUZZ
@given(st.lists(st.tuples(st.builds(lambda n: f"sensor:{n}", st.sampled_from("abc")),
                          st.lists(st.tuples(REAL_KEYS, REAL_VALUES), max_size=6)),
                max_size=4))
def test_fuzz_the_real_sensor_types(sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in entries)
                   for name, entries in sections)
    _load_anything(text.encode("utf-8", "surrogatepass"))


def test_a_bad_interval_does_not_hide_other_sensor_problems(tmp_path: Path,
                                                            fake_types: None) -> None:
    found = problems(write(tmp_path, "[sensor:door]\ntype = switch\ninterval = -1\n"))
    assert found == [
        "config.ini: [sensor:door] interval: '-1' is out of range "
        "(must be above 0 and at most 86400)",
        "config.ini: [sensor:door] pin: required key is missing",
    ]
