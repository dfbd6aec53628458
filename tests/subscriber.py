"""An independent MQTT subscriber for the tests: it records everything it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["Message", "Subscriber"]

CONNECT_TIMEOUT = 10.0
#: How long the broker keeps a named subscriber's session (and its queued messages).
SESSION_EXPIRY = 3600


class Message(NamedTuple):
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """Subscribes (MQTT 5, QoS 1) and keeps every message in arrival order.

    Without ``session`` it starts clean and its session ends with it. With ``session``
    it is a durable subscriber: the same client id each time, no clean start and a
    session the broker keeps, so QoS 1 messages published while it (or a persistent
    broker) was away are delivered when it is back.
    """

    _count = 0

    def __init__(
        self,
        port: int,
        topics: Sequence[str] = ("#",),
        *,
        host: str = "127.0.0.1",
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        session: str | None = None,
    ) -> None:
        Subscriber._count += 1
        self.session = session
        client_id = (f"test-subscriber-{session}" if session is not None
                     else f"test-subscriber-{Subscriber._count}-{time.monotonic_ns()}")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.port = port
        self.host = host
        self.topics = list(topics)
        self.messages: list[Message] = []
        # Guards ``messages``: paho's thread appends and notifies; tests wait in wait_for().
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        if not reason_code.is_failure:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int,
        reason_codes: list[ReasonCode], properties: Properties | None,
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(Message(message.topic, bytes(message.payload),
                                         bool(message.retain)))
            self._changed.notify_all()

    def start(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect and return once the broker confirmed the subscriptions."""
        properties = None
        if self.session is not None:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY
        self.client.connect_async(self.host, self.port, keepalive=30,
                                  clean_start=self.session is None, properties=properties)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise TimeoutError(f"subscriber could not subscribe on port {self.port}")

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def snapshot(self) -> list[Message]:
        with self._changed:
            return list(self.messages)

    def wait_for(
        self, predicate: Callable[[list[Message]], bool], timeout: float = 10.0
    ) -> list[Message]:
        """Block until ``predicate(messages)`` is true; raise TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"condition not met within {timeout} s; received "
                        f"{len(self.messages)} messages, the last: {self.messages[-5:]!r}"[:3000]
                    )
                self._changed.wait(remaining)
            return list(self.messages)

    def on_topic(self, topic: str) -> list[Message]:
        with self._changed:
            return [m for m in self.messages if m.topic == topic]

    def wait_for_message(
        self,
        topic: str,
        payload: bytes | None = None,
        *,
        retain: bool | None = None,
        after: int = 0,
        timeout: float = 10.0,
    ) -> Message:
        """The first message (from index ``after`` on) on ``topic`` matching the filters."""

        def match(messages: Iterable[Message]) -> Message | None:
            for message in list(messages)[after:]:
                if (message.topic == topic
                        and (payload is None or message.payload == payload)
                        and (retain is None or message.retain == retain)):
                    return message
            return None

        found = match(self.wait_for(lambda ms: match(ms) is not None, timeout))
        assert found is not None
        return found
