"""The main thread: build the hub, start every thread, watch them, stop in order.

Start-up order follows the data backwards (spool, publisher, link, consumer, sensors) so
that nothing produces before its consumer exists. Shutdown follows it forwards: sensors
stop, the consumer drains the queue into the spool, the publisher sends what it can
until the deadline, the link says ``offline`` and disconnects. Whatever is still
unacknowledged stays in the spool for the next start.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pihub.config import Config, SensorConfig
from pihub.consumer import END, Consumer
from pihub.errors import PihubError, ZombieThread
from pihub.hardware import Hardware, open_hardware
from pihub.health import Health
from pihub.mqtt import MqttLink
from pihub.publisher import Publisher
from pihub.readings import Reading, RecordSpec
from pihub.sampler import SensorThread
from pihub.sensors import SENSOR_TYPES
from pihub.sensors.base import Sensor
from pihub.spool import Spool
from pihub.threads import StoppableThread
from pihub.topics import Topics

log = logging.getLogger("pihub.supervisor")

#: How often the supervisor looks at its threads.
WATCH_EVERY = 0.5
#: Restart back-off for a thread that died: doubles from the first to the cap.
RESTART_FIRST = 1.0
RESTART_CAP = 60.0
SPOOL_FILE = "spool.db"


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
    then :meth:`shutdown`; or all three with :func:`run`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.health = Health(config.hub.id)
        self.queue: queue.Queue[object] = queue.Queue(maxsize=config.hub.queue_size)
        self.topics = Topics(config.mqtt.topic_prefix, config.hub.id)
        self.hardware: Hardware | None = None
        self.spool: Spool | None = None
        self.link: MqttLink | None = None
        self.threads = _Threads()
        self._restarts: dict[str, _Restart] = {}
        self._opened: dict[str, Sensor] = {}

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
                           max_batch_bytes=config.batch.max_bytes)
        self.hardware = open_hardware(config.hub.pin_factory,
                                      simulate=config.hub.simulate)
        records = self._open_sensors()
        spool = self.spool
        self.health.queue_depth = self.queue.qsize
        self.health.spool_depth = lambda: spool.depth
        self.health.spool_dropped = lambda: spool.dropped
        # The link and the consumer reach the publisher through the hub, so that a
        # restarted publisher is the one they call.
        self.link = MqttLink(config, records, on_ack=self._on_ack, on_change=self._wake)
        link = self.link
        self.health.link_state = lambda: (link.connected, link.reconnects, link.last_error)
        publisher = self._new_publisher()
        publisher.start()
        self.link.start()
        self._new_consumer().start()
        for sensor in config.sensors:
            self._new_sensor_thread(sensor).start()
        log.info("hub %s started: %d sensors, spool %s (%d readings waiting)",
                 config.hub.id, len(config.sensors), self.spool.path, self.spool.depth)

    def _open_sensors(self) -> list[RecordSpec]:
        """Open every sensor once, here, to learn its records for discovery; a sensor that
        cannot be opened now is retried by its thread (and announced when it opens)."""
        assert self.hardware is not None
        records: list[RecordSpec] = []
        for sensor_config in self.config.sensors:
            try:
                sensor = self._open(sensor_config)
            except Exception as exc:
                log.error("[sensor:%s] cannot open: %s (will keep trying)",
                          sensor_config.name, exc)
                continue
            self._opened[sensor_config.name] = sensor
            records.extend(sensor.records())
        return records

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
        self.threads.sensors[sensor_config.name] = thread
        return thread

    def _new_consumer(self) -> Consumer:
        assert self.spool is not None
        self.threads.consumer = Consumer(
            self.queue, self.spool, self.health,
            max_readings=self.config.batch.max_readings,
            max_latency=self.config.batch.max_latency,
            committed=self._committed)
        return self.threads.consumer

    def _new_publisher(self) -> Publisher:
        assert self.spool is not None and self.link is not None
        self.threads.publisher = Publisher(self.spool, self.link, self.topics, self.health)
        return self.threads.publisher

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
        """Watch the threads until ``stop`` is set; restart any that died, with back-off."""
        while not stop.wait(WATCH_EVERY):
            self.check_threads()

    def check_threads(self) -> None:
        now = time.monotonic()
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


def _join(thread: StoppableThread, timeout: float) -> None:
    thread.stopping.set()
    try:
        thread.join(timeout)
    except ZombieThread as exc:
        log.error("%s; leaving it behind", exc)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT while inside the block (main thread only)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(config: Config, stop: threading.Event | None = None) -> int:
    """Run the hub until SIGTERM/SIGINT (or ``stop``); return the exit code."""
    stop = stop if stop is not None else threading.Event()
    hub = Hub(config)
    with stop_on_signals(stop):
        try:
            hub.start()
            hub.supervise(stop)
        finally:
            hub.shutdown()
    return 0
