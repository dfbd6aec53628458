"""The supervisor, in-process: it restarts what dies and stops in order."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from pihub.config import load_config
from pihub.readings import Reading, RecordSpec
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor
from pihub.supervisor import Hub
from tests.broker import Mosquitto
from tests.hubproc import FAST_SENSORS, hub_config, seqs
from tests.subscriber import Message, Subscriber
from tests.waiting import wait_until


@pytest.mark.timeout(60)
def test_a_sensor_thread_that_dies_is_restarted_and_the_hub_goes_on(
        broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.ini"
    path.write_text(hub_config(broker.port, tmp_path / "state"))
    hub = Hub(load_config(path))
    stop = threading.Event()
    supervisor = threading.Thread(target=hub.supervise, args=(stop,), daemon=True)
    with caplog.at_level(logging.INFO), Subscriber(broker.port, ["pihub/#"]) as sub:
        hub.start()
        supervisor.start()
        try:
            old = hub.threads.sensors["cpu"]
            wait_until(lambda: old.polls > 3, 10, what="the cpu sensor to poll")
            # A bug outside the read (the read itself is guarded): the thread dies.
            old.status = None  # type: ignore[assignment]
            wait_until(lambda: not old.is_alive(), 10, what="the thread to die")
            assert old.died and isinstance(old.crash, AttributeError)
            wait_until(lambda: hub.threads.sensors["cpu"] is not old
                       and hub.threads.sensors["cpu"].polls > 3, 15,
                       what="the supervisor to restart the thread")
            count = len(seqs(sub.snapshot()))
            sub.wait_for(lambda ms: len(seqs(ms)) > count + 10, timeout=10)
        finally:
            stop.set()
            supervisor.join(5)
            hub.shutdown()
    assert "thread sensor-cpu died" in caplog.text
    assert "restarting thread sensor-cpu" in caplog.text
    assert hub.spool is not None and hub.spool.closed


class HangingSensor(Sensor):
    """A read that never returns (a wedged I2C bus, say) until the test lets it go."""

    type_name = "hanging"
    release = threading.Event()

    def records(self) -> list[RecordSpec]:
        return [RecordSpec(self.name, "v")]

    def read(self) -> list[Reading]:
        self.release.wait(60)
        return []


@pytest.mark.timeout(60)
def test_a_hanging_read_is_stale_and_neither_blocks_others_nor_shutdown(
        broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(SENSOR_TYPES, "hanging", HangingSensor)
    path = tmp_path / "config.ini"
    path.write_text(hub_config(broker.port, tmp_path / "state", sensors=FAST_SENSORS + """
[sensor:stuck]
type = hanging
interval = 0.1
"""))
    hub = Hub(load_config(path))
    try:
        with Subscriber(broker.port, ["pihub/#"]) as sub:
            hub.start()

            def stale_in_health(messages: list[Message]) -> bool:
                for message in reversed(messages):
                    if message.topic == "pihub/testhub/health":
                        sensors = json.loads(message.payload)["sensors"]
                        return bool(sensors.get("stuck", {}).get("state") == "stale"
                                    and sensors.get("cpu", {}).get("state") == "ok")
                return False

            sub.wait_for(stale_in_health, timeout=15)
            count = len(seqs(sub.snapshot()))
            sub.wait_for(lambda ms: len(seqs(ms)) > count + 20, timeout=10)  # others go on
            started = time.monotonic()
            with caplog.at_level(logging.ERROR):
                hub.shutdown()
            assert time.monotonic() - started <= hub.config.hub.shutdown_timeout + 0.5
            assert "sensor-stuck did not stop" in caplog.text
    finally:
        HangingSensor.release.set()
