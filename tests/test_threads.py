"""StoppableThread and the rate-limited log."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from pihub.errors import ZombieThread
from pihub.threads import RateLimitedLog, StopEvent, StoppableThread


class Waiter(StoppableThread):
    def loop(self) -> None:
        while not self.stopping.wait(60):
            pass


class Stuck(StoppableThread):
    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = threading.Event()

    def loop(self) -> None:
        self.release.wait(30)


class Crasher(StoppableThread):
    def loop(self) -> None:
        raise ValueError("a bug")


@pytest.mark.timeout(10)
def test_stop_sets_the_event_and_joins() -> None:
    thread = Waiter("w")
    thread.start()
    thread.stop(timeout=5)
    assert not thread.is_alive()
    assert not thread.died


@pytest.mark.timeout(10)
def test_a_thread_that_will_not_stop_raises_zombie() -> None:
    thread = Stuck()
    thread.start()
    with pytest.raises(ZombieThread, match="stuck"):
        thread.stop(timeout=0.05)
    thread.release.set()
    thread.join(5)


@pytest.mark.timeout(10)
def test_a_crash_is_logged_and_kept(caplog: pytest.LogCaptureFixture) -> None:
    thread = Crasher("crasher")
    with caplog.at_level(logging.CRITICAL, logger="pihub.threads"):
        thread.start()
        thread.join(5)
    assert thread.died
    assert isinstance(thread.crash, ValueError)
    assert "crasher died" in caplog.text
    assert "Traceback" in caplog.text


def test_stopping_a_thread_never_started_is_harmless() -> None:
    Waiter("never").stop(timeout=0.1)


def test_rate_limited_log_reports_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("pihub.test")
    limited = RateLimitedLog(logger, every=3600)
    with caplog.at_level(logging.WARNING, logger="pihub.test"):
        for _ in range(5):
            limited.log(logging.WARNING, "boom %s", "x")
        assert len(caplog.records) == 1
        limited._next = 0.0  # the period is over
        limited.log(logging.WARNING, "boom %s", "x")
    assert len(caplog.records) == 2
    assert "4 more like this" in caplog.records[1].getMessage()


@pytest.mark.timeout(10)
def test_stop_event_sleep_times_out_and_wakes_on_set() -> None:
    event = StopEvent()
    began = time.monotonic()
    assert event.sleep(0.05) is False
    assert time.monotonic() - began >= 0.045  # it did sleep
    assert event.sleep(-1.0) is False  # a deadline already past: no wait, no error
    threading.Timer(0.05, event.set).start()
    assert event.sleep(30.0) is True  # woken by set(), long before the timeout
    assert event.is_set() and event.wait(0) and event.sleep(30.0)  # and stays set
    event.set()  # setting twice is harmless
    assert event.sleep(0) is True
    with pytest.raises(RuntimeError):
        event.clear()
