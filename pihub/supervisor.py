"""The main thread: build the hub, start every thread, watch them, reload, stop in order.

Start-up order follows the data backwards (spool, publisher, link, consumer, sensors) so
that nothing produces before its consumer exists. Shutdown follows it forwards: sensors
stop, the consumer drains the queue into the spool, the publisher sends what it can
until the deadline, the link says ``offline`` and disconnects. Whatever is still
unacknowledged stays in the spool for the next start.

The main thread also speaks to systemd (:mod:`pihub.systemd`): READY once started,
a STATUS line every few seconds, watchdog pings only while every thread makes progress
(so a wedged main thread stops them too), RELOADING/READY around a reload, STOPPING.

A reload (SIGHUP) re-reads the config file and applies what changed, touching only
what changed: see :meth:`Hub.reload`.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pihub.clock import Clock
from pihub.config import Config, SensorConfig, load_config
from pihub.consumer import END, Consumer
from pihub.errors import ConfigError, PihubError, ZombieThread
from pihub.hardware import Hardware, open_hardware
from pihub.health import FAILING, STALE, STALE_INTERVALS, Health
from pihub.mqtt import MqttLink
from pihub.publisher import Publisher
from pihub.readingqueue import ReadingQueue
from pihub.readings import Reading, RecordSpec
from pihub.sampler import SensorThread
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor
from pihub.spool import Spool
from pihub.systemd import Notifier, Watchdog, watchdog_interval
from pihub.threads import StoppableThread
from pihub.topics import Topics

log = logging.getLogger("pihub.supervisor")

#: How often the supervisor wakes when nothing else is due: how soon it notices a
#: SIGHUP, an ended thread or a thread due for its restart.
WATCH_EVERY = 1.0
#: Restart back-off for a thread that died: doubles from the first to the cap.
RESTART_FIRST = 1.0
RESTART_CAP = 60.0
SPOOL_FILE = "spool.db"
#: How often the STATUS= line shown by ``systemctl status`` is refreshed.
STATUS_EVERY = 5.0
#: The watchdog calls a sensor thread wedged after STALE_INTERVALS of its intervals plus
#: this long without a poll; the consumer and the publisher after these many seconds
#: without a beat (each beats at least once a second when idle).
SENSOR_GRACE = 2.0
CONSUMER_STALL = 15.0
PUBLISHER_STALL = 15.0
#: How long a reload waits for a thread it replaces, and for the old broker connection
#: to say ``offline``.
RELOAD_JOIN = 2.0
#: [hub] keys that a reload cannot apply: the spool, the pins and the queue are open.
RESTART_ONLY = ("id", "state_dir", "pin_factory", "simulate", "queue_size")

ConfigLoader = Callable[[], Config]


@dataclass
class _Restart:
    """When a dead thread may be restarted, and how long to wait after the next death."""

    delay: float = RESTART_FIRST
    at: float = 0.0
    count: int = 0


@dataclass
class _Threads:
    sensors: dict[str, SensorThread] = field(default_factory=dict)
    consumer: Consumer | None = None
    publisher: Publisher | None = None


class Hub:
    """One running hub. Use :meth:`start`, then :meth:`supervise` until asked to stop,
    then :meth:`shutdown`; or all three with :func:`run`.

    ``loader`` re-reads the config for :meth:`reload` (default: the same file);
    ``notifier`` and ``watchdog_every`` (seconds between pings, None for no watchdog)
    connect it to systemd; ``clock`` tells whether the wall clock is synced.
    """

    def __init__(self, config: Config, *, loader: ConfigLoader | None = None,
                 notifier: Notifier | None = None, watchdog_every: float | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.health = Health(config.hub.id)
        self.clock = clock if clock is not None else Clock()
        self.health.clock_synced = lambda: self.clock.synced
        self.queue = ReadingQueue(config.hub.queue_size, self.clock,
                                                       self.health)
        self.topics = Topics(config.mqtt.topic_prefix, config.hub.id)
        self.hardware: Hardware | None = None
        self.spool: Spool | None = None
        self.link: MqttLink | None = None
        self.threads = _Threads()
        self.notifier = notifier if notifier is not None else Notifier(None)
        self.watchdog = Watchdog(self.notifier, watchdog_every)
        self.reloads = 0  # reloads applied
        self.reload_attempts = 0  # SIGHUPs handled, applied or not
        self._loader = loader if loader is not None else (lambda: load_config(config.path))
        self._reload_requested = False
        self._restarts: dict[str, _Restart] = {}
        self._ended: set[StoppableThread] = set()  # threads that ended since the last look
        self._ended_lock = threading.Lock()
        self._opened: dict[str, Sensor] = {}
        self._records: dict[str, list[RecordSpec]] = {}
        self._link_generation = 0
        self._status_due = 0.0
        self._rate_mark = (time.monotonic(), 0)

    def __repr__(self) -> str:
        return f"<Hub {self.config.hub.id!r} sensors={len(self.threads.sensors)}>"

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool and the hardware, start every thread, connect in the background."""
        config = self.config
        state_dir = Path(config.hub.state_dir)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"[hub] state_dir: cannot create {state_dir}: "
                                f"{exc.strerror}") from exc
        self.spool = Spool(state_dir / SPOOL_FILE, hub_id=config.hub.id,
                           max_bytes=config.spool.max_bytes,
                           max_batch_bytes=config.batch.max_bytes,
                           synchronous=config.spool.synchronous)
        self.hardware = open_hardware(config.hub.pin_factory,
                                      simulate=config.hub.simulate)
        for sensor_config in config.sensors:
            self._open_sensor(sensor_config)
        spool = self.spool
        self.health.queue_depth = self.queue.qsize
        self.health.spool_depth = lambda: spool.depth
        self.health.spool_dropped = lambda: spool.dropped
        self._start_link()
        self._new_consumer().start()
        for sensor in config.sensors:
            self._new_sensor_thread(sensor).start()
        log.info("hub %s started: %d sensors, spool %s (%d readings waiting)",
                 config.hub.id, len(config.sensors), self.spool.path, self.spool.depth)

    def _open_sensor(self, sensor_config: SensorConfig) -> None:
        """Open a sensor once, here, to learn its records for discovery; a sensor that
        cannot be opened now is retried by its thread."""
        try:
            sensor = self._open(sensor_config)
        except Exception as exc:
            log.error("[sensor:%s] cannot open: %s (will keep trying)",
                      sensor_config.name, exc)
            return
        self._opened[sensor_config.name] = sensor
        self._records[sensor_config.name] = list(sensor.records())

    def _all_records(self, config: Config | None = None) -> list[RecordSpec]:
        return [spec for sensor in (config or self.config).sensors
                for spec in self._records.get(sensor.name, ())]

    def _open(self, sensor_config: SensorConfig) -> Sensor:
        assert self.hardware is not None
        cls = SENSOR_TYPES[sensor_config.type]
        return cls(sensor_config.name, sensor_config.options, self.hardware)

    def _sensor_factory(self, sensor_config: SensorConfig) -> Callable[[], Sensor]:
        def open_sensor() -> Sensor:
            opened = self._opened.pop(sensor_config.name, None)
            return opened if opened is not None else self._open(sensor_config)
        return open_sensor

    def _new_sensor_thread(self, sensor_config: SensorConfig) -> SensorThread:
        thread = SensorThread(sensor_config.name, sensor_config.interval,
                              self._sensor_factory(sensor_config), self.queue, self.health)
        thread.on_exit = self._thread_ended
        self.threads.sensors[sensor_config.name] = thread
        return thread

    def _new_consumer(self) -> Consumer:
        assert self.spool is not None
        self.threads.consumer = Consumer(
            self.queue, self.spool, self.health,
            max_readings=self.config.batch.max_readings,
            max_latency=self.config.batch.max_latency,
            committed=self._committed)
        self.threads.consumer.on_exit = self._thread_ended
        return self.threads.consumer

    def _new_publisher(self) -> Publisher:
        assert self.spool is not None and self.link is not None
        self.threads.publisher = Publisher(self.spool, self.link, self.topics, self.health)
        self.threads.publisher.on_exit = self._thread_ended
        return self.threads.publisher

    def _thread_ended(self, thread: StoppableThread) -> None:
        # Any thread, as it ends: the supervisor looks at its threads at its next wake-up.
        with self._ended_lock:
            self._ended.add(thread)

    def _start_link(self) -> None:
        """A new link and a publisher for it, both started."""
        # The link reaches the publisher through the hub (so a restarted publisher is the
        # one it calls), tagged with its generation: after a reload replaced the link, a
        # late ack from the old one must not meet a new batch that got the same mid.
        self._link_generation += 1
        generation = self._link_generation

        def on_ack(mid: int, reason: int) -> None:
            if generation == self._link_generation:
                self._on_ack(mid, reason)

        def on_change() -> None:
            if generation == self._link_generation:
                self._wake()

        self.link = MqttLink(self.config, self._all_records(), on_ack=on_ack,
                             on_change=on_change)
        link = self.link
        self.health.link_state = lambda: (link.connected, link.reconnects, link.last_error)
        self._new_publisher().start()
        link.start()

    def _on_ack(self, mid: int, reason: int) -> None:
        if self.threads.publisher is not None:
            self.threads.publisher.on_ack(mid, reason)

    def _wake(self) -> None:
        if self.threads.publisher is not None:
            self.threads.publisher.wake()

    def _committed(self, readings: list[Reading]) -> None:
        if self.threads.publisher is not None:
            self.threads.publisher.committed(readings)

    # -- supervise ---------------------------------------------------------------------------

    def supervise(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: restart threads that died, reload when asked, keep
        systemd informed (STATUS, watchdog)."""
        while not stop.wait(min(WATCH_EVERY, self.watchdog.due_in())):
            if self._reload_requested:
                self._reload_requested = False
                self.reload()
            if self._ended or any(r.at for r in self._restarts.values()):
                self.check_threads()  # a thread ended, or one waits for its restart
            was_synced = self.clock.synced
            if self.clock.refresh() != was_synced:
                self.health.changed.set()  # clock_synced is news: publish health now
            self.watchdog.tick(self.wedged)
            self._status_tick()

    def check_threads(self) -> None:
        now = time.monotonic()
        with self._ended_lock:  # those still finishing are looked at again next time
            self._ended = {thread for thread in self._ended if thread.is_alive()}
        for name, thread in list(self.threads.sensors.items()):
            if thread.died and self._may_restart(thread.name, now):
                config = next(s for s in self.config.sensors if s.name == name)
                self._new_sensor_thread(config).start()
        consumer = self.threads.consumer
        if consumer is not None and consumer.died and self._may_restart(consumer.name, now):
            self._new_consumer().start()
        publisher = self.threads.publisher
        if publisher is not None and publisher.died and self._may_restart(publisher.name, now):
            self._new_publisher().start()

    def _may_restart(self, name: str, now: float) -> bool:
        restart = self._restarts.setdefault(name, _Restart())
        if restart.at == 0.0:
            restart.at = now + restart.delay
            log.error("thread %s died; restarting it in %.0f s", name, restart.delay)
            return False
        if now < restart.at:
            return False
        restart.count += 1
        restart.delay = min(restart.delay * 2, RESTART_CAP)
        restart.at = 0.0
        log.warning("restarting thread %s (restart #%d)", name, restart.count)
        return True

    def wedged(self) -> list[str]:
        """The parts that made no progress lately (empty: all is well).

        Every live sensor thread counts, as the issue asks: a read that hangs for ever
        (a 1-Wire bus gone wrong) stops the pings, and systemd's restart is the only way
        to get a Python thread out of such a read. A thread that died is not wedged:
        :meth:`check_threads` restarts it.
        """
        watchdog = self.watchdog
        parts: list[str] = []
        keep: set[str] = set()

        def watch(thread: StoppableThread, count: int, limit: float) -> None:
            if not thread.is_alive():
                return
            key = f"{thread.name}@{id(thread)}"
            keep.add(key)
            if watchdog.stalled(key, count, limit):
                parts.append(f"thread {thread.name}")

        for thread in self.threads.sensors.values():
            watch(thread, thread.polls, STALE_INTERVALS * thread.interval + SENSOR_GRACE)
        consumer = self.threads.consumer
        if consumer is not None:
            watch(consumer, consumer.beats, CONSUMER_STALL)
        publisher = self.threads.publisher
        if publisher is not None:
            watch(publisher, publisher.beats, PUBLISHER_STALL)
        watchdog.forget(keep)
        if self.link is not None and not self.link.network_thread_alive():
            parts.append("paho's network thread")
        return parts

    def status_line(self) -> str:
        """One line for ``systemctl status``: connection, readings/s, backlog, trouble."""
        now = time.monotonic()
        readings = self.health.readings
        then, before = self._rate_mark
        rate = (readings - before) / (now - then) if now > then else 0.0
        self._rate_mark = (now, readings)
        mqtt = self.config.mqtt
        if self.link is not None and self.link.connected:
            words = [f"connected to {mqtt.host}:{mqtt.port}"]
        else:
            why = self.link.last_error if self.link is not None else None
            words = [f"not connected to {mqtt.host}:{mqtt.port}"
                     + (f" ({why})" if why else "")]
        depth = self.spool.depth if self.spool is not None else 0
        words += [f"{rate:.1f} readings/s", f"backlog {depth}"]
        states = self.health.sensor_states()
        for state in (FAILING, STALE):
            names = sorted(name for name, s in states.items() if s == state)
            if names:
                words.append(f"{state}: {', '.join(names)}")
        if not self.clock.synced:
            words.append("clock not synced")
        return "; ".join(words)

    def _status_tick(self) -> None:
        if not self.notifier.enabled:
            return
        now = time.monotonic()
        if now >= self._status_due:
            self._status_due = now + STATUS_EVERY
            self.notifier.status(self.status_line())

    # -- reload ------------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask for a reload at the supervisor's next look (safe in a signal handler)."""
        self._reload_requested = True

    def reload(self) -> bool:
        """Re-read the config and apply it; False if it was invalid (then nothing changed).

        - Invalid: every problem is logged and the old config keeps running.
        - ``[sensor:…]``: sensors added, removed or changed are started, stopped or
          restarted; the others and their readings are not touched.
        - ``[mqtt]`` (or the discovery records): a new connection; batches in flight on
          the old one are offered again from the spool (duplicates, never a loss).
        - ``[batch]``: the consumer drains what it holds into the spool and a new one
          starts with the new settings; ``[spool] max_bytes`` applies at once.
        - ``[hub]`` ``id``, ``state_dir``, ``pin_factory``, ``simulate``, ``queue_size``
          need a restart: logged, and the old values kept.
        """
        self.notifier.reloading()
        try:
            return self._reload()
        finally:
            self.reload_attempts += 1
            self.notifier.ready(self.status_line())

    def _reload(self) -> bool:
        path = self.config.path
        log.info("reload: reading %s", path)
        try:
            new = self._loader()
        except ConfigError as exc:
            log.error("reload: %s is not valid (%d problems); still running on the old "
                      "config", path, len(exc.problems))
            for problem in exc.problems:
                log.error("reload: %s", problem)
            return False
        except Exception:
            log.exception("reload: cannot read %s; still running on the old config", path)
            return False
        old = self.config
        new = _keep_restart_only(old, new)
        if new == old:
            log.info("reload: nothing changed")
            return True
        self.config = new
        records_changed = self._apply_sensors(old, new)
        if new.batch != old.batch or new.spool != old.spool:
            self._apply_batch(old, new)
        if (new.mqtt != old.mqtt or new.password != old.password
                or (new.mqtt.discovery and records_changed)):
            log.info("reload: broker settings changed; reconnecting")
            self._relink()
        self.reloads += 1
        log.info("reload: applied")
        return True

    def _apply_sensors(self, old: Config, new: Config) -> bool:
        """Stop, restart and start sensors; True if the set of records changed."""
        before = {s.name: s for s in old.sensors}
        after = {s.name: s for s in new.sensors}
        gone = [name for name in before if name not in after]
        changed = [name for name in before if name in after and before[name] != after[name]]
        added = [name for name in after if name not in before]
        records_before = self._all_records(old)
        for name in gone + changed:
            self._stop_sensor(name)
        for name in changed + added:
            self._open_sensor(after[name])
            self._new_sensor_thread(after[name]).start()
        for what, names in (("removed", gone), ("restarted", changed), ("added", added)):
            if names:
                log.info("reload: sensors %s: %s", what, ", ".join(names))
        return self._all_records(new) != records_before

    def _stop_sensor(self, name: str) -> None:
        thread = self.threads.sensors.pop(name, None)
        if thread is not None:
            _join(thread, RELOAD_JOIN)
            self._restarts.pop(thread.name, None)
        opened = self._opened.pop(name, None)
        if opened is not None:
            opened.close()
        self._records.pop(name, None)
        self.health.remove_sensor(name)

    def _apply_batch(self, old: Config, new: Config) -> None:
        assert self.spool is not None
        self.spool.max_bytes = new.spool.max_bytes
        if new.batch == old.batch:
            return
        consumer = self.threads.consumer
        if consumer is not None and consumer.is_alive():
            # END goes behind what is queued: the old consumer commits all of that, then
            # exits; whatever the sensors queue meanwhile waits for the new one.
            try:
                self.queue.put(END, timeout=RELOAD_JOIN)
                consumer.join(RELOAD_JOIN)
            except queue.Full:
                log.error("reload: the queue stayed full; [batch] changes need a restart")
                self.config = dataclasses.replace(self.config, batch=old.batch)
                return
            except ZombieThread as exc:
                log.error("reload: %s; starting the new consumer anyway", exc)
            consumer.stopping.set()  # it was asked to end: not a death to restart
        self.spool.max_batch_bytes = new.batch.max_bytes
        self._new_consumer().start()
        log.info("reload: [batch] applied (consumer restarted)")

    def _relink(self) -> None:
        old_publisher, old_link = self.threads.publisher, self.link
        self._link_generation += 1  # from here on the old link's acks are ignored
        self.threads.publisher = None
        if old_publisher is not None:
            old_publisher.stopping.set()
            old_publisher.wake()
            _join(old_publisher, RELOAD_JOIN)
        if old_link is not None:
            old_link.stop(RELOAD_JOIN)
        self.topics = Topics(self.config.mqtt.topic_prefix, self.config.hub.id)
        self._start_link()

    # -- stop --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop in order within ``shutdown_timeout``; never raises for a stuck thread."""
        deadline = time.monotonic() + self.config.hub.shutdown_timeout

        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - time.monotonic()) * share)

        sensors = list(self.threads.sensors.values())
        for thread in sensors:
            thread.stopping.set()
        for thread in sensors:
            _join(thread, left(0.2))
        consumer = self.threads.consumer
        if consumer is not None and consumer.is_alive():
            try:
                self.queue.put(END, timeout=left(0.3))
            except queue.Full:
                log.error("queue still full at shutdown; %d readings not accepted",
                          self.queue.qsize())
            _join(consumer, left(0.3))
        publisher = self.threads.publisher
        if publisher is not None and publisher.is_alive():
            # Keep some of the budget for offline + disconnect.
            if not publisher.wait_idle(left(0.8)) and self.spool is not None:
                log.warning("shutdown: %d readings not yet acknowledged stay in the spool",
                            self.spool.depth)
            publisher.stopping.set()
            publisher.wake()
            _join(publisher, left(0.5))
        if self.link is not None:
            self.link.stop(left())
        if self.spool is not None:
            self.spool.close()
        if self.hardware is not None:
            self.hardware.close()
        log.info("hub %s stopped", self.config.hub.id)


class StateDirError(PihubError, OSError):
    """``state_dir`` cannot be created or written."""


def _keep_restart_only(old: Config, new: Config) -> Config:
    """``new`` with the [hub] keys a reload cannot apply set back to ``old``'s (logged)."""
    kept = {}
    for name in RESTART_ONLY:
        was, wants = getattr(old.hub, name), getattr(new.hub, name)
        if was != wants:
            log.warning("reload: [hub] %s changed from %r to %r: that needs a restart "
                        "(systemctl restart pihub); still using %r", name, was, wants, was)
            kept[name] = was
    if not kept:
        return new
    return dataclasses.replace(new, hub=dataclasses.replace(new.hub, **kept))


def _join(thread: StoppableThread, timeout: float) -> None:
    thread.stopping.set()
    try:
        thread.join(timeout)
    except ZombieThread as exc:
        log.error("%s; leaving it behind", exc)


@contextmanager
def stop_on_signals(stop: threading.Event,
                    reload: Callable[[], None] | None = None) -> Iterator[None]:
    """Inside the block (main thread only): set ``stop`` on SIGTERM or SIGINT, and call
    ``reload`` on SIGHUP (ignored without one: SIGHUP's default would kill us)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP received: reloading the config")
        if reload is not None:
            reload()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(config: Config, stop: threading.Event | None = None, *,
        loader: ConfigLoader | None = None,
        environ: Mapping[str, str] | None = None,
        started: Callable[[Hub], None] | None = None) -> int:
    """Run the hub until SIGTERM/SIGINT (or ``stop``); return the exit code.

    ``loader`` re-reads the config on SIGHUP (default: ``config.path`` again);
    ``environ`` (default :data:`os.environ`) says whether systemd is listening;
    ``started`` is called with the hub once it is up (the benchmarks drive pins from it).
    """
    stop = stop if stop is not None else threading.Event()
    notifier = Notifier.from_env(environ)
    hub = Hub(config, loader=loader, notifier=notifier,
              watchdog_every=watchdog_interval(environ))
    with stop_on_signals(stop, reload=hub.request_reload):
        try:
            hub.start()
            notifier.ready(hub.status_line())
            if started is not None:
                started(hub)
            hub.supervise(stop)
        finally:
            notifier.stopping()
            hub.shutdown()
            notifier.close()
    return 0
