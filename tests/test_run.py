"""The whole hub as a process against a real mosquitto, seen by an independent subscriber."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from pihub.senml import decode_pack
from tests.broker import Mosquitto
from tests.hubproc import (
    SIGTERM,
    HubProcess,
    durable_subscriber,
    first_seq,
    hub_config,
    issued_until,
    last_json,
    seqs,
    spooled,
)
from tests.subscriber import Message, Subscriber
from tests.waiting import wait_until

HEALTH_KEYS = {"hub", "uptime_s", "connected", "reconnects", "mqtt_error", "readings",
               "published", "dropped", "queue_depth", "spool_depth", "sensors"}


def retained(port: int, topic: str) -> Message:
    with Subscriber(port, [topic]) as late:
        return late.wait_for_message(topic, timeout=10)


@pytest.mark.timeout(60)
def test_contract_topics_and_payloads(broker: Mosquitto, tmp_path: Path) -> None:
    sensors = """
[sensor:cpu]
type = cpu_temperature
interval = 0.1

[sensor:door]
type = digital
pin = GPIO17
interval = 0.2

[sensor:climate]
type = bme280
interval = 0.2
"""
    with Subscriber(broker.port, ["#"]) as sub, HubProcess(
            tmp_path, hub_config(broker.port, tmp_path / "state", sensors=sensors)) as hub:
        sub.wait_for_message("pihub/testhub/status", b"online")
        sub.wait_for(lambda ms: len(seqs(ms)) >= 30, timeout=20)
        for topic in ("cpu", "door", "climate/temperature", "climate/humidity",
                      "climate/pressure"):
            sub.wait_for_message(f"pihub/testhub/sensor/{topic}")
        sub.wait_for_message("pihub/testhub/health")
        messages = sub.snapshot()

        # A batch: a SenML pack with bn/bt on the first record, seq on every record.
        pack = next(m for m in messages if m.topic == "pihub/testhub/readings")
        raw = json.loads(pack.payload)
        assert raw[0]["bn"] == "testhub/"
        assert isinstance(raw[0]["bt"], float)
        assert all(isinstance(r["seq"], int) for r in raw)
        records = decode_pack(pack.payload)
        assert all(r.name.startswith("testhub/") for r in records)
        assert all(abs(r.time - time.time()) < 60 for r in records)
        units = {r.name: r.unit for m in messages if m.topic.endswith("/readings")
                 for r in decode_pack(m.payload)}
        assert units["testhub/cpu"] == "Cel"
        assert units["testhub/climate/pressure"] == "Pa"
        assert units["testhub/climate/humidity"] == "%RH"
        assert units["testhub/door"] is None

        # seq: unique, strictly increasing in publish order.
        all_seqs = seqs(messages)
        assert all_seqs == sorted(set(all_seqs))

        # Latest values as plain text; booleans as ON/OFF.
        latest = {m.topic: m.payload.decode() for m in messages if "/sensor/" in m.topic}
        assert -40 <= float(latest["pihub/testhub/sensor/cpu"]) <= 125
        assert latest["pihub/testhub/sensor/door"] in {"ON", "OFF"}
        assert 30000 <= float(latest["pihub/testhub/sensor/climate/pressure"]) <= 110000

        health = last_json(messages, "pihub/testhub/health")
        assert set(health) >= HEALTH_KEYS
        assert health["hub"] == "testhub" and health["connected"] is True
        sensors_health = health["sensors"]
        assert isinstance(sensors_health, dict)
        assert set(sensors_health) == {"cpu", "door", "climate"}
        assert sensors_health["cpu"]["state"] == "ok"

        discovery = [m for m in messages if m.topic.startswith("homeassistant/")]
        assert any("cpu" in m.topic for m in discovery)
        assert all(m.topic.endswith("/config") for m in discovery)

        # Retained for a subscriber that comes later.
        assert retained(broker.port, "pihub/testhub/status").payload == b"online"
        assert retained(broker.port, "pihub/testhub/sensor/cpu").retain

        hub.signal(SIGTERM)
        assert hub.wait(10) == 0, hub.log()
    assert retained(broker.port, "pihub/testhub/status").payload == b"offline"


@pytest.mark.timeout(60)
def test_sigterm_exits_0_within_shutdown_timeout_and_leaves_offline(
        broker: Mosquitto, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Subscriber(broker.port, ["pihub/#"]) as sub, HubProcess(
            tmp_path, hub_config(broker.port, state)) as hub:
        sub.wait_for(lambda ms: len(seqs(ms)) >= 50, timeout=20)
        started = time.monotonic()
        hub.signal(SIGTERM)
        code = hub.wait(15)
        took = time.monotonic() - started
        assert code == 0, hub.log()
        assert took <= 5.0, f"took {took:.2f} s, shutdown_timeout is 5"
        # Everything it accepted was delivered before it went (the broker was up).
        received = set(seqs(sub.snapshot()))
        expected = set(range(min(received), issued_until(state)))
        sub.wait_for(lambda ms: expected <= set(seqs(ms)), timeout=5)
        status = sub.on_topic("pihub/testhub/status")
        assert status[-1].payload == b"offline"
    assert retained(broker.port, "pihub/testhub/status").payload == b"offline"
    assert "Traceback" not in hub.log()


@pytest.mark.timeout(120)
def test_broker_restarted_mid_run_every_seq_delivered(
        durable_broker: Mosquitto, tmp_path: Path) -> None:
    state = tmp_path / "state"
    start = first_seq(state)
    sub = durable_subscriber(durable_broker.port, "restart")
    try:
        with HubProcess(tmp_path, hub_config(durable_broker.port, state)) as hub:
            sub.wait_for(lambda ms: len(seqs(ms)) >= 100, timeout=20)
            durable_broker.stop()
            # The hub keeps sampling into its spool while the broker is away.
            wait_until(lambda: spooled(state) >= 200, 20, what="a backlog in the spool")
            durable_broker.start()
            sub.wait_for(lambda ms: len(set(seqs(ms))) >= 600, timeout=30)
            hub.signal(SIGTERM)
            assert hub.wait(15) == 0, hub.log()
        end = issued_until(state)
        missing = set(range(start, end)) - set(seqs(sub.snapshot()))
        if missing:
            sub.wait_for(lambda ms: not set(range(start, end)) - set(seqs(ms)), timeout=10)
        assert spooled(state) == 0
    finally:
        sub.close()


@pytest.mark.timeout(120)
def test_sigkill_and_restart_loses_no_accepted_reading(broker: Mosquitto, tmp_path: Path) -> None:
    state = tmp_path / "state"
    start = first_seq(state)
    with Subscriber(broker.port, ["pihub/#"]) as sub:
        hub = HubProcess(tmp_path, hub_config(broker.port, state))
        try:
            for round_ in range(3):
                hub.start()
                target = len(seqs(sub.snapshot())) + 100

                def grew(ms: list[Message], target: int = target) -> bool:
                    return len(seqs(ms)) >= target

                sub.wait_for(grew, timeout=20)
                hub.kill()  # SIGKILL: no shutdown, no flush
                end = issued_until(state)
                assert end > start, f"round {round_}: nothing accepted"
            before = len(sub.snapshot())
            hub.start()
            # Up (its handlers installed) before it is asked to stop.
            sub.wait_for_message("pihub/testhub/status", b"online", after=before)
            sub.wait_for(lambda ms: not set(range(start, end)) - set(seqs(ms)), timeout=30)
            hub.signal(SIGTERM)
            assert hub.wait(15) == 0, hub.log()
        finally:
            hub.kill()
    with sqlite3.connect(state / "spool.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.timeout(120)
def test_hub_started_before_its_broker(durable_broker: Mosquitto, tmp_path: Path) -> None:
    state = tmp_path / "state"
    start = first_seq(state)
    sub = durable_subscriber(durable_broker.port, "early")
    durable_broker.stop()  # the subscriber's session survives in the broker's database
    try:
        with HubProcess(tmp_path, hub_config(durable_broker.port, state)) as hub:
            wait_until(lambda: spooled(state) >= 100, 20, what="readings spooled with no broker")
            assert hub.alive
            durable_broker.start()
            sub.wait_for(lambda ms: set(range(start, start + 100)) <= set(seqs(ms)), timeout=30)
            hub.signal(SIGTERM)
            assert hub.wait(15) == 0, hub.log()
        assert "connected" in hub.log()
    finally:
        sub.close()


@pytest.mark.timeout(60)
def test_wrong_password_keeps_running_and_spooling_and_never_logs_it(tmp_path: Path) -> None:
    secret = "hunter2-wrong-xyzzy"
    broker = Mosquitto(password={"hub": "right-password"})
    broker.start()
    state = tmp_path / "state"
    try:
        config = hub_config(broker.port, state, mqtt="username = hub")
        with HubProcess(tmp_path, config, env={"PIHUB_MQTT_PASSWORD": secret}) as hub:
            wait_until(lambda: spooled(state) >= 200, 30, what="readings spooled while refused")
            wait_until(lambda: "not authorized" in hub.log().lower()
                       or "bad user name or password" in hub.log().lower(), 20,
                       what="the refusal in the log")
            assert hub.alive
            hub.signal(SIGTERM)
            assert hub.wait(15) == 0, hub.log()
        assert secret not in hub.log()
        assert spooled(state) > 0  # kept for when the password is fixed
    finally:
        broker.close()


@pytest.mark.timeout(60)
def test_batches_the_broker_refuses_stay_in_the_spool(tmp_path: Path) -> None:
    # Anonymous clients may write everything of the hub's but its readings.
    acl = """topic readwrite pihub/testhub/status
topic readwrite pihub/testhub/health
topic readwrite pihub/testhub/sensor/#
topic readwrite homeassistant/#
topic read pihub/#
"""
    broker = Mosquitto(acl=acl)
    broker.start()
    state = tmp_path / "state"
    try:
        with Subscriber(broker.port, ["pihub/#"]) as sub, HubProcess(
                tmp_path, hub_config(broker.port, state)) as hub:
            wait_until(lambda: "refused batch" in hub.log(), 20, what="a refusal")
            wait_until(lambda: spooled(state) >= 100, 20, what="readings kept in the spool")
            assert "Not authorized" in hub.log()
            assert seqs(sub.snapshot()) == []
            assert hub.alive
            hub.signal(SIGTERM)
            assert hub.wait(15) == 0, hub.log()
        assert spooled(state) >= 100
    finally:
        broker.close()
