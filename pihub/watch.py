"""``pihub watch``: a live terminal view of the hubs on a broker.

An independent MQTT subscriber: it reads what any dashboard would (each hub's status,
health and readings) and redraws a plain table once a second.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from pihub.config import Config
from pihub.readings import Value
from pihub.senml import decode_pack

log = logging.getLogger("pihub.watch")

REDRAW_EVERY = 1.0


@dataclass
class RecordView:
    value: Value
    unit: str | None
    time: float  # the reading's wall-clock time


@dataclass
class HubView:
    hub: str
    status: str = "?"
    status_since: float = field(default_factory=time.time)
    health: dict[str, Any] = field(default_factory=dict)
    records: dict[str, RecordView] = field(default_factory=dict)


class Board:
    """What is known of every hub; fed from paho's thread, read by the drawing thread."""

    def __init__(self, prefix: str, only: str | None = None) -> None:
        self.prefix = prefix
        self.only = only
        self.hubs: dict[str, HubView] = {}
        self.lock = threading.Lock()  # paho's thread writes, the drawing thread reads

    def feed(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.prefix:
            return
        _, hub, kind = parts
        if self.only is not None and hub != self.only:
            return
        with self.lock:
            view = self.hubs.setdefault(hub, HubView(hub))
            if kind == "status":
                text = payload.decode(errors="replace")
                if text != view.status:
                    view.status, view.status_since = text, time.time()
            elif kind == "health":
                view.health = json.loads(payload)
            elif kind == "readings":
                for record in decode_pack(payload):
                    name = record.name.split("/", 1)[1] if "/" in record.name else record.name
                    view.records[name] = RecordView(record.value, record.unit, record.time)

    def render(self) -> str:
        now = time.time()
        lines: list[str] = []
        with self.lock:
            hubs = sorted(self.hubs.values(), key=lambda h: h.hub)
            for view in hubs:
                health = view.health
                since = _age(now - view.status_since)
                lines.append(f"{view.hub}: {view.status} (for {since})  "
                             f"connected={health.get('connected', '?')} "
                             f"backlog={health.get('spool_depth', '?')} "
                             f"dropped={health.get('dropped', '?')}")
                states = {name: s.get("state", "?")
                          for name, s in health.get("sensors", {}).items()}
                for name, record in sorted(view.records.items()):
                    unit = f" {record.unit}" if record.unit else ""
                    state = states.get(name.split("/", 1)[0], "?")
                    lines.append(f"  {name:<28} {_value(record.value)}{unit:<6} "
                                 f"{_age(now - record.time):>8} ago  {state}")
        return "\n".join(lines)


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def main(config: Config, hub: str | None = None, stop: threading.Event | None = None) -> int:
    """Draw the board until Ctrl-C (or ``stop``)."""
    stop = stop if stop is not None else threading.Event()
    prefix = config.mqtt.topic_prefix
    board = Board(prefix, hub)
    where = f"{config.mqtt.host}:{config.mqtt.port}"
    state = {"error": f"connecting to {where}…"}

    def on_connect(client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                   reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            state["error"] = f"broker {where} refused: {reason}"
            return
        state["error"] = ""
        for kind in ("status", "health", "readings"):
            client.subscribe(f"{prefix}/+/{kind}", qos=1)

    def on_disconnect(client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                      reason: ReasonCode, properties: Properties | None) -> None:
        state["error"] = f"lost the broker at {where} ({reason}); retrying"

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            board.feed(message.topic, bytes(message.payload))
        except Exception as exc:
            log.warning("ignoring a bad message on %s: %s", message.topic, exc)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if config.mqtt.username:
        client.username_pw_set(config.mqtt.username, config.password)
    if config.mqtt.tls:
        client.tls_set(ca_certs=config.mqtt.ca_certs or None,
                       certfile=config.mqtt.certfile or None, keyfile=config.mqtt.keyfile or None)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.reconnect_delay_set(1, 5)
    client.connect_async(config.mqtt.host, config.mqtt.port, keepalive=30)
    client.loop_start()
    tty = sys.stdout.isatty()
    try:
        while not stop.wait(REDRAW_EVERY):
            body = board.render() or f"waiting for hubs on {where}"
            if state["error"]:
                body = f"{state['error']}\n{body}"
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J")
            sys.stdout.write(f"pihub watch — {where} — {time.strftime('%H:%M:%S')}\n{body}\n\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
