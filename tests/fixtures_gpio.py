"""Fixtures for tests on mock pins and simulated hardware (imported by conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pihub.hardware import Hardware
from pihub.simulation import SimulatedHardware
from pihub.simulation.pins import MockFactory

__all__ = ["mock_factory", "mock_hardware", "sim_hardware"]


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """A fresh mock pin factory of its own; gpiozero's global factory is never touched."""
    factory = MockFactory()
    try:
        yield factory
    finally:
        factory.close()
        factory.reset()


@pytest.fixture
def mock_hardware(mock_factory: MockFactory, tmp_path: Path) -> Iterator[Hardware]:
    """Hardware on ``mock_factory`` whose system paths live under ``tmp_path``."""
    hardware = Hardware(mock_factory, backend="mock", root=tmp_path)
    try:
        yield hardware
    finally:
        hardware.close()


@pytest.fixture
def sim_hardware() -> Iterator[SimulatedHardware]:
    """A seeded simulation that moves only when the test calls ``step()``."""
    hardware = SimulatedHardware(seed=1, autostart=False)
    try:
        yield hardware
    finally:
        hardware.close()
