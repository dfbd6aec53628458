"""The pihub command: --version, --help, exit codes, check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pihub import __version__
from pihub.cli import EX_CONFIG, main


def pihub(*args: str, cwd: Path | None = None,
          timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pihub", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, check=False)


def test_version() -> None:
    result = pihub("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize("command", ["run", "check", "watch", "dashboard", "demo"])
def test_every_command_has_help(command: str) -> None:
    result = pihub(command, "--help")
    assert result.returncode == 0
    assert "usage: pihub" in result.stdout


def test_check_accepts_the_example_config() -> None:
    example = Path(__file__).parent.parent / "config.ini"
    result = pihub("check", "-c", str(example))
    assert result.returncode == 0, result.stderr
    assert "door" in result.stdout


def test_a_bad_config_exits_78_with_one_line_per_problem_and_no_traceback(
        tmp_path: Path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[hub]\nqueue_sise = 5\n[mqtt]\nport = many\n")
    for command in ("check", "run"):
        result = pihub(command, "-c", str(bad))
        assert result.returncode == EX_CONFIG
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 2, result.stderr
        assert any("[hub] queue_sise" in line and "queue_size" in line for line in lines)
        assert any("[mqtt] port" in line for line in lines)


def test_a_missing_config_file_exits_78(tmp_path: Path) -> None:
    assert main(["check", "-c", str(tmp_path / "nope.ini")]) == EX_CONFIG


def test_run_refuses_what_check_refuses_before_touching_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ini"
    state = tmp_path / "state"
    bad.write_text(f"[hub]\nstate_dir = {state}\n[sensor:x]\ntype = digitl\npin = GPIO4\n")
    result = pihub("run", "-c", str(bad))
    assert result.returncode == EX_CONFIG
    assert "did you mean 'digital'" in result.stderr
    assert not state.exists()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=400),
    st.lists(st.tuples(
        st.sampled_from(["hub", "mqtt", "batch", "spool", "sensor:x", "sensor:", "bogus"]),
        st.sampled_from(["id", "port", "qos", "max_bytes", "type", "pin", "interval",
                         "queue_size", "password", "synchronous", "keepalive", "x"]),
        st.one_of(st.text(max_size=20), st.integers().map(str),
                  st.sampled_from(["1e999", "nan", "-0", "9" * 40, "digital", "bme280"]))),
        max_size=8).map(lambda items: "\n".join(
            f"[{section}]\n{key} = {value}" for section, key, value in items).encode(
                "utf-8", "surrogatepass")),
))
def test_any_config_file_gives_0_or_78_and_never_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    path = tmp_path / "fuzz.ini"
    path.write_bytes(data)
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code in (0, EX_CONFIG), err
    assert "Traceback" not in err + out
    if code == EX_CONFIG:
        assert err.strip() and all("fuzz.ini" in line for line in err.strip().splitlines())
