"""The peer baseline: mqtt-io 2.7 (PyPI ``mqtt-io``) on its ``mock`` sensor module.

It lives in a virtualenv of its own (its dependencies must not touch pihub's): the
interpreter is ``$PIHUB_BENCH_MQTTIO``, else ``.venv-mqttio/bin/python`` in the
repository (``.ci/bench`` creates it). When it is missing or fails, the scenario says
so, with the error, instead of a figure.

Both programs log at WARNING in these runs (mqtt-io logs every reading at INFO by
default, which would be measuring its logging).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import ROOT, Subscriber, cpu_seconds, popen, rss_kib

if TYPE_CHECKING:
    from benchmarks.scenarios import Size

LOGGING = """logging:
  version: 1
  handlers:
    console:
      class: logging.StreamHandler
      level: WARNING
  loggers:
    mqtt_io:
      level: WARNING
      handlers: [console]
"""


def python() -> str | None:
    for candidate in (os.environ.get("PIHUB_BENCH_MQTTIO"),
                      str(ROOT / ".venv-mqttio" / "bin" / "python"),
                      "/tmp/mqttio-venv/bin/python"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def version(interpreter: str) -> str:
    out = subprocess.run([interpreter, "-c", "import importlib.metadata as m;"
                          "print(m.version('mqtt-io'))"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


def config(port: int, sensors: int, interval: float) -> str:
    lines = ["mqtt:", "  host: 127.0.0.1", f"  port: {port}", "  topic_prefix: mqttio",
             "sensor_modules:", "  - name: mock", "    module: mock", "sensor_inputs:"]
    for i in range(sensors):
        lines += [f"  - name: s{i}", "    module: mock", f"    interval: {interval:g}"]
    return "\n".join(lines) + "\n" + LOGGING


def _start(port: int, sensors: int, interval: float, wd: Path) -> subprocess.Popen[bytes]:
    interpreter = python()
    if interpreter is None:
        raise RuntimeError("mqtt-io is not installed (no .venv-mqttio; run `bash .ci/bench`)")
    path = wd / "mqttio.yml"
    path.write_text(config(port, sensors, interval))
    log = open(wd / "mqttio.log", "wb")  # noqa: SIM115 - the child keeps it
    return popen([interpreter, "-m", "mqtt_io", str(path)], env=dict(os.environ),
                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def _error(wd: Path, exc: BaseException) -> dict[str, Any]:
    tail = ""
    log = wd / "mqttio.log"
    if log.exists():
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    return {"error": f"mqtt-io could not run: {exc} {tail}".strip()}


def run_idle(port: int, sensors: int, interval: float, size: Size, wd: Path) -> dict[str, Any]:
    try:
        proc = _start(port, sensors, interval, wd)
    except Exception as exc:
        return _error(wd, exc)
    try:
        time.sleep(max(2.0, size.warmup))
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(size.idle)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        peak = rss_kib(proc.pid)
    except Exception as exc:
        return _error(wd, exc)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"cpu_percent": (c1 - c0) / (t1 - t0) * 100, "peak_rss_mib": peak / 1024,
            "version": version(python() or "")}


def run_scale(port: int, sensors: int, size: Size, wd: Path) -> dict[str, Any]:
    sub = Subscriber(port, ["mqttio/sensor/#"], wd, count_messages=True)
    try:
        t_spawn = time.monotonic()
        proc = _start(port, sensors, 1.0, wd)
    except Exception as exc:
        sub.finish()
        return _error(wd, exc)
    try:
        # Start-up: until its first reading arrives (validating a config of thousands of
        # sensors takes it a while), then a few seconds to settle.
        deadline = time.monotonic() + 300
        while sub.live()["readings"] == 0:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("no reading within 300 s of starting")
            time.sleep(0.2)
        first_reading = time.monotonic() - t_spawn
        time.sleep(max(5.0, size.warmup))
        c0, t0, r0 = cpu_seconds(proc.pid), time.monotonic(), sub.live()["readings"]
        time.sleep(size.scale_window)
        c1, t1, r1 = cpu_seconds(proc.pid), time.monotonic(), sub.live()["readings"]
        peak = rss_kib(proc.pid)
    except Exception as exc:
        sub.finish()
        return _error(wd, exc)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    sub.finish()
    rate = (r1 - r0) / (t1 - t0)
    return {"rate": rate, "lost_percent": max(0.0, (sensors - rate) / sensors * 100),
            "cpu_percent": (c1 - c0) / (t1 - t0) * 100, "peak_rss_mib": peak / 1024,
            "first_reading_s": first_reading}
