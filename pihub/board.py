"""What is known of every hub on a broker, seen from the outside, and the subscriber
that learns it.

An independent MQTT subscriber, reading only what any dashboard could: each hub's
retained ``status``, ``health`` and ``sensor/N`` values, its Home Assistant discovery
configs (for units before the first reading), and its ``readings`` packs. A
:class:`Board` holds what is known, fed from paho's thread by a :class:`Listener`; the
terminal view (:mod:`pihub.watch`) and the web dashboard (:mod:`pihub.dashboard`) both
draw from it.

Keeping up with a busy hub: a message is decoded once in paho's thread into small
records and bounded histories; drawing happens elsewhere at a calm rate, so a hub
publishing 1,000 readings/s costs a decode per batch, never a redraw per reading.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from pihub.config import MqttConfig
from pihub.errors import PihubError
from pihub.readings import Value
from pihub.senml import decode_pack

log = logging.getLogger("pihub.board")

#: SenML units shown the way people write them; the rest are shown as they are.
DISPLAY_UNITS = {"Cel": "°C", "/": "", "%RH": "%"}
class BrokerUnreachable(PihubError, ConnectionError):
    """The broker could not be reached, or it refused the connection."""


class History:
    """The recent values of one record, at most one point per ``span / points`` seconds.

    A bucket keeps its latest value, so a record read 1,000 times a second costs the
    same memory as one read once a second: ``points`` pairs at most.
    """

    __slots__ = ("points", "span", "values", "width")

    def __init__(self, span: float, points: int) -> None:
        self.span = span
        self.points = points
        self.width = span / points
        self.values: deque[tuple[float, float]] = deque(maxlen=points + 1)

    def add(self, when: float, value: float) -> None:
        values = self.values
        if values and when // self.width == values[-1][0] // self.width:
            values[-1] = (when, value)
        elif not values or when > values[-1][0]:
            values.append((when, value))
        while values and values[0][0] < when - self.span:
            values.popleft()


@dataclass
class RecordView:
    name: str
    history: History
    value: Value | None = None
    unit: str | None = None
    time: float | None = None  # the reading's wall-clock time; None if only seen retained
    version: int = 0


@dataclass
class HubView:
    hub: str
    status: str = "unknown"
    since: float | None = None  # when the status changed; None if only seen retained
    health: dict[str, Any] = field(default_factory=dict)
    records: dict[str, RecordView] = field(default_factory=dict)
    version: int = 0


def parse_value(text: str) -> Value:
    """A retained ``sensor/N`` payload back as a value: ``ON``/``OFF``, a number, or text."""
    if text in ("ON", "OFF"):
        return text == "ON"
    try:
        return float(text)
    except ValueError:
        return text


def numeric(value: Value | None) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return value if isinstance(value, float | int) else None


class Board:
    """What is known of every hub. paho's thread feeds it; views read snapshots of it.

    ``history_span`` seconds of each record are kept, in at most ``history_points``
    points. Every change bumps :attr:`version` and notifies :attr:`changed`, which the
    dashboard's event streams wait on.
    """

    def __init__(self, prefix: str = "pihub", discovery_prefix: str = "homeassistant", *,
                 only: str | None = None, history_span: float = 120.0,
                 history_points: int = 120) -> None:
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.only = only
        self.history_span = history_span
        self.history_points = history_points
        self.hubs: dict[str, HubView] = {}
        self.version = 0
        #: Guards everything above; paho's thread notifies, event streams wait.
        self.changed = threading.Condition()

    def _hub(self, hub: str) -> HubView:
        view = self.hubs.get(hub)
        if view is None:
            view = self.hubs[hub] = HubView(hub)
        return view

    def _record(self, hub: HubView, name: str) -> RecordView:
        record = hub.records.get(name)
        if record is None:
            record = hub.records[name] = RecordView(
                name, History(self.history_span, self.history_points))
        return record

    def feed(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Take in one message; raises ValueError (or SenMLError) for a malformed one."""
        parts = topic.split("/")
        if topic.startswith(self.discovery_prefix + "/") and parts[-1] == "config":
            self._feed_discovery(payload)
            return
        if len(parts) < 3 or parts[0] != self.prefix or (self.only and parts[1] != self.only):
            return
        hub, kind = parts[1], parts[2]
        if kind == "readings":
            records = decode_pack(payload)  # outside the lock: the only costly step
        with self.changed:
            self.version += 1
            view = self._hub(hub)
            view.version = self.version
            if kind == "status":
                text = payload.decode(errors="replace")
                if text != view.status:
                    view.status, view.since = text, None if retained else time.time()
            elif kind == "health":
                health = json.loads(payload)
                if not isinstance(health, dict):
                    raise ValueError("health is not a JSON object")
                view.health = health
            elif kind == "sensor" and len(parts) > 3:
                record = self._record(view, "/".join(parts[3:]))
                # Readings carry their time, so once they flow they are the truth; the
                # retained value tells what a hub measured before we were listening.
                if record.time is None:
                    record.value = parse_value(payload.decode(errors="replace"))
                    record.version = self.version
                    number = numeric(record.value)
                    if number is not None and not retained:
                        record.history.add(time.time(), number)
            elif kind == "readings":
                skip = len(hub) + 1
                for rec in records:
                    name = rec.name[skip:] if rec.name.startswith(hub + "/") else rec.name
                    record = self._record(view, name)
                    if record.time is None or rec.time >= record.time:
                        record.value, record.time = rec.value, rec.time
                    if rec.unit is not None:
                        record.unit = rec.unit
                    record.version = self.version
                    number = numeric(rec.value)
                    if number is not None:
                        record.history.add(rec.time, number)
            self.changed.notify_all()

    def _feed_discovery(self, payload: bytes) -> None:
        if not payload:
            return  # a deleted discovery config
        entity = json.loads(payload)
        state = entity.get("state_topic", "") if isinstance(entity, dict) else ""
        parts = state.split("/")
        if len(parts) < 4 or parts[0] != self.prefix or parts[2] != "sensor":
            return  # the hub's own health entities, or someone else's
        if self.only and parts[1] != self.only:
            return
        with self.changed:
            self.version += 1
            view = self._hub(parts[1])
            record = self._record(view, "/".join(parts[3:]))
            if record.unit is None and entity.get("unit_of_measurement"):
                record.unit = str(entity["unit_of_measurement"])
            record.version = view.version = self.version
            self.changed.notify_all()

    def snapshot(self, *, history: bool = False, since: int = 0) -> dict[str, Any]:
        """Every hub (and the records changed after version ``since``) as plain data."""
        now = time.time()
        with self.changed:
            hubs = [_hub_data(view, now, history, since)
                    for _, view in sorted(self.hubs.items())]
            return {"time": now, "version": self.version, "hubs": hubs}


def _hub_data(view: HubView, now: float, history: bool, since: int) -> dict[str, Any]:
    health = view.health
    states = {name: s.get("state") for name, s in health.get("sensors", {}).items()
              if isinstance(s, dict)}
    records = []
    for name, record in sorted(view.records.items()):
        if record.version <= since:
            continue
        data: dict[str, Any] = {
            "name": name, "value": record.value, "unit": display_unit(record.unit),
            "time": record.time, "age_s": None if record.time is None else now - record.time,
            "state": states.get(name.split("/", 1)[0]),
        }
        if history:
            data["history"] = [[round(t, 3), v] for t, v in record.history.values]
        records.append(data)
    return {"hub": view.hub, "status": view.status, "since": view.since,
            "connected": health.get("connected"), "backlog": health.get("spool_depth"),
            "dropped": health.get("dropped"), "mqtt_error": health.get("mqtt_error"),
            "uptime_s": health.get("uptime_s"), "records": records}


def display_unit(unit: str | None) -> str:
    if unit is None:
        return ""
    return DISPLAY_UNITS.get(unit, unit)


@dataclass(frozen=True)
class Source:
    """Where to watch: the broker, its credentials and the topic prefixes."""

    mqtt: MqttConfig = field(default_factory=MqttConfig)
    password: str | None = None

    @property
    def where(self) -> str:
        return f"{self.mqtt.host}:{self.mqtt.port}"


class Listener:
    """A paho client that feeds a :class:`Board`, reconnecting on its own.

    :attr:`problem` says why it is not connected (None while it is); :attr:`settled`
    is set once the retained messages present at the first subscription have arrived
    (the broker sends them before our own marker message, which comes back last).
    """

    def __init__(self, source: Source, board: Board) -> None:
        self.source = source
        self.board = board
        self.problem: str | None = f"connecting to {source.where}…"
        self.connected = threading.Event()
        self.settled = threading.Event()
        self.failed = threading.Event()  # the first attempt to connect failed
        tag = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.marker = f"pihub-watch/{tag}/settled"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pihub-watch-{tag}",
                                  protocol=mqtt.MQTTv5)
        cfg = source.mqtt
        if cfg.username:
            self.client.username_pw_set(cfg.username, source.password)
        if cfg.tls:
            self.client.tls_set(ca_certs=cfg.ca_certs or None, certfile=cfg.certfile or None,
                                keyfile=cfg.keyfile or None)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 5)

    def start(self) -> None:
        self.client.connect_async(self.source.mqtt.host, self.source.mqtt.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            self.problem = f"the broker at {self.source.where} refused the connection: {reason}"
            self.failed.set()
            return
        self.problem = None
        self.connected.set()
        prefix, discovery = self.source.mqtt.topic_prefix, self.source.mqtt.discovery_prefix
        client.subscribe([(f"{prefix}/+/status", 1), (f"{prefix}/+/health", 1),
                          (f"{prefix}/+/readings", 1), (f"{prefix}/+/sensor/#", 1),
                          (f"{discovery}/+/+/+/config", 1), (self.marker, 1)])

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.problem = f"cannot reach the broker at {self.source.where}"
        self.failed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        if self.problem is None:
            self.problem = f"lost the broker at {self.source.where} ({reason})"

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        # Queued behind every retained message of the subscription: when it is back,
        # they are all in.
        client.publish(self.marker, b"", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        if message.topic == self.marker:
            self.settled.set()
            return
        try:
            self.board.feed(message.topic, bytes(message.payload), bool(message.retain))
        except Exception as exc:
            log.debug("ignoring a bad message on %s: %s", message.topic, exc)

    def wait_settled(self, timeout: float) -> None:
        """Until the retained state has arrived; raises BrokerUnreachable if it cannot."""
        deadline = time.monotonic() + timeout
        while not self.connected.is_set():
            if self.failed.is_set() or time.monotonic() > deadline:
                raise BrokerUnreachable(self.problem or f"no answer from {self.source.where}")
            self.connected.wait(0.05)
        # An ACL may forbid the marker: then the retained messages get until the deadline.
        self.settled.wait(max(0.0, deadline - time.monotonic()))


# --- drawing -------------------------------------------------------------------------

