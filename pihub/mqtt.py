"""The hub's one MQTT connection: status, batches with their PUBACKs, retained state.

:class:`MqttLink` wraps one paho-mqtt client and its network thread. It never gives up
on the broker: paho reconnects with a capped backoff while the rest of the hub keeps
sampling and spooling. What the broker said last is kept for health
(:attr:`MqttLink.last_error`).

Delivery: :meth:`MqttLink.publish_batch` hands a batch to paho for the current
connection. ``on_ack(mid, reason)`` runs on paho's thread when the broker acknowledged
it; a reason of 0x80 or more is a refusal. The caller deletes from its spool only then.
A batch still unacknowledged when the connection ends is forgotten at the next connect
(paho is not left to re-send it): the caller offers it again from its spool, in the
order and size it chooses, after :attr:`MqttLink.connect_count` changed.

Threads: paho's network thread runs every ``_on_*`` method here. ``self._lock`` guards
the counters and the mid bookkeeping; it is never held while calling paho or a
callback of the caller, because paho calls us while holding its own locks.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from pihub.config import Config
from pihub.discovery import discovery_messages
from pihub.errors import ConfigError, PihubError
from pihub.readings import RecordSpec
from pihub.threads import name_native_thread
from pihub.topics import Topics

LOG = logging.getLogger("pihub.mqtt")

#: Reconnect backoff in seconds: a returning broker is used within MAX_DELAY.
MIN_DELAY = 1
MAX_DELAY = 5
#: A connection dropped sooner than this after CONNACK counts as a flap. Repeated flaps
#: mean another client takes our client id, or the broker rejects something we resend on
#: every connect; reconnecting once a second would only feed the fight.
STABLE_AFTER = 10.0
FLAPS_BEFORE_BACKOFF = 3
FLAP_DELAY = 5
MAX_FLAP_DELAY = 60
#: A refusal is repeated in the log at WARNING at most this often (DEBUG in between).
REPEAT_WARNING_AFTER = 60.0
#: An acknowledgement that arrives before publish() returned its mid waits here at most.
EARLY_ACK_TTL = 10.0
SESSION_TAKEN_OVER = 0x8E
#: Bytes a PUBLISH adds to its payload and topic: fixed header, lengths, mid, properties.
PUBLISH_OVERHEAD = 10


class LinkClosedError(PihubError, RuntimeError):
    """The MQTT link was stopped; nothing more can be published on it."""


class PacketTooLargeError(PihubError, ValueError):
    """A batch is larger than the broker's Maximum Packet Size; split it."""


class _Client(mqtt.Client):
    """paho's client, telling why a TCP or TLS connect failed (paho only says that it did)."""

    on_socket_error: Callable[[OSError], None] | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            if self.on_socket_error is not None:
                self.on_socket_error(exc)
            raise


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """No Nagle: an edge's batch and its retained value are small writes in a row, and
    the second would wait for the broker's delayed ACK (40 ms) of the first."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def describe_os_error(exc: OSError) -> str:
    """Human words for a failed TCP/TLS connect, e.g. ``connection refused``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def describe_reason(reason: ReasonCode, *, from_broker: bool) -> str:
    """Human words for a CONNACK or DISCONNECT reason, e.g. ``not authorized``."""
    words = str(reason).lower()
    if from_broker:
        return f"disconnected by the broker: {words}"
    if words == "unspecified error":
        # paho's name for "the socket closed or failed".
        return "connection lost"
    if words == "keep alive timeout":
        return "keepalive timeout (the broker stopped answering)"
    return words


class MqttLink:
    """The hub's MQTT connection. Create, :meth:`start`, publish, :meth:`stop`.

    ``on_ack(mid, reason)`` is called on paho's network thread while paho holds its
    message lock: it must be quick and must never wait for a lock that a thread calling
    :meth:`publish_batch` may hold (hand the ack to a queue instead). ``on_change()`` is
    called on the same thread after every connect, disconnect and ack.
    """

    def __init__(
        self,
        config: Config,
        records: Sequence[RecordSpec],
        *,
        on_ack: Callable[[int, int], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.topic_prefix, config.hub.id)
        self._on_ack_cb = on_ack
        self._on_change_cb = on_change
        self._discovery = discovery_messages(config, records) if config.mqtt.discovery else []
        self._v5 = config.mqtt.protocol != "3.1.1"

        # Guards every attribute below; taken by paho's thread in the callbacks and by
        # callers in publish_*/stop and the properties. Never held while calling out.
        self._lock = threading.Lock()
        self._connected = False
        self._connect_count = 0
        self._connected_at = 0.0
        self._last_error: str | None = None
        self._max_packet_size: int | None = None
        self._refused = False
        self._flaps = 0
        self._started = False
        self._stopping = False
        self._stopped = False
        self._last_warning = ("", 0.0)
        #: mids of batches paho holds until the broker acknowledges them.
        self._batch_mids: set[int] = set()
        #: mids of QoS 0 state messages not yet written to the socket.
        self._state_mids: set[int] = set()
        #: acknowledgements that came before publish() returned the mid: mid -> (reason, time).
        self._early_acks: dict[int, tuple[int, float]] = {}
        self._offline_mid: int | None = None
        self._offline_acked = threading.Event()

        self._client = self._make_client()

    def _make_client(self) -> _Client:
        mqtt_config = self.config.mqtt
        if self._v5:
            client = _Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                             protocol=mqtt.MQTTv5)
        else:
            client = _Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        if mqtt_config.username:
            client.username_pw_set(mqtt_config.username, self.config.password)
        elif self.config.password is not None:
            LOG.warning("[mqtt] a password is set but no username: the password is not sent")
        if mqtt_config.tls:
            try:
                # cert_reqs stays CERT_REQUIRED and hostnames are checked: a broker we
                # cannot verify is an error, never a reason to fall back to plain text.
                client.tls_set(
                    ca_certs=mqtt_config.ca_certs or None,
                    certfile=mqtt_config.certfile or None,
                    keyfile=mqtt_config.keyfile or None,
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    [f"{self.config.path}: [mqtt] tls: cannot load the certificates: {exc}"]
                ) from exc
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=MIN_DELAY, max_delay=MAX_DELAY)
        client.on_connect = self._on_connect
        client.on_socket_open = _no_delay
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_error = self._on_socket_error
        return client

    def __repr__(self) -> str:
        state = ("stopped" if self._stopped else
                 "connected" if self._connected else f"disconnected ({self._last_error})")
        return (f"<MqttLink {self.config.client_id} -> "
                f"{self.config.mqtt.host}:{self.config.mqtt.port} {state}>")

    # -- state for health -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def connect_count(self) -> int:
        """Successful connects so far; a change means "re-publish the latest state"."""
        return self._connect_count

    @property
    def reconnects(self) -> int:
        """Successful connects after the first."""
        return max(0, self._connect_count - 1)

    @property
    def last_error(self) -> str | None:
        """The last reason the broker refused or dropped us (kept after a reconnect)."""
        return self._last_error

    @property
    def max_packet_size(self) -> int | None:
        """The broker's Maximum Packet Size from the last MQTT 5 CONNACK, if it sent one."""
        return self._max_packet_size

    @property
    def unacked(self) -> int:
        """Batches handed to paho and not acknowledged yet."""
        with self._lock:
            return len(self._batch_mids)

    def network_thread_alive(self) -> bool:
        """Whether paho's network thread runs (for the watchdog)."""
        thread = self._client._thread
        return thread is not None and thread.is_alive()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background. Never raises because of the broker."""
        with self._lock:
            if self._stopped:
                raise LinkClosedError("this MqttLink was stopped; make a new one")
            if self._started:
                return
            self._started = True
        mqtt_config = self.config.mqtt
        LOG.info("connecting to %s:%d as %r (MQTT %s%s)", mqtt_config.host, mqtt_config.port,
                 self.config.client_id, mqtt_config.protocol, ", TLS" if mqtt_config.tls else "")
        if self._v5:
            self._client.connect_async(mqtt_config.host, mqtt_config.port,
                                       keepalive=mqtt_config.keepalive, clean_start=True)
        else:
            self._client.connect_async(mqtt_config.host, mqtt_config.port,
                                       keepalive=mqtt_config.keepalive)
        self._client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly, end paho's thread. Idempotent.

        Bounded by ``timeout`` seconds. Batches not acknowledged by then are simply not
        acknowledged: the caller keeps them for the next start.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = self._stopping = True
            connected = self._connected
        deadline = time.monotonic() + timeout
        if connected:
            # The will only fires on an unclean end; a clean stop must say it itself.
            info = self._client.publish(self.topics.status, "offline", qos=1, retain=True)
            with self._lock:
                self._offline_mid = info.mid
                if self._early_acks.pop(info.mid, None) is not None:
                    self._offline_acked.set()
            if not self._offline_acked.wait(max(0.0, deadline - time.monotonic())):
                LOG.warning("the broker did not acknowledge 'offline' within %.1f s", timeout)
        self._client.disconnect()
        thread = self._client._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                LOG.error("paho's network thread did not end within %.1f s", timeout)
                return
        self._client.loop_stop()
        with self._lock:
            self._connected = False
        LOG.info("disconnected from the broker")

    def __enter__(self) -> MqttLink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- publishing -----------------------------------------------------------------------

    def publish_batch(self, payload: bytes) -> int:
        """Hand a batch to paho for this connection and return its mid.

        Raises :class:`PacketTooLargeError` when the broker announced a smaller Maximum
        Packet Size, :class:`LinkClosedError` after :meth:`stop`.
        """
        if self._stopped:
            raise LinkClosedError("cannot publish: the MQTT link was stopped")
        limit = self._max_packet_size
        size = len(payload) + len(self.topics.readings.encode()) + PUBLISH_OVERHEAD
        if limit is not None and size > limit:
            raise PacketTooLargeError(
                f"a batch of {len(payload)} bytes exceeds the broker's maximum packet size "
                f"of {limit} bytes"
            )
        info = self._client.publish(self.topics.readings, payload,
                                    qos=self.config.mqtt.qos, retain=False)
        with self._lock:
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._batch_mids.add(info.mid)
        if early is not None:
            self._deliver_ack(info.mid, early[0])
        return info.mid

    def publish_state(self, topic: str, payload: str | bytes) -> None:
        """Publish a retained QoS 0 latest value; dropped while disconnected."""
        if not self._connected or self._stopping:
            return
        self._publish_retained(topic, payload)

    def _publish_retained(self, topic: str, payload: str | bytes) -> None:
        info = self._client.publish(topic, payload, qos=0, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        with self._lock:
            if self._early_acks.pop(info.mid, None) is None:
                self._state_mids.add(info.mid)

    # -- paho callbacks (paho's network thread) ------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        # An exception escaping a callback would end paho's network thread for good.
        try:
            yield
        except Exception:
            LOG.exception("unexpected error in %s", what)

    def _notify(self) -> None:
        if self._on_change_cb is not None:
            with self._guard("on_change callback"):
                self._on_change_cb()

    def _deliver_ack(self, mid: int, reason: int) -> None:
        if reason >= 0x80:
            LOG.warning("the broker refused batch mid %d: %s (0x%02X)", mid,
                        _reason_name(reason), reason)
        with self._guard("on_ack callback"):
            self._on_ack_cb(mid, reason)
        self._notify()

    def _on_socket_error(self, exc: OSError) -> None:
        with self._guard("on_socket_error"):
            why = describe_os_error(exc)
            if self.config.mqtt.tls and isinstance(exc, ConnectionResetError):
                why += " (is this a plain-text port? tls = true needs the broker's TLS listener)"
            self._failed(why)
        self._notify()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        with self._guard("on_connect"):
            name_native_thread("paho-mqtt")  # paho's network thread, for top -H
            if reason_code.is_failure:
                with self._lock:
                    self._refused = True
                self._failed(f"{describe_reason(reason_code, from_broker=False)}")
            else:
                self._connected_ok(properties)
        self._notify()

    def _connected_ok(self, properties: Properties | None) -> None:
        max_size = getattr(properties, "MaximumPacketSize", None) if self._v5 else None
        self._forget_old_batches()
        with self._lock:
            self._connected = True
            self._refused = False
            self._connect_count += 1
            self._connected_at = time.monotonic()
            self._max_packet_size = max_size
            count = self._connect_count
            self._last_warning = ("", 0.0)
        if count == 1:
            LOG.info("connected to %s:%d as %r", self.config.mqtt.host, self.config.mqtt.port,
                     self.config.client_id)
        else:
            LOG.info("reconnected to %s:%d (reconnect %d)", self.config.mqtt.host,
                     self.config.mqtt.port, count - 1)
        self._publish_retained(self.topics.status, "online")
        for topic, payload in self._discovery:
            self._publish_retained(topic, payload)

    def _forget_old_batches(self) -> None:
        """Drop the batches paho still holds from the last connection.

        paho would re-send them as soon as this on_connect returns, ahead of everything
        else and in whatever size they had. The publisher re-offers them itself, from the
        spool, after the status and health: so a batch the broker chokes on (mosquitto
        2.0 closes the connection after refusing one) can be split or held back instead
        of ending every new connection. With a clean start the broker kept no state for
        them, so dropping them here loses nothing: they are still in the spool.
        """
        client = self._client
        readings = self.topics.readings
        # paho's own lock for its message queue (an RLock; paho holds it while it
        # re-sends right after this callback). Never taken while holding self._lock.
        with client._out_message_mutex:
            stale = [mid for mid, message in client._out_messages.items()
                     if message.qos > 0 and message.topic == readings]
            for mid in stale:
                del client._out_messages[mid]
        with self._lock:
            self._batch_mids.difference_update(stale)
        if stale:
            LOG.debug("dropped %d unacknowledged batches from the last connection; they "
                      "are offered again from the spool", len(stale))

    def _failed(self, why: str) -> None:
        """A connect attempt failed: remember why, and say so without flooding the log."""
        now = time.monotonic()
        with self._lock:
            self._last_error = why
            last_why, last_time = self._last_warning
            repeat = why == last_why and now - last_time < REPEAT_WARNING_AFTER
            if not repeat:
                self._last_warning = (why, now)
        target = f"{self.config.mqtt.host}:{self.config.mqtt.port}"
        if repeat:
            LOG.debug("still cannot connect to %s: %s", target, why)
        else:
            LOG.warning("cannot connect to %s as %r: %s (retrying)", target,
                        self.config.client_id, why)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        with self._guard("on_disconnect"):
            self._disconnected(client, flags.is_disconnect_packet_from_server, reason_code)
        self._notify()

    def _disconnected(self, client: mqtt.Client, from_broker: bool, reason: ReasonCode) -> None:
        now = time.monotonic()
        with self._lock:
            was_connected, self._connected = self._connected, False
            refused, self._refused = self._refused, False
            # QoS 0 messages not yet written are gone; paho will never report them.
            self._state_mids.clear()
            if self._stopping or not was_connected:
                flaps = None
            else:
                lived = now - self._connected_at
                self._flaps = self._flaps + 1 if lived < STABLE_AFTER else 0
                flaps = self._flaps
        if self._stopping:
            return
        if refused:
            return  # after a refused CONNACK paho also reports a disconnect; that said why
        if not was_connected:
            # The broker closed the connection before any CONNACK: a TLS handshake it did
            # not like (no client certificate) or a connect it would not even answer.
            why = describe_reason(reason, from_broker=from_broker)
            if why == "connection lost":
                hint = "TLS client certificate?" if self.config.mqtt.tls else "an MQTT port?"
                why = f"the broker closed the connection before accepting it ({hint})"
            self._failed(why)
            return
        why = describe_reason(reason, from_broker=from_broker)
        with self._lock:
            self._last_error = why
            self._last_warning = (why, now)
        taken_over = from_broker and reason.value == SESSION_TAKEN_OVER
        if taken_over:
            LOG.error("another client connected with our client id %r and took over the "
                      "session; give each hub its own [mqtt] client_id", self.config.client_id)
        else:
            LOG.warning("lost the connection to %s:%d: %s (reconnecting)",
                        self.config.mqtt.host, self.config.mqtt.port, why)
        assert flaps is not None
        if taken_over or flaps >= FLAPS_BEFORE_BACKOFF:
            delay = min(MAX_FLAP_DELAY, FLAP_DELAY * 2 ** max(0, flaps - FLAPS_BEFORE_BACKOFF))
            if not taken_over:
                LOG.error("the broker dropped us %d times within %.0f s of connecting (%s): "
                          "is another client using client id %r, or does the broker reject a "
                          "message we resend? Waiting %d s before reconnecting", flaps,
                          STABLE_AFTER, why, self.config.client_id, delay)
            client.reconnect_delay_set(min_delay=delay, max_delay=max(delay, MAX_DELAY))
        else:
            client.reconnect_delay_set(min_delay=MIN_DELAY, max_delay=MAX_DELAY)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        # QoS 0 messages are reported when written, QoS 1/2 when acknowledged; MQTT 3.1.1
        # acknowledgements always read as Success (0).
        with self._guard("on_publish"):
            reason = reason_code.value if self._v5 else 0
            now = time.monotonic()
            with self._lock:
                if mid in self._batch_mids:
                    self._batch_mids.discard(mid)
                    kind = "batch"
                elif mid == self._offline_mid:
                    kind = "offline"
                elif mid in self._state_mids:
                    self._state_mids.discard(mid)
                    kind = "state"
                else:
                    # publish() has not returned this mid to its caller yet.
                    self._early_acks[mid] = (reason, now)
                    self._expire_early_acks(now)
                    kind = "early"
            if kind == "batch":
                self._deliver_ack(mid, reason)
            elif kind == "offline":
                self._offline_acked.set()

    def _expire_early_acks(self, now: float) -> None:
        # Only a publish that raised after sending could leave one behind; never let an
        # old entry meet a recycled mid.
        for mid, (_, when) in list(self._early_acks.items()):
            if now - when < EARLY_ACK_TTL:
                break
            del self._early_acks[mid]


def _reason_name(value: int) -> str:
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=value)).lower()
    except (KeyError, ValueError):
        return "unknown reason"
