"""``config.ini`` → frozen, typed objects, once, at the edge.

The rest of pihub never sees configparser or a raw string: it gets a :class:`Config`.
Each section is a dataclass declared with :func:`pihub.schema.key`; sensor sections take
their keys from the sensor type's ``Options`` dataclass (see :mod:`pihub.sensors`).
:func:`load_config` checks everything and raises one :class:`~pihub.errors.ConfigError`
holding every problem, one line each, naming the file, the section and the key.

How the file is read:

- configparser with interpolation off: a ``%`` is just a ``%``.
- Whole-line comments start with ``#`` or ``;``. An inline comment starts with ``;`` or
  ``#`` *after whitespace*, so ``a#b`` is a value but ``a #b`` is ``a``: a value cannot
  hold a space followed by ``;`` or ``#``. (Nothing secret lives in the file, and MQTT
  topics cannot hold ``#`` anyway.)
- Section names are case-sensitive; key names are not (``Port`` is ``port``), but are
  reported as written. There is no ``[DEFAULT]`` section.
- An empty value (``client_id =``) means None where the key allows it, else its default;
  a required key may not be empty. A value may not span lines nor hold control characters.
- Relative paths in ``[hub] state_dir`` and ``[mqtt] password_file``/``ca_certs``/
  ``certfile``/``keyfile`` are relative to the config file's folder, and stored absolute.
  Nothing is created here (the runtime creates ``state_dir``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import socket
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pihub import sensors
from pihub.errors import ConfigError
from pihub.ini import Entries, read_ini
from pihub.readings import RecordSpec
from pihub.schema import (
    MISSING,
    BadValue,
    base_type,
    check,
    convert,
    hints,
    key,
    rule_of,
    show,
)

HUB_ID_PATTERN = r"[A-Za-z0-9_-]+"
SENSOR_PREFIX = "sensor:"
#: The last place :func:`resolve_config_path` looks.
SYSTEM_CONFIG = Path("/etc/pihub/config.ini")
#: systemd ``LoadCredential=mqtt_password:…`` puts the password here.
CREDENTIAL_NAME = "mqtt_password"
KEY_CREDENTIAL_NAME = "mqtt_key"
#: Where deploy/pihub.service's LoadCredential=NAME:pihub.NAME finds its files; read
#: directly when not under systemd (root's `pihub check` sees what the service will).
CREDSTORE = Path("/etc/credstore")
PASSWORD_ENV = "PIHUB_MQTT_PASSWORD"
#: Keys of a sensor's ``Options`` that name a GPIO pin; two sensors may not share one.
PIN_KEYS = ("pin", "echo", "trigger")
#: A value of a key whose name holds one of these is never shown in a message.
#: No real config file is this big; refusing it early bounds the work on garbage input.
_NO_WILDCARDS = "anything but the MQTT wildcards # and +"

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
    topic_prefix: str = key("pihub", pattern=r"[^#+\x00]+", pattern_help=_NO_WILDCARDS)
    discovery: bool = key(True)
    discovery_prefix: str = key("homeassistant", pattern=r"[^#+\x00]+",
                                pattern_help=_NO_WILDCARDS)


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """``[batch]``."""

    max_readings: int = key(100, min=1, max=100_000)
    max_latency: float = key(1.0, above=0, max=3600)
    #: A batch's SenML payload is capped in bytes too (brokers limit message size).
    #: 64 KiB: below the limits of hosted brokers (AWS IoT takes 128 KB). With MQTT 3.1.1
    #: a broker cannot say it dropped an oversize message, so keep this below its limit.
    max_bytes: int = key(65536, min=1024, max=268_435_455)


@dataclasses.dataclass(frozen=True)
class SpoolConfig:
    """``[spool]``."""

    max_bytes: int = key(67108864, min=65536)
    #: SQLite's synchronous for accepting readings: full (a power cut loses nothing
    #: accepted), normal (saves an fsync per batch, a power cut can lose the last
    #: seconds of accepted readings and reissue their seqs), extra. See docs/RELIABILITY.md.
    synchronous: str = key("full", choices=("full", "normal", "extra"))


@dataclasses.dataclass(frozen=True)
class SensorKeys:
    """The keys every ``[sensor:NAME]`` takes besides its type's ``Options``."""

    type: str = key()
    interval: float = key(10.0, above=0, max=86400)


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
    #: See :func:`load_config` for where it comes from; never shown.
    password: str | None = dataclasses.field(default=None, repr=False)
    #: Where :attr:`password` came from, for ``pihub check``: ``password_file``,
    #: ``$CREDENTIALS_DIRECTORY/mqtt_password`` or ``$PIHUB_MQTT_PASSWORD``; None if unset.
    password_source: str | None = None

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"pihub-{self.hub.id}"


_SECTIONS: dict[str, type[Any]] = {
    "hub": HubConfig, "mqtt": MqttConfig, "batch": BatchConfig, "spool": SpoolConfig,
}
_PATH_KEYS = {"hub": ("state_dir",), "mqtt": ("password_file", "ca_certs", "certfile", "keyfile")}
# A section as read: lower-cased key -> (key as written, value).


def resolve_config_path(cli_value: str | None) -> Path:
    """The config file to use: ``-c FILE``, else ``$PIHUB_CONFIG``, else ``./config.ini``
    if it exists, else :data:`SYSTEM_CONFIG`. Whether it exists is :func:`load_config`'s
    business."""
    if cli_value is not None:
        return Path(cli_value)
    env = os.environ.get("PIHUB_CONFIG")
    if env:
        return Path(env)
    local = Path("config.ini")
    return local if local.is_file() else SYSTEM_CONFIG


def default_hub_id() -> str:
    """The host's short name (up to the first dot), other characters turned into ``-``."""
    name = socket.gethostname().split(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_-]", "-", name) or "pihub"


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; raise :class:`~pihub.errors.ConfigError` listing every problem.

    The MQTT password comes from, in this order: ``[mqtt] password_file`` (one trailing
    newline stripped), ``$CREDENTIALS_DIRECTORY/mqtt_password`` when that variable is set
    and the file exists (systemd ``LoadCredential=``; outside systemd,
    ``/etc/credstore/pihub.mqtt_password`` if readable), then ``$PIHUB_MQTT_PASSWORD``.
    A client ``certfile`` with no ``keyfile`` takes its key from the credential
    ``mqtt_key`` the same way.
    ``environ`` defaults to :data:`os.environ`. TLS client auth needs both ``certfile`` and
    ``keyfile`` (a combined PEM file can be given as both).
    """
    path = Path(path)
    env = os.environ if environ is None else environ
    out = _Problems(str(path))
    ini = read_ini(path, out.add)
    if ini is None:
        raise ConfigError(out.lines)
    base = _base_dir(path)
    parsed: dict[str, Any] = {}
    sensor_list: list[SensorConfig] = []
    for section, entries in ini.items():
        if section in _SECTIONS:
            parsed[section] = _parse_plain(section, entries, base, out)
        elif section.startswith(SENSOR_PREFIX):
            sensor = _parse_sensor(section, entries, out)
            if sensor is not None:
                sensor_list.append(sensor)
        else:
            hint = _did_you_mean(section, _section_names(section))
            out.add(section, None, "unknown section" + hint)
    for section, cls in _SECTIONS.items():
        if section not in ini:
            parsed[section] = cls()
    if parsed.get("hub") is not None and not parsed["hub"].id:
        parsed["hub"] = dataclasses.replace(parsed["hub"], id=default_hub_id())
    password, source = None, None
    if parsed.get("mqtt") is not None:
        password, source = _password(parsed["mqtt"], env, out)
        parsed["mqtt"] = _key_from_credential(parsed["mqtt"], env)
        _check_tls(parsed["mqtt"], out)
    if all(parsed.get(name) is not None for name in ("hub", "batch", "spool")):
        _check_batch(parsed["hub"], parsed["batch"], parsed["spool"], out)
    _check_sensors(sensor_list, out)
    if out.lines:
        raise ConfigError(out.lines)
    return Config(path=path, hub=parsed["hub"], mqtt=parsed["mqtt"], batch=parsed["batch"],
                  spool=parsed["spool"], sensors=tuple(sensor_list), password=password,
                  password_source=source)


def sensor_records(sensor: SensorConfig) -> tuple[RecordSpec, ...] | None:
    """What ``sensor`` will record, known without opening its device; None if unknown.

    Asks the type's ``record_specs(name, options)`` classmethod; a type that describes
    its records only in ``records()`` is asked through an instance that was never opened,
    which works when ``records()`` looks only at ``name`` and ``options``.
    """
    cls = sensors.SENSOR_TYPES.get(sensor.type)
    if cls is None:
        return None
    try:
        return tuple(cls.record_specs(sensor.name, sensor.options))
    except Exception:  # not every type knows its records before opening: try records()
        pass
    try:
        bare = cls.__new__(cls)
        bare.name, bare.options, bare._closed = sensor.name, sensor.options, True
        return tuple(bare.records())
    except Exception:  # a records() that needs its device: describe without them
        return None


class _Problems:
    """Collects one line per problem: ``FILE: [SECTION] KEY: what is wrong``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: list[str] = []

    def add(self, section: str | None, key_name: str | None, message: str) -> None:
        where = f"{self.label}:"
        if section is not None:
            where += f" [{section}]"
        if key_name is not None:
            where += f" {key_name}:"
        self.lines.append(f"{where} {message}")


def _base_dir(path: Path) -> Path:
    try:
        return path.parent.absolute()
    except OSError:  # the current directory was deleted
        return path.parent


def _section_names(section: str) -> list[str]:
    names = list(_SECTIONS)
    if ":" in section:
        names.append(SENSOR_PREFIX + section.split(":", 1)[1])
    return names


def _did_you_mean(word: str, choices: Sequence[str], listing: bool = False) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if listing and choices:
        return f" (known: {', '.join(sorted(choices))})"
    return ""


def _parse_plain(section: str, entries: Entries, base: Path, out: _Problems) -> Any:
    cls = _SECTIONS[section]
    allowed = [f.name for f in dataclasses.fields(cls)]
    for lower, (written, _value) in entries.items():
        if section == "mqtt" and lower == "password":
            out.add(section, written, "a password does not belong in this file; "
                    f"put it in password_file or ${PASSWORD_ENV}")
        elif lower not in allowed:
            out.add(section, written, "unknown key" + _did_you_mean(lower, allowed))
    values = _values(cls, section, entries, out)
    if values is None:
        return None
    for name in _PATH_KEYS.get(section, ()):
        if values[name]:
            values[name] = str(base / Path(values[name]).expanduser())
    return _build(cls, section, values, out)


def _parse_sensor(section: str, entries: Entries, out: _Problems) -> SensorConfig | None:
    name = section[len(SENSOR_PREFIX):]
    ok = True
    if not re.fullmatch(HUB_ID_PATTERN, name):
        out.add(section, None, "a sensor name may hold only letters, digits, _ and -")
        ok = False
    # Checked apart, so a bad interval does not hide the problems of the type's keys.
    common = _values(SensorKeys, section, entries, out, only=("type",))
    interval = _values(SensorKeys, section, entries, out, only=("interval",))
    if common is None:
        return None
    type_name = common["type"].lower()
    sensor_cls = sensors.SENSOR_TYPES.get(type_name)
    if sensor_cls is None:
        out.add(section, entries["type"][0], f"unknown sensor type {show('type', common['type'])}"
                + _did_you_mean(type_name, list(sensors.SENSOR_TYPES), listing=True))
        return None
    options_cls = getattr(sensor_cls, "Options", None)
    if not dataclasses.is_dataclass(options_cls) or not isinstance(options_cls, type):
        out.add(section, None, f"sensor type {type_name!r} declares no Options dataclass")
        return None
    allowed = ["type", "interval", *(f.name for f in dataclasses.fields(options_cls))]
    for lower, (written, _value) in entries.items():
        if lower not in allowed:
            out.add(section, written, "unknown key" + _did_you_mean(lower, allowed, listing=True))
    own = [f.name for f in dataclasses.fields(options_cls) if f.name not in ("type", "interval")]
    values = _values(options_cls, section, entries, out, only=own)
    if values is None or interval is None or not ok:
        return None
    options = _build(options_cls, section, values, out)
    if options is None:
        return None
    return SensorConfig(name=name, type=type_name, interval=interval["interval"], options=options)


def _build(cls: type[Any], section: str, values: dict[str, Any], out: _Problems) -> Any:
    try:
        return cls(**values)
    except Exception as e:  # a type's own __post_init__ checks
        out.add(section, None, str(e) or type(e).__name__)
        return None


def _values(cls: type[Any], section: str, entries: Entries, out: _Problems,
            only: Collection[str] | None = None) -> dict[str, Any] | None:
    """Each field of ``cls`` (or those named in ``only``) converted and checked against its
    rule; None if any is wrong."""
    field_types = hints(cls)
    values: dict[str, Any] = {}
    ok = True
    for field in dataclasses.fields(cls):
        if only is not None and field.name not in only:
            continue
        kind, optional = base_type(field_types.get(field.name, str))
        entry = entries.get(field.name)
        written, raw = entry if entry is not None else (field.name, None)
        try:
            if raw is None or raw == "":
                if raw == "" and optional:
                    values[field.name] = None
                elif field.default is not MISSING:
                    values[field.name] = field.default
                elif field.default_factory is not MISSING:
                    values[field.name] = typing.cast("Callable[[], Any]", field.default_factory)()
                else:
                    state = "missing" if raw is None else "empty"
                    raise BadValue(f"required key is {state}")
                continue
            if "\n" in raw:
                raise BadValue("the value spans several lines (is the next line indented?)")
            if any(ord(c) < 32 or ord(c) == 127 for c in raw):
                raise BadValue("the value holds control characters")
            values[field.name] = check(rule_of(field), convert(written, raw, kind),
                                        written, raw)
        except BadValue as e:
            out.add(section, written, str(e))
            ok = False
    return values if ok else None


def _password(mqtt: MqttConfig, env: Mapping[str, str],
              out: _Problems) -> tuple[str | None, str | None]:
    password: str | None = None
    source: str | None = None
    if mqtt.password_file:
        source = "password_file"
        password = _read_secret(Path(mqtt.password_file), source, out)
    else:
        found = _credential(CREDENTIAL_NAME, env)
        if found is not None:
            cred, source = found
            password = _read_secret(cred, source, out)
    if source is None and env.get(PASSWORD_ENV):
        password, source = env[PASSWORD_ENV], f"${PASSWORD_ENV}"
    if password is not None and not mqtt.username:
        out.add("mqtt", "username", f"a password is set (from {source}) but no username; set one")
    return password, source


def _read_secret(path: Path, what: str, out: _Problems) -> str | None:
    """The file's text less one trailing newline; problems name ``what``, never the content."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        out.add("mqtt", what, "the password file is not UTF-8 text")
        return None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        out.add("mqtt", what, f"cannot read the password file: {reason}")
        return None
    text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if not text:
        out.add("mqtt", what, "the password file is empty")
        return None
    return text


def _credential(name: str, env: Mapping[str, str]) -> tuple[Path, str] | None:
    """A systemd credential: ``$CREDENTIALS_DIRECTORY/NAME`` inside the service, else
    ``/etc/credstore/pihub.NAME`` where the unit takes it from (readable by root only)."""
    if env.get("CREDENTIALS_DIRECTORY"):
        path = Path(env["CREDENTIALS_DIRECTORY"]) / name
        return (path, f"$CREDENTIALS_DIRECTORY/{name}") if path.is_file() else None
    path = CREDSTORE / f"pihub.{name}"
    try:
        return (path, str(path)) if path.is_file() and os.access(path, os.R_OK) else None
    except OSError:
        return None


def _key_from_credential(mqtt: MqttConfig, env: Mapping[str, str]) -> MqttConfig:
    """A client certificate with no keyfile takes its key from the credential mqtt_key."""
    if not (mqtt.tls and mqtt.certfile) or mqtt.keyfile:
        return mqtt
    found = _credential(KEY_CREDENTIAL_NAME, env)
    return mqtt if found is None else dataclasses.replace(mqtt, keyfile=str(found[0]))


def _check_tls(mqtt: MqttConfig, out: _Problems) -> None:
    files = {"ca_certs": mqtt.ca_certs, "certfile": mqtt.certfile, "keyfile": mqtt.keyfile}
    for name, value in files.items():
        if not value:
            continue
        if not mqtt.tls:
            out.add("mqtt", name, "is set but tls = false; set tls = true")
        try:
            with open(value, "rb") as f:
                f.read(1)
        except (OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or type(e).__name__
            out.add("mqtt", name, f"cannot read {value!r}: {reason}")
    if bool(mqtt.certfile) != bool(mqtt.keyfile):
        missing = "keyfile" if mqtt.certfile else "certfile"
        out.add("mqtt", missing, "certfile and keyfile go together: set both (the same file "
                "if it holds both) or neither; under systemd the key can also come from the "
                f"credential {KEY_CREDENTIAL_NAME} (/etc/credstore/pihub.{KEY_CREDENTIAL_NAME})")


def _check_batch(hub: HubConfig, batch: BatchConfig, spool: SpoolConfig, out: _Problems) -> None:
    if batch.max_latency >= hub.shutdown_timeout:
        out.add("batch", "max_latency", f"{batch.max_latency:g} s must be below [hub] "
                f"shutdown_timeout ({hub.shutdown_timeout:g} s) so a stop can flush a batch")
    if batch.max_bytes > spool.max_bytes:
        out.add("batch", "max_bytes", f"{batch.max_bytes} is more than [spool] max_bytes "
                f"({spool.max_bytes}); one batch must fit in the spool")


def _pin_id(value: Any) -> str:
    """``17``, ``GPIO17`` and ``BCM17`` are the same pin; other names compare as written."""
    text = str(value).strip().upper()
    match = re.fullmatch(r"(?:GPIO|BCM)?0*(\d+)", text)
    return f"GPIO{int(match.group(1))}" if match else text


def _check_sensors(sensor_list: list[SensorConfig], out: _Problems) -> None:
    pins: dict[str, str] = {}
    records: dict[str, str] = {}
    for sensor in sensor_list:
        section = SENSOR_PREFIX + sensor.name
        for pin_key in PIN_KEYS:
            value = getattr(sensor.options, pin_key, None)
            if value is None or value == "":
                continue
            pin = _pin_id(value)
            if pin in pins:
                out.add(section, pin_key, f"{pin} is already used by {pins[pin]}")
            else:
                pins[pin] = f"[{section}] {pin_key}"
        for spec in sensor_records(sensor) or ():
            if spec.name in records:
                out.add(section, None, f"records {spec.name!r}, which {records[spec.name]} "
                        "records too")
            else:
                records[spec.name] = f"[{section}]"
