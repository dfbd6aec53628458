"""A hub run as a separate process, exactly as ``pihub run`` runs on a Pi."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from pihub.senml import decode_pack
from pihub.spool import Spool
from tests.broker import Mosquitto
from tests.subscriber import Message, Subscriber

FAST_SENSORS = """
[sensor:cpu]
type = cpu_temperature
interval = 0.02

[sensor:load]
type = load_average
interval = 0.02

[sensor:door]
type = digital
pin = GPIO17
interval = 0.5
"""


def hub_config(port: int, state_dir: Path, *, hub_id: str = "testhub", sensors: str = FAST_SENSORS,
               extra_hub: str = "", mqtt: str = "", batch: str = "max_latency = 0.05",
               shutdown_timeout: float = 5) -> str:
    return f"""[hub]
id = {hub_id}
state_dir = {state_dir}
simulate = true
shutdown_timeout = {shutdown_timeout}
{extra_hub}

[mqtt]
host = 127.0.0.1
port = {port}
keepalive = 5
{mqtt}

[batch]
{batch}
{sensors}"""


class HubProcess:
    """``python -m pihub run -c FILE`` in a subprocess; its stderr goes to :attr:`log_path`."""

    def __init__(self, workdir: Path, config_text: str, env: dict[str, str] | None = None) -> None:
        self.dir = workdir
        self.config_path = workdir / "config.ini"
        self.config_path.write_text(config_text)
        self.log_path = workdir / "hub.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = self.log_path.open("ab")
        log.write(f"--- run {self.runs}\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pihub", "--log-level", "DEBUG", "run", "-c",
             str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env)
        log.close()

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()


def seqs(messages: Iterable[Message], hub: str = "testhub", prefix: str = "pihub") -> list[int]:
    """Every ``seq`` in the readings packs among ``messages``, in arrival order."""
    out: list[int] = []
    topic = f"{prefix}/{hub}/readings"
    for message in messages:
        if message.topic == topic:
            out.extend(r.seq for r in decode_pack(message.payload) if r.seq is not None)
    return out


def last_json(messages: Iterable[Message], topic: str) -> dict[str, object]:
    payloads = [m.payload for m in messages if m.topic == topic]
    assert payloads, f"nothing on {topic}"
    result: dict[str, object] = json.loads(payloads[-1])
    return result


SIGTERM = signal.SIGTERM
SIGKILL = signal.SIGKILL


@pytest.fixture
def durable_broker() -> Iterator[Mosquitto]:
    """A broker that keeps sessions across restarts, so a subscriber misses nothing."""
    broker = Mosquitto(extra=["persistence true", "autosave_interval 1"])
    with open(broker.conf_file, "a") as conf:
        conf.write(f"persistence_location {broker.dir}/\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


def durable_subscriber(port: int, name: str) -> Subscriber:
    sub = Subscriber(port, ["pihub/#"], session=name)
    sub.start()
    return sub


def spooled(state_dir: Path) -> int:
    """Readings waiting in a running hub's spool (read-only; the hub keeps writing)."""
    path = state_dir / "spool.db"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            row = conn.execute("SELECT COALESCE(SUM(count), 0) FROM batches").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def first_seq(state_dir: Path) -> int:
    """Open the spool before the hub does: the first seq it will issue."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with Spool(state_dir / "spool.db", hub_id="testhub", max_bytes=1 << 26) as spool:
        return spool.next_seq


def issued_until(state_dir: Path) -> int:
    """The next seq the (stopped) hub's spool would issue."""
    with Spool(state_dir / "spool.db", hub_id="testhub", max_bytes=1 << 26) as spool:
        return spool.next_seq
