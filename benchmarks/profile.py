"""Where a running hub spends its time: CPU and context switches per thread, and an
optional py-spy profile of the GIL. What docs/PERFORMANCE.md's profiles come from.

    python -m benchmarks.profile --sensors 20 --interval 1 --seconds 30
    python -m benchmarks.profile --sensors 20 --interval 0.0001 --seconds 8 --py-spy out.txt

It starts a broker, the subscriber and the hub (``bench`` sensors on mock pins, as the
scenarios do), waits ``--warmup`` seconds, then measures for ``--seconds``. pihub names
its OS threads (``sensor-NAME``, ``consumer``, ``publisher``, ``paho-mqtt``), so the CPU
time of each comes from ``/proc/PID/task/*/schedstat``; sensor threads are summed under
``sensor-*``. With ``--py-spy`` (needs ``pip install py-spy``) the window is recorded
with ``py-spy record --gil`` instead: only samples of the thread holding the GIL.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Hub, Subscriber, bench_sensors, hub_config, new_broker, workdir

Counts = collections.Counter[tuple[str, str]]


def thread_counts(pid: int) -> Counts:
    """Run time (ns) and voluntary/involuntary context switches per thread name."""
    out: Counts = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/schedstat") as f:
                run_ns = int(f.read().split()[0])
            with open(f"{base}/status") as f:
                status = f.read()
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
        name = "sensor-*" if name.startswith("sensor-") else name
        out[(name, "ns")] += run_ns
        for key, field in (("vcs", "voluntary_ctxt_switches"),
                           ("ics", "nonvoluntary_ctxt_switches")):
            found = re.search(rf"^{field}:\s+(\d+)", status, re.M)
            out[(name, key)] += int(found.group(1)) if found else 0
    return out


def report(before: Counts, after: Counts, seconds: float, readings: int) -> str:
    names = sorted({name for name, _ in after},
                   key=lambda n: -(after[(n, "ns")] - before[(n, "ns")]))
    total = sum(after[(n, "ns")] - before[(n, "ns")] for n in names)
    lines = [f"{'thread':<16} {'% of a core':>11} {'µs/reading':>10} {'switches/s':>10}"]
    for name in names:
        ns = after[(name, "ns")] - before[(name, "ns")]
        switches = (after[(name, "vcs")] - before[(name, "vcs")]
                    + after[(name, "ics")] - before[(name, "ics")]) / seconds
        lines.append(f"{name:<16} {ns / 1e9 / seconds * 100:>10.3f}% "
                     f"{ns / 1e3 / max(1, readings):>10.2f} {switches:>10,.0f}")
    lines.append(f"{'total':<16} {total / 1e9 / seconds * 100:>10.3f}% "
                 f"{total / 1e3 / max(1, readings):>10.2f}")
    return "\n".join(lines)


def summarise_py_spy(path: Path, top: int = 30) -> str:
    """Share of GIL samples per thread and per function (inclusive) of a raw py-spy file."""
    total = 0
    threads: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[re.sub(r"\d+", "N", re.sub(r"\(.*?\)", "", frames[0]).strip())] += n
        for frame in {re.sub(r":\d+\)", ")", f) for f in frames[1:]}:
            funcs[frame] += n
    lines = [f"{total} samples holding the GIL"]
    lines += [f"{n / total * 100:5.1f}% {name}" for name, n in threads.most_common()]
    lines += ["-- functions (inclusive)"]
    lines += [f"{n / total * 100:5.1f}% {name}" for name, n in funcs.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.profile")
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--py-spy", metavar="FILE", help="record the window with py-spy")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples a second")
    args = parser.parse_args(argv)
    wd = workdir("profile")
    broker = new_broker(wd)
    try:
        config = hub_config(broker.port, wd / "state",
                            bench_sensors(args.sensors, args.interval), simulate=False)
        sub = Subscriber(broker.port, ["pihub/bench/readings"], wd)
        hub = Hub(wd, config)
        try:
            time.sleep(args.warmup)
            r0, c0, t0 = sub.live()["readings"], thread_counts(hub.pid), time.monotonic()
            if args.py_spy:
                spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
                subprocess.run([spy, "record", "--gil", "--threads", "-r", str(args.rate),
                                "-f", "raw", "-d", str(int(args.seconds)), "-p", str(hub.pid),
                                "-o", args.py_spy], check=True, capture_output=True)
            else:
                time.sleep(args.seconds)
            r1, c1, t1 = sub.live()["readings"], thread_counts(hub.pid), time.monotonic()
            rss = hub.sample_rss() / 1024
        finally:
            hub.stop()
            sub.finish()
    finally:
        broker.close()
    readings = r1 - r0
    print(f"{args.sensors} sensors every {args.interval} s: {readings / (t1 - t0):,.0f} "
          f"readings/s delivered, peak RSS {rss:.1f} MiB")
    print(report(c0, c1, t1 - t0, readings))
    if args.py_spy:
        print(summarise_py_spy(Path(args.py_spy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
