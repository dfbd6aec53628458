"""``pihub demo`` as a user runs it: a subprocess, its URL, readings, and nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import free_port
from tests.subscriber import Subscriber
from tests.waiting import wait_until

BANNER = re.compile(r"hub 'demo' \(pid (\d+)\).*127\.0\.0\.1:(\d+) \(pid (\d+)\)")


class Demo:
    """``python -m pihub demo`` in a session of its own, as a terminal would run it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pihub", "demo", "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
            env={**os.environ, "PIHUB_SIMULATION_SPEED": "10"})
        self.lines: list[str] = []
        self.banner = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "Ctrl-C stops everything" in line:
                self.banner.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> tuple[int, int, int]:
        """(hub pid, broker port, broker pid) from the banner."""
        assert self.banner.wait(30), f"no banner from the demo:\n{self.output}"
        found = BANNER.search(self.output)
        assert found, self.output
        return int(found[1]), int(found[2]), int(found[3])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)


@pytest.fixture
def demo() -> Iterator[Demo]:
    running = Demo()
    try:
        yield running
    finally:
        running.stop()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except FileNotFoundError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigkill"])
def test_demo_serves_the_dashboard_with_live_readings_and_leaves_nothing_behind(
        demo: Demo, how: str) -> None:
    hub_pid, broker_port, broker_pid = demo.wait_ready()
    url = f"http://127.0.0.1:{demo.port}/"
    assert url in demo.output
    assert f"watch --host 127.0.0.1 --port {broker_port}" in demo.output
    children = descendants(demo.process.pid)
    assert {hub_pid, broker_pid} <= children, (children, demo.output)

    with urllib.request.urlopen(url, timeout=5) as page:
        assert b"pihub" in page.read()
    with Subscriber(broker_port, ["pihub/demo/readings"]) as sub:
        sub.wait_for(lambda ms: len(ms) >= 2, timeout=20)

    def dashboard_has_readings() -> bool:
        with urllib.request.urlopen(url + "api/state", timeout=5) as response:
            state = json.loads(response.read())
        hubs = {h["hub"]: h for h in state["hubs"]}
        return "demo" in hubs and sum(r["time"] is not None
                                      for r in hubs["demo"]["records"]) >= 10

    wait_until(dashboard_has_readings, timeout=20, what="readings on the dashboard")

    if how == "ctrl-c":  # the terminal sends SIGINT to the whole foreground group
        os.killpg(demo.process.pid, signal.SIGINT)
    elif how == "sigterm":
        demo.process.terminate()
    else:  # killed outright: the children still go, by their parent-death signal
        demo.process.kill()
    code = demo.process.wait(30)
    assert code == (-signal.SIGKILL if how == "sigkill" else 0), demo.output
    for pid in children:
        wait_until(lambda pid=pid: not alive(pid), timeout=15,  # type: ignore[misc]
                   what=f"process {pid} to be gone")
    if how != "sigkill":
        assert "pihub demo: stopped." in demo.output
