"""Reload (SIGHUP): a valid config is applied touching only what changed; an invalid one
changes nothing."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pihub.clock import Clock
from pihub.config import load_config
from pihub.senml import decode_pack
from pihub.supervisor import Hub
from tests.broker import Mosquitto, make_broker
from tests.hubproc import hub_config, seqs
from tests.subscriber import Message, Subscriber
from tests.waiting import wait_until

SENSORS = """
[sensor:cpu]
type = cpu_temperature
interval = 0.02

[sensor:load]
type = load_average
interval = 0.05

[sensor:door]
type = digital
pin = GPIO17
interval = 0.5
"""

CHANGED = """
[sensor:cpu]
type = cpu_temperature
interval = 0.02

[sensor:door]
type = digital
pin = GPIO17
interval = 0.2

[sensor:disk]
type = disk_usage
interval = 0.05
"""


class Running:
    """A hub supervised on a thread, as ``run`` does on the main thread."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        path.write_text(text)
        self.hub = Hub(load_config(path), clock=Clock(lambda: True))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.hub.supervise, args=(self.stop,),
                                       daemon=True)
        self.closed = False
        self.hub.start()
        self.thread.start()

    def reload(self, text: str) -> None:
        """Write ``text`` as the config and ask for a reload, as SIGHUP does."""
        before = self.hub.reload_attempts
        self.path.write_text(text)
        self.hub.request_reload()
        wait_until(lambda: self.hub.reload_attempts > before, 15, what="the reload")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stop.set()
        self.thread.join(5)
        self.hub.shutdown()


@pytest.fixture
def hubs() -> Iterator[list[Running]]:
    started: list[Running] = []
    try:
        yield started
    finally:
        for running in started:
            running.close()


def start(hubs: list[Running], path: Path, text: str) -> Running:
    running = Running(path, text)
    hubs.append(running)
    return running


def names(messages: list[Message], topic: str = "pihub/testhub/readings") -> list[str]:
    return [r.name for m in messages if m.topic == topic for r in decode_pack(m.payload)]


def contiguous(numbers: list[int]) -> bool:
    unique = sorted(set(numbers))
    return unique == list(range(unique[0], unique[-1] + 1))


@pytest.mark.timeout(60)
def test_sensors_added_removed_changed_without_a_gap_for_the_others(
        broker: Mosquitto, tmp_path: Path, hubs: list[Running],
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.ini"
    state = tmp_path / "state"
    caplog.set_level(logging.INFO)
    with Subscriber(broker.port, ["pihub/#"]) as sub:
        running = start(hubs, path, hub_config(broker.port, state, sensors=SENSORS))
        hub = running.hub
        sub.wait_for(lambda ms: names(ms).count("testhub/load") >= 5, 15)
        cpu_thread = hub.threads.sensors["cpu"]
        door_thread = hub.threads.sensors["door"]
        consumer = hub.threads.consumer
        assert consumer is not None
        running.reload(hub_config(broker.port, state, sensors=CHANGED,
                                  batch="max_latency = 0.05\nmax_readings = 7"))
        assert hub.reloads == 1
        # Only what changed was touched.
        assert hub.threads.sensors["cpu"] is cpu_thread and cpu_thread.is_alive()
        assert hub.threads.sensors["door"] is not door_thread
        assert hub.threads.sensors["door"].interval == 0.2
        assert "load" not in hub.threads.sensors and "load" not in hub.health.sensors
        assert hub.threads.consumer is not consumer and not consumer.is_alive()
        assert not consumer.died  # asked to end, not a crash to restart
        # The new sensor publishes; the removed one stops.
        sub.wait_for(lambda ms: names(ms).count("testhub/disk") >= 5, 15)
        loads = names(sub.snapshot()).count("testhub/load")
        count = len(seqs(sub.snapshot()))
        sub.wait_for(lambda ms: len(seqs(ms)) > count + 50, 15)
        assert names(sub.snapshot()).count("testhub/load") == loads
        running.close()
        assert hub.spool is not None
        issued = hub.spool.next_seq
        # Every accepted reading arrived: seq has no gap across the reload.
        sub.wait_for(lambda ms: bool(seqs(ms)) and max(seqs(ms)) == issued - 1, 10)
        received = seqs(sub.snapshot())
        assert contiguous(received), sorted(set(received))
        # The untouched sensor went on at its pace through the reload.
        times = sorted(r.time for m in sub.snapshot() if m.topic.endswith("/readings")
                       for r in decode_pack(m.payload) if r.name == "testhub/cpu")
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) < 0.5, max(gaps)
    assert "reload: sensors removed: load" in caplog.text
    assert "reload: sensors restarted: door" in caplog.text
    assert "reload: sensors added: disk" in caplog.text


@pytest.mark.timeout(60)
def test_a_broker_change_reconnects_and_loses_nothing(
        broker: Mosquitto, tmp_path: Path, hubs: list[Running]) -> None:
    path = tmp_path / "config.ini"
    state = tmp_path / "state"
    with make_broker() as other, Subscriber(broker.port, ["pihub/#"]) as old_sub, \
            Subscriber(other.port, ["pihub/#"]) as new_sub:
        running = start(hubs, path, hub_config(broker.port, state))
        hub = running.hub
        old_sub.wait_for(lambda ms: len(seqs(ms)) >= 50, 15)
        old_link = hub.link
        running.reload(hub_config(other.port, state))
        assert hub.link is not old_link and hub.reloads == 1
        # The old broker heard a clean goodbye; the new one hears the hub come online.
        old_sub.wait_for_message("pihub/testhub/status", b"offline", timeout=10)
        new_sub.wait_for_message("pihub/testhub/status", b"online", timeout=10)
        new_sub.wait_for(lambda ms: len(seqs(ms)) >= 50, 15)
        running.close()
        assert hub.spool is not None and hub.spool.depth == 0
        issued = hub.spool.next_seq
        new_sub.wait_for(lambda ms: max(seqs(ms)) == issued - 1, 10)
        both = seqs(old_sub.snapshot()) + seqs(new_sub.snapshot())
        assert contiguous(both), sorted(set(both))  # duplicates allowed, gaps are not


@pytest.mark.timeout(60)
def test_an_invalid_config_is_rejected_and_the_old_one_keeps_running(
        broker: Mosquitto, tmp_path: Path, hubs: list[Running],
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.ini"
    state = tmp_path / "state"
    good = hub_config(broker.port, state)
    with Subscriber(broker.port, ["pihub/#"]) as sub:
        running = start(hubs, path, good)
        hub = running.hub
        config, threads = hub.config, dict(hub.threads.sensors)
        sub.wait_for(lambda ms: len(seqs(ms)) >= 10, 15)
        caplog.set_level(logging.INFO)
        bad = good.replace("interval = 0.02", "interval = often", 1) + "\n[sensor:x]\nfoo = 1\n"
        running.reload(bad)
        assert hub.reloads == 0
        assert hub.config is config and hub.threads.sensors == threads
        assert "still running on the old config" in caplog.text
        assert "[sensor:cpu] interval: 'often' is not a number" in caplog.text
        assert "[sensor:x] type: required key is missing" in caplog.text
        count = len(seqs(sub.snapshot()))
        sub.wait_for(lambda ms: len(seqs(ms)) > count + 20, 10)  # still sampling


@pytest.mark.timeout(60)
def test_hub_keys_that_need_a_restart_are_kept_and_logged(
        broker: Mosquitto, tmp_path: Path, hubs: list[Running],
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.ini"
    state = tmp_path / "state"
    running = start(hubs, path, hub_config(broker.port, state))
    hub = running.hub
    caplog.set_level(logging.INFO)
    running.reload(hub_config(broker.port, tmp_path / "elsewhere", hub_id="renamed"))
    assert hub.config.hub.id == "testhub"
    assert hub.config.hub.state_dir == str(state)
    assert "[hub] id changed from 'testhub' to 'renamed': that needs a restart" in caplog.text
    assert "[hub] state_dir changed" in caplog.text
    assert "reload: nothing changed" in caplog.text
