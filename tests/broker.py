"""A real mosquitto for the tests: its own config, a free loopback port, always stopped.

``from tests.broker import *`` (in ``conftest.py``) brings the ``broker`` and
``subscriber`` fixtures. Tests that need an unusual broker (a password file, an ACL,
TLS, extra config lines) build one with :func:`make_broker` inside ``with``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import pytest

from tests.subscriber import Subscriber

__all__ = ["Mosquitto", "TlsFiles", "broker", "free_port", "make_broker", "subscriber"]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (via trustme)."""

    def __init__(self, directory: Path) -> None:
        import trustme  # only the TLS tests need it

        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "server.pem"
        self.key_file = directory / "server.key"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server.cert_chain_pems[0].write_to_path(str(self.cert_file))
        server.private_key_pem.write_to_path(str(self.key_file))


class Mosquitto:
    """One mosquitto process on a loopback port that stays the same across restarts."""

    def __init__(
        self,
        *,
        password: Mapping[str, str] | None = None,
        acl: str | None = None,
        extra: Sequence[str] = (),
        tls: bool = False,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pihub-mosquitto-"))
        self.port = free_port()
        self.host = "127.0.0.1"
        self.log_file = self.dir / "mosquitto.log"
        self.conf_file = self.dir / "mosquitto.conf"
        self.tls: TlsFiles | None = TlsFiles(self.dir) if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "max_queued_messages 0",
            "user root",
            f"log_dest file {self.log_file}",
            "log_type all",
            "connection_messages true",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
            ]
        if password is not None:
            password_file = self.dir / "passwords"
            password_file.touch(mode=0o600)
            for user, pw in password.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(password_file), user, pw],
                    check=True, capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_file = self.dir / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        lines += list(extra)
        self.conf_file.write_text("\n".join(lines) + "\n")

    def __repr__(self) -> str:
        state = "stopped" if not self.running else ("paused" if self.paused else "running")
        return f"<Mosquitto 127.0.0.1:{self.port} {state}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start mosquitto and return once its port accepts connections."""
        if self.running:
            return
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.paused = False
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode} on start\n{self.log()}"
                )
            with contextlib.suppress(OSError), socket.create_connection(
                (self.host, self.port), timeout=0.5
            ):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen within {timeout} s\n{self.log()}")
            # Polling a port has nothing to wait on; a short pause between attempts.
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (SIGKILL if it will not go) and wait. Idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if self.paused:
                self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word to its clients."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self.process = None
        self.paused = False

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a hung broker)."""
        assert self.process is not None, "mosquitto is not running"
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None, "mosquitto is not running"
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no mosquitto log)"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def make_broker(
    *,
    password: Mapping[str, str] | None = None,
    acl: str | None = None,
    extra: Sequence[str] = (),
    tls: bool = False,
    start: bool = True,
) -> Iterator[Mosquitto]:
    """A configured mosquitto, stopped and removed afterwards; its log printed on failure."""
    mosquitto = Mosquitto(password=password, acl=acl, extra=extra, tls=tls)
    try:
        if start:
            mosquitto.start()
        yield mosquitto
    except BaseException:
        print(f"--- mosquitto log ({mosquitto.log_file}) ---\n{mosquitto.log()}")
        raise
    finally:
        mosquitto.close()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A running mosquitto with the default (anonymous) config."""
    with make_broker() as mosquitto:
        yield mosquitto


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    """A subscriber to everything on ``broker``, already subscribed."""
    with Subscriber(broker.port, ["#"]) as sub:
        yield sub
