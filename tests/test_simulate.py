"""``pihub run --simulate`` as a process: every sensor type publishes plausible, moving values."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from pihub.demo import SENSORS
from pihub.readings import Value
from pihub.senml import decode_pack
from tests.broker import Mosquitto
from tests.hubproc import SIGTERM, HubProcess, hub_config
from tests.subscriber import Message, Subscriber

#: The demo's hub — one sensor of every type — polled five times a second.
EVERY_TYPE = re.sub(r"interval = \d+", "interval = 0.2", SENSORS)


#: record → (unit, lowest plausible, highest plausible)
PLAUSIBLE: dict[str, tuple[str | None, float, float]] = {
    "daylight": ("/", 0.0, 1.0),
    "water_level": ("m", 0.0, 1.0),
    "soil": ("V", 0.0, 3.3),
    "cpu": ("Cel", 20.0, 90.0),
    "load": (None, 0.0, 16.0),
    "disk": ("%", 0.0, 100.0),
    "attic": ("Cel", -20.0, 50.0),
    "climate/temperature": ("Cel", -10.0, 45.0),
    "climate/humidity": ("%RH", 0.0, 100.0),
    "climate/pressure": ("Pa", 90000.0, 110000.0),
}
SWITCHES = ("door", "hallway_motion")


def values(messages: list[Message]) -> dict[str, list[tuple[Value, str | None]]]:
    seen: dict[str, list[tuple[Value, str | None]]] = defaultdict(list)
    for message in messages:
        if message.topic == "pihub/testhub/readings":
            for record in decode_pack(message.payload):
                seen[record.name.removeprefix("testhub/")].append((record.value, record.unit))
    return seen


def moving(messages: list[Message]) -> bool:
    seen = values(messages)
    numbers_move = all(len({v for v, _ in seen.get(name, [])}) >= 3 for name in PLAUSIBLE)
    switches_move = all({v for v, _ in seen.get(name, [])} == {True, False} for name in SWITCHES)
    return numbers_move and switches_move


@pytest.mark.timeout(90)
def test_every_sensor_type_publishes_plausible_moving_values(
        broker: Mosquitto, tmp_path: Path) -> None:
    config = hub_config(broker.port, tmp_path / "state", sensors=EVERY_TYPE)
    # Ten times real time, so the door and the PIR change within the test's patience.
    with Subscriber(broker.port, ["pihub/#"]) as sub, HubProcess(
            tmp_path, config, env={"PIHUB_SIMULATION_SPEED": "10"}) as hub:
        messages = sub.wait_for(moving, timeout=60)
        hub.signal(SIGTERM)
        assert hub.wait(15) == 0, hub.log()
    seen = values(messages)
    for name, (unit, low, high) in PLAUSIBLE.items():
        for value, got_unit in seen[name]:
            assert got_unit == unit, name
            assert isinstance(value, float) and not isinstance(value, bool), (name, value)
            assert low <= value <= high, (name, value)
    for name in SWITCHES:
        assert all(isinstance(v, bool) and u is None for v, u in seen[name])
    assert "Traceback" not in hub.log(), hub.log()
