"""The baselines, each run as a process of its own so it is measured like the hub.

- ``naive``: the design pihub replaces: one thread per sensor, each publishing every
  reading as its own QoS 1 message (a one-record SenML pack with a seq) through one
  shared paho client, on the same poll grid as a sensor thread.
- ``ceiling``: the same batches the hub would send (packs of ``max_readings``, encoded
  beforehand by :func:`pihub.senml.encode_packs`) published straight from one paho
  client at QoS 1, as fast as paho takes them; nothing else in the process.
- ``bare``: paho publishes a small QoS 1 message stamped with ``"sent":time.time()``
  every ``period`` seconds: the floor under pihub's edge latency.
- ``idle``: an empty Python that imports paho and gpiozero, then sleeps.
- ``sensors``: pihub's own sensor side alone: ``threads`` :class:`pihub.sampler.SensorThread`
  on ``bench`` sensors feeding a :class:`pihub.readingqueue.ReadingQueue`, and one thread
  taking batches off it and throwing them away; nothing encoded, stored or sent.
- ``threads``: the floor under any one-thread-per-sensor design: ``threads`` bare Python
  threads on the same grid (skip missed slots, one lock wait per poll), each putting
  one tuple per poll on a ``queue.Queue``, and one thread draining it.

The last two print ``{"rate": readings/s, "cpu_us_per_reading": ...}`` measured over the
``duration`` after a ``warmup``, from inside the process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{time.time_ns()}",
                         protocol=mqtt.MQTTv5)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit("could not connect")
    return client


def naive(port: int, threads: int, interval: float, duration: float) -> None:
    client = _client(port, "naive")
    seqs = itertools.count(1)
    lock = threading.Lock()
    stop = threading.Event()
    topic = "bench/naive/readings"

    def sensor(name: str) -> None:
        start = time.monotonic()
        slot = 0
        value = 0.0
        while not stop.is_set():
            value += 0.25
            with lock:
                seq = next(seqs)
            payload = (f'[{{"bn":"naive/","bt":{time.time()!r},"n":"{name}","v":{value!r},'
                       f'"t":0,"seq":{seq}}}]')
            client.publish(topic, payload, qos=1)
            slot += 1
            stop.wait(max(0.0, start + slot * interval - time.monotonic()))

    workers = [threading.Thread(target=sensor, args=(f"s{i}",), daemon=True)
               for i in range(threads)]
    for worker in workers:
        worker.start()
    stop.wait(duration)
    stop.set()
    for worker in workers:
        worker.join()
    client.disconnect()
    client.loop_stop()


def ceiling(port: int, readings: int, per_pack: int, max_bytes: int) -> None:
    from pihub.readings import Reading
    from pihub.senml import encode_packs

    now = time.time()
    packs: list[bytes] = []
    seq = 1
    for start in range(0, readings, per_pack):
        batch = [Reading(f"s{(start + i) % 20}", 0.25 * (start + i), now + i * 1e-4, None)
                 for i in range(min(per_pack, readings - start))]
        packs += [p for _, _, p in encode_packs("ceiling", batch, seq, max_bytes)]
        seq += len(batch)
    client = _client(port, "ceiling")
    done = threading.Event()
    acked = [0]
    total = len(packs)

    def on_publish(*args: object) -> None:
        acked[0] += 1
        if acked[0] >= total:
            done.set()

    client.on_publish = on_publish
    print("ENCODED", flush=True)
    for payload in packs:
        client.publish("bench/ceiling/readings", payload, qos=1)
    done.wait(600)
    client.disconnect()
    client.loop_stop()


def bare(port: int, count: int, period: float) -> None:
    client = _client(port, "bare")
    due = time.monotonic() + 0.5
    pause = threading.Event()
    for i in range(count):
        due += period
        pause.wait(max(0.0, due - time.monotonic()))
        client.publish("bench/bare/edges", f'{{"sent":{time.time()!r},"seq":{i + 1}}}', qos=1)
    pause.wait(1.0)
    client.disconnect()
    client.loop_stop()


def idle(duration: float) -> None:
    import gpiozero  # noqa: F401

    print("READY", flush=True)
    threading.Event().wait(duration)


def _measure(count: list[int], warmup: float, duration: float) -> None:
    """Print the rate of ``count[0]`` and the process's CPU per unit over ``duration``."""
    time.sleep(warmup)
    n0, c0, t0 = count[0], time.process_time(), time.monotonic()
    time.sleep(duration)
    n1, c1, t1 = count[0], time.process_time(), time.monotonic()
    print(json.dumps({"rate": (n1 - n0) / (t1 - t0),
                      "cpu_us_per_reading": (c1 - c0) / max(1, n1 - n0) * 1e6}), flush=True)


def _run(workers: Sequence[threading.Thread], consume: Callable[[], None], taken: list[int],
         warmup: float, duration: float, stop: threading.Event) -> None:
    """Start the consumer and the workers, measure, then set ``stop``."""
    threading.Thread(target=consume, daemon=True).start()
    for worker in workers:
        worker.start()
    _measure(taken, warmup, duration)
    stop.set()


def sensors(threads: int, interval: float, warmup: float, duration: float) -> None:
    from benchmarks.hubchild import BenchOptions, BenchSensor
    from pihub.health import Health
    from pihub.readingqueue import ReadingQueue
    from pihub.sampler import SensorThread

    health = Health("sensors")
    q = ReadingQueue(10000)
    taken = [0]
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            taken[0] += len(q.take(100, 1000, 0.1))

    workers = [SensorThread(f"s{i}", interval, lambda i=i: BenchSensor(  # type: ignore[misc]
        f"s{i}", BenchOptions(), None), q, health) for i in range(threads)]
    _run(workers, consume, taken, warmup, duration, stop)
    for worker in workers:
        worker.stop()


def bare_threads(threads: int, interval: float, warmup: float, duration: float) -> None:
    q: queue.Queue[tuple[str, float, float]] = queue.Queue(10000)
    taken = [0]
    stop = threading.Event()

    def sensor(name: str) -> None:
        gate = threading.Lock()
        gate.acquire()
        start = time.monotonic()
        slot = 0
        value = 0.0
        while not stop.is_set():
            value += 0.25
            with contextlib.suppress(queue.Full):
                q.put((name, value, time.time()), timeout=interval)
            now = time.monotonic()
            slot = max(slot + 1, math.floor((now - start) / interval) + 1)
            gate.acquire(True, max(0.0, start + slot * interval - now))

    def consume() -> None:
        while not stop.is_set():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                continue
            with q.mutex:
                n = len(q.queue)
                q.queue.clear()
                q.not_full.notify_all()
            taken[0] += 1 + n

    workers = [threading.Thread(target=sensor, args=(f"s{i}",), daemon=True)
               for i in range(threads)]
    _run(workers, consume, taken, warmup, duration, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.baselines")
    parser.add_argument("what", choices=["naive", "ceiling", "bare", "idle",
                                               "sensors", "threads"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.0001)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--readings", type=int, default=100000)
    parser.add_argument("--per-pack", type=int, default=100)
    parser.add_argument("--max-bytes", type=int, default=65536)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--period", type=float, default=0.01)
    args = parser.parse_args(argv)
    if args.what == "naive":
        naive(args.port, args.threads, args.interval, args.duration)
    elif args.what == "ceiling":
        ceiling(args.port, args.readings, args.per_pack, args.max_bytes)
    elif args.what == "bare":
        bare(args.port, args.count, args.period)
    elif args.what == "sensors":
        sensors(args.threads, args.interval, args.warmup, args.duration)
    elif args.what == "threads":
        bare_threads(args.threads, args.interval, args.warmup, args.duration)
    else:
        idle(args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
