"""What every scenario needs: a broker, the subscriber process, the hub process, and
measurements of a process from /proc (CPU time, peak RSS)."""

from __future__ import annotations

import atexit
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pihub.localbroker import LocalBroker, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far, in seconds, to the nanosecond.

    The sum of its live threads' ``schedstat`` run times (the clock-tick counts in
    ``/proc/PID/stat`` are too coarse for an idle hub: 0.25 % of a core over a minute is
    15 ticks). A thread that already ended is not in the sum, so the scenarios measure
    differences over windows in which the threads they care about keep running. Falls
    back to the tick counts where schedstat is missing.
    """
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    except OSError:
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / TICK
    return total / 1e9 if total else ticks


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    """A memory line of /proc/PID/status in KiB: VmHWM is the peak RSS, VmRSS the current."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Subscriber:
    """:mod:`benchmarks.subscriber` in its own process."""

    def __init__(self, port: int, topics: list[str], workdir: Path, *,
                 times: bool = False, count_messages: bool = False) -> None:
        self.out = workdir / f"sub-{time.monotonic_ns()}.json"
        args = [PYTHON, "-m", "benchmarks.subscriber", "--port", str(port),
                "--out", str(self.out)]
        for topic in topics:
            args += ["--topic", topic]
        if times:
            args.append("--times")
        if count_messages:
            args.append("--count-messages")
        self.process = popen(args, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"READY":
            self.process.kill()
            raise RuntimeError(f"subscriber did not start: {line!r}")

    def live(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = json.loads(Path(f"{self.out}.live").read_text())
            return result
        except (OSError, ValueError):
            return {"readings": 0, "messages": 0, "last_at": 0.0}

    def wait_for(self, readings: int, quiet: float = 2.0, timeout: float = 120.0) -> None:
        """Until ``readings`` arrived, or nothing arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            got = self.live()["readings"]
            if got >= readings:
                return
            if got != last:
                last, since = got, time.monotonic()
            elif time.monotonic() - since > quiet:
                return
            time.sleep(0.1)  # polling a file written by another process

    def finish(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return env


def hub_config(port: int, state_dir: Path, sensors: str, *, hub_id: str = "bench",
               batch: str = "", hub: str = "", spool: str = "", simulate: bool = True) -> str:
    """A config for the hub under test. ``simulate=False`` puts it on gpiozero's mock pin
    factory without the simulation's signal thread (for ``bench`` sensors, which need
    no hardware)."""
    hardware = "simulate = true" if simulate else "simulate = false\npin_factory = mock"
    return f"""[hub]
id = {hub_id}
state_dir = {state_dir}
{hardware}
shutdown_timeout = 10
{hub}

[mqtt]
host = 127.0.0.1
port = {port}
discovery = false

[batch]
{batch}

[spool]
{spool}

{sensors}"""


def bench_sensors(count: int, interval: float, kind: str = "bench", extra: str = "") -> str:
    return "\n".join(f"[sensor:s{i}]\ntype = {kind}\ninterval = {interval}\n{extra}"
                     for i in range(count))


class Hub:
    """:mod:`benchmarks.hubchild` (``pihub run`` + the ``bench`` sensor type)."""

    def __init__(self, workdir: Path, config_text: str, *, args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.dir = workdir
        self.state_dir = workdir / "state"
        self.config = workdir / "config.ini"
        self.config.write_text(config_text)
        self.log = workdir / "hub.log"
        self.started_at = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = popen(
                [PYTHON, "-m", "benchmarks.hubchild", "-c", str(self.config), *(args or [])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**_env(), **(env or {})})
        self.pid = self.process.pid
        self.peak_kib = 0

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def sample_rss(self) -> int:
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
        return self.peak_kib

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait; the seconds it took to exit."""
        self.sample_rss()
        t0 = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"hub did not stop within {timeout} s:\n{self.tail()}") from None
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spool_state(state_dir: Path, hub_id: str = "bench") -> tuple[int, int]:
    """(readings still spooled, next seq) of a stopped hub's spool."""
    from pihub.spool import Spool

    with Spool(state_dir / "spool.db", hub_id=hub_id, max_bytes=1 << 40) as spool:
        return spool.depth, spool.next_seq


def new_broker(workdir: Path) -> LocalBroker:
    broker = LocalBroker(workdir=workdir)
    broker.start()
    return broker


_WORKDIRS: list[Path] = []


def workdir(name: str) -> Path:
    """A fresh temporary folder, removed when the run ends (kept with PIHUB_BENCH_KEEP=1)."""
    path = Path(tempfile.mkdtemp(prefix=f"pihub-bench-{name}-"))
    _WORKDIRS.append(path)
    return path


@atexit.register
def _remove_workdirs() -> None:
    if not os.environ.get("PIHUB_BENCH_KEEP"):
        for path in _WORKDIRS:
            shutil.rmtree(path, ignore_errors=True)


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A child that is SIGTERMed if this process dies, however it dies."""
    return subprocess.Popen(args, cwd=ROOT, env=kwargs.pop("env", None) or _env(),
                            preexec_fn=die_with_parent, **kwargs)  # noqa: PLW1509


def machine() -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    try:
        from pihub.localbroker import find_mosquitto

        out = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True,
                             check=False).stdout
        m = re.search(r"mosquitto version (\S+)", out)
        mosq = m.group(1) if m else "?"
    except Exception:
        mosq = "?"
    import paho.mqtt
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paho": paho.mqtt.__version__,
        "mosquitto": mosq,
        "loadavg_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class NotifySocket:
    """A fake systemd NOTIFY_SOCKET: the monotonic time each ``READY=1`` arrived."""

    def __init__(self, directory: Path) -> None:
        import socket

        self.path = str(directory / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Block until READY=1; the monotonic time it arrived."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no READY=1")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if b"READY=1" in data.split(b"\n"):
                return time.monotonic()

    def close(self) -> None:
        self.sock.close()
