"""The deployment files: the systemd unit, install.sh and the mosquitto example.

No systemd runs here, so the unit is checked the ways systemd offers offline
(``systemd-analyze verify`` and ``security --offline``), install.sh lays its files down
under a throw-away ``--root``, and the broker example runs in a real mosquitto.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from pihub.config import load_config
from tests.broker import MOSQUITTO_PASSWD, Mosquitto

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "pihub.service"
INSTALL = DEPLOY / "install.sh"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "pihub.conf"
MOSQUITTO_ACL = DEPLOY / "mosquitto" / "pihub.acl"
EXEC_START = "/opt/pihub/venv/bin/pihub"
#: The highest `systemd-analyze security` exposure the unit may have (docs/DEPLOY.md).
EXPOSURE_THRESHOLD = 2.0
MQTT_TIMEOUT = 10.0
NOT_AUTHORIZED = 0x87

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                   reason="systemd-analyze missing (apt install systemd)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


# --- the unit ----------------------------------------------------------------------

def unit_settings(text: str) -> dict[str, list[str]]:
    """``[Section] Key`` → every value it is given, in order (systemd's repeatable keys)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section} {key.strip()}", []).append(value.strip())
    return settings


def verify(unit_text: str, directory: Path) -> str:
    """What ``systemd-analyze verify`` says about the unit: empty means nothing wrong.

    It insists that ExecStart's program exists, and /opt/pihub is not installed here, so
    the copy runs this Python instead (arguments unchanged). Unknown keys and bad values
    are only warnings to it (exit 0), so any output at all counts as a problem.
    """
    assert SYSTEMD_ANALYZE is not None
    assert f"ExecStart={EXEC_START} " in unit_text
    path = directory / "pihub.service"
    path.write_text(unit_text.replace(f"ExecStart={EXEC_START} ", f"ExecStart={sys.executable} "))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(path)],
                          check=False, capture_output=True, text=True, timeout=60)
    said = (done.stdout + done.stderr).strip()
    if done.returncode != 0 and not said:
        said = f"exit status {done.returncode}"
    return said


@needs_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    assert verify(UNIT.read_text(), tmp_path) == ""


@needs_analyze
@pytest.mark.parametrize("breakage", [
    ("NotifyAccess=main", "NotifyAcess=main"),              # an unknown key
    ("Restart=on-failure", "Restart=sometimes"),             # a bad value
    ("DevicePolicy=closed", "DevicePolicy=shut"),
])
def test_verify_catches_a_broken_unit(tmp_path: Path, breakage: tuple[str, str]) -> None:
    good, bad = breakage
    text = UNIT.read_text()
    assert good in text
    assert verify(text.replace(good, bad), tmp_path) != ""


def exposure(unit: Path) -> float:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) ", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


@needs_analyze
def test_security_exposure_is_ok() -> None:
    assert exposure(UNIT) <= EXPOSURE_THRESHOLD


@needs_analyze
def test_security_score_notices_a_weaker_unit(tmp_path: Path) -> None:
    weak = tmp_path / "pihub.service"
    weak.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                              if not line.startswith(("Protect", "SystemCall", "Restrict"))))
    assert exposure(weak) > EXPOSURE_THRESHOLD


def test_unit_has_the_settings_the_hub_relies_on() -> None:
    s = unit_settings(UNIT.read_text())
    expected = {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30",
        "ExecStart": f"{EXEC_START} run -c /etc/pihub/config.ini",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure", "RestartPreventExitStatus": "78",
        "User": "pihub", "StateDirectory": "pihub", "ConfigurationDirectory": "pihub",
        "WorkingDirectory": "/var/lib/pihub", "UMask": "0077",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "DevicePolicy": "closed", "CapabilityBoundingSet": "",
        "AmbientCapabilities": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallArchitectures": "native", "MemoryDenyWriteExecute": "yes",
    }
    for key, value in expected.items():
        assert s.get(f"Service {key}") == [value], key
    # Longer than the default shutdown_timeout (5 s), so the hub's own flush runs out first.
    assert int(s["Service TimeoutStopSec"][0]) > 5
    environment = " ".join(s["Service Environment"]).split()
    assert "PYTHONFAULTHANDLER=1" in environment
    assert "LG_WD=/var/lib/pihub" in environment
    assert "@system-service" in s["Service SystemCallFilter"]
    assert sorted(s["Service DeviceAllow"]) == ["char-gpiochip rw", "char-i2c rw", "char-spi rw"]
    # The credential the config loader reads; a name (not a path) so a missing one is fine.
    assert "mqtt_password:pihub.mqtt_password" in s["Service LoadCredential"]
    assert not any("PASSWORD" in e for e in environment)


# prctl(PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1): the kernel's own W^X switch.
MDWE_PROBE = """
import ctypes, mmap, sqlite3, ssl, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(3)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit(4)   # W^X is not in force: the probe would prove nothing
except OSError:
    pass
# A ctypes callback needs executable trampoline memory from libffi.
assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)(41) == 42
import gpiozero, paho.mqtt.client, smbus2
sqlite3.connect(":memory:").execute("select 1")
ssl.create_default_context()
from pihub.cli import main
sys.exit(main(["check", "-c", sys.argv[1]]))
"""


def test_python_stack_runs_without_write_execute_memory() -> None:
    """MemoryDenyWriteExecute=yes: prctl(PR_SET_MDWE) is the kernel's own form of it."""
    done = subprocess.run([sys.executable, "-c", MDWE_PROBE, str(REPO / "config.ini")],
                          check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert done.returncode == 0, done.stderr


# --- install.sh ----------------------------------------------------------------------

@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty system root with account files, so useradd --prefix has a place to write."""
    etc = tmp_path / "root" / "etc"
    etc.mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        (etc / name).touch(mode=0o600 if "shadow" in name else 0o644)
    return tmp_path / "root"


def install(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--no-pip", "--python", sys.executable,
         *args],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under root (the venv's insides aside): type, mode, owner, content."""
    files: dict[str, tuple[Any, ...]] = {}
    venv = root / "opt" / "pihub" / "venv"
    for path in sorted(root.rglob("*")):
        if venv in path.parents:
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what: object = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = None
        files[str(path.relative_to(root))] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, what)
    return files


def account(root: Path, file: str, name: str) -> list[str]:
    for line in (root / "etc" / file).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise AssertionError(f"{name} not in {file}")


@needs_root
def test_install_lays_down_the_service(root: Path) -> None:
    said = install(root)
    unit = root / "etc/systemd/system/pihub.service"
    assert unit.read_text() == UNIT.read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/pihub.service"
    assert os.readlink(wants) == "/etc/systemd/system/pihub.service"

    user = account(root, "passwd", "pihub")
    uid, gid = int(user[2]), int(user[3])
    assert user[5:] == ["/var/lib/pihub", "/usr/sbin/nologin"]
    assert uid != 0
    for group in ("gpio", "i2c", "spi"):
        assert "pihub" in account(root, "group", group)[3].split(",")

    state = (root / "var/lib/pihub").stat()
    assert (stat.S_IMODE(state.st_mode), state.st_uid, state.st_gid) == (0o700, uid, gid)
    assert stat.S_IMODE((root / "etc/credstore").stat().st_mode) == 0o700
    config = root / "etc/pihub/config.ini"
    st = config.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid)

    assert (root / "opt/pihub/venv/bin/python").exists()
    venv_python = root / "opt/pihub/venv/bin/python"
    assert f"would run: {venv_python} -m pip install" in said
    assert str(REPO) in said

    # The starter config is one the hub accepts.
    starter = load_config(config, environ={})
    assert starter.hub.state_dir == "/var/lib/pihub"
    assert {s.name for s in starter.sensors} == {"cpu", "load", "disk"}


@needs_root
def test_install_twice_changes_nothing(root: Path) -> None:
    install(root)
    first = snapshot(root)
    said = install(root)
    assert snapshot(root) == first
    assert "created" not in said


@needs_root
def test_install_keeps_an_existing_config(root: Path) -> None:
    install(root)
    config = root / "etc/pihub/config.ini"
    config.write_text("[hub]\nid = mine\n")
    said = install(root)
    assert config.read_text() == "[hub]\nid = mine\n"
    assert "kept the existing" in said


@needs_root
def test_uninstall_keeps_config_and_spool_unless_purged(root: Path) -> None:
    install(root)
    (root / "var/lib/pihub/spool.db").write_bytes(b"unpublished readings")
    done = subprocess.run(["bash", str(DEPLOY / "uninstall.sh"), "--root", str(root)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (root / "etc/systemd/system/pihub.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/pihub.service").exists()
    assert not (root / "opt/pihub").exists()
    assert (root / "etc/pihub/config.ini").exists()
    assert (root / "var/lib/pihub/spool.db").exists()

    install(root, "--uninstall", "--purge")
    assert not (root / "etc/pihub").exists()
    assert not (root / "var/lib/pihub").exists()
    assert "pihub:" not in (root / "etc/passwd").read_text()


# --- the mosquitto example ---------------------------------------------------------------

def example_broker(directory: Path, passwords: dict[str, str]) -> Mosquitto:
    """A mosquitto running deploy/mosquitto/pihub.conf, rewritten only where it must be:
    the port, the file paths, and the user (the temp files are root's)."""
    broker = Mosquitto()
    password_file = directory / "pihub.passwd"
    password_file.touch(mode=0o600)
    for user, password in passwords.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(password_file), user, password],
                       check=True, capture_output=True)
    acl_file = directory / "pihub.acl"
    shutil.copy(MOSQUITTO_ACL, acl_file)
    rewrites = {
        "listener 1883": f"listener {broker.port} 127.0.0.1",
        "password_file /etc/mosquitto/pihub.passwd": f"password_file {password_file}",
        "acl_file /etc/mosquitto/pihub.acl": f"acl_file {acl_file}",
    }
    lines = MOSQUITTO_CONF.read_text().splitlines()
    for old, new in rewrites.items():
        assert lines.count(old) == 1, f"deploy/mosquitto/pihub.conf: no single {old!r}"
        lines[lines.index(old)] = new
    lines += ["user root", "persistence false", f"log_dest file {broker.log_file}",
              "log_type all"]
    broker.conf_file.write_text("\n".join(lines) + "\n")
    return broker


class Publisher:
    """A bare MQTT 5 client that publishes at QoS 1 and hands back each PUBACK's reason."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{username}",
                                  protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.connack: ReasonCode | None = None
        self.acks: dict[int, ReasonCode] = {}
        self.acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.port = port

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason: ReasonCode, properties: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    reason: ReasonCode, properties: Any) -> None:
        with self.acked:
            self.acks[mid] = reason
            self.acked.notify_all()

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(MQTT_TIMEOUT), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str) -> int:
        """The PUBACK reason code for one QoS 1 message to ``topic``."""
        info = self.client.publish(topic, b"1", qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.acks, MQTT_TIMEOUT), "no PUBACK"
            return int(self.acks[info.mid].value)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = example_broker(tmp_path, {"a": "secret-a", "b": "secret-b"})
    try:
        broker.start()
        yield broker
    except BaseException:
        print(f"--- mosquitto log ---\n{broker.log()}")
        raise
    finally:
        broker.close()


@pytest.fixture
def hub_a(example: Mosquitto) -> Iterator[Publisher]:
    publisher = Publisher(example.port, "a", "secret-a")
    try:
        assert not publisher.connect().is_failure
        yield publisher
    finally:
        publisher.close()


def test_example_broker_lets_a_hub_write_its_own_topics(hub_a: Publisher) -> None:
    for topic in ("pihub/a/readings", "pihub/a/status", "pihub/a/sensor/door",
                  "homeassistant/sensor/a/door/config"):
        assert hub_a.publish(topic) < 0x80, topic


def test_example_broker_refuses_another_hubs_topics(hub_a: Publisher) -> None:
    for topic in ("pihub/b/readings", "pihub/b/status", "homeassistant/sensor/b/door/config",
                  "elsewhere"):
        assert hub_a.publish(topic) == NOT_AUTHORIZED, topic
    # The refusals do not cost the hub its connection.
    assert hub_a.publish("pihub/a/readings") < 0x80


def test_example_broker_refuses_strangers(example: Mosquitto) -> None:
    for username, password in ((None, None), ("a", "wrong")):
        stranger = Publisher(example.port, username, password)
        try:
            assert stranger.connect().is_failure
        finally:
            stranger.close()
