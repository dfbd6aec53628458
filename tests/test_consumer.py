"""The consumer: batches by size, by age, at once for an edge; drains on END."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from pihub.consumer import END, GROUP_COMMIT, Consumer
from pihub.errors import SpoolError
from pihub.health import Health
from pihub.readingqueue import ReadingQueue
from pihub.readings import Reading
from tests.waiting import wait_until


class FakeSpool:
    """Records what the consumer commits (the real spool has its own tests): the packs
    in ``batches``, and how many readings each commit (transaction) held."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []
        self.commits: list[int] = []
        self.fail = False
        self.appended = threading.Condition()

    def append(self, readings: Sequence[Reading], per_pack: int | None = None) -> object:
        if self.fail:
            raise SpoolError("database or disk is full")
        step = per_pack or len(readings)
        with self.appended:
            self.batches += [list(readings[i:i + step]) for i in range(0, len(readings), step)]
            self.commits.append(len(readings))
            self.appended.notify_all()
        return None

    def wait_batches(self, n: int, timeout: float = 5.0) -> list[list[Reading]]:
        with self.appended:
            assert self.appended.wait_for(lambda: len(self.batches) >= n, timeout), self.batches
            return list(self.batches)


def reading(i: int, edge: bool = False) -> Reading:
    return Reading("s", float(i), 1000.0 + i, edge=edge)


@pytest.fixture
def rig() -> Iterator[tuple[ReadingQueue, FakeSpool, Health, list[list[Reading]]]]:
    yield ReadingQueue(0), FakeSpool(), Health("h"), []


def start(q: ReadingQueue, spool: FakeSpool, health: Health,
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
    assert [r for b in committed for r in b] == [r for b in spool.batches for r in b]


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


@pytest.mark.timeout(10)
def test_full_batches_already_waiting_are_committed_together_as_packs(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    for i in range(3 * GROUP_COMMIT + 5):  # queued before the consumer runs: a backlog
        q.put(reading(i))
    q.put(END)
    consumer = start(q, spool, health, committed, max_readings=3)
    consumer.join(5)
    # Every pack still holds a batch (max_readings) in seq order ...
    assert [len(b) for b in spool.batches] == [3] * (GROUP_COMMIT + 1) + [2]
    assert [r.value for b in spool.batches for r in b] == list(range(3 * GROUP_COMMIT + 5))
    # ... but a transaction takes up to GROUP_COMMIT of them: fewer fsyncs in a backlog.
    assert spool.commits[0] == 3 * GROUP_COMMIT
    assert max(spool.commits) <= 3 * GROUP_COMMIT
    assert health.readings == 3 * GROUP_COMMIT + 5


@pytest.mark.timeout(10)
def test_a_full_batch_is_not_held_back_waiting_for_a_group(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    consumer = start(q, spool, health, committed, max_readings=3)
    try:
        for i in range(4):  # one full batch and one reading: nothing to group with
            q.put(reading(i))
        assert [len(b) for b in spool.wait_batches(1)] == [3]
        assert spool.commits == [3]
    finally:
        q.put(END)
        consumer.join(5)


@pytest.mark.timeout(20)
def test_readings_that_trickle_in_cost_one_wake_up_per_commit(rig: tuple) -> None:  # type: ignore[type-arg]
    q, spool, health, committed = rig
    consumer = start(q, spool, health, committed, max_readings=1000, max_latency=0.2)
    try:
        for i in range(60):  # 60 readings, 10 ms apart: about 3 commits' worth
            q.put(reading(i))
            time.sleep(0.01)  # pacing the producer, not waiting for a result
        wait_until(lambda: health.readings == 60, 5, what="all 60 committed")
        beats = consumer.beats
    finally:
        q.put(END)
        consumer.join(5)
    commits = len(spool.commits)
    # Waking for the first reading of each batch as well as for its deadline would be
    # two beats a commit; gathering is one (plus the first reading, plus slack).
    assert beats <= commits + 3, (beats, commits)
