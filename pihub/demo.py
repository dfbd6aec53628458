"""``pihub demo``: the whole system on one desktop, in one command.

A private mosquitto on a free port, a simulated hub with one sensor of every type in
its own process (exactly as ``pihub run --simulate`` would run it), and the live view.
Ctrl-C stops all of it; nothing is left running.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from pihub.config import load_config
from pihub.localbroker import LOOPBACK, LocalBroker

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


def main(stop: threading.Event | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="pihub-demo-") as tmp, LocalBroker() as broker:
        config_path = Path(tmp) / "demo.ini"
        config_path.write_text(demo_config(broker.port, Path(tmp) / "state"))
        config = load_config(config_path)
        hub = subprocess.Popen([sys.executable, "-m", "pihub", "--log-level", "WARNING",
                                "run", "-c", str(config_path)], stdin=subprocess.DEVNULL)
        print(f"pihub demo: broker on {LOOPBACK}:{broker.port}, simulated hub 'demo' "
              f"(pid {hub.pid}).\nIn another terminal: pihub watch -c {config_path}\n"
              f"Ctrl-C stops everything.", file=sys.stderr)
        try:
            from pihub.watch import main as watch

            watch(config, stop=stop)
        except KeyboardInterrupt:
            pass
        finally:
            hub.terminate()
            try:
                hub.wait(config.hub.shutdown_timeout + 5)
            except subprocess.TimeoutExpired:
                log.error("the demo hub did not stop in time; killing it")
                hub.kill()
                hub.wait()
    return 0
