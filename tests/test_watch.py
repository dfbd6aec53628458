"""``pihub watch``: the board it keeps, and the command against a real broker and hub."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from pihub.board import Board, History, Listener, Source
from pihub.readings import Reading
from pihub.senml import encode_pack
from pihub.watch import render_rich, render_text, sparkline
from tests.broker import Mosquitto, free_port, make_broker
from tests.hubproc import HubProcess, hub_config
from tests.subscriber import Subscriber

SENSORS = ("cpu", "load", "door")


def watch(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pihub", "watch", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_for_hub_state(port: int, hub: str = "testhub") -> None:
    """Until the hub's retained status, health and every sensor's value are on the broker."""
    topics = {f"pihub/{hub}/status", f"pihub/{hub}/health",
              *(f"pihub/{hub}/sensor/{name}" for name in SENSORS)}
    with Subscriber(port, [f"pihub/{hub}/#"]) as sub:
        sub.wait_for(lambda ms: topics <= {m.topic for m in ms}, timeout=20)


def pack(hub: str, name: str, values: list[float], start: float, unit: str = "Cel") -> bytes:
    readings = [Reading(name, v, start + i * 0.001, unit) for i, v in enumerate(values)]
    return encode_pack(hub, readings, 1)


@pytest.mark.timeout(60)
def test_once_and_json_show_the_hub_its_sensors_and_offline(broker: Mosquitto,
                                                            tmp_path: Path) -> None:
    with HubProcess(tmp_path, hub_config(broker.port, tmp_path / "state")) as hub:
        wait_for_hub_state(broker.port)

        text = watch("-c", str(hub.config_path), "--once")
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert lines[0].startswith("testhub: online"), text.stdout
        rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
        assert set(SENSORS) <= set(rows), text.stdout
        assert float(rows["cpu"][0]) > 0 and rows["cpu"][1] == "°C", rows["cpu"]
        assert rows["door"][0] in ("ON", "OFF"), rows["door"]
        float(rows["load"][0])

        # --host/--port: no config at all, the default prefixes.
        snap = watch("--host", "127.0.0.1", "--port", str(broker.port), "--json")
        assert snap.returncode == 0, snap.stderr
        data = json.loads(snap.stdout)
        assert data["broker"] == f"127.0.0.1:{broker.port}"
        (view,) = data["hubs"]
        assert view["hub"] == "testhub" and view["status"] == "online"
        assert view["connected"] is True and view["backlog"] is not None
        records = {r["name"]: r for r in view["records"]}
        assert set(SENSORS) <= set(records)
        assert isinstance(records["cpu"]["value"], float) and records["cpu"]["unit"] == "°C"
        assert isinstance(records["door"]["value"], bool)
        assert all(records[name]["state"] == "ok" for name in SENSORS), records

        hub.signal(signal.SIGTERM)
        assert hub.wait(15) == 0, hub.log()

    text = watch("-c", str(hub.config_path), "--once")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("testhub: offline"), text.stdout
    data = json.loads(watch("-c", str(hub.config_path), "--json", "--hub", "testhub").stdout)
    assert [h["status"] for h in data["hubs"]] == ["offline"]


@pytest.mark.timeout(30)
def test_once_on_an_unreachable_broker_says_so_and_fails() -> None:
    port = free_port()
    started = time.monotonic()
    result = watch("--host", "127.0.0.1", "--port", str(port), "--once")
    assert result.returncode == 1
    assert f"cannot reach the broker at 127.0.0.1:{port}" in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - started < 10


@pytest.mark.timeout(30)
def test_once_on_a_refusing_broker_says_so_and_fails() -> None:
    with make_broker(password={"hub": "secret"}) as refusing:
        result = watch("--host", "127.0.0.1", "--port", str(refusing.port), "--json")
    assert result.returncode == 1
    assert f"the broker at 127.0.0.1:{refusing.port} refused" in result.stderr, result.stderr


@pytest.mark.timeout(30)
def test_once_with_no_hubs_says_it_is_waiting(broker: Mosquitto) -> None:
    result = watch("--host", "127.0.0.1", "--port", str(broker.port), "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"waiting for hubs on 127.0.0.1:{broker.port}"


def test_board_keeps_up_with_1000_readings_per_second_in_bounded_memory() -> None:
    board = Board(history_span=60, history_points=60)
    board.feed("pihub/busy/status", b"online")
    start = time.time()
    payloads = [pack("busy", "fast", [float(i + j) for j in range(100)], start + i * 0.1)
                for i in range(0, 20_000, 100)]  # 20,000 readings over 200 s of hub time
    began = time.perf_counter()
    for payload in payloads:
        board.feed("pihub/busy/readings", payload)
    elapsed = time.perf_counter() - began
    assert elapsed < 2.0, f"{len(payloads) * 100} readings took {elapsed:.2f} s to take in"
    record = board.hubs["busy"].records["fast"]
    assert record.value == 19_999.0  # the newest reading wins
    assert len(record.history.values) <= 61  # bounded: one point per second of the last 60


def test_board_resolves_units_states_and_retained_values() -> None:
    board = Board()
    board.feed("homeassistant/sensor/attic/climate_humidity/config", json.dumps(
        {"state_topic": "pihub/attic/sensor/climate/humidity",
         "unit_of_measurement": "%"}).encode(), retained=True)
    board.feed("pihub/attic/sensor/climate/humidity", b"41.5", retained=True)
    board.feed("pihub/attic/sensor/door", b"ON", retained=True)
    board.feed("pihub/attic/status", b"online", retained=True)
    board.feed("pihub/attic/health", json.dumps(
        {"connected": True, "spool_depth": 3, "dropped": 0,
         "sensors": {"climate": {"state": "stale"}, "door": {"state": "failing"}}}).encode())
    board.feed("pihub/attic/readings", pack("attic", "cpu", [48.25], time.time()))
    board.feed("pihub/other/status", b"offline")
    snap = board.snapshot()
    attic, other = snap["hubs"]
    assert attic["status"] == "online" and attic["since"] is None  # retained: when is unknown
    assert other["status"] == "offline" and other["since"] is not None
    records = {r["name"]: r for r in attic["records"]}
    assert records["climate/humidity"] | {"age_s": None} == {
        "name": "climate/humidity", "value": 41.5, "unit": "%", "time": None,
        "age_s": None, "state": "stale"}
    assert records["door"]["value"] is True and records["door"]["state"] == "failing"
    assert records["cpu"]["value"] == 48.25 and records["cpu"]["unit"] == "°C"
    text = render_text(snap, "broker:1883")
    assert "attic: online  connected=yes backlog=3 dropped=0" in text
    assert "  door" in text and "ON" in text and "48.25 °C" in text
    assert render_text(Board().snapshot(), "broker:1883") == "waiting for hubs on broker:1883"

    only = Board(only="other")
    only.feed("pihub/attic/status", b"online")
    only.feed("pihub/other/status", b"online")
    assert [h["hub"] for h in only.snapshot()["hubs"]] == ["other"]


def test_history_keeps_one_point_per_bucket_within_its_span() -> None:
    history = History(span=10, points=10)
    for i in range(100):
        history.add(1000 + i * 0.25, float(i))
    assert len(history.values) <= 11
    assert history.values[-1] == (1000 + 99 * 0.25, 99.0)
    assert history.values[0][0] >= 1000 + 99 * 0.25 - 10
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([5.0, 5.0]) == "▄▄"


def test_live_view_draws_hubs_records_and_problems() -> None:
    board = Board()
    board.feed("pihub/attic/status", b"online")
    board.feed("pihub/attic/readings", pack("attic", "cpu", [40.0, 41.0, 42.5], time.time()))
    listener = Listener(Source(), board)  # never started: still "connecting"
    console = Console(record=True, width=100, color_system=None)
    console.print(render_rich(board, listener))
    out = console.export_text()
    assert "attic" in out and "online" in out and "42.5" in out and "°C" in out
    assert "connecting to localhost:1883" in out
    console = Console(record=True, width=100, color_system=None)
    console.print(render_rich(Board(), listener))
    assert "waiting for hubs on localhost:1883" in console.export_text()
