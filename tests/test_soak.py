"""The soak: 20 sensors, over 1,000 readings/s, the broker restarted every 30 s.

Not part of the default run (it takes 10 minutes). Run it with::

    .venv/bin/pytest -m slow tests/test_soak.py -s

``PIHUB_SOAK_SECONDS`` shortens or lengthens it (default 600).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.broker import Mosquitto
from tests.hubproc import (
    SIGTERM,
    HubProcess,
    durable_subscriber,
    first_seq,
    hub_config,
    issued_until,
    seqs,
)
from tests.test_faults import process_stats

SECONDS = float(os.environ.get("PIHUB_SOAK_SECONDS", "600"))
WARM_UP = 60.0
RESTART_EVERY = 30.0
SENSORS = "".join(f"""
[sensor:s{i:02d}]
type = {"cpu_temperature" if i % 2 else "load_average"}
interval = 0.018
""" for i in range(20))  # 1,111 readings/s nominal: a skipped poll must not sink us below 1,000


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 300)
def test_soak(durable_broker: Mosquitto, tmp_path: Path) -> None:
    state = tmp_path / "state"
    start = first_seq(state)
    sub = durable_subscriber(durable_broker.port, "soak")
    rhythm = threading.Event()
    try:
        config = hub_config(durable_broker.port, state, sensors=SENSORS,
                            batch="max_latency = 0.2")
        with HubProcess(tmp_path, config) as hub:
            assert hub.process is not None
            pid = hub.process.pid
            began = time.monotonic()
            sub.wait_for(lambda ms: len(seqs(ms)) >= 1000, timeout=30)
            first = process_stats(pid)
            rhythm.wait(WARM_UP)
            warm = process_stats(pid)
            restarts = 0
            next_restart = time.monotonic() + RESTART_EVERY
            while time.monotonic() - began < SECONDS:
                rhythm.wait(max(0.0, min(next_restart, began + SECONDS) - time.monotonic()))
                if time.monotonic() >= next_restart:
                    durable_broker.restart()
                    restarts += 1
                    next_restart += RESTART_EVERY
            elapsed = time.monotonic() - began
            sub.wait_for(lambda ms: [m.payload for m in ms
                                     if m.topic == "pihub/testhub/status"][-1:] == [b"online"],
                         timeout=30)  # connected again after the last restart
            end_stats = process_stats(pid)
            hub.signal(SIGTERM)
            assert hub.wait(30) == 0, hub.log()[-3000:]
        end = issued_until(state)
        expected = set(range(start, end))
        messages = sub.wait_for(lambda ms: not expected - set(seqs(ms)), timeout=120)
    finally:
        sub.close()
    delivered = seqs(messages)
    rate = (end - start) / elapsed
    print(f"\nsoak: {elapsed:.0f} s, {end - start} readings accepted ({rate:.0f}/s), "
          f"{len(expected - set(delivered))} missing, "
          f"{len(delivered) - len(set(delivered))} duplicates, {restarts} broker restarts\n"
          f"  threads {first[0]} -> {end_stats[0]}, fds {first[1]} -> {end_stats[1]}, "
          f"RSS {first[2]} kB, after warm-up {warm[2]} kB, at the end {end_stats[2]} kB "
          f"(+{end_stats[2] - warm[2]} kB)")
    assert rate >= 1000
    assert end_stats[0] == first[0], "threads"
    assert end_stats[1] <= first[1] + 1, "file descriptors"
    assert end_stats[2] - warm[2] < 5 * 1024, "resident memory grew by 5 MB or more"
