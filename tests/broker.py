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
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from pihub.localbroker import LOOPBACK, BrokerError, LocalBroker, free_port
from tests.subscriber import Subscriber

__all__ = ["Mosquitto", "TlsFiles", "broker", "free_port", "make_broker", "subscriber"]

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


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


class Mosquitto(LocalBroker):
    """One mosquitto process on a loopback port that stays the same across restarts.

    A :class:`pihub.localbroker.LocalBroker` (the demo's) with what tests need besides:
    a password file, an ACL, TLS, extra lines, and a config file written at once, so a
    test may add to :attr:`conf_file` before :meth:`start`.
    """

    def __init__(
        self,
        *,
        password: Mapping[str, str] | None = None,
        acl: str | None = None,
        extra: Sequence[str] = (),
        tls: bool = False,
    ) -> None:
        super().__init__(workdir=Path(tempfile.mkdtemp(prefix="pihub-mosquitto-")))
        self._own_dir = True
        self.host = LOOPBACK
        self.log_file = self.log_path
        self.conf_file = self.config_path
        self.tls: TlsFiles | None = TlsFiles(self.dir) if tls else None
        self.paused = False
        lines = [
            f"listener {self.port} {LOOPBACK}",
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
        return f"<Mosquitto {LOOPBACK}:{self.port} {state}>"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start mosquitto on :attr:`conf_file` and return once its port accepts connections."""
        if self.running:
            return
        self.paused = False
        try:
            self.launch(timeout)
        except BrokerError as exc:
            raise RuntimeError(f"{exc}\n{self.log()}") from exc

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (SIGKILL if it will not go) and wait. Idempotent."""
        if self.paused and self.running:
            self.resume()
        self.paused = False
        super().stop(timeout)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word to its clients."""
        process, self.process = self.process, None
        self.paused = False
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)

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

    def __enter__(self) -> Mosquitto:
        self.start()
        return self


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
