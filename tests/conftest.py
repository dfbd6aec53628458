"""Shared fixtures: the mock pin factory, a real mosquitto, an independent subscriber.

Each fixture lives beside what it serves; conftest only gathers them.
"""

from tests.broker import broker, subscriber
from tests.fixtures_gpio import mock_factory, mock_hardware, sim_hardware
from tests.hubproc import durable_broker

__all__ = ["broker", "durable_broker", "mock_factory", "mock_hardware", "sim_hardware",
           "subscriber"]
