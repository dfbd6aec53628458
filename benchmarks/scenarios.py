"""The scenarios of issue 6, each with its baseline in the same run.

Every scenario takes a :class:`Size` (how long, how many) and returns a :class:`Result`:
the figures, the rows of the summary table (measure, pihub, baseline, target, met), and
the raw details kept in the JSON file.
"""

from __future__ import annotations

import bisect
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import mqttio
from benchmarks.common import (
    PYTHON,
    ROOT,
    Hub,
    NotifySocket,
    Subscriber,
    _env,
    bench_sensors,
    cpu_seconds,
    hub_config,
    new_broker,
    percentile,
    popen,
    rss_kib,
    spool_state,
    workdir,
)

TOPIC = "pihub/bench/readings"


@dataclass(frozen=True)
class Size:
    """How big a run is: ``smoke`` (the tests), ``default``, or ``full`` (the documented run)."""

    name: str
    window: float  # seconds measured in throughput-like scenarios
    warmup: float
    edges: int
    idle: float
    scale_sensors: int
    scale_window: float
    schedule: float
    backlog: int
    growth_window: float
    growth_sensors: tuple[int, ...]
    growth_rates: tuple[int, ...]
    startstop_runs: int
    mqttio: bool


SMOKE = Size("smoke", window=1.0, warmup=0.5, edges=30, idle=1.0, scale_sensors=100,
             scale_window=1.0, schedule=1.5, backlog=5000, growth_window=1.0,
             growth_sensors=(1, 10), growth_rates=(100,), startstop_runs=1, mqttio=False)
DEFAULT = Size("default", window=15, warmup=3, edges=1000, idle=60, scale_sensors=4000,
               scale_window=60, schedule=60, backlog=1_000_000, growth_window=10,
               growth_sensors=(1, 10, 100, 1000), growth_rates=(10, 100, 1000, 10000),
               startstop_runs=5, mqttio=True)
FULL = Size(**{**DEFAULT.__dict__, "name": "full", "schedule": 600.0})


@dataclass
class Row:
    scenario: str
    measure: str
    pihub: str
    baseline: str
    target: str
    met: bool | None


@dataclass
class Result:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def row(self, measure: str, pihub: str, baseline: str = "—", target: str = "—",
            met: bool | None = None) -> None:
        self.rows.append(Row(self.name, measure, pihub, baseline, target, met))


def _yes(ok: bool) -> bool:
    return bool(ok)


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


# -- throughput --------------------------------------------------------------------------

THROUGHPUT_SENSORS = 20
THROUGHPUT_INTERVAL = 0.0001  # 10 kHz asked of each: more than the hub can take


def _run_hub_window(wd: Path, config: str, size: Size, *, port: int,
                    topic: str = TOPIC) -> dict[str, Any]:
    """Start a hub, measure delivered/s and CPU over a window, stop it, check completeness."""
    sub = Subscriber(port, [topic], wd)
    hub = Hub(wd, config)
    try:
        time.sleep(size.warmup)
        c0, t0, r0 = hub.cpu(), time.monotonic(), sub.live()["readings"]
        time.sleep(size.window)
        c1, t1, r1 = hub.cpu(), time.monotonic(), sub.live()["readings"]
        hub.sample_rss()
        stop_s = hub.stop()
    except BaseException:
        hub.kill()
        sub.finish()
        raise
    spooled, next_seq = spool_state(hub.state_dir)
    sub.wait_for(1 << 62, quiet=1.5)
    summary = sub.finish()
    delivered = r1 - r0
    issued = next_seq - summary["first_seq"] if summary["first_seq"] is not None else 0
    return {
        "rate": delivered / (t1 - t0),
        "cpu_us_per_reading": (c1 - c0) / max(1, delivered) * 1e6,
        "cpu_percent": (c1 - c0) / (t1 - t0) * 100,
        "peak_rss_mib": hub.peak_kib / 1024,
        "stop_s": stop_s,
        "issued": issued,
        "unique": summary["unique"],
        "duplicates": summary["duplicates"],
        "lost": issued - summary["unique"] - spooled,
        "spooled_after_stop": spooled,
        "gaps": summary["gaps"],
        "bad_packs": summary["bad_packs"],
    }


def throughput(size: Size) -> Result:
    result = Result("throughput")
    wd = workdir("throughput")
    broker = new_broker(wd)
    try:
        config = hub_config(broker.port, wd / "state",
                            bench_sensors(THROUGHPUT_SENSORS, THROUGHPUT_INTERVAL), simulate=False)
        hub = _run_hub_window(wd, config, size, port=broker.port)
        naive = _naive(broker.port, size, wd)
        ceiling = _ceiling(broker.port, size, wd, hub["rate"])
    finally:
        broker.close()
    sensors = _in_process_baseline("sensors", size)
    threads = _in_process_baseline("threads", size)
    result.details = {"hub": hub, "naive": naive, "ceiling": ceiling,
                      "sensor_side": sensors, "bare_threads": threads,
                      "sensors": THROUGHPUT_SENSORS, "interval": THROUGHPUT_INTERVAL}
    rate = hub["rate"]
    result.row("readings/s confirmed at the subscriber", _fmt(rate),
               f"(a) naive {_fmt(naive['rate'])}; (b) ceiling {_fmt(ceiling['rate'])}",
               "≥ 100,000", rate >= 100_000)
    result.row("x naive (a)", f"{rate / max(naive['rate'], 1):.1f}x", "", "≥ 10x",
               rate >= 10 * naive["rate"])
    result.row("x ceiling (b)", f"{rate / max(ceiling['rate'], 1):.2f}x", "", "≥ 0.5x",
               rate >= 0.5 * ceiling["rate"])
    result.row("CPU µs per reading (hub process)", _fmt(hub["cpu_us_per_reading"], 1),
               f"(a) {_fmt(naive['cpu_us_per_reading'], 1)}; "
               f"(b) {_fmt(ceiling['cpu_us_per_reading'], 1)}")
    result.row("accepted readings lost", str(hub["lost"]), "", "0", hub["lost"] == 0)
    result.row("x the design's floor: its sensor threads alone (c), bare threads (d)",
               f"{rate / max(sensors['rate'], 1):.2f}x",
               f"(c) {_fmt(sensors['rate'])}/s, {_fmt(sensors['cpu_us_per_reading'], 1)} µs; "
               f"(d) {_fmt(threads['rate'])}/s, {_fmt(threads['cpu_us_per_reading'], 1)} µs",
               "—", None)
    return result


def _in_process_baseline(what: str, size: Size) -> dict[str, Any]:
    """``baselines.py sensors|threads`` on the throughput scenario's sensors: no broker,
    it measures itself and prints one JSON line."""
    proc = popen([PYTHON, "-m", "benchmarks.baselines", what, "--threads",
                  str(THROUGHPUT_SENSORS), "--interval", str(THROUGHPUT_INTERVAL),
                  "--warmup", str(size.warmup), "--duration", str(size.window)],
                 stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=size.warmup + size.window + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"baselines.py {what} failed (exit {proc.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _naive(port: int, size: Size, wd: Path) -> dict[str, Any]:
    sub = Subscriber(port, ["bench/naive/readings"], wd)
    duration = size.warmup + size.window
    proc = popen([PYTHON, "-m", "benchmarks.baselines", "naive", "--port", str(port),
                             "--threads", str(THROUGHPUT_SENSORS), "--interval",
                             str(THROUGHPUT_INTERVAL), "--duration", str(duration)],
                            )
    try:
        time.sleep(size.warmup)
        c0, t0, r0 = cpu_seconds(proc.pid), time.monotonic(), sub.live()["readings"]
        time.sleep(size.window)
        c1, t1, r1 = cpu_seconds(proc.pid), time.monotonic(), sub.live()["readings"]
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.finish()
    return {"rate": (r1 - r0) / (t1 - t0),
            "cpu_us_per_reading": (c1 - c0) / max(1, r1 - r0) * 1e6}


def _ceiling(port: int, size: Size, wd: Path, hub_rate: float) -> dict[str, Any]:
    # Enough readings to keep paho busy for about the window at the hub's own rate or more.
    readings = int(max(20_000, min(2_000_000, max(hub_rate, 20_000) * size.window)))
    sub = Subscriber(port, ["bench/ceiling/readings"], wd)
    proc = popen([PYTHON, "-m", "benchmarks.baselines", "ceiling", "--port",
                             str(port), "--readings", str(readings)],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # ENCODED: publishing starts now
        c0 = cpu_seconds(proc.pid)
        t0 = time.time()
        c1 = c0
        while proc.poll() is None:
            try:
                c1 = cpu_seconds(proc.pid)
            except OSError:
                break
            time.sleep(0.05)
        proc.wait(600)
        sub.wait_for(readings, quiet=2.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        summary = sub.finish()
    elapsed = max(1e-6, summary["last_at"] - t0)
    return {"readings": readings, "received": summary["unique"],
            "rate": summary["unique"] / elapsed,
            "cpu_us_per_reading": (c1 - c0) / max(1, summary["unique"]) * 1e6}


# -- edge latency -------------------------------------------------------------------------

EDGE_PERIOD = 0.01


def edge_latency(size: Size) -> Result:
    result = Result("edge latency")
    wd = workdir("edges")
    broker = new_broker(wd)
    stamps_file = wd / "edges.txt"
    try:
        sensors = ("[sensor:door]\ntype = digital\npin = GPIO17\ninterval = 3600\n")
        config = hub_config(broker.port, wd / "state", sensors)
        sub = Subscriber(broker.port, [TOPIC], wd, times=True)
        hub = Hub(wd, config, args=["--edges", f"17,{size.edges},{EDGE_PERIOD},{stamps_file}"])
        try:
            deadline = time.monotonic() + 30 + size.edges * EDGE_PERIOD
            while not stamps_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            sub.wait_for(size.edges + 1, quiet=1.0, timeout=10)
            hub.stop()
        finally:
            hub.kill()
            summary = sub.finish()
        stamps = [float(x) for x in stamps_file.read_text().split()]
        latencies = []
        for stamped, received in summary["receipts"]:
            # The record's time was stamped in gpiozero's callback, just after the drive
            # this edge came from: the latest drive at or before it.
            i = bisect.bisect_right(stamps, stamped) - 1
            if i >= 0 and stamped - stamps[i] < EDGE_PERIOD:
                latencies.append((received - stamps[i]) * 1000)
        bare = _bare(broker.port, size, wd)
    finally:
        broker.close()
    p50, p99, top = (percentile(latencies, 50), percentile(latencies, 99),
                     max(latencies) if latencies else float("nan"))
    result.details = {"edges": len(stamps), "matched": len(latencies), "p50_ms": p50,
                      "p99_ms": p99, "max_ms": top, "bare": bare}
    result.row(f"p50 / p99 / max ms (over {len(latencies)} edges)",
               f"{p50:.2f} / {p99:.2f} / {top:.2f}",
               f"bare paho {bare['p50_ms']:.2f} / {bare['p99_ms']:.2f} / {bare['max_ms']:.2f}",
               "p99 ≤ 5 ms", p99 <= 5.0 and len(latencies) >= min(1000, size.edges))
    return result


def _bare(port: int, size: Size, wd: Path) -> dict[str, Any]:
    sub = Subscriber(port, ["bench/bare/edges"], wd, times=True)
    subprocess.run([PYTHON, "-m", "benchmarks.baselines", "bare", "--port", str(port),
                    "--count", str(size.edges), "--period", str(EDGE_PERIOD)],
                   cwd=ROOT, env=_env(), check=True, timeout=60 + size.edges * EDGE_PERIOD)
    sub.wait_for(size.edges, quiet=1.0, timeout=10)
    summary = sub.finish()
    lat = [(received - sent) * 1000 for sent, received in summary["receipts"]]
    return {"count": len(lat), "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else float("nan")}


# -- idle cost ----------------------------------------------------------------------------

IDLE_SENSORS = 20


def idle(size: Size) -> Result:
    result = Result("idle cost")
    wd = workdir("idle")
    broker = new_broker(wd)
    try:
        config = hub_config(broker.port, wd / "state", bench_sensors(IDLE_SENSORS, 1.0),
                            simulate=False)
        sub = Subscriber(broker.port, [TOPIC], wd)
        hub = Hub(wd, config)
        try:
            time.sleep(max(1.0, size.warmup))
            c0, t0 = hub.cpu(), time.monotonic()
            _watch_rss(hub.pid, size.idle)
            c1, t1 = hub.cpu(), time.monotonic()
            hub.sample_rss()
            hub.stop()
        finally:
            hub.kill()
            summary = sub.finish()
        pihub = {"cpu_percent": (c1 - c0) / (t1 - t0) * 100, "peak_rss_mib": hub.peak_kib / 1024,
                 "readings": summary["unique"]}
        empty = _empty_python(size)
        peer = mqttio.run_idle(broker.port, IDLE_SENSORS, 1.0, size, wd) if size.mqttio else None
    finally:
        broker.close()
    result.details = {"pihub": pihub, "empty_python": empty, "mqtt_io": peer}
    peer_cpu = "not run" if peer is None else (peer.get("error") or
                                              f"mqtt-io {peer['cpu_percent']:.2f} %")
    peer_rss = "not run" if peer is None else (peer.get("error") or
                                              f"mqtt-io {peer['peak_rss_mib']:.1f} MiB")
    result.row(f"CPU % of one core ({IDLE_SENSORS} sensors at 1 Hz, {size.idle:.0f} s)",
               f"{pihub['cpu_percent']:.2f} %",
               f"empty Python {empty['cpu_percent']:.2f} %; {peer_cpu}", "≤ 0.25 %",
               pihub["cpu_percent"] <= 0.25)
    result.row("peak RSS", f"{pihub['peak_rss_mib']:.1f} MiB",
               f"empty Python {empty['peak_rss_mib']:.1f} MiB; {peer_rss}", "≤ 30 MB",
               pihub["peak_rss_mib"] * 1.048576 <= 30)
    return result


def _watch_rss(pid: int, duration: float) -> int:
    """Sleep ``duration``, sampling the peak RSS (VmHWM is the kernel's own peak)."""
    time.sleep(duration)
    return rss_kib(pid)


def _empty_python(size: Size) -> dict[str, Any]:
    proc = popen([PYTHON, "-m", "benchmarks.baselines", "idle", "--duration",
                             str(size.idle + 5)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(size.idle)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        peak = rss_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return {"cpu_percent": (c1 - c0) / (t1 - t0) * 100, "peak_rss_mib": peak / 1024}


# -- scale --------------------------------------------------------------------------------


def scale(size: Size) -> Result:
    result = Result("scale")
    n = size.scale_sensors
    wd = workdir("scale")
    broker = new_broker(wd)
    notify = NotifySocket(wd)
    try:
        config = hub_config(broker.port, wd / "state", bench_sensors(n, 1.0), simulate=False)
        sub = Subscriber(broker.port, [TOPIC], wd)
        t_spawn = time.monotonic()
        hub = Hub(wd, config, env={"NOTIFY_SOCKET": notify.path})
        try:
            ready = notify.wait_ready(120) - t_spawn
            time.sleep(max(2.0, size.warmup))
            c0, t0, r0 = hub.cpu(), time.monotonic(), sub.live()["readings"]
            time.sleep(size.scale_window)
            c1, t1, r1 = hub.cpu(), time.monotonic(), sub.live()["readings"]
            hub.sample_rss()
            hub.stop(120)
        finally:
            hub.kill()
        spooled, next_seq = spool_state(hub.state_dir)
        sub.wait_for(1 << 62, quiet=2.0)
        summary = sub.finish()
        issued = next_seq - (summary["first_seq"] or next_seq)
        pihub = {"sensors": n, "ready_s": ready, "rate": (r1 - r0) / (t1 - t0),
                 "cpu_percent": (c1 - c0) / (t1 - t0) * 100, "peak_rss_mib": hub.peak_kib / 1024,
                 "issued": issued, "unique": summary["unique"],
                 "lost": issued - summary["unique"] - spooled,
                 "dropped_before_accept": _dropped(hub.log)}
        peer = mqttio.run_scale(broker.port, n, size, wd) if size.mqttio else None
    finally:
        notify.close()
        broker.close()
    result.details = {"pihub": pihub, "mqtt_io": peer}
    peer_text = "not run" if peer is None else (peer.get("error") or (
        f"mqtt-io {_fmt(peer['rate'])}/s, lost {peer['lost_percent']:.1f} %, "
        f"first reading {peer['first_reading_s']:.1f} s after start, "
        f"RSS {peer['peak_rss_mib']:.0f} MiB"))
    expected = float(n)
    result.row(f"readings/s delivered ({n} sensors at 1 Hz, {size.scale_window:.0f} s)",
               _fmt(pihub["rate"]), peer_text, f"{n:,}/s",
               pihub["rate"] >= 0.99 * expected)
    result.row("accepted readings lost; readings dropped before acceptance",
               f"{pihub['lost']}; {pihub['dropped_before_accept']}", "", "0",
               pihub["lost"] == 0 and pihub["dropped_before_accept"] == 0)
    result.row("start-up (spawn → READY)", f"{ready:.2f} s", "", "≤ 5 s", ready <= 5.0)
    result.row("peak RSS", f"{pihub['peak_rss_mib']:.0f} MiB", "", "≤ 150 MB",
               pihub["peak_rss_mib"] * 1.048576 <= 150)
    return result


def _dropped(log: Path) -> int:
    """Readings the hub said it dropped (queue full) in its log."""
    import re

    total = 0
    for m in re.finditer(r"queue full: (\d+) readings dropped", log.read_text(errors="replace")):
        total += int(m.group(1))
    return total


# -- schedule -----------------------------------------------------------------------------


def schedule(size: Size) -> Result:
    result = Result("schedule")
    wd = workdir("schedule")
    broker = new_broker(wd)
    polls = wd / "polls"
    interval = 0.1
    try:
        config = hub_config(broker.port, wd / "state", bench_sensors(1, interval), simulate=False)
        hub = Hub(wd, config, env={"PIHUB_BENCH_POLLS": str(polls)})
        try:
            time.sleep(size.schedule + 1.0)
            hub.stop()
        finally:
            hub.kill()
    finally:
        broker.close()
    times = [float(x) for x in Path(f"{polls}.s0").read_text().split()]
    start = times[0]
    dev = [(t - (start + k * interval)) * 1000 for k, t in enumerate(times)]
    absdev = [abs(d - dev[0]) for d in dev]
    tenth = max(1, len(dev) // 10)
    drift = statistics.median(dev[-tenth:]) - statistics.median(dev[:tenth])
    p99, top = percentile(absdev, 99), max(absdev)
    result.details = {"polls": len(times), "seconds": size.schedule, "p99_ms": p99,
                      "max_ms": top, "drift_ms": drift, "p50_ms": percentile(absdev, 50)}
    result.row(f"deviation from the grid, p99 / max ({len(times)} polls at 10 Hz, "
               f"{size.schedule / 60:.1f} min)", f"{p99:.3f} / {top:.3f} ms", "", "p99 ≤ 1 ms",
               p99 <= 1.0)
    result.row("drift (median deviation, last tenth - first tenth)", f"{drift:+.3f} ms", "",
               "no drift", abs(drift) < 0.5)
    return result


# -- backlog ------------------------------------------------------------------------------


def backlog(size: Size, throughput_rate: float | None) -> Result:
    from pihub.readings import Reading
    from pihub.spool import Spool

    result = Result("backlog")
    wd = workdir("backlog")
    state = wd / "state"
    state.mkdir()
    n = size.backlog
    t_fill = time.monotonic()
    with Spool(state / "spool.db", hub_id="bench", max_bytes=1 << 34,
               synchronous="NORMAL") as spool:
        now = time.time()
        first_seq = spool.next_seq
        for start in range(0, n, 100):
            spool.append([Reading(f"s{i % 20}", 0.25 * i, now + i * 1e-4, None)
                          for i in range(start, min(n, start + 100))])
    fill_s = time.monotonic() - t_fill
    broker = new_broker(wd)
    try:
        sub = Subscriber(broker.port, [TOPIC], wd)
        # One slow sensor, so the hub has a config to run; its few readings count too.
        config = hub_config(broker.port, state, bench_sensors(1, 3600.0), simulate=False)
        t0 = time.time()
        hub = Hub(wd, config)
        try:
            sub.wait_for(n, quiet=10.0, timeout=3600)
            c1 = hub.cpu()
            hub.sample_rss()
            hub.stop()
        finally:
            hub.kill()
        summary = sub.finish()
    finally:
        broker.close()
    got = summary["unique"]
    complete = summary["first_seq"] == first_seq and summary["gaps"] == 0 and got >= n
    elapsed = summary["last_at"] - t0
    rate = n / elapsed if elapsed > 0 else 0.0
    result.details = {"readings": n, "fill_s": fill_s, "received": got, "complete": complete,
                      "seconds": elapsed, "rate": rate, "cpu_s": c1,
                      "cpu_us_per_reading": c1 / n * 1e6, "peak_rss_mib": hub.peak_kib / 1024}
    base = "—" if throughput_rate is None else f"throughput scenario {_fmt(throughput_rate)}/s"
    result.row(f"readings/s until {n:,} spooled readings are delivered (from hub start)",
               _fmt(rate), base, "≥ 200,000", rate >= 200_000)
    result.row("all delivered, in seq order, no gap", "yes" if complete else
               f"NO ({got} of {n}, {summary['gaps']} gaps)", "", "yes", complete)
    return result


# -- start and stop -----------------------------------------------------------------------

STARTSTOP_SENSORS = """
[sensor:door]
type = digital
pin = GPIO17
interval = 1

[sensor:cpu]
type = cpu_temperature
interval = 1

[sensor:climate]
type = bme280
interval = 1
"""


def start_stop(size: Size) -> Result:
    result = Result("start and stop")
    readies: list[float] = []
    stops: list[float] = []
    bases: list[float] = []
    wd = workdir("startstop")
    broker = new_broker(wd)
    try:
        for i in range(size.startstop_runs):
            t = time.monotonic()
            subprocess.run([PYTHON, "-c", "import paho.mqtt.client, gpiozero"], check=True,
                           env=_env())
            bases.append(time.monotonic() - t)
            run_dir = wd / f"run{i}"
            run_dir.mkdir()
            notify = NotifySocket(run_dir)
            config = hub_config(broker.port, run_dir / "state", STARTSTOP_SENSORS)
            (run_dir / "config.ini").write_text(config)
            t = time.monotonic()
            proc = popen([PYTHON, "-m", "pihub", "run", "-c",
                          str(run_dir / "config.ini")],
                         env={**_env(), "NOTIFY_SOCKET": notify.path},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                readies.append(notify.wait_ready(30) - t)
                time.sleep(1.0)  # connected, a poll or two published: nothing spooled
                t = time.monotonic()
                proc.terminate()
                proc.wait(30)
                stops.append(time.monotonic() - t)
            finally:
                if proc.poll() is None:
                    proc.kill()
                notify.close()
    finally:
        broker.close()
    ready, stop, base = (statistics.median(readies), statistics.median(stops),
                         statistics.median(bases))
    result.details = {"ready_s": readies, "stop_s": stops, "baseline_s": bases}
    result.row(f"`pihub run` → READY (median of {len(readies)})",
               f"{ready:.3f} s (+{ready - base:.3f} s)",
               f"`python -c \"import paho, gpiozero\"` {base:.3f} s",
               "≤ baseline + 0.5 s", ready <= base + 0.5)
    result.row("SIGTERM → exit (no backlog)", f"{stop:.3f} s", "", "≤ 0.3 s", stop <= 0.3)
    return result


# -- growth -------------------------------------------------------------------------------


def growth(size: Size) -> Result:
    result = Result("growth")
    cells: list[dict[str, Any]] = []
    for rate in size.growth_rates:
        for n in size.growth_sensors:
            interval = n / rate
            if interval > 10 or interval < 1e-4:
                continue
            wd = workdir("growth")
            broker = new_broker(wd)
            try:
                config = hub_config(broker.port, wd / "state", bench_sensors(n, interval),
                                    simulate=False)
                sub = Subscriber(broker.port, [TOPIC], wd)
                hub = Hub(wd, config)
                try:
                    time.sleep(max(size.warmup, min(interval * 1.5, 12)))
                    c0, t0, r0 = hub.cpu(), time.monotonic(), sub.live()["readings"]
                    time.sleep(size.growth_window)
                    c1, t1, r1 = hub.cpu(), time.monotonic(), sub.live()["readings"]
                    hub.sample_rss()
                    hub.stop()
                finally:
                    hub.kill()
                    sub.finish()
            finally:
                broker.close()
            cells.append({"sensors": n, "rate": rate, "delivered": (r1 - r0) / (t1 - t0),
                          "cpu_percent": (c1 - c0) / (t1 - t0) * 100,
                          "peak_rss_mib": hub.peak_kib / 1024})
    result.details = {"cells": cells}
    for cell in cells:
        result.row(f"{cell['sensors']} sensors, {cell['rate']:,}/s total",
                   f"CPU {cell['cpu_percent']:.1f} %, RSS {cell['peak_rss_mib']:.0f} MiB, "
                   f"delivered {_fmt(cell['delivered'])}/s", "",
                   "CPU ∝ rate, flat in sensors; RSS bounded")
    return result


SCENARIOS = ("throughput", "edge", "idle", "scale", "schedule", "backlog", "startstop",
             "growth")


def run(names: list[str], size: Size, log: Any = sys.stderr) -> list[Result]:
    results: list[Result] = []
    throughput_rate: float | None = None
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ({size.name})…", file=log, flush=True)
        t = time.monotonic()
        if name == "throughput":
            r = throughput(size)
            throughput_rate = r.details["hub"]["rate"]
        elif name == "edge":
            r = edge_latency(size)
        elif name == "idle":
            r = idle(size)
        elif name == "scale":
            r = scale(size)
        elif name == "schedule":
            r = schedule(size)
        elif name == "backlog":
            r = backlog(size, throughput_rate)
        elif name == "startstop":
            r = start_stop(size)
        elif name == "growth":
            r = growth(size)
        else:
            raise ValueError(f"no scenario {name!r}; there are {', '.join(SCENARIOS)}")
        r.details["wall_s"] = time.monotonic() - t
        results.append(r)
        for row in r.rows:
            print(f"    {row.measure}: {row.pihub}  [{row.baseline}]  target {row.target} "
                  f"{'' if row.met is None else ('MET' if row.met else 'NOT MET')}",
                  file=log, flush=True)
    return results
