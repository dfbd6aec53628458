"""StoppableThread and the rate-limited log."""

from __future__ import annotations

import logging
import threading

import pytest

from pihub.errors import ZombieThread
from pihub.threads import RateLimitedLog, StoppableThread


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
