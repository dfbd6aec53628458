"""Fault injection inside one hub process: a full disk, a 10 kHz sensor, a clock jump."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pihub.config import load_config
from pihub.readings import Reading, RecordSpec
from pihub.senml import decode_pack
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor
from pihub.spool import StoredBatch
from pihub.supervisor import Hub
from tests.broker import Mosquitto, make_broker
from tests.hubproc import FAST_SENSORS, hub_config, seqs
from tests.subscriber import Subscriber
from tests.waiting import wait_until


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[list[Hub]]:
    """Hubs started by a test are always shut down."""
    hubs: list[Hub] = []
    yield hubs
    for hub in hubs:
        hub.shutdown()


def start_hub(hubs: list[Hub], tmp_path: Path, port: int, sensors: str = FAST_SENSORS,
              extra_hub: str = "") -> Hub:
    path = tmp_path / "config.ini"
    # A short shutdown: these hubs mostly stop with their broker away.
    path.write_text(hub_config(port, tmp_path / "state", sensors=sensors, extra_hub=extra_hub,
                               shutdown_timeout=1))
    hub = Hub(load_config(path))
    hubs.append(hub)
    hub.start()
    return hub


def set_max_pages(hub: Hub, pages: int) -> None:
    """Make the spool's disk "full" at ``pages`` pages (SQLite's own cap on the file)."""
    spool = hub.spool
    assert spool is not None
    with spool._db_lock:
        spool._connection().execute(f"PRAGMA max_page_count = {pages}")


@pytest.mark.timeout(60)
def test_a_full_disk_drops_and_counts_and_recovers_by_itself(
        hub_factory: list[Hub], tmp_path: Path) -> None:
    with make_broker(start=False) as away:  # the backlog can only grow
        hub = start_hub(hub_factory, tmp_path, away.port)
        spool = hub.spool
        assert spool is not None
        wait_until(lambda: spool.depth >= 50, 10, what="readings in the spool")
        with spool._db_lock:
            used = spool._connection().execute("PRAGMA page_count").fetchone()[0]
        set_max_pages(hub, used)  # not one page more
        wait_until(lambda: hub.health.dropped_spool >= 100, 20, what="drops while full")
        depth_full = spool.depth
        assert all(t.is_alive() for t in hub.threads.sensors.values())
        consumer = hub.threads.consumer
        assert consumer is not None and consumer.is_alive()
        set_max_pages(hub, 1 << 20)  # space is back
        wait_until(lambda: spool.depth > depth_full + 100, 20, what="accepting again")
        snapshot = hub.health.snapshot()
        assert snapshot["dropped"] >= 100
        assert snapshot["drops"]["spool_error"] >= 100


class Burst(Sensor):
    """A sensor that reports 1,000 readings per poll: 10 kHz at a 0.1 s interval."""

    type_name = "burst"

    def records(self) -> list[RecordSpec]:
        return [RecordSpec(self.name, "v")]

    def read(self) -> list[Reading]:
        now = time.time()
        return [Reading(self.name, float(i), now) for i in range(1000)]


def rss_kb() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(90)
def test_a_10_khz_burst_is_bounded_counted_and_never_blocks_the_sensor(
        hub_factory: list[Hub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SENSOR_TYPES, "burst", Burst)
    sensors = "\n[sensor:burst]\ntype = burst\ninterval = 0.1\n"
    with make_broker(start=False) as away:
        hub = start_hub(hub_factory, tmp_path, away.port, sensors=sensors,
                        extra_hub="queue_size = 500")
        # A slow SD card: each commit takes 50 ms, so the consumer cannot keep up.
        spool = hub.spool
        assert spool is not None
        fast_append, card = spool.append, threading.Event()

        def slow_append(readings: Sequence[Reading]) -> list[StoredBatch]:
            card.wait(0.05)
            return fast_append(readings)

        monkeypatch.setattr(spool, "append", slow_append)
        thread = hub.threads.sensors["burst"]
        wait_until(lambda: thread.polls >= 20, 20, what="a warm-up")
        warm_rss, warm_polls, started = rss_kb(), thread.polls, time.monotonic()
        max_depth = 0
        probe = threading.Event()
        while time.monotonic() - started < 10:
            max_depth = max(max_depth, hub.queue.qsize())
            probe.wait(0.05)
        polls = thread.polls - warm_polls
        grown = rss_kb() - warm_rss
    elapsed = time.monotonic() - started
    print(f"10 kHz burst: {polls} polls in {elapsed:.1f} s (schedule {elapsed / 0.1:.0f}), "
          f"queue depth max {max_depth}/500, {hub.health.dropped_queue} dropped, "
          f"RSS +{grown} kB")
    assert max_depth <= 500
    assert hub.health.dropped_queue > 0
    # A put never waits past the next poll's deadline, so the sensor keeps its schedule.
    assert polls >= 0.8 * elapsed / 0.1
    assert grown < 20 * 1024


@pytest.mark.timeout(60)
def test_the_wall_clock_jumping_back_a_day_changes_neither_schedule_nor_seq_order(
        broker: Mosquitto, hub_factory: list[Hub], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_time = time.time
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real_time() + offset[0])
    with Subscriber(broker.port, ["pihub/testhub/readings"]) as sub:
        hub = start_hub(hub_factory, tmp_path, broker.port)
        cpu = hub.threads.sensors["cpu"]
        sub.wait_for(lambda ms: len(seqs(ms)) >= 100, timeout=20)
        before_polls, jumped = cpu.polls, time.monotonic()
        offset[0] = -86400.0
        count = len(sub.snapshot())
        sub.wait_for(lambda ms: len(seqs(ms[count:])) >= 100, timeout=20)
        polls = cpu.polls - before_polls
        elapsed = time.monotonic() - jumped
        messages = sub.snapshot()
    records = [r for m in messages for r in decode_pack(m.payload)]
    all_seqs = [r.seq or 0 for r in records]
    assert all_seqs == sorted(all_seqs) and len(set(all_seqs)) == len(all_seqs)
    times = [r.time for r in records]
    assert min(times) < real_time() - 86000  # readings after the jump carry the new time
    assert max(times) > real_time() - 600  # ... and those before it the old one
    assert polls >= 0.8 * elapsed / 0.02  # the 50 Hz schedule went on undisturbed

