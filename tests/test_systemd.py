"""sd_notify and the watchdog: the protocol against a fake NOTIFY_SOCKET, and a wedged
hub that stops pinging."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pihub import supervisor
from pihub.clock import Clock
from pihub.config import load_config
from pihub.readings import Reading, RecordSpec
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor
from pihub.spool import Spool
from pihub.supervisor import Hub
from pihub.systemd import Notifier, Watchdog, watchdog_interval
from tests.broker import Mosquitto, free_port
from tests.hubproc import SIGTERM, HubProcess, hub_config
from tests.notify import FakeSystemd, having
from tests.waiting import wait_until


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    with FakeSystemd() as fake:
        yield fake


# -- the notifier ------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_one_datagram_per_message(abstract: bool) -> None:
    with FakeSystemd(abstract=abstract) as fake:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": fake.address})
        assert notifier.enabled
        assert notifier.ready("starting")
        assert notifier.reloading()
        assert notifier.status("connected\nto  x")
        assert notifier.stopping()
        messages = fake.wait_for(lambda ms: len(ms) == 4)
        notifier.close()
    assert messages[0].fields == {"READY": "1", "STATUS": "starting"}
    assert messages[1].fields["RELOADING"] == "1"
    assert int(messages[1].fields["MONOTONIC_USEC"]) > 0
    assert messages[2].fields == {"STATUS": "connected to x"}
    assert messages[3].fields == {"STOPPING": "1"}


def test_notifier_without_notify_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_notifier_never_raises_when_systemd_is_gone(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING):
        assert not notifier.ready()
        assert not notifier.watchdog()
    assert caplog.text.count("cannot notify systemd") == 1


def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, pid=42) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "43"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_watchdog_pings_when_due_and_only_while_nothing_is_wedged(
        systemd: FakeSystemd, caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    watchdog = Watchdog(Notifier(systemd.address), 1.0, clock=lambda: now[0])
    wedged: list[str] = []
    assert watchdog.tick(lambda: wedged)
    assert not watchdog.tick(lambda: wedged)  # not due yet
    now[0] += 1.0
    wedged.append("thread consumer")
    with caplog.at_level(logging.INFO):
        assert not watchdog.tick(lambda: wedged)
        assert not watchdog.tick(lambda: wedged)
        wedged.clear()
        assert watchdog.tick(lambda: wedged)
    assert caplog.text.count("watchdog: thread consumer made no progress") == 1
    assert "thread consumer is making progress again" in caplog.text
    assert watchdog.pings == 2
    systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG", "1")) == 2)


def test_stalled_counts_from_the_last_change() -> None:
    now = [0.0]
    watchdog = Watchdog(Notifier(None), 1.0, clock=lambda: now[0])
    assert not watchdog.stalled("a", 1, 5.0)
    now[0] = 4.0
    assert not watchdog.stalled("a", 2, 5.0)  # progress at 4
    now[0] = 8.0
    assert not watchdog.stalled("a", 2, 5.0)
    now[0] = 9.5
    assert watchdog.stalled("a", 2, 5.0)


# -- the hub as systemd runs it ----------------------------------------------------------


@pytest.mark.timeout(60)
def test_sd_notify_protocol_of_a_running_hub(systemd: FakeSystemd, tmp_path: Path) -> None:
    """No broker at all: READY must not wait for one."""
    # WATCHDOG_PID empty: as if systemd had not set it (the hub is not its main pid here).
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": ""}
    config = hub_config(free_port(), tmp_path / "state")
    with HubProcess(tmp_path, config, env=env) as hub:
        ready = systemd.wait_for(lambda ms: bool(having(ms, "READY", "1")), 20)
        assert "not connected to 127.0.0.1" in having(ready, "READY")[0].fields["STATUS"]
        # Pings at half of WATCHDOG_USEC.
        messages = systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG")) >= 7, 20)
        pings = [m.at for m in having(messages, "WATCHDOG", "1")]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert 0.35 <= statistics.median(gaps) <= 0.65, gaps
        assert max(gaps) < 1.0, gaps
        # STATUS lines a person can read.
        statuses = [m.fields["STATUS"] for m in having(messages, "STATUS")]
        assert any("readings/s" in s and "backlog" in s for s in statuses), statuses

        # A reload: RELOADING=1 (with the monotonic time), then READY=1 again.
        hub.config_path.write_text(config + "\n[sensor:disk]\ntype = disk_usage\n"
                                   "interval = 0.5\n")
        hub.signal(signal.SIGHUP)
        after = len(systemd.snapshot())
        messages = systemd.wait_for(
            lambda ms: bool(having(ms[after:], "READY", "1")), 20)[after:]
        reloading = having(messages, "RELOADING", "1")
        assert reloading and "MONOTONIC_USEC" in reloading[0].fields
        assert messages.index(reloading[0]) < messages.index(having(messages, "READY")[0])
        wait_until(lambda: "reload: sensors added: disk" in hub.log(), 10, what="the reload")

        hub.signal(SIGTERM)
        assert hub.wait(15) == 0
    messages = systemd.snapshot()
    assert having(messages, "STOPPING", "1")
    stopping = messages.index(having(messages, "STOPPING")[0])
    assert not having(messages[stopping + 1:], "WATCHDOG")  # no pings once stopping


@pytest.mark.timeout(30)
def test_a_watchdog_meant_for_another_process_is_not_pinged(
        systemd: FakeSystemd, broker: Mosquitto, tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "200000",
           "WATCHDOG_PID": str(os.getpid())}  # the test's pid, not the hub's
    with HubProcess(tmp_path, hub_config(broker.port, tmp_path / "state"), env=env) as hub:
        systemd.wait_for(lambda ms: bool(having(ms, "READY", "1")), 20)
        systemd.wait_for(lambda ms: len(having(ms, "STATUS")) >= 2, 20)  # 5 s of running
        hub.signal(SIGTERM)
        assert hub.wait(15) == 0
    assert systemd.count("WATCHDOG") == 0


# -- a wedged hub stops pinging ------------------------------------------------------------


class StickySensor(Sensor):
    """Reads fine until :attr:`hang` is set, then hangs until it is cleared."""

    type_name = "sticky"
    hang = threading.Event()
    free = threading.Event()

    def records(self) -> list[RecordSpec]:
        return [RecordSpec(self.name, "v")]

    def read(self) -> list[Reading]:
        if self.hang.is_set():
            self.free.wait(30)
        return [Reading(self.name, 1.0, time.time())]


def _hub(tmp_path: Path, systemd: FakeSystemd, port: int, sensors: str = "") -> Hub:
    path = tmp_path / "config.ini"
    path.write_text(hub_config(port, tmp_path / "state", sensors=sensors + """
[sensor:cpu]
type = cpu_temperature
interval = 0.05
"""))
    return Hub(load_config(path), notifier=Notifier(systemd.address), watchdog_every=0.1,
               clock=Clock(lambda: True))


def _supervised(hub: Hub) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=hub.supervise, args=(stop,), daemon=True)
    hub.start()
    thread.start()
    return stop, thread


def _pings_stop_then_resume(systemd: FakeSystemd, wedge: threading.Event,
                            unwedge: threading.Event, caplog: pytest.LogCaptureFixture,
                            part: str) -> None:
    systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG")) >= 5, 10)
    wedge.set()
    wait_until(lambda: f"watchdog: {part} made no progress" in caplog.text, 10,
               what=f"the watchdog to notice {part}")
    count = systemd.count("WATCHDOG")
    # No ping for a while (ten ping intervals): waiting on the socket, not sleeping.
    with pytest.raises(AssertionError):
        systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG")) > count, 1.0)
    unwedge.set()
    systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG")) > count + 3, 10)
    assert f"watchdog: {part} is making progress again" in caplog.text


@pytest.mark.timeout(60)
def test_pings_stop_while_a_sensor_thread_hangs(
        systemd: FakeSystemd, broker: Mosquitto, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(SENSOR_TYPES, "sticky", StickySensor)
    monkeypatch.setattr(supervisor, "SENSOR_GRACE", 0.3)
    StickySensor.hang.clear()
    StickySensor.free.clear()
    hub = _hub(tmp_path, systemd, broker.port, "[sensor:sticky]\ntype = sticky\ninterval = 0.05\n")
    caplog.set_level(logging.INFO)
    stop, thread = _supervised(hub)
    try:
        _pings_stop_then_resume(systemd, StickySensor.hang, StickySensor.free, caplog,
                                "thread sensor-sticky")
    finally:
        StickySensor.hang.clear()
        StickySensor.free.set()
        stop.set()
        thread.join(5)
        hub.shutdown()
    assert "thread sensor-cpu made no progress" not in caplog.text


@pytest.mark.timeout(60)
def test_pings_stop_while_the_consumer_hangs(
        systemd: FakeSystemd, broker: Mosquitto, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(supervisor, "CONSUMER_STALL", 0.5)
    wedge, free = threading.Event(), threading.Event()
    append = Spool.append

    def hanging_append(self: Spool, readings: list[Reading], per_pack: int | None = None,
                       ) -> object:
        if wedge.is_set():
            free.wait(30)  # a disk that stopped answering
        return append(self, readings, per_pack)

    monkeypatch.setattr(Spool, "append", hanging_append)
    hub = _hub(tmp_path, systemd, broker.port)
    caplog.set_level(logging.INFO)
    stop, thread = _supervised(hub)
    try:
        _pings_stop_then_resume(systemd, wedge, free, caplog, "thread consumer")
    finally:
        wedge.clear()
        free.set()
        stop.set()
        thread.join(5)
        hub.shutdown()


@pytest.mark.timeout(60)
def test_pings_stop_when_pahos_network_thread_is_gone(
        systemd: FakeSystemd, broker: Mosquitto, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    hub = _hub(tmp_path, systemd, broker.port)
    caplog.set_level(logging.INFO)
    stop, thread = _supervised(hub)
    try:
        systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG")) >= 3, 10)
        assert hub.link is not None
        hub.link._client.loop_stop()  # what a crash inside paho's thread leaves behind
        wait_until(lambda: "watchdog: paho's network thread made no progress" in caplog.text,
                   10, what="the watchdog to notice")
        count = systemd.count("WATCHDOG")
        with pytest.raises(AssertionError):
            systemd.wait_for(lambda ms: len(having(ms, "WATCHDOG")) > count, 1.0)
    finally:
        if hub.link is not None:
            hub.link._client.loop_start()  # so that the shutdown can say offline
        stop.set()
        thread.join(5)
        hub.shutdown()
