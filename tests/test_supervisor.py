"""The supervisor, in-process: it restarts what dies and stops in order."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from pihub.config import load_config
from pihub.supervisor import Hub
from tests.broker import Mosquitto
from tests.hubproc import hub_config, seqs
from tests.subscriber import Subscriber
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
