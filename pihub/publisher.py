"""The publisher thread: spool → MQTT, oldest first, deleted only when acknowledged.

It hands the broker link at most ``window`` batches at a time, in spool order. paho
keeps a QoS 1 message it was handed until the broker acknowledges it, re-sending it
after a reconnect, so the window bounds paho's memory through an outage of any length
while the backlog waits on disk. A batch leaves the spool only when its PUBACK arrives
with a reason code below 0x80; a refused batch stays in the spool and is tried again
later, and the refusal is logged and shown in health.

It also publishes the retained latest value of every record and the health document.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from pihub.health import Health
from pihub.readings import Reading, Value
from pihub.spool import Spool, StoredBatch
from pihub.threads import RateLimitedLog, StoppableThread
from pihub.topics import Topics

log = logging.getLogger("pihub.publisher")

#: Health is published at least this often (the contract asks for at least every 30 s).
HEALTH_EVERY = 15.0
#: The thread wakes at least this often, to notice sensors going stale.
TICK = 1.0
#: A batch the broker refused is offered again after this long (or after a reconnect).
RETRY_REFUSED_AFTER = 60.0
#: After this many refusals in a row with no success in between, the broker is refusing
#: everything (an ACL, a quota): offering stops for a while, doubling up to the cap,
#: instead of feeding a refuse-disconnect-reconnect loop.
REFUSALS_BEFORE_PAUSE = 3
PAUSE_FIRST = 5.0
PAUSE_CAP = 300.0


class Link(Protocol):
    """What the publisher needs of the broker connection (:class:`pihub.mqtt.MqttLink`)."""

    @property
    def connected(self) -> bool: ...

    @property
    def connect_count(self) -> int: ...

    def publish_batch(self, payload: bytes) -> int:
        """Queue ``payload`` at the configured QoS; its mid. ValueError if it is too big."""

    def publish_state(self, topic: str, payload: str | bytes) -> None: ...


def format_value(value: Value) -> str:
    """A record's value as the plain text of its retained ``sensor/N`` topic."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def reason_name(code: int) -> str:
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=code))
    except Exception:
        return f"reason code 0x{code:02x}"


class Publisher(StoppableThread):
    """Sends spooled batches through ``link`` and deletes them from ``spool`` on PUBACK."""

    def __init__(self, spool: Spool, link: Link, topics: Topics, health: Health, *,
                 window: int = 16) -> None:
        super().__init__(name="publisher")
        self._spool = spool
        self._link = link
        self._topics = topics
        self._health = health
        self._window = window
        # Guards everything below that other threads touch. Waiters: this thread (in
        # loop) and the supervisor (in wait_idle). Notifiers: paho's network thread
        # (ack, wake), the consumer thread (committed), the supervisor (stop).
        self._cond = threading.Condition()
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        self._latest: dict[str, Reading] = {}
        self._latest_dirty: set[str] = set()
        self._work = False
        self._idle = False
        # Owned by this thread alone.
        self._inflight: dict[int, StoredBatch] = {}
        self._cursor = 0  # the id of the last batch handed to the link
        self._refused: dict[int, tuple[float, StoredBatch]] = {}
        self._connect_count = -1  # link.connect_count when batches were last (re)offered
        self._state_connect_count = -1  # ... and when the retained state was last sent in full
        self._health_due = 0.0
        self._sensor_states: dict[str, str] = {}
        self._refusals = RateLimitedLog(log)
        self._refusal_streak = 0
        self._paused_until = 0.0
        self.beats = 0  # read by the watchdog: progress made

    # -- called from other threads -------------------------------------------------------

    def on_ack(self, mid: int, reason: int) -> None:
        """paho's network thread: the broker answered the publish ``mid``."""
        with self._cond:
            self._acks.append((mid, reason))
            self._cond.notify_all()

    def wake(self) -> None:
        """Any thread: something changed (a connect, a disconnect)."""
        with self._cond:
            self._work = True
            self._cond.notify_all()

    def committed(self, readings: list[Reading]) -> None:
        """The consumer thread: ``readings`` were accepted into the spool."""
        with self._cond:
            for reading in readings:
                self._latest[reading.name] = reading
                self._latest_dirty.add(reading.name)
            self._work = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the spool is empty and nothing is in flight; False on timeout."""
        self.wake()
        deadline = time.monotonic() + timeout
        with self._cond:
            return self._cond.wait_for(lambda: self._idle and not self._work,
                                       max(0.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wake()
        self.join(timeout)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- this thread -----------------------------------------------------------------------

    def loop(self) -> None:
        while not self.stopping.is_set():
            self.beats += 1
            with self._cond:
                self._cond.wait_for(lambda: self._acks or self._work or self.stopping.is_set(),
                                    TICK)
                acks = list(self._acks)
                self._acks.clear()
                self._work = False
            self._handle_acks(acks)
            # State first: after a reconnect, health tells why the last connection
            # ended before any batch can end this one (mosquitto 2.0 drops a client
            # right after refusing its publish).
            self._publish_state()
            self._send()
            with self._cond:
                self._idle = not self._inflight and self._spool.batches == 0
                self._cond.notify_all()

    def _handle_acks(self, acks: list[tuple[int, int]]) -> None:
        done: list[int] = []
        delivered = 0
        for mid, reason in acks:
            batch = self._inflight.pop(mid, None)
            if batch is None:
                continue  # not a batch of ours (status, discovery)
            if reason < 0x80:
                done.append(batch.id)
                delivered += batch.count
                self._refusal_streak = 0
            else:
                self._refuse(batch, reason)
        if done:
            self._spool.ack_many(done)
            self._health.add("published", delivered)

    def _refuse(self, batch: StoredBatch, reason: int) -> None:
        name = reason_name(reason)
        self._hold(batch, name)
        self._refusals.log(logging.ERROR,
                           "broker refused batch seq %d..%d (%s); it stays in the spool "
                           "and is offered again in %.0f s", batch.first_seq,
                           batch.last_seq, name, RETRY_REFUSED_AFTER)

    def _hold(self, batch: StoredBatch, reason: str) -> None:
        """Keep a refused batch aside (it stays in the spool) and count the refusal."""
        now = time.monotonic()
        self._refused[batch.id] = (now + RETRY_REFUSED_AFTER, batch)
        self._health.add("refused")
        self._health.refused_reason = reason
        self._refusal_streak += 1
        if self._refusal_streak >= REFUSALS_BEFORE_PAUSE:
            pause = min(PAUSE_CAP, PAUSE_FIRST * 2 ** (self._refusal_streak
                                                      - REFUSALS_BEFORE_PAUSE))
            self._paused_until = now + pause
            self._refusals.log(logging.ERROR, "the broker refused %d batches in a row (%s); "
                               "not offering any for %.0f s", self._refusal_streak, reason,
                               pause)

    def _send(self) -> None:
        link = self._link
        reconnected = link.connect_count != self._connect_count
        if reconnected:
            self._connect_count = link.connect_count
        now = time.monotonic()
        if now < self._paused_until:
            return
        for batch_id, (when, batch) in list(self._refused.items()):
            if len(self._inflight) >= self._window:
                return
            if reconnected or when <= now:
                del self._refused[batch_id]
                self._offer(batch)
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        for batch in self._spool.pending(self._cursor, room):
            self._cursor = batch.id
            self._offer(batch)

    def _offer(self, batch: StoredBatch) -> None:
        try:
            mid = self._link.publish_batch(batch.payload)
        except ValueError as exc:  # larger than the broker's Maximum Packet Size
            self._hold(batch, str(exc))
            self._refusals.log(logging.ERROR, "cannot publish batch seq %d..%d: %s; it stays "
                               "in the spool", batch.first_seq, batch.last_seq, exc)
            return
        self._inflight[mid] = batch

    def _publish_state(self) -> None:
        link = self._link
        if not link.connected:
            return
        resend_all = link.connect_count != self._state_connect_count
        with self._cond:
            names = list(self._latest) if resend_all else list(self._latest_dirty)
            self._latest_dirty.clear()
            values = [self._latest[name] for name in names]
        for reading in values:
            link.publish_state(self._topics.sensor(reading.name), format_value(reading.value))
        now = time.monotonic()
        states = self._health.sensor_states()
        if (resend_all or now >= self._health_due or self._health.changed.is_set()
                or states != self._sensor_states):
            self._health.changed.clear()
            self._sensor_states = states
            self._health_due = now + HEALTH_EVERY
            link.publish_state(self._topics.health, self.health_payload())
        self._state_connect_count = link.connect_count

    def health_payload(self) -> bytes:
        return json.dumps(self._health.snapshot(), separators=(",", ":")).encode()
