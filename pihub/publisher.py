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
from dataclasses import dataclass, field
from typing import Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from pihub.health import OK, STALE, STALE_INTERVALS, Health
from pihub.readings import Reading, Value
from pihub.senml import split_pack
from pihub.spool import Spool, StoredBatch
from pihub.threads import RateLimitedLog, StoppableThread
from pihub.topics import Topics

log = logging.getLogger("pihub.publisher")

#: Health is published at least this often (the contract asks for at least every 30 s).
HEALTH_EVERY = 15.0
#: The thread wakes at least this often, to notice sensors going stale.
TICK = 1.0
#: Sensor states are computed at most this often (and whenever one changes by itself).
SENSOR_STATES_EVERY = 1.0
#: A record's retained latest value is published at most this often (edges at once).
STATE_EVERY = 1.0
#: A batch the broker refused is offered again after this long (or after a reconnect).
RETRY_REFUSED_AFTER = 60.0
#: After this many refusals in a row with no success in between, the broker is refusing
#: everything (an ACL, a quota): offering stops for a while, doubling up to the cap,
#: instead of feeding a refuse-disconnect-reconnect loop.
REFUSALS_BEFORE_PAUSE = 3
PAUSE_FIRST = 5.0
PAUSE_CAP = 300.0


#: A batch that was the oldest in flight when this many connections ended makes every
#: pack from then on half as big, and each further such end halves it again: a pack the
#: broker closes the connection over (mosquitto does past its message_size_limit, which
#: it does not announce) must not block the spool for ever.
SPLIT_AFTER_DROPS = 2
MIN_PACK_BYTES = 256
#: Bytes a PUBLISH packet adds to its topic and payload (fixed header, lengths, mid,
#: an empty property block), for the broker's Maximum Packet Size.
PUBLISH_OVERHEAD = 12


@dataclass(eq=False)
class _Flight:
    """One spooled batch on its way: the mids of its parts not yet answered."""

    batch: StoredBatch
    mids: set[int] = field(default_factory=set)
    refusal: str | None = None


class Link(Protocol):
    """What the publisher needs of the broker connection (:class:`pihub.mqtt.MqttLink`)."""

    @property
    def connected(self) -> bool: ...

    @property
    def connect_count(self) -> int: ...

    @property
    def max_packet_size(self) -> int | None: ...

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
        self._flights: dict[int, _Flight] = {}  # batch id -> its flight
        self._inflight: dict[int, _Flight] = {}  # mid -> the flight it is part of
        self._drops_while_oldest: dict[int, int] = {}  # batch id -> connections it ended
        self._learned_cap: int | None = None  # pack size the broker seems to take
        self._cursor = 0  # the id of the last batch handed to the link
        self._refused: dict[int, tuple[float, StoredBatch]] = {}
        self._connect_count = -1  # link.connect_count when batches were last (re)offered
        self._state_connect_count = -1  # ... and when the retained state was last sent in full
        self._health_due = 0.0
        self._sensor_states: dict[str, str] = {}  # as last published
        self._states: dict[str, str] = {}  # as last computed
        self._states_due = 0.0
        self._logged_states: dict[str, str] = {}  # as last logged (also while offline)
        self._state_sent: dict[str, float] = {}  # record -> when its retained value went
        self._state_text: dict[str, str] = {}  # record -> the retained value as sent
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
        return len(self._flights)

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
                self._idle = not self._flights and self._spool.batches == 0
                self._cond.notify_all()

    def _handle_acks(self, acks: list[tuple[int, int]]) -> None:
        done: list[int] = []
        delivered = 0
        for mid, reason in acks:
            flight = self._inflight.pop(mid, None)
            if flight is None:
                continue  # from a connection since forgotten: the batch is offered again
            flight.mids.discard(mid)
            if reason >= 0x80:
                flight.refusal = reason_name(reason)
            if flight.mids:
                continue  # other parts still on their way
            del self._flights[flight.batch.id]
            if flight.refusal is None:
                done.append(flight.batch.id)
                delivered += flight.batch.count
                self._refusal_streak = 0
                self._drops_while_oldest.pop(flight.batch.id, None)
            else:
                self._hold(flight.batch, flight.refusal)
        if done:
            self._spool.ack_many(done)
            self._health.add("published", delivered)

    def _hold(self, batch: StoredBatch, reason: str) -> None:
        """Keep a refused batch aside (it stays in the spool) and count the refusal."""
        now = time.monotonic()
        self._refused[batch.id] = (now + RETRY_REFUSED_AFTER, batch)
        self._health.add("refused")
        self._health.refused_reason = reason
        self._refusals.log(logging.ERROR, "broker refused batch seq %d..%d (%s); it stays in "
                           "the spool and is offered again in %.0f s", batch.first_seq,
                           batch.last_seq, reason, RETRY_REFUSED_AFTER)
        self._refusal_streak += 1
        if self._refusal_streak >= REFUSALS_BEFORE_PAUSE:
            pause = min(PAUSE_CAP, PAUSE_FIRST * 2 ** (self._refusal_streak
                                                      - REFUSALS_BEFORE_PAUSE))
            self._paused_until = now + pause
            self._refusals.log(logging.ERROR, "the broker refused %d batches in a row (%s); "
                               "not offering any for %.0f s", self._refusal_streak, reason,
                               pause)

    def _new_connection(self) -> None:
        """The link reconnected and forgot every batch in flight: offer them again, oldest
        first. The oldest was the one on the wire when the connection ended; if the same
        one is there again, the broker may be closing the connection over its size
        (mosquitto does past ``message_size_limit``): packs are made smaller from then on."""
        if self._flights:
            oldest = self._flights[min(self._flights)]
            drops = self._drops_while_oldest.get(oldest.batch.id, 0) + 1
            self._drops_while_oldest[oldest.batch.id] = drops
            if drops >= SPLIT_AFTER_DROPS:
                self._shrink(max(len(oldest.batch.payload) // max(1, len(oldest.mids)), 1))
            self._cursor = oldest.batch.id - 1
        self._flights.clear()
        self._inflight.clear()

    def _shrink(self, pack_bytes: int) -> None:
        cap = max(MIN_PACK_BYTES, pack_bytes // 2)
        if self._learned_cap is not None and cap >= self._learned_cap:
            cap = max(MIN_PACK_BYTES, self._learned_cap // 2)
        if cap != self._learned_cap:
            self._learned_cap = cap
            log.warning("the connection keeps ending while a %d-byte pack is on its way: "
                        "sending packs of at most %d bytes from now on (is [batch] max_bytes "
                        "above the broker's message size limit?)", pack_bytes, cap)

    def _send(self) -> None:
        link = self._link
        if link.connect_count != self._connect_count:
            self._connect_count = link.connect_count
            self._new_connection()
        # Batches go only to a live connection: paho would keep them for the next one,
        # where the publisher could not choose their order or size any more.
        if not link.connected:
            return
        now = time.monotonic()
        if now < self._paused_until:
            return
        for batch_id, (when, batch) in list(self._refused.items()):
            if len(self._flights) >= self._window:
                return
            if when <= now:
                del self._refused[batch_id]
                self._offer(batch)
        room = self._window - len(self._flights)
        if room <= 0:
            return
        for batch in self._spool.pending(self._cursor, room):
            self._cursor = batch.id
            if batch.id not in self._refused:
                self._offer(batch)

    def _parts(self, batch: StoredBatch) -> list[bytes]:
        """``batch`` as the packs to send: whole, or split to fit the broker."""
        payload = batch.payload
        cap = len(payload) if self._learned_cap is None else self._learned_cap
        limit = self._link.max_packet_size
        room = None if limit is None else (
            limit - len(self._topics.readings.encode()) - PUBLISH_OVERHEAD)
        hard = room is not None and room < cap
        if room is not None and hard:
            cap = room
        if cap >= len(payload):
            return [payload]
        # Below the broker's announced limit a record that does not fit is an error (held
        # aside); below a learned one, a big record simply travels alone.
        return split_pack(payload, cap, oversize_alone=not hard)

    def _offer(self, batch: StoredBatch) -> None:
        flight = _Flight(batch)
        try:
            parts = self._parts(batch)
            for part in parts:
                mid = self._link.publish_batch(part)
                flight.mids.add(mid)
                self._inflight[mid] = flight
        except ValueError as exc:  # larger than the broker's Maximum Packet Size
            for mid in flight.mids:
                self._inflight.pop(mid, None)
            self._hold(batch, str(exc))
            return
        self._flights[batch.id] = flight
        if len(parts) > 1:
            log.info("batch seq %d..%d sent in %d parts", batch.first_seq, batch.last_seq,
                     len(parts))

    def _publish_state(self) -> None:
        link = self._link
        now = time.monotonic()
        if now >= self._states_due or self._health.changed.is_set():
            # Every sensor's state, at most once a second unless something changed it
            # (a failing read sets `changed`): a stale sensor is seen within a second,
            # and a hub with 4,000 sensors does not rebuild 4,000 states on every PUBACK.
            self._states = self._health.sensor_states()
            self._states_due = now + SENSOR_STATES_EVERY
            self._log_changes(self._states)
        states = self._states
        if not link.connected:
            return
        resend_all = link.connect_count != self._state_connect_count
        sent = self._state_sent
        with self._cond:
            if resend_all:
                names = list(self._latest)
            else:
                # A retained value is a dashboard's, not a data stream: at most one a
                # second per record (the readings carry every value), edges at once.
                names = [name for name in self._latest_dirty if self._latest[name].edge
                         or now - sent.get(name, -STATE_EVERY) >= STATE_EVERY]
            self._latest_dirty.difference_update(names)
            values = [self._latest[name] for name in names]
        texts = self._state_text
        for reading in values:
            text = format_value(reading.value)
            if texts.get(reading.name) == text and not resend_all:
                continue  # the broker holds this value already
            link.publish_state(self._topics.sensor(reading.name), text)
            sent[reading.name] = now
            texts[reading.name] = text
        if (resend_all or now >= self._health_due or self._health.changed.is_set()
                or states != self._sensor_states):
            self._health.changed.clear()
            self._sensor_states = states
            self._health_due = now + HEALTH_EVERY
            link.publish_state(self._topics.health, self.health_payload())
        self._state_connect_count = link.connect_count

    def _log_changes(self, states: dict[str, str]) -> None:
        """Say in the log when a sensor goes stale or comes back (failing is logged by its
        own thread, with the error)."""
        for name, state in states.items():
            before = self._logged_states.get(name, OK)
            if state == before:
                continue
            if state == STALE:
                log.error("[sensor:%s] stale: no reading for %d intervals (a read that hangs?)",
                          name, STALE_INTERVALS)
            elif before == STALE:
                log.warning("[sensor:%s] readings again (%s)", name, state)
        self._logged_states = states

    def health_payload(self) -> bytes:
        return json.dumps(self._health.snapshot(), separators=(",", ":")).encode()
