"""MqttLink against a real mosquitto (tests/broker.py); no mocked client."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pihub.config import BatchConfig, Config, HubConfig, MqttConfig, SpoolConfig
from pihub.mqtt import FLAP_DELAY, LinkClosedError, MqttLink, PacketTooLargeError
from pihub.readings import RecordSpec
from tests.broker import Mosquitto, make_broker
from tests.subscriber import Subscriber

pytestmark = pytest.mark.timeout(60)

HUB = "t1"
STATUS = f"pihub/{HUB}/status"
READINGS = f"pihub/{HUB}/readings"
REPO = Path(__file__).resolve().parent.parent


def make_config(port: int, *, password: str | None = None, hub: str = HUB,
                **mqtt: Any) -> Config:
    mqtt.setdefault("discovery", False)
    return Config(
        path=Path("test.ini"),
        hub=HubConfig(id=hub),
        mqtt=MqttConfig(host="127.0.0.1", port=port, **mqtt),
        batch=BatchConfig(),
        spool=SpoolConfig(),
        sensors=(),
        password=password,
    )


class Harness:
    """A link plus what its callbacks reported, with waits on a Condition."""

    def __init__(self, config: Config, records: list[RecordSpec] | None = None,
                 on_ack: Callable[[int, int], None] | None = None) -> None:
        self.acks: list[tuple[int, int]] = []
        self.changes = 0
        # paho's thread appends/increments and notifies; the test thread waits.
        self.cond = threading.Condition()
        self._extra_ack = on_ack
        self.link = MqttLink(config, records or [], on_ack=self._on_ack,
                             on_change=self._on_change)

    def _on_ack(self, mid: int, reason: int) -> None:
        with self.cond:
            self.acks.append((mid, reason))
            self.cond.notify_all()
        if self._extra_ack is not None:
            self._extra_ack(mid, reason)

    def _on_change(self) -> None:
        with self.cond:
            self.changes += 1
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise TimeoutError(f"not reached within {timeout} s: {self.link!r}")

    def wait_connected(self, timeout: float = 10.0) -> None:
        self.wait(lambda: self.link.connected, timeout)

    def ack_for(self, mid: int) -> int | None:
        return next((reason for m, reason in self.acks if m == mid), None)

    def wait_ack(self, mid: int, timeout: float = 10.0) -> int:
        self.wait(lambda: self.ack_for(mid) is not None, timeout)
        reason = self.ack_for(mid)
        assert reason is not None
        return reason

    def wait_failures(self, count: int, timeout: float = 20.0) -> None:
        """Wait for ``count`` more notifications while not connected (failed attempts)."""
        with self.cond:
            target = self.changes + count
        self.wait(lambda: self.changes >= target and not self.link.connected, timeout)


@pytest.fixture
def harness_factory() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(config: Config, **kwargs: Any) -> Harness:
        harness = Harness(config, **kwargs)
        made.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in made:
            harness.link.stop(timeout=2)


def retained(port: int, topic: str, **kwargs: Any) -> bytes:
    """The retained payload on ``topic``, as a new subscriber receives it."""
    with Subscriber(port, [topic], **kwargs) as sub:
        return sub.wait_for_message(topic, retain=True, timeout=5).payload


def test_online_retained_after_connect(
    broker: Mosquitto, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(make_config(broker.port))
    harness.link.start()
    harness.wait_connected()
    assert retained(broker.port, STATUS) == b"online"
    assert harness.link.connect_count == 1
    assert harness.link.reconnects == 0
    assert harness.link.last_error is None
    assert harness.link.network_thread_alive()


def test_offline_retained_after_stop(
    broker: Mosquitto, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(make_config(broker.port))
    harness.link.start()
    harness.wait_connected()
    with Subscriber(broker.port, [STATUS]) as sub:
        sub.wait_for_message(STATUS, b"online")
        harness.link.stop(timeout=5)
        sub.wait_for_message(STATUS, b"offline")
    assert retained(broker.port, STATUS) == b"offline"
    assert not harness.link.connected
    assert not harness.link.network_thread_alive()
    harness.link.stop(timeout=1)  # idempotent
    with pytest.raises(LinkClosedError):
        harness.link.publish_batch(b"[]")


def test_stop_is_bounded_while_the_broker_is_down(
    harness_factory: Callable[..., Harness]
) -> None:
    with make_broker(start=False) as down:
        harness = harness_factory(make_config(down.port))
        harness.link.start()
        harness.wait_failures(1)
        started = time.monotonic()
        harness.link.stop(timeout=2)
        assert time.monotonic() - started < 3
        assert not harness.link.network_thread_alive()


CHILD = """
import sys, threading
from pathlib import Path
from pihub.config import BatchConfig, Config, HubConfig, MqttConfig, SpoolConfig
from pihub.mqtt import MqttLink
config = Config(path=Path("x"), hub=HubConfig(id="victim"),
                mqtt=MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), discovery=False),
                batch=BatchConfig(), spool=SpoolConfig(), sensors=())
ready = threading.Event()
link = MqttLink(config, [], on_ack=lambda mid, rc: None,
                on_change=lambda: link.connected and ready.set())
link.start()
print("connected" if ready.wait(10) else "timeout", flush=True)
sys.stdin.read()
"""


def test_will_publishes_offline_when_the_hub_dies(broker: Mosquitto) -> None:
    topic = "pihub/victim/status"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with Subscriber(broker.port, [topic]) as sub:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(broker.port)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"connected\n"
            sub.wait_for_message(topic, b"online")
            child.send_signal(signal.SIGKILL)
            child.wait(5)
            sub.wait_for_message(topic, b"offline")
        finally:
            child.kill()
            child.wait(5)
    assert retained(broker.port, topic) == b"offline"


def test_batches_are_acknowledged(
    broker: Mosquitto, subscriber: Subscriber, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(make_config(broker.port))
    harness.link.start()
    harness.wait_connected()
    mids = [harness.link.publish_batch(f"[{i}]".encode()) for i in range(5)]
    for mid in mids:
        assert harness.wait_ack(mid) == 0
    messages = subscriber.wait_for(
        lambda ms: len([m for m in ms if m.topic == READINGS]) == 5)
    batches = [m for m in messages if m.topic == READINGS]
    assert [m.payload for m in batches] == [f"[{i}]".encode() for i in range(5)]
    assert not any(m.retain for m in batches)
    assert harness.link.unacked == 0


def test_a_refused_batch_is_acknowledged_with_the_reason(
    harness_factory: Callable[..., Harness]
) -> None:
    acl = f"topic readwrite {STATUS}\n"
    with make_broker(acl=acl) as restricted:
        harness = harness_factory(make_config(restricted.port))
        harness.link.start()
        harness.wait_connected()
        mid = harness.link.publish_batch(b"[]")
        assert harness.wait_ack(mid) == 0x87  # not authorized


def test_batches_from_a_lost_connection_are_forgotten_not_resent(
    harness_factory: Callable[..., Harness]
) -> None:
    # The publisher re-offers them from its spool after the status and health, in the
    # size it chooses: paho must not send them first on its own.
    with make_broker(start=False) as late:
        harness = harness_factory(make_config(late.port))
        harness.link.start()
        mid = harness.link.publish_batch(b'[{"n":"x","v":1}]')
        harness.wait_failures(2)
        assert harness.link.last_error == "connection refused"
        # Start the broker just after a failed attempt: the next one is a second or more
        # away, so the subscriber is in place before the link comes back.
        late.start()
        with Subscriber(late.port, [READINGS, STATUS]) as sub:
            harness.wait_connected(timeout=15)
            again = harness.link.publish_batch(b'[{"n":"x","v":2}]')
            assert harness.wait_ack(again) == 0
            readings = sub.wait_for(lambda ms: any(m.topic == READINGS for m in ms))
        assert [m.payload for m in readings if m.topic == READINGS] == [b'[{"n":"x","v":2}]']
        assert harness.ack_for(mid) is None
        assert harness.link.unacked == 0


def test_reconnects_after_the_broker_restarts(
    broker: Mosquitto, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(make_config(broker.port))
    harness.link.start()
    harness.wait_connected()
    broker.kill()
    harness.wait(lambda: not harness.link.connected)
    assert harness.link.last_error == "connection lost"
    harness.wait_failures(1)
    broker.start()
    restarted = time.monotonic()
    with Subscriber(broker.port, [READINGS]) as sub:
        harness.wait_connected(timeout=10)
        assert time.monotonic() - restarted < 7
        assert harness.wait_ack(harness.link.publish_batch(b"[1]")) == 0
        sub.wait_for_message(READINGS, b"[1]")
    assert harness.link.reconnects == 1
    assert harness.link.connect_count == 2
    assert retained(broker.port, STATUS) == b"online"


def test_keepalive_notices_a_hung_broker(
    broker: Mosquitto, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(make_config(broker.port, keepalive=5))
    harness.link.start()
    harness.wait_connected()
    broker.pause()
    try:
        harness.wait(lambda: not harness.link.connected, timeout=20)
    finally:
        broker.resume()
    assert harness.link.last_error is not None
    assert "keepalive" in harness.link.last_error
    harness.wait_connected(timeout=15)


def test_wrong_password_keeps_retrying_and_is_never_logged(
    harness_factory: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Wr0ng"
    with make_broker(password={"hub": "right"}) as guarded:
        harness = harness_factory(make_config(guarded.port, username="hub", password=secret))
        harness.link.start()
        harness.wait_failures(2)  # refused twice: paho retries after a refused CONNACK
        assert not harness.link.connected
        assert harness.link.last_error == "not authorized"
        harness.link.stop(timeout=2)
    assert "not authorized" in caplog.text
    assert secret not in caplog.text
    assert secret not in repr(harness.link)


def test_right_password_connects(harness_factory: Callable[..., Harness]) -> None:
    with make_broker(password={"hub": "right"}) as guarded:
        harness = harness_factory(make_config(guarded.port, username="hub", password="right"))
        harness.link.start()
        harness.wait_connected()


def test_mqtt_311(broker: Mosquitto, harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(make_config(broker.port, protocol="3.1.1"))
    harness.link.start()
    harness.wait_connected()
    assert harness.wait_ack(harness.link.publish_batch(b"[]")) == 0
    assert harness.link.max_packet_size is None
    assert retained(broker.port, STATUS) == b"online"
    harness.link.stop()
    assert retained(broker.port, STATUS) == b"offline"


def test_discovery_configs_are_retained(
    broker: Mosquitto, harness_factory: Callable[..., Harness]
) -> None:
    records = [RecordSpec("door", "vb", None, "door"),
               RecordSpec("climate/temperature", "v", "Cel")]
    harness = harness_factory(make_config(broker.port, discovery=True), records=records)
    with Subscriber(broker.port, ["homeassistant/#"]) as live:
        harness.link.start()
        live.wait_for(lambda ms: len(ms) >= 7)
    with Subscriber(broker.port, ["homeassistant/#"]) as late:
        messages = late.wait_for(lambda ms: len(ms) >= 7)
    assert len(messages) == 7
    assert all(m.retain for m in messages)
    topics = {m.topic: json.loads(m.payload) for m in messages}
    door = topics["homeassistant/binary_sensor/t1/door/config"]
    temperature = topics["homeassistant/sensor/t1/climate_temperature/config"]
    assert door["state_topic"] == "pihub/t1/sensor/door"
    assert temperature["state_topic"] == "pihub/t1/sensor/climate/temperature"
    for config in topics.values():
        assert {"name", "unique_id", "state_topic", "availability", "device"} <= config.keys()


def test_max_packet_size_from_connack(
    harness_factory: Callable[..., Harness]
) -> None:
    with make_broker(extra=["max_packet_size 2000"]) as small:
        harness = harness_factory(make_config(small.port))
        harness.link.start()
        harness.wait_connected()
        assert harness.link.max_packet_size == 2000
        with pytest.raises(PacketTooLargeError):
            harness.link.publish_batch(b"x" * 3000)
        assert harness.wait_ack(harness.link.publish_batch(b"x" * 1000)) < 0x80


def test_an_exception_in_on_ack_does_not_kill_the_network_thread(
    broker: Mosquitto, harness_factory: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(mid: int, reason: int) -> None:
        raise RuntimeError("boom in on_ack")

    harness = harness_factory(make_config(broker.port), on_ack=explode)
    harness.link.start()
    harness.wait_connected()
    first = harness.link.publish_batch(b"[1]")
    harness.wait_ack(first)
    second = harness.link.publish_batch(b"[2]")
    harness.wait_ack(second)
    assert harness.link.network_thread_alive()
    assert "boom in on_ack" in caplog.text
    assert any(r.name == "pihub.mqtt" and r.exc_info for r in caplog.records)


@pytest.mark.timeout(90)
def test_a_client_id_fight_backs_off_and_says_why(
    broker: Mosquitto, harness_factory: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = harness_factory(make_config(broker.port))
    harness.link.start()
    harness.wait_connected()
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pihub-{HUB}",
                           protocol=mqtt.MQTTv5)
    intruder.reconnect_delay_set(1, 1)
    intruder.connect_async("127.0.0.1", broker.port)
    intruder.loop_start()
    try:
        harness.wait(lambda: "another client" in caplog.text, timeout=60)
        # Backing off: the next connect waits FLAP_DELAY s, not the usual second.
        backed_off = time.monotonic()
        count = harness.link.connect_count
        harness.wait(lambda: harness.link.connect_count > count, timeout=30)
        assert time.monotonic() - backed_off >= FLAP_DELAY - 0.5
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    assert any(r.levelno == logging.ERROR and f"pihub-{HUB}" in r.getMessage()
               for r in caplog.records)


def test_tls_with_the_ca_connects(harness_factory: Callable[..., Harness]) -> None:
    with make_broker(tls=True) as secure:
        assert secure.tls is not None
        harness = harness_factory(make_config(secure.port, tls=True,
                                              ca_certs=str(secure.tls.ca_file)))
        harness.link.start()
        harness.wait_connected()
        assert retained(secure.port, STATUS, ca_file=str(secure.tls.ca_file)) == b"online"


def test_tls_without_trust_never_falls_back_to_plain_text(
    harness_factory: Callable[..., Harness]
) -> None:
    with make_broker(tls=True) as secure:
        harness = harness_factory(make_config(secure.port, tls=True))
        harness.link.start()
        harness.wait_failures(2)
        assert not harness.link.connected
        assert harness.link.last_error is not None
        assert "certificate verify failed" in harness.link.last_error
