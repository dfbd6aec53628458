"""The consumer: batches by size, by age, at once for an edge; drains on END."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import pytest

from pihub.consumer import END, Consumer
from pihub.errors import SpoolError
from pihub.health import Health
from pihub.readings import Reading
from tests.waiting import wait_until


class FakeSpool:
    """Records what the consumer commits (the real spool has its own tests)."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []
        self.fail = False
        self.appended = threading.Condition()

    def append(self, readings: Sequence[Reading]) -> object:
        if self.fail:
            raise SpoolError("database or disk is full")
        with self.appended:
            self.batches.append(list(readings))
            self.appended.notify_all()
        return None

    def wait_batches(self, n: int, timeout: float = 5.0) -> list[list[Reading]]:
        with self.appended:
            assert self.appended.wait_for(lambda: len(self.batches) >= n, timeout), self.batches
            return list(self.batches)


def reading(i: int, edge: bool = False) -> Reading:
    return Reading("s", float(i), 1000.0 + i, edge=edge)


@pytest.fixture
def rig() -> Iterator[tuple[queue.Queue[object], FakeSpool, Health, list[list[Reading]]]]:
    yield queue.Queue(), FakeSpool(), Health("h"), []


def start(q: queue.Queue[object], spool: FakeSpool, health: Health,
          committed: list[list[Reading]], max_readings: int = 3,
          max_latency: float = 3600.0) -> Consumer:
    consumer = Consumer(q, spool, health, max_readings=max_readings, max_latency=max_latency,
                        committed=committed.append)
    consumer.start()
    return consumer


@pytest.mark.timeout(10)
def test_a_full_batch_is_committed_at_once(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    consumer = start(q, spool, health, committed)
    try:
        for i in range(7):
            q.put(reading(i))
        batches = spool.wait_batches(2)
        assert [len(b) for b in batches] == [3, 3]
        assert [r.value for b in batches for r in b] == [0, 1, 2, 3, 4, 5]
    finally:
        q.put(END)
        consumer.join(5)
    assert [len(b) for b in spool.batches] == [3, 3, 1]  # END drains the rest
    assert health.readings == 7
    assert committed == spool.batches


@pytest.mark.timeout(10)
def test_a_partial_batch_is_committed_when_its_oldest_is_max_latency_old(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    consumer = start(q, spool, health, committed, max_readings=100, max_latency=0.05)
    try:
        q.put(reading(1))
        q.put(reading(2))
        assert [len(b) for b in spool.wait_batches(1)] == [2]
    finally:
        q.put(END)
        consumer.join(5)


@pytest.mark.timeout(10)
def test_an_edge_flushes_its_batch_at_once(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    consumer = start(q, spool, health, committed, max_readings=100)
    try:
        q.put(reading(1))
        q.put(reading(2, edge=True))
        batches = spool.wait_batches(1)
        assert [r.value for r in batches[0]] == [1, 2]
    finally:
        q.put(END)
        consumer.join(5)


@pytest.mark.timeout(10)
def test_a_spool_failure_counts_the_batch_as_dropped_and_goes_on(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    spool.fail = True
    consumer = start(q, spool, health, committed, max_readings=2)
    try:
        q.put(reading(1))
        q.put(reading(2))
        wait_until(lambda: health.dropped_spool == 2, 5, what="the drop to be counted")
        spool.fail = False
        q.put(reading(3))
        q.put(reading(4))
        assert [r.value for r in spool.wait_batches(1)[0]] == [3, 4]
    finally:
        q.put(END)
        consumer.join(5)
    assert not consumer.is_alive()
    assert health.readings == 2
