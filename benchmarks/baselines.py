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
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.baselines")
    parser.add_argument("what", choices=["naive", "ceiling", "bare", "idle"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.0001)
    parser.add_argument("--duration", type=float, default=10.0)
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
    else:
        idle(args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
