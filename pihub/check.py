"""What ``pihub check`` prints: the configuration as it would run, secrets left out."""

from __future__ import annotations

import dataclasses
from typing import Any

from pihub.config import Config, SensorConfig, sensor_records
from pihub.readings import RecordSpec
from pihub.schema import is_secret


def describe(config: Config) -> str:
    """A readable summary of ``config``: hub, pins, broker, topics, one line per sensor.

    Never shows the MQTT password, only whether one is set and where it comes from.
    """
    hub, mqtt = config.hub, config.mqtt
    base = f"{mqtt.topic_prefix}/{hub.id}"
    lines = [
        f"config     {config.path}",
        f"hub        {hub.id}",
        f"state dir  {hub.state_dir}",
        f"pins       factory {hub.pin_factory}, simulate {_yes_no(hub.simulate)}",
        f"queue      {hub.queue_size} readings; shutdown within {hub.shutdown_timeout:g} s",
        f"batches    up to {config.batch.max_readings} readings, {config.batch.max_latency:g} s"
        f" or {config.batch.max_bytes} bytes; spool up to {config.spool.max_bytes} bytes",
        f"broker     {_host_port(mqtt.host, mqtt.port)}, MQTT {mqtt.protocol}, "
        f"QoS {mqtt.qos}, keepalive {mqtt.keepalive} s, client id {config.client_id}",
        f"TLS        {_tls(config)}",
        f"login      {_login(config)}",
        "topics",
    ]
    records = {sensor.name: sensor_records(sensor) for sensor in config.sensors}
    topics = [(f"{base}/status", "online/offline, retained"),
              (f"{base}/readings", f"SenML batches, QoS {mqtt.qos}"),
              (f"{base}/health", "health JSON, retained")]
    for sensor in config.sensors:
        specs = records[sensor.name]
        names = [spec.name for spec in specs] if specs is not None else [f"{sensor.name}…"]
        topics.extend((f"{base}/sensor/{name}", "latest value, retained") for name in names)
    if mqtt.discovery:
        topics.append((f"{mqtt.discovery_prefix}/…/config", "Home Assistant discovery: on"))
    width = max(len(topic) for topic, _ in topics)
    lines.extend(f"  {topic:<{width}}  {what}" for topic, what in topics)
    if not mqtt.discovery:
        lines.append("  Home Assistant discovery: off")
    lines.append(f"sensors ({len(config.sensors)})")
    if not config.sensors:
        lines.append("  none")
    width = max((len(sensor.name) for sensor in config.sensors), default=0)
    for sensor in config.sensors:
        lines.append("  " + _sensor_line(sensor, records[sensor.name], width))
    return "\n".join(lines)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tls(config: Config) -> str:
    mqtt = config.mqtt
    if not mqtt.tls:
        return "off"
    parts = [f"CA {mqtt.ca_certs}" if mqtt.ca_certs else "the system's CAs"]
    if mqtt.certfile:
        parts.append(f"client certificate {mqtt.certfile}, key {mqtt.keyfile}")
    return "on, " + ", ".join(parts)


def _login(config: Config) -> str:
    user = f"username {config.mqtt.username}" if config.mqtt.username else "no username"
    if config.password is None:
        return f"{user}, no password"
    source = config.password_source or "?"
    if source == "password_file":
        source = f"password_file {config.mqtt.password_file}"
    return f"{user}, password set (from {source})"


def _sensor_line(sensor: SensorConfig, specs: tuple[RecordSpec, ...] | None, width: int) -> str:
    options = ", ".join(_options(sensor.options)) or "no options"
    if specs is None:
        recorded = "records: (known once it is open)"
    else:
        recorded = "records: " + ", ".join(_record(spec) for spec in specs)
    return (f"{sensor.name:<{width}}  {sensor.type}, every {sensor.interval:g} s; "
            f"{options}; {recorded}")


def _options(options: Any) -> list[str]:
    if not dataclasses.is_dataclass(options):
        return []
    shown = []
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if is_secret(field.name):
            shown.append(f"{field.name}=(hidden)")
        elif isinstance(value, bool):
            shown.append(f"{field.name}={'true' if value else 'false'}")
        elif value is None or value == "":
            shown.append(f"{field.name}=(none)")
        else:
            shown.append(f"{field.name}={value}")
    return shown


def _record(spec: RecordSpec) -> str:
    if spec.kind == "vb":
        return f"{spec.name} (on/off)"
    if spec.unit:
        return f"{spec.name} [{spec.unit}]"
    return spec.name
