"""The pihub command: --version, --help, exit codes, check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
