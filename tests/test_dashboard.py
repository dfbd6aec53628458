"""``pihub dashboard``: its server, and the page in a real headless browser.

The browser is Debian's chromium driven by Playwright (the ``playwright`` Python package
speaks the DevTools protocol to whatever chromium it is pointed at; its own browser
download is never used). Without chromium these tests fail: CI installs it.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pihub.board import Source
from pihub.config import MqttConfig
from pihub.dashboard import Dashboard
from pihub.readings import Reading
from pihub.senml import encode_pack
from tests.broker import Mosquitto, free_port
from tests.hubproc import HubProcess, hub_config
from tests.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class Publisher:
    """A plain paho client publishing what a hub would, QoS 1, waiting for each PUBACK."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def reading(self, hub: str, name: str, value: float, seq: int) -> None:
        self.send(f"pihub/{hub}/readings",
                  encode_pack(hub, [Reading(name, value, time.time(), "Cel")], seq))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(broker.port)
    try:
        yield pub
    finally:
        pub.close()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


@pytest.mark.timeout(60)
def test_page_shows_sensors_live_values_and_greys_out_offline_hubs(
        broker: Mosquitto, publisher: Publisher, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "the dashboard test needs Debian's chromium: apt-get install chromium"
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    publisher.send("pihub/bench/status", b"online", retain=True)
    with HubProcess(tmp_path, hub_config(broker.port, tmp_path / "state")) as hub:
        server = subprocess.Popen(
            [sys.executable, "-m", "pihub", "dashboard", "-c", str(hub.config_path),
             "--port", str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: answers(url), timeout=15, what="the dashboard to answer")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1000, "height": 800})
                    page.goto(url)
                    testhub = page.locator('section.hub[data-hub="testhub"]')
                    for name in ("cpu", "load", "door"):
                        expect(testhub.locator(f'[data-record="{name}"] .value')).to_have_text(
                            re.compile(r"^(-?[\d.]+|ON|OFF)$"), timeout=15_000)
                    expect(testhub.locator('[data-record="cpu"] .unit')).to_have_text("°C")
                    expect(testhub.locator('[data-record="cpu"] .state')).to_have_text("ok")
                    expect(testhub.locator(".status")).to_have_text("online")

                    probe = page.locator('[data-hub="bench"] [data-record="probe"] .value')
                    publisher.reading("bench", "probe", 12.5, 1)
                    expect(probe).to_have_text("12.5", timeout=5_000)
                    publisher.reading("bench", "probe", 13.75, 2)
                    expect(probe).to_have_text("13.75", timeout=5_000)

                    bench = page.locator('section.hub[data-hub="bench"]')
                    expect(bench).not_to_have_class(re.compile(r"\boffline\b"))
                    publisher.send("pihub/bench/status", b"offline", retain=True)
                    expect(bench).to_have_class(re.compile(r"\boffline\b"), timeout=1_000)
                    opacity = bench.evaluate("e => getComputedStyle(e).opacity")
                    assert float(opacity) < 1  # greyed out, not just labelled

                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

                    hub.signal(signal.SIGTERM)  # a real hub's clean stop says `offline`
                    expect(testhub).to_have_class(re.compile(r"\boffline\b"), timeout=15_000)
                    expect(testhub.locator(".status")).to_have_text("offline")
                    page.screenshot(path=str(ARTIFACTS / "dashboard-offline.png"),
                                    full_page=True)
                finally:
                    browser.close()
        finally:
            server.send_signal(signal.SIGINT)
            try:
                output, _ = server.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                output, _ = server.communicate()
                pytest.fail(f"the dashboard did not stop on SIGINT:\n{output}")
    assert server.returncode == 0, output
    assert f"pihub dashboard: {url}" in output


@pytest.mark.timeout(30)
def test_server_state_events_and_static_files(broker: Mosquitto, publisher: Publisher) -> None:
    publisher.send("pihub/bench/status", b"online", retain=True)
    source = Source(MqttConfig(host="127.0.0.1", port=broker.port))
    with Dashboard(source, port=0) as dashboard:
        assert dashboard.server.server_address[0] == "127.0.0.1"  # only what it was told
        wait_until(lambda: dashboard.board.hubs.get("bench") is not None, timeout=10,
                   what="the retained status")
        publisher.reading("bench", "probe", 7.25, 1)
        wait_until(lambda: "probe" in dashboard.board.hubs["bench"].records, timeout=10,
                   what="the reading")
        state = json.loads(get(dashboard.url + "api/state"))
        assert state["broker"] == f"127.0.0.1:{broker.port}" and state["problem"] is None
        (bench,) = state["hubs"]
        assert bench["status"] == "online"
        (probe,) = bench["records"]
        assert probe["value"] == 7.25 and probe["unit"] == "°C"
        assert [v for _, v in probe["history"]] == [7.25]

        host, port = dashboard.server.server_address[:2]
        conn = http.client.HTTPConnection(str(host), port, timeout=10)
        conn.request("GET", "/events")
        stream = conn.getresponse()
        assert stream.getheader("Content-Type") == "text/event-stream"
        assert stream.readline() == b"event: state\n"
        first = json.loads(stream.readline().removeprefix(b"data: "))
        assert first["hubs"][0]["records"][0]["value"] == 7.25
        publisher.reading("bench", "probe", 8.5, 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = stream.readline()
            if line.startswith(b"data: "):
                update = json.loads(line.removeprefix(b"data: "))
                values = [r["value"] for h in update["hubs"] for r in h["records"]]
                if values == [8.5]:
                    break
        else:
            pytest.fail("no update with the new reading on the event stream")
        conn.close()

        index = get(dashboard.url).decode()
        assert "/static/app.js" in index and "/static/style.css" in index
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(dashboard.url + "static/../server.py")
        assert missing.value.code == 404


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    static = resources.files("pihub.dashboard").joinpath("static")
    for name in ("index.html", "app.js", "style.css"):
        text = static.joinpath(name).read_text()
        remote = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text)
                  if u != "http://www.w3.org/2000/svg"]
        assert remote == [], f"{name} refers to {remote}"
