"""TLS done right, and the broker password's way in — against real mosquitto brokers with
certificates made here (trustme)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from pihub.clock import Clock
from pihub.config import load_config
from pihub.mqtt import MqttLink
from pihub.supervisor import Hub
from tests.broker import Mosquitto, make_broker
from tests.hubproc import SIGTERM, HubProcess, hub_config, seqs
from tests.subscriber import Subscriber
from tests.waiting import wait_until

PASSWORD = "s3cret-Pa55word"


def _link(tmp_path: Path, port: int, mqtt: str) -> MqttLink:
    path = tmp_path / "config.ini"
    path.write_text(hub_config(port, tmp_path / "state", mqtt=mqtt))
    return MqttLink(load_config(path, environ={}), [], on_ack=lambda mid, reason: None)


@contextmanager
def started(link: MqttLink) -> Iterator[MqttLink]:
    link.start()
    try:
        yield link
    finally:
        link.stop(2)


def _write_ca(tmp_path: Path, name: str) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path / f"{name}.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.mark.timeout(60)
def test_a_verified_tls_broker_with_a_password_file(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    with make_broker(tls=True, password={"testhub": PASSWORD, "watcher": "w"}) as broker:
        assert broker.tls is not None
        path = tmp_path / "config.ini"
        path.write_text(hub_config(broker.port, tmp_path / "state", mqtt=f"""
tls = true
ca_certs = {broker.tls.ca_file}
username = testhub
password_file = {tmp_path / "pw"}
"""))
        hub = Hub(load_config(path, environ={}), clock=Clock(lambda: True))
        with Subscriber(broker.port, ["pihub/#"], username="watcher", password="w",
                        ca_file=str(broker.tls.ca_file)) as sub:
            hub.start()
            try:
                sub.wait_for_message("pihub/testhub/status", b"online")
                sub.wait_for(lambda ms: len(seqs(ms)) >= 20, 15)
            finally:
                hub.shutdown()
        assert "u'testhub'" in broker.log()
    assert PASSWORD not in caplog.text


@pytest.mark.timeout(30)
def test_a_broker_signed_by_another_ca_is_refused_and_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pihub.mqtt")
    _, wrong_ca = _write_ca(tmp_path, "wrong-ca")
    with make_broker(tls=True) as broker, started(_link(tmp_path, broker.port, f"""
tls = true
ca_certs = {wrong_ca}
""")) as link:
        wait_until(lambda: "still cannot connect" in caplog.text, 15,
                   what="a second attempt")  # it keeps trying, and says why
        assert not link.connected
        assert link.last_error is not None
        assert link.last_error.startswith("TLS: certificate verify failed")
        assert "certificate verify failed" in caplog.text
        assert "New client connected" not in broker.log()


@pytest.mark.timeout(30)
def test_tls_against_a_plain_text_broker_never_falls_back(
        broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pihub.mqtt")
    _, ca = _write_ca(tmp_path, "ca")
    with started(_link(tmp_path, broker.port, f"tls = true\nca_certs = {ca}\n")) as link:
        wait_until(lambda: "still cannot connect" in caplog.text, 15, what="a second attempt")
        assert not link.connected
        # mosquitto resets the connection on a ClientHello; what matters is that the hub
        # says it cannot connect and never sends a plain-text CONNECT instead.
        assert link.last_error is not None
    assert "New client connected" not in broker.log()


@pytest.fixture
def client_cert_broker(tmp_path: Path) -> Iterator[tuple[trustme.CA, Path, Mosquitto]]:
    """A broker that wants a client certificate and takes its CN as the user name."""
    ca, ca_file = _write_ca(tmp_path, "ca")
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    broker = Mosquitto(extra=[
        f"cafile {ca_file}", f"certfile {tmp_path / 'server.pem'}",
        f"keyfile {tmp_path / 'server.key'}", "require_certificate true",
        "use_identity_as_username true"])
    try:
        broker.start()
        yield ca, ca_file, broker
    except BaseException:
        print(broker.log())
        raise
    finally:
        broker.close()


@pytest.mark.timeout(30)
def test_client_certificate_login(tmp_path: Path,
                                  client_cert_broker: tuple[trustme.CA, Path, Mosquitto]
                                  ) -> None:
    ca, ca_file, broker = client_cert_broker
    client = ca.issue_cert("testhub", common_name="testhub")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    mqtt = f"tls = true\nca_certs = {ca_file}\n"
    with started(_link(tmp_path, broker.port, mqtt + f"""
certfile = {tmp_path / "client.pem"}
keyfile = {tmp_path / "client.key"}
""")) as link:
        wait_until(lambda: link.connected, 10, what="a connection with the certificate")
    assert "u'testhub'" in broker.log()  # the certificate's CN is the user name

    with started(_link(tmp_path, broker.port, mqtt)) as anonymous:
        wait_until(lambda: broker.log().count("peer did not return a certificate") >= 2, 15,
                   what="the broker to refuse two attempts without a certificate")
        assert not anonymous.connected


@pytest.mark.timeout(30)
def test_a_missing_client_certificate_is_reported(
        tmp_path: Path, client_cert_broker: tuple[trustme.CA, Path, Mosquitto]) -> None:
    _, ca_file, broker = client_cert_broker
    with started(_link(tmp_path, broker.port, f"tls = true\nca_certs = {ca_file}\n")) as link:
        wait_until(lambda: "peer did not return a certificate" in broker.log(), 15)
        wait_until(lambda: link.last_error is not None, 3, what="the hub to say why")


@pytest.mark.timeout(60)
def test_the_password_from_the_credentials_directory_end_to_end(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text(PASSWORD)
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "PIHUB_MQTT_PASSWORD": ""}
    with make_broker(password={"testhub": PASSWORD, "watcher": "w"}) as broker:
        config = hub_config(broker.port, tmp_path / "state", mqtt="username = testhub\n")
        with Subscriber(broker.port, ["pihub/#"], username="watcher", password="w") as sub, \
                HubProcess(tmp_path, config, env=env) as hub:
            sub.wait_for_message("pihub/testhub/status", b"online", timeout=20)
            sub.wait_for(lambda ms: len(seqs(ms)) >= 20, 15)
            hub.signal(SIGTERM)
            assert hub.wait(15) == 0
        log = hub.log()
        assert "connected to 127.0.0.1" in log
        assert PASSWORD not in log  # DEBUG level, and still not there
        check = subprocess.run(
            [sys.executable, "-m", "pihub", "check", "-c", str(hub.config_path)],
            check=False, capture_output=True, text=True, env=hub.env, timeout=30)
        assert check.returncode == 0, check.stderr
        assert "$CREDENTIALS_DIRECTORY/mqtt_password" in check.stdout
        assert PASSWORD not in check.stdout + check.stderr
