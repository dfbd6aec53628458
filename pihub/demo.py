"""``pihub demo``: the whole system on one desktop, in one command.

A private mosquitto on a free port, a simulated hub with one sensor of every type in
its own process (exactly as ``pihub run`` runs it on a Pi) and the dashboard, served
from this process. Ctrl-C or SIGTERM stops all of it, in order: the hub first (so it
can say ``offline`` and flush), then the dashboard, then the broker.

The broker and the hub run in sessions of their own, so a terminal's Ctrl-C reaches
only this process, which then stops them in that order; should this process be killed
outright, Linux's parent-death signal stops them anyway.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from pihub.board import Source
from pihub.config import load_config
from pihub.dashboard.server import Dashboard, DashboardError
from pihub.localbroker import LOOPBACK, LocalBroker, die_with_parent

log = logging.getLogger("pihub.demo")

SENSORS = """
[sensor:door]
type = digital
pin = GPIO17
interval = 5

[sensor:hallway_motion]
type = motion
pin = GPIO27
interval = 5

[sensor:daylight]
type = light
pin = GPIO4
interval = 2

[sensor:water_level]
type = distance
echo = GPIO24
trigger = GPIO23
interval = 2

[sensor:soil]
type = analog
chip = mcp3008
channel = 0
interval = 2

[sensor:cpu]
type = cpu_temperature
interval = 2

[sensor:load]
type = load_average
interval = 2

[sensor:disk]
type = disk_usage
interval = 5

[sensor:attic]
type = ds18b20
device = 28-00000a1b2c3d
interval = 2

[sensor:climate]
type = bme280
interval = 2
"""


def demo_config(port: int, state_dir: Path) -> str:
    return f"""[hub]
id = demo
state_dir = {state_dir}
simulate = true
shutdown_timeout = 5

[mqtt]
host = {LOOPBACK}
port = {port}

[batch]
max_latency = 0.5
{SENSORS}"""


def pihub_command() -> str:
    """How to run this pihub from another terminal, where its virtualenv is not active."""
    script = Path(sys.executable).parent / "pihub"
    if not script.exists():
        return f"{sys.executable} -m pihub"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def main(*, port: int = 8080, stop: threading.Event | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM or ``stop``; 1 if the hub died on its own."""
    stop = stop if stop is not None else threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    with tempfile.TemporaryDirectory(prefix="pihub-demo-") as tmp, LocalBroker() as broker:
        config_path = Path(tmp) / "demo.ini"
        config_path.write_text(demo_config(broker.port, Path(tmp) / "state"))
        config = load_config(config_path)
        hub = subprocess.Popen(  # die_with_parent is a bare prctl(): safe after fork
            [sys.executable, "-m", "pihub", "--log-level", "WARNING", "run", "-c",
             str(config_path)], stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)  # noqa: PLW1509
        dashboard: Dashboard | None = None
        try:
            source = Source(config.mqtt)
            try:
                dashboard = Dashboard(source, port=port)
            except DashboardError:
                dashboard = Dashboard(source, port=0)  # the usual port is taken
            dashboard.start()
            print(f"pihub demo: a simulated hub 'demo' (pid {hub.pid}) publishing to a "
                  f"private mosquitto on {LOOPBACK}:{broker.port} (pid {broker.pid}).\n"
                  f"  dashboard:  {dashboard.url}\n"
                  f"  terminal:   {pihub_command()} watch --host {LOOPBACK} "
                  f"--port {broker.port}\n"
                  f"Ctrl-C stops everything.", flush=True)
            while not stop.wait(0.5):
                if hub.poll() is not None:
                    log.error("the demo hub stopped on its own (exit %s)", hub.returncode)
                    return 1
        finally:
            _stop_hub(hub, config.hub.shutdown_timeout + 5)
            if dashboard is not None:
                dashboard.stop()
    print("pihub demo: stopped.", flush=True)
    return 0


def _stop_hub(hub: subprocess.Popen[bytes], timeout: float) -> None:
    if hub.poll() is None:
        hub.terminate()
    try:
        hub.wait(timeout)
    except subprocess.TimeoutExpired:
        log.error("the demo hub did not stop within %s s; killing it", timeout)
        hub.kill()
        hub.wait()
