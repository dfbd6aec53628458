"""The publisher's retained latest values (delivery itself is tested end to end against
a real broker in test_run.py and test_faults*.py; here the link is a stand-in)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pihub.health import Health
from pihub.publisher import Publisher
from pihub.readings import Reading
from pihub.spool import Spool
from pihub.topics import Topics
from tests.waiting import wait_until


class RecordingLink:
    """Connected; records the retained values it is asked to publish."""

    def __init__(self) -> None:
        self.connected = True
        self.connect_count = 1
        self.max_packet_size: int | None = None
        self.states: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def publish_batch(self, payload: bytes) -> int:
        raise AssertionError("nothing was spooled")

    def publish_state(self, topic: str, payload: str | bytes) -> None:
        if "/sensor/" in topic:
            with self._lock:
                self.states.append((topic.rsplit("/", 1)[1], str(payload)))

    def sent(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.states)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Publisher, RecordingLink]]:
    spool = Spool(tmp_path / "spool.db", hub_id="h", max_bytes=1 << 20)
    link = RecordingLink()
    publisher = Publisher(spool, link, Topics("p", "h"), Health("h"))
    publisher.start()
    try:
        yield publisher, link
    finally:
        publisher.stop(5)
        spool.close()


def at(name: str, value: float | bool, edge: bool = False) -> Reading:
    return Reading(name, value, time.time(), edge=edge)


@pytest.mark.timeout(20)
def test_a_retained_value_is_sent_only_when_it_changed_and_again_after_a_reconnect(
        rig: tuple[Publisher, RecordingLink]) -> None:
    publisher, link = rig
    publisher.committed([at("door", True, edge=True), at("temp", 21.5)])
    wait_until(lambda: len(link.sent()) == 2, 5, what="the first values")
    # The same door value again, and a new temperature (edges go at once; other values
    # at most once a second, so the new temperature may take that long).
    publisher.committed([at("door", True, edge=True), at("temp", 22.0)])
    wait_until(lambda: ("temp", "22.0") in link.sent(), 5, what="the new temperature")
    assert link.sent().count(("door", "ON")) == 1  # unchanged: the broker has it
    publisher.committed([at("door", False, edge=True)])
    wait_until(lambda: ("door", "OFF") in link.sent(), 5, what="the door's change")
    # A new connection (the broker may have lost its retained messages): all again.
    before = len(link.sent())
    link.connect_count += 1
    publisher.wake()
    wait_until(lambda: len(link.sent()) >= before + 2, 5, what="the values re-sent")
    assert sorted(link.sent()[before:]) == [("door", "OFF"), ("temp", "22.0")]
