"""The independent subscriber: a process of its own that counts what arrived.

``python -m benchmarks.subscriber --port P --topic T --out FILE`` subscribes (MQTT 5,
QoS 1), prints ``READY`` once the broker confirmed the subscription, and on SIGTERM
writes what it saw to FILE as JSON and exits. It decodes nothing it does not need:
``seq`` values are found with a regular expression, so it keeps up with a hub at full
speed on the same two cores.

Recorded per message: receipt time (``time.time()``), the number of ``seq`` values and
their first and last (a pack's seqs are contiguous; the summary checks that), and for
latency runs the first record's ``t``/``bt``-resolved stamp is not needed: the sender's
own stamp travels in the payload as ``"sent":<float>`` when it has one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

SEQ = re.compile(rb'"seq":(\d+)')
SENT = re.compile(rb'"sent":([0-9.]+)')
VALUE_TIME = re.compile(rb'"bt":([0-9.]+)')


class Counter:
    def __init__(self, keep_times: bool, count_messages: bool = False) -> None:
        self.count_messages = count_messages
        self.lock = threading.Lock()
        self.messages = 0
        self.readings = 0
        self.bad_packs = 0  # packs whose seqs are not contiguous
        self.ranges: list[tuple[int, int]] = []
        self.buckets: dict[int, int] = {}  # whole second of receipt -> readings
        self.first_at = 0.0
        self.last_at = 0.0
        self.keep_times = keep_times
        self.receipts: list[tuple[float, float]] = []  # (sent or bt, received)

    def on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        payload = msg.payload
        seqs = SEQ.findall(payload)
        with self.lock:
            self.messages += 1
            if not self.first_at:
                self.first_at = now
            self.last_at = now
            if seqs:
                first, last = int(seqs[0]), int(seqs[-1])
                if last - first + 1 != len(seqs):
                    self.bad_packs += 1
                self.ranges.append((first, last))
                self.readings += len(seqs)
                sec = int(now)
                self.buckets[sec] = self.buckets.get(sec, 0) + len(seqs)
            elif self.count_messages:
                self.readings += 1
                sec = int(now)
                self.buckets[sec] = self.buckets.get(sec, 0) + 1
            if self.keep_times:
                m = SENT.search(payload) or VALUE_TIME.search(payload)
                if m:
                    self.receipts.append((float(m.group(1)), now))

    def summary(self) -> dict[str, Any]:
        with self.lock:
            ranges = sorted(self.ranges)
            unique = 0
            gaps: list[tuple[int, int]] = []
            top = None
            for first, last in ranges:
                if top is None:
                    unique += last - first + 1
                    top = last
                    continue
                if first > top + 1:
                    gaps.append((top + 1, first - 1))
                if last > top:
                    unique += last - max(first, top + 1) + 1
                    top = last
            return {
                "messages": self.messages,
                "readings": self.readings,
                "unique": unique,
                "duplicates": self.readings - unique,
                "first_seq": ranges[0][0] if ranges else None,
                "last_seq": top,
                "gaps": len(gaps),
                "missing": sum(b - a + 1 for a, b in gaps),
                "gap_sample": gaps[:5],
                "bad_packs": self.bad_packs,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "buckets": sorted(self.buckets.items()),
                "receipts": self.receipts,
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.subscriber")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--times", action="store_true", help="keep each message's latency")
    parser.add_argument("--count-messages", action="store_true",
                        help="a message without seqs counts as one reading (mqtt-io)")
    args = parser.parse_args(argv)
    counter = Counter(args.times, args.count_messages)
    subscribed = threading.Event()
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{time.time_ns()}",
                         protocol=mqtt.MQTTv5)

    def on_connect(c: mqtt.Client, u: Any, f: mqtt.ConnectFlags, rc: ReasonCode,
                   p: Properties | None) -> None:
        c.subscribe([(t, 1) for t in args.topic])

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode],
                     p: Properties | None) -> None:
        subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = counter.on_message
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    client.connect("127.0.0.1", args.port, keepalive=60)
    client.loop_start()
    if not subscribed.wait(10):
        print("could not subscribe", file=sys.stderr)
        return 1
    print("READY", flush=True)
    live = args.out + ".live"
    # A progress file the runner polls to know when everything it expects has arrived.
    while not done.wait(0.2):
        with counter.lock:
            state = {"readings": counter.readings, "messages": counter.messages,
                     "last_at": counter.last_at}
        with open(live + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(live + ".tmp", live)
    client.disconnect()
    client.loop_stop()
    with open(args.out, "w") as out:
        json.dump(counter.summary(), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
