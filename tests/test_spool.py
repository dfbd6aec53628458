from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pihub.errors import SpoolError
from pihub.readings import Reading
from pihub.senml import SenMLError, decode_pack
from pihub.spool import Spool, StoredBatch

T0 = 1764070000.25
MiB = 1 << 20


def readings(n: int, start: int = 0, name: str = "temp") -> list[Reading]:
    return [Reading(name, 20.0 + (start + i) % 10, T0 + start + i, "Cel") for i in range(n)]


def assert_intact(path: Path) -> None:
    """``PRAGMA integrity_check`` of a closed spool file says ok."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    p = tmp_path / "state" / "spool.db"
    yield p
    if p.exists():
        assert_intact(p)


def open_spool(path: Path, **kwargs: object) -> Spool:
    options: dict[str, object] = {"hub_id": "hub", "max_bytes": 64 * MiB,
                                  "synchronous": "NORMAL"}
    options.update(kwargs)
    return Spool(path, **options)  # type: ignore[arg-type]


def seqs_of(batches: list[StoredBatch]) -> list[int]:
    return [r.seq for b in batches for r in decode_pack(b.payload)]  # type: ignore[misc]


def test_append_stores_a_batch_with_consecutive_seqs(path: Path) -> None:
    with open_spool(path) as spool:
        first = spool.next_seq
        [batch] = spool.append(readings(5))
        assert (batch.first_seq, batch.last_seq, batch.count) == (first, first + 4, 5)
        records = decode_pack(batch.payload)
        assert [r.seq for r in records] == list(range(first, first + 5))
        assert [r.name for r in records] == ["hub/temp"] * 5
        assert spool.depth == 5
        assert spool.batches == 1
        assert spool.size_bytes == len(batch.payload)
        assert spool.pending() == [batch]


def test_reopen_resumes_batches_and_seq(path: Path) -> None:
    with open_spool(path) as spool:
        stored = spool.append(readings(3)) + spool.append(readings(4, 3))
        next_seq = spool.next_seq
        size = spool.size_bytes
    with open_spool(path) as spool:
        assert spool.pending() == stored
        assert (spool.depth, spool.batches, spool.size_bytes) == (7, 2, size)
        assert spool.next_seq == next_seq
        [batch] = spool.append(readings(1))
        assert batch.first_seq == next_seq
        assert batch.id > stored[-1].id


def test_synchronous_full_is_the_default_and_resumes(path: Path) -> None:
    with Spool(path, hub_id="hub", max_bytes=MiB) as spool:
        assert spool.synchronous == "FULL"
        stored = spool.append(readings(3))
    with Spool(path, hub_id="hub", max_bytes=MiB) as spool:
        assert spool.pending() == stored


CRASH = """
import os, sys
from pathlib import Path
from pihub.readings import Reading
from pihub.spool import Spool
spool = Spool(Path(sys.argv[1]), hub_id="hub", max_bytes=1 << 26)
for i in range(20):
    batch, = spool.append([Reading("temp", float(i), 1764070000.0 + i)] * 10)
    print(batch.id, batch.first_seq, batch.last_seq, flush=True)
os._exit(9)  # no close, no checkpoint: what a crash leaves
"""


def test_crash_without_close_loses_nothing_accepted(path: Path) -> None:
    path.parent.mkdir(parents=True)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], check=False,
                          capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 9, done.stderr
    accepted = [tuple(map(int, line.split())) for line in done.stdout.splitlines()]
    assert len(accepted) == 20
    with open_spool(path) as spool:
        assert [(b.id, b.first_seq, b.last_seq) for b in spool.pending()] == accepted
        assert spool.next_seq == accepted[-1][2] + 1
        assert spool.depth == 200


def test_garbage_wal_next_to_a_sound_spool_is_ignored(path: Path) -> None:
    with open_spool(path) as spool:
        stored = spool.append(readings(5))
    Path(f"{path}-wal").write_bytes(b"\x00garbage" * 1000)
    with open_spool(path) as spool:
        assert spool.pending() == stored
    assert not list(path.parent.glob("*corrupt*"))


def test_ack_removes_and_is_idempotent(path: Path) -> None:
    with open_spool(path) as spool:
        a, b, c = (spool.append(readings(2, i))[0] for i in range(3))
        spool.ack(b.id)
        spool.ack(b.id)
        spool.ack(12345)
        assert spool.pending() == [a, c]
        assert (spool.depth, spool.batches) == (4, 2)
        assert spool.size_bytes == len(a.payload) + len(c.payload)
        spool.ack_many([a.id, c.id, a.id])
        spool.ack_many([])
        assert spool.pending() == []
        assert (spool.depth, spool.batches, spool.size_bytes) == (0, 0, 0)


def test_pending_is_oldest_first_after_id_with_limit(path: Path) -> None:
    with open_spool(path) as spool:
        stored = [spool.append(readings(1, i))[0] for i in range(10)]
        assert spool.pending(0, 100) == stored
        assert spool.pending(0, 3) == stored[:3]
        assert spool.pending(stored[3].id, 2) == stored[4:6]
        assert spool.pending(stored[-1].id, 10) == []
        assert [b.first_seq for b in stored] == sorted(b.first_seq for b in stored)


def test_seq_and_id_never_reused_after_ack_and_restart(path: Path) -> None:
    with open_spool(path) as spool:
        old = spool.append(readings(5))
        spool.ack_many(b.id for b in old)
        assert spool.depth == 0
    with open_spool(path) as spool:
        [new] = spool.append(readings(5))
        # The newest row was deleted, yet neither its id nor its seqs come back: the
        # publisher asks for ids above the last it sent.
        assert new.id > old[-1].id
        assert new.first_seq > old[-1].last_seq
        assert spool.pending(old[-1].id) == [new]


def test_batches_are_split_at_max_batch_bytes(path: Path) -> None:
    with open_spool(path, max_batch_bytes=1024) as spool:
        stored = spool.append(readings(100))
        assert len(stored) > 1
        assert all(len(b.payload) <= 1024 for b in stored)
        assert sum(b.count for b in stored) == 100
        assert seqs_of(stored) == list(range(stored[0].first_seq, stored[0].first_seq + 100))
        for b in stored:
            assert seqs_of([b]) == list(range(b.first_seq, b.last_seq + 1))
        assert spool.batches == len(stored)


def test_bound_drops_the_oldest_and_counts(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pihub.spool")
    with open_spool(path) as probe:
        one = len(probe.append(readings(10))[0].payload)
    path.unlink()
    with open_spool(path, max_bytes=int(one * 3.5)) as spool:
        stored = [spool.append(readings(10, 10 * i))[0] for i in range(3)]
        assert spool.dropped == 0
        caplog.clear()
        [fourth] = spool.append(readings(10, 30))
        assert spool.dropped == 10
        assert spool.pending() == [*stored[1:], fourth]
        assert (spool.depth, spool.batches) == (30, 3)
        assert spool.size_bytes <= spool.max_bytes
        assert spool.size_bytes == sum(len(b.payload) for b in spool.pending())
        [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "10 oldest readings" in message
        assert f"seq {stored[0].first_seq}..{stored[0].last_seq}" in message
        # A batch larger than the bound on its own drops everything older, and itself.
        big = spool.append(readings(40, 40))
        assert big == []
        assert spool.dropped == 80
        assert (spool.depth, spool.batches, spool.size_bytes) == (0, 0, 0)
    with open_spool(path, max_bytes=int(one * 3.5)) as spool:
        assert spool.size_bytes == 0
        assert spool.dropped == 0  # counted since open


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database\n" * 100)


def truncated(path: Path) -> None:
    with open_spool(path) as spool:
        for i in range(200):
            spool.append(readings(50, i))
    data = path.read_bytes()
    assert len(data) > 64 * 1024
    path.write_bytes(data[: len(data) // 3])


def truncated_header(path: Path) -> None:
    with open_spool(path) as spool:
        spool.append(readings(5))
    path.write_bytes(path.read_bytes()[:60])


def overwritten_pages(path: Path) -> None:
    with open_spool(path) as spool:
        for i in range(200):
            spool.append(readings(50, i))
    data = bytearray(path.read_bytes())
    data[8192:40960] = b"\xa5" * (40960 - 8192)
    path.write_bytes(bytes(data))


def foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, jpeg BLOB)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("spoil", [garbage, truncated, truncated_header, overwritten_pages,
                                   foreign_database])
def test_unusable_spool_is_moved_aside(path: Path, spoil: Callable[[Path], None],
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pihub.spool")
    path.parent.mkdir(parents=True)
    spoil(path)
    spoiled = path.read_bytes()
    caplog.clear()
    before = time.time_ns() // 1000
    with open_spool(path) as spool:
        assert spool.next_seq >= before
        assert spool.next_seq <= time.time_ns() // 1000
        assert spool.depth == 0
        [batch] = spool.append(readings(3))
        assert batch.first_seq >= before
    asides = list(path.parent.glob("spool.db.corrupt-*"))
    assert [p for p in asides if not p.name.endswith(("-wal", "-shm"))]
    main = next(p for p in asides if not p.name.endswith(("-wal", "-shm")))
    assert main.read_bytes() == spoiled
    levels = {r.levelno for r in caplog.records}
    assert logging.ERROR in levels
    assert any("moved it aside" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)
    assert any("seq counter starts at" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_empty_file_starts_a_fresh_spool(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pihub.spool")
    path.parent.mkdir(parents=True)
    path.touch()
    before = time.time_ns() // 1000
    with open_spool(path) as spool:
        assert spool.next_seq >= before
    assert any(r.levelno == logging.WARNING and "seq counter starts at" in r.getMessage()
               for r in caplog.records)


def test_brand_new_state_dir_logs_info(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pihub.spool")
    before = time.time_ns() // 1000
    with open_spool(path) as spool:
        assert spool.next_seq >= before
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert str(spool.next_seq) in record.getMessage()


def test_missing_counter_resumes_above_stored_seqs(path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with open_spool(path) as spool:
        stored = spool.append(readings(5))
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    caplog.set_level(logging.WARNING, "pihub.spool")
    with open_spool(path) as spool:
        assert spool.next_seq == stored[-1].last_seq + 1
        assert spool.pending() == stored
    assert any("resuming" in r.getMessage() for r in caplog.records)


def test_missing_counter_and_no_batches_starts_at_time(path: Path) -> None:
    with open_spool(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    before = time.time_ns() // 1000
    with open_spool(path) as spool:
        assert spool.next_seq >= before


def test_disk_full_raises_spool_error_then_recovers(path: Path) -> None:
    with open_spool(path, max_batch_bytes=4096) as spool:
        conn = spool._conn
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages + 20}")
        accepted: list[StoredBatch] = []
        with pytest.raises(SpoolError, match="full"):
            for i in range(1000):
                accepted += spool.append(readings(50, i))
        # The failed append stored nothing and used no seq.
        next_seq = spool.next_seq
        assert next_seq == accepted[-1].last_seq + 1
        assert spool.pending(0, 10_000) == accepted
        assert spool.depth == sum(b.count for b in accepted)
        assert spool.size_bytes == sum(len(b.payload) for b in accepted)
        # Space comes back when the publisher drains the backlog.
        spool.ack_many(b.id for b in accepted[: len(accepted) // 2])
        [batch] = spool.append(readings(50))
        assert batch.first_seq == next_seq
        # …or when the disk gets bigger.
        conn.execute("PRAGMA max_page_count=1073741823")
        for i in range(50):
            spool.append(readings(50, i))
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_invalid_reading_stores_nothing(path: Path) -> None:
    with open_spool(path) as spool:
        next_seq = spool.next_seq
        with pytest.raises(SenMLError):
            spool.append([*readings(3), Reading("temp", float("nan"), T0)])
        assert spool.next_seq == next_seq
        assert spool.pending() == []
        [batch] = spool.append(readings(1))
        assert batch.first_seq == next_seq


def test_second_spool_on_the_same_file_is_refused(path: Path) -> None:
    with open_spool(path) as spool:
        spool.append(readings(1))
        with pytest.raises(SpoolError, match="in use"):
            open_spool(path, busy_timeout=0.1)
        assert spool.depth == 1
    assert not list(path.parent.glob("*corrupt*"))


def test_a_running_spool_can_be_read_from_outside(path: Path) -> None:
    with open_spool(path) as spool:
        spool.append(readings(7))
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            assert conn.execute("SELECT sum(count) FROM batches").fetchone() == (7,)
        finally:
            conn.close()
        spool.append(readings(1))
        assert spool.depth == 8


@pytest.mark.timeout(60)
def test_append_and_ack_from_two_threads(path: Path) -> None:
    total = 20_000
    done = threading.Event()
    errors: list[BaseException] = []
    acked: list[StoredBatch] = []

    def consumer() -> None:
        try:
            for i in range(0, total, 100):
                spool.append(readings(100, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    with open_spool(path) as spool:
        thread = threading.Thread(target=consumer, name="test-consumer")
        thread.start()
        try:
            after = 0
            deadline = time.monotonic() + 50
            while time.monotonic() < deadline:
                finished = done.is_set()
                batch = spool.pending(after, 50)
                spool.ack_many(b.id for b in batch)
                acked += batch
                if batch:
                    after = batch[-1].id
                elif finished:
                    break
        finally:
            thread.join(10)
        assert not thread.is_alive()
        assert not errors
        assert sum(b.count for b in acked) == total
        seqs = seqs_of(acked)
        assert seqs == sorted(set(seqs))
        assert len(seqs) == total
        assert (spool.depth, spool.batches, spool.size_bytes) == (0, 0, 0)
        assert spool.pending() == []


def test_drained_backlog_gives_space_back(path: Path) -> None:
    def on_disk() -> int:
        return sum(p.stat().st_size for p in path.parent.iterdir())

    with open_spool(path) as spool:
        stored = [b for i in range(1000) for b in spool.append(readings(100, i))]
        spool.close()
        full = on_disk()
    assert full > 4 * MiB
    with open_spool(path) as spool:
        spool.ack_many(b.id for b in stored)
        assert on_disk() < full / 4


def test_close_is_idempotent_and_closed_spool_refuses(path: Path) -> None:
    spool = open_spool(path)
    assert "depth=0" in repr(spool)
    spool.close()
    spool.close()
    assert spool.closed
    assert "closed" in repr(spool)
    with pytest.raises(SpoolError, match="closed"):
        spool.append(readings(1))
    with pytest.raises(SpoolError, match="closed"):
        spool.pending()


def test_bad_synchronous_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        open_spool(path, synchronous="sometimes")


def test_spool_error_is_an_os_error() -> None:
    assert issubclass(SpoolError, OSError)
