"""A clock that is not set yet: detected, and the readings taken meanwhile marked."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from pihub.clock import FLOOR, Clock, kernel_synced, probe_synced
from pihub.config import load_config
from pihub.health import Health
from pihub.readingqueue import ReadingQueue
from pihub.readings import Reading
from pihub.senml import decode_pack, encode_pack, split_pack
from pihub.supervisor import Hub
from tests.broker import Mosquitto
from tests.hubproc import hub_config
from tests.subscriber import Message, Subscriber

NOW = FLOOR + 86400 * 365


def test_a_clock_before_the_floor_is_never_synced(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    flag.touch()
    assert not probe_synced(now=lambda: FLOOR - 1, flag=flag, kernel=lambda: True)
    assert not probe_synced(now=lambda: 3.0, flag=flag, kernel=lambda: True)  # 1970


def test_timesyncd_flag_then_kernel_then_assume_synced(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    assert not probe_synced(now=lambda: NOW, flag=flag, kernel=lambda: False)
    assert probe_synced(now=lambda: NOW, flag=flag, kernel=lambda: True)
    assert probe_synced(now=lambda: NOW, flag=flag, kernel=lambda: None)  # EPERM, not Linux
    flag.touch()
    assert probe_synced(now=lambda: NOW, flag=flag, kernel=lambda: False)


def test_the_kernel_probe_answers_or_abstains() -> None:
    assert kernel_synced() in (True, False, None)


def test_clock_asks_the_probe_at_most_every_few_seconds() -> None:
    answers = [False]
    calls = []
    now = [0.0]

    def probe() -> bool:
        calls.append(now[0])
        return answers[0]

    clock = Clock(probe, every=2.0, monotonic=lambda: now[0])
    assert not clock.synced and calls == [0.0]
    answers[0] = True
    now[0] = 1.0
    assert not clock.refresh()
    now[0] = 2.0
    assert clock.refresh() and clock.synced
    assert calls == [0.0, 2.0]


def test_a_failing_probe_counts_as_synced(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bool:
        raise OSError("no")

    assert Clock(broken).synced
    assert "clock probe failed" in caplog.text


def test_the_queue_marks_and_counts_readings_taken_while_unsynced() -> None:
    synced = [False]
    clock = Clock(lambda: synced[0], every=0.0)
    health = Health("hub")
    q = ReadingQueue(10, clock, health)
    q.put(Reading("a", 1.0, NOW))
    q.put_nowait(Reading("b", True, NOW, edge=True))
    synced[0] = True
    clock.refresh()
    q.put(Reading("a", 2.0, NOW))
    q.put(object())  # the consumer's END sentinel passes untouched
    got = [q.get_nowait() for _ in range(4)]
    assert [r.synced for r in got[:3] if isinstance(r, Reading)] == [False, False, True]
    assert health.unsynced_readings == 2
    snapshot = health.snapshot()
    assert snapshot["unsynced_readings"] == 2 and snapshot["clock_synced"] is True


def test_senml_carries_tsync_false_only_on_unsynced_records() -> None:
    readings = [Reading("a", 1.5, 1_000_000_000.0, "Cel", synced=False),
                Reading("b", 2.5, 1_000_000_001.0, "Cel")]
    payload = encode_pack("hub", readings, 1)
    raw = json.loads(payload)
    assert raw[0]["tsync"] is False and "tsync" not in raw[1]
    assert [r.synced for r in decode_pack(payload)] == [False, True]
    parts = split_pack(payload, len(payload) - 10)
    assert len(parts) == 2
    assert [r.synced for part in parts for r in decode_pack(part)] == [False, True]


@pytest.mark.timeout(60)
def test_a_hub_marks_readings_until_the_clock_is_synced(broker: Mosquitto,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    path.write_text(hub_config(broker.port, tmp_path / "state"))
    synced = threading.Event()
    hub = Hub(load_config(path), clock=Clock(synced.is_set, every=0.0))
    stop = threading.Event()
    supervisor = threading.Thread(target=hub.supervise, args=(stop,), daemon=True)

    def records(messages: list[Message]) -> list[tuple[int, bool]]:
        return [(r.seq or 0, r.synced) for m in messages
                if m.topic == "pihub/testhub/readings" for r in decode_pack(m.payload)]

    def health(messages: list[Message]) -> dict[str, object]:
        payloads = [m.payload for m in messages if m.topic == "pihub/testhub/health"]
        return json.loads(payloads[-1]) if payloads else {}

    with Subscriber(broker.port, ["pihub/#"]) as sub:
        hub.start()
        supervisor.start()
        try:
            sub.wait_for(lambda ms: len(records(ms)) >= 20
                         and health(ms).get("clock_synced") is False, 15)
            assert not any(ok for _, ok in records(sub.snapshot()))
            synced.set()
            sub.wait_for(lambda ms: sum(ok for _, ok in records(ms)) >= 20
                         and health(ms).get("clock_synced") is True, 15)
        finally:
            stop.set()
            supervisor.join(5)
            hub.shutdown()
    marked = [seq for seq, ok in records(sub.snapshot()) if not ok]
    clean = [seq for seq, ok in records(sub.snapshot()) if ok]
    assert max(marked) < min(clean)  # once synced, no reading is marked again
    last = health(sub.snapshot())
    assert isinstance(last["unsynced_readings"], int)
    assert last["unsynced_readings"] >= len(set(marked))
