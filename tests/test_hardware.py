"""Choosing a pin backend, and what Hardware gives sensors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero import Device

from pihub.errors import (
    HardwareError,
    NoPinLibrary,
    PinFactoryUnavailable,
    SensorError,
    UnknownPinFactory,
)
from pihub.hardware import Hardware, open_hardware
from pihub.sensors.base import NoOptions
from pihub.sensors.gpio import Digital, DigitalOptions
from pihub.sensors.system import LoadAvg
from pihub.simulation import SimulatedHardware
from pihub.simulation.pins import MockFactory, UnwiredFactory


def test_mock_backend() -> None:
    with open_hardware("mock", simulate=False) as hardware:
        assert isinstance(hardware.pin_factory, MockFactory)
        assert hardware.backend == "mock" and not hardware.simulated
        assert "backend=mock" in repr(hardware) and "open" in repr(hardware)
    assert "closed" in repr(hardware)
    with pytest.raises(HardwareError):
        _ = hardware.pin_factory


def test_names_are_case_insensitive() -> None:
    with open_hardware("MOCK", simulate=False) as hardware:
        assert hardware.backend == "mock"


def test_unknown_backend() -> None:
    with pytest.raises(UnknownPinFactory, match="auto, lgpio"):
        open_hardware("wiringpi", simulate=False)


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio installed")
def test_a_backend_that_cannot_load_says_why() -> None:
    with pytest.raises(PinFactoryUnavailable, match=r"lgpio.*pihub\[pi\]"):
        open_hardware("lgpio", simulate=False)


def test_native_off_a_pi_cannot_load() -> None:
    if Path("/proc/device-tree/model").exists():
        pytest.skip("running on a Pi")
    with pytest.raises(PinFactoryUnavailable, match="native"):
        open_hardware("native", simulate=False)


def test_auto_without_any_pin_library_still_runs_pinless_sensors() -> None:
    with open_hardware("auto", simulate=False) as hardware:
        if not isinstance(hardware.pin_factory, UnwiredFactory):
            pytest.skip(f"a real pin library loaded here: {hardware.backend}")
        assert hardware.backend == "none"
        with pytest.raises(NoPinLibrary, match="simulate = true"):
            hardware.pin_factory.pin(17)
        with pytest.raises(SensorError, match="no GPIO pin library"):
            Digital("door", DigitalOptions(pin="17"), hardware)
        if os.path.exists("/proc/loadavg"):
            with LoadAvg("load", NoOptions(), hardware) as load:
                assert float(load.read()[0].value) >= 0.0
    # gpiozero's global factory is left alone
    assert Device.pin_factory is None


def test_simulate_ignores_the_pin_factory() -> None:
    with open_hardware("wiringpi", simulate=True, seed=3) as hardware:
        assert isinstance(hardware, SimulatedHardware)
        assert hardware.simulated and hardware.seed == 3


def test_paths_are_real_without_a_root(mock_factory: MockFactory) -> None:
    with Hardware(mock_factory) as hardware:
        assert hardware.path("/sys/bus/w1/devices") == Path("/sys/bus/w1/devices")


def test_paths_are_remapped_under_a_root(mock_factory: MockFactory, tmp_path: Path) -> None:
    with Hardware(mock_factory, root=tmp_path) as hardware:
        assert hardware.path("/proc/loadavg") == tmp_path / "proc" / "loadavg"
        assert hardware.path("relative/file") == Path("relative/file")
        assert str(tmp_path) in repr(hardware)


def test_close_is_idempotent_and_closes_the_factory(tmp_path: Path) -> None:
    factory = MockFactory()
    hardware = Hardware(factory, root=tmp_path)
    pin = hardware.pin_factory.pin(17)
    pin.function = "output"
    hardware.close()
    hardware.close()
    assert hardware.closed
    assert pin.function == "input"  # closed pins go back to inputs


def test_a_missing_i2c_bus_says_how_to_enable_it(mock_factory: MockFactory) -> None:
    with Hardware(mock_factory) as hardware, pytest.raises(HardwareError, match="i2c-250"):
        hardware.i2c_bus(250)


def test_statvfs_of_a_real_path(mock_factory: MockFactory, tmp_path: Path) -> None:
    with Hardware(mock_factory, root=tmp_path) as hardware:
        assert hardware.statvfs("/").f_blocks > 0


@pytest.mark.timeout(60)
def test_mock_pins_do_not_load_the_simulated_world() -> None:
    # fake-rpi's package imports numpy (its fake camera): 12 MiB a hub on mock pins or
    # real ones never needs. Only simulate = true may load it.
    code = ("import sys; from pihub.hardware import open_hardware; "
            "import pihub.supervisor, pihub.cli; open_hardware('mock', simulate=False); "
            "print(sorted(m for m in ('fake_rpi', 'numpy', 'pihub.simulation.world') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
