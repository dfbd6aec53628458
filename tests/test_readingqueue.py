"""The reading queue: a bounded queue.Queue whose consumer waits for a batch, not a reading."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from pihub.readingqueue import ReadingQueue
from pihub.readings import Reading


def reading(i: int, edge: bool = False) -> Reading:
    return Reading("s", float(i), 1000.0 + i, edge=edge)


def take_in_thread(pool: ThreadPoolExecutor, q: ReadingQueue, wanted: int,
                   timeout: float = 30.0) -> Future[list[object]]:
    started = threading.Event()

    def run() -> list[object]:
        started.set()
        return q.take(wanted, 100, timeout)

    future = pool.submit(run)
    started.wait(5)
    return future


@pytest.mark.timeout(10)
def test_take_sleeps_until_the_wanted_number_is_queued() -> None:
    q = ReadingQueue(100)
    with ThreadPoolExecutor(1) as pool:
        future = take_in_thread(pool, q, wanted=3)
        q.put(reading(1))
        q.put(reading(2))
        # Two of three: the taker must still be asleep (it would return them otherwise).
        with pytest.raises(TimeoutError):
            future.result(timeout=0.2)
        q.put(reading(3))
        assert [r.value for r in future.result(timeout=5)] == [1, 2, 3]  # type: ignore[attr-defined]


@pytest.mark.timeout(10)
def test_an_edge_or_a_sentinel_wakes_take_at_once() -> None:
    q = ReadingQueue(100)
    end = object()
    with ThreadPoolExecutor(1) as pool:
        future = take_in_thread(pool, q, wanted=50)
        q.put(reading(1))
        q.put(reading(2, edge=True))
        assert [r.value for r in future.result(timeout=5)] == [1, 2]  # type: ignore[attr-defined]
        future = take_in_thread(pool, q, wanted=50)
        q.put(end)
        assert future.result(timeout=5) == [end]


@pytest.mark.timeout(10)
def test_take_returns_what_is_there_after_its_timeout_and_nothing_when_empty() -> None:
    q = ReadingQueue(100)
    assert q.take(1, 10, 0.05) == []
    q.put(reading(1))
    began = time.monotonic()
    assert [r.value for r in q.take(5, 10, 0.1)] == [1]  # type: ignore[attr-defined]
    assert time.monotonic() - began >= 0.09  # it did wait for the other four
    for i in range(30):
        q.put(reading(i))
    assert len(q.take(1, 10, 0.0)) == 10 and q.qsize() == 20  # at most `most`, oldest first


@pytest.mark.timeout(10)
def test_the_bound_holds_and_take_makes_room_for_a_waiting_put() -> None:
    q = ReadingQueue(2)
    q.put(reading(1))
    q.put(reading(2))
    with pytest.raises(queue.Full):
        q.put_nowait(reading(3))
    with pytest.raises(queue.Full):
        q.put(reading(3), timeout=0.05)
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(q.put, reading(3), True, 30.0)
        with pytest.raises(TimeoutError):
            blocked.result(timeout=0.1)
        assert len(q.take(1, 1, 0.0)) == 1
        blocked.result(timeout=5)
    assert [r.value for r in q.take(1, 10, 0.0)] == [2, 3]  # type: ignore[attr-defined]


@pytest.mark.timeout(10)
def test_get_still_wakes_per_item_like_a_queue() -> None:
    q = ReadingQueue(10)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(q.get, True, 30.0)
        q.put(reading(7))
        assert future.result(timeout=5) == reading(7)
