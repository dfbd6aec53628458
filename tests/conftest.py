"""Shared fixtures: the mock pin factory, a real mosquitto, an independent subscriber."""

from __future__ import annotations

import importlib.util

# Each fixture module is owned by the module it serves; conftest only gathers them.
for _name in ("tests.fixtures_gpio", "tests.broker", "tests.subscriber"):
    if importlib.util.find_spec(_name) is not None:
        exec(f"from {_name} import *")  # noqa: S102 - re-export the fixtures
