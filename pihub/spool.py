"""The on-disk spool: where a reading is *accepted*, given its ``seq``, and kept until PUBACK.

One SQLite database (``state_dir/spool.db``) in WAL mode holds one row per SenML batch
(``id, first_seq, last_seq, count, payload``) and the persistent seq counter. The
consumer thread :meth:`~Spool.append`\\ s readings; the publisher thread reads
:meth:`~Spool.pending` batches and :meth:`~Spool.ack`\\ s them on PUBACK.

Seqs are unique per hub and strictly increasing in accept order. The counter lives in the
same database and advances in the same transaction as the batches it numbers, so a seq
is never reused, after acks, restarts or power cuts alike. A spool whose state is lost
(first start, or a garbage/truncated/foreign file moved aside) starts its counter at the
current UNIX time in microseconds, above any seq the lost state can have issued — which
assumes the clock is not behind the one that issued them (a Pi without an RTC and without
fake-hwclock/NTP at boot could break that).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, NoReturn

from pihub.errors import SpoolError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no protection against a second hub
    fcntl = None  # type: ignore[assignment]
from pihub.readings import Reading
from pihub.senml import encode_packs

__all__ = ["Spool", "StoredBatch"]

log = logging.getLogger("pihub.spool")

#: "PiHb" in the SQLite header: tells our spool from any other SQLite file.
APPLICATION_ID = 0x50694862
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""
# AUTOINCREMENT, because plain rowids are reused once the newest row is deleted: the
# publisher asks for ids > the last one it sent, and would skip a reused id.
_TABLES = {"meta", "batches", "sqlite_sequence"}

# Corruption is what we move aside; anything else (locked, read-only, I/O) is raised.
_CORRUPT_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}

_SYNC_MODES = ("NORMAL", "FULL", "EXTRA")

#: Free pages kept when a drained spool gives space back to the file system.
_KEEP_FREE_PAGES = 256


class StoredBatch(NamedTuple):
    """One spooled SenML pack: readings ``first_seq``…``last_seq`` (``count`` of them)."""

    id: int
    first_seq: int
    last_seq: int
    # Shadows tuple.count(); the name is the contract's, and nobody counts batch fields.
    count: int  # type: ignore[assignment]
    payload: bytes


class _Dropped(NamedTuple):
    last_id: int
    bytes: int
    batches: int
    readings: int
    first_seq: int
    last_seq: int


class _CorruptError(Exception):
    """The file is not a usable spool and must be moved aside (internal)."""


class Spool:
    """The SQLite spool at ``path``.

    ``max_bytes`` bounds the payload bytes kept: past it the oldest batches are dropped,
    logged, and counted in :attr:`dropped`. Each payload is at most ``max_batch_bytes``.

    ``synchronous`` is SQLite's setting for commits of :meth:`append`:

    - ``"FULL"`` (default): each append is on the storage when it returns; a power cut
      loses nothing accepted. Costs one fsync per append.
    - ``"NORMAL"``: the WAL is synced only at checkpoints (about every 4 MiB written),
      so a power cut (not a crash of the process) can roll back the appends since the
      last one — seconds to minutes of readings — though never corrupt the database.
      Worse, the counter rolls back too: the lost seqs are issued again to new readings,
      and if the lost ones had already been published, subscribers deduping on (hub,
      seq) discard the new ones. It saves the fsync per append that FULL pays.
    - ``"EXTRA"``: FULL, plus the directory is synced when the WAL is reset.

    Acks always commit with NORMAL: losing an ack to a power cut only means a duplicate,
    which the delivery promise allows, and it spares the publisher an fsync per PUBACK.
    """

    def __init__(
        self,
        path: Path,
        *,
        hub_id: str,
        max_bytes: int,
        max_batch_bytes: int = 262144,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
    ) -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, "
                             f"not {synchronous!r}")
        if max_bytes <= 0 or max_batch_bytes <= 0:
            raise ValueError("max_bytes and max_batch_bytes must be positive")
        self.path = Path(path)
        self.hub_id = hub_id
        self.max_bytes = max_bytes
        self.max_batch_bytes = max_batch_bytes
        self.synchronous = synchronous
        self._busy_timeout = busy_timeout
        # _db_lock guards the connection and the counters below. Taken by the consumer
        # thread (append) and the publisher thread (pending, ack), each only for its
        # statements; never held while encoding.
        self._db_lock = threading.Lock()
        # _append_lock serialises appenders, so seqs can be chosen and encoded outside
        # _db_lock; only append takes it.
        self._append_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._next_seq = 0
        self._size = 0
        self._depth = 0
        self._batches = 0
        self._dropped = 0
        # The highest batch id ever stored (ids only grow): pending() past it has nothing
        # to find and skips the query. The publisher asks on every wake-up, and at idle
        # the query was its largest cost (see docs/PERFORMANCE.md).
        self._top_id = 0
        self._lock_fd: int | None = None
        self._lock()
        try:
            self._open()
        except BaseException:
            self._unlock()
            raise

    # -- opening ------------------------------------------------------------------------

    def _lock(self) -> None:
        """Refuse to share the spool: a second hub on it would issue the same seqs.

        A lock file rather than SQLite's exclusive locking mode, so that tools (and tests)
        can still read a running hub's spool.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SpoolError(f"spool {self.path}: cannot create its directory or lock file: "
                             f"{exc}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                raise SpoolError(f"spool {self.path} is in use by another process (another "
                                 f"pihub with the same state_dir?): {exc}") from exc
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _open(self) -> None:
        existed = self.path.exists()
        fresh: str | None
        try:
            if existed:
                self._check()
            self._connect()
            fresh = self._load()
        except _CorruptError as exc:
            self._close_conn()
            aside = self._move_aside()
            log.error("spool %s is unusable (%s); moved it aside to %s and started a fresh "
                      "spool", self.path, _shorten(str(exc)), aside)
            self._connect()
            self._load()
            fresh = "the old spool was moved aside"
        if fresh is not None:
            if existed:
                log.warning("spool %s: %s; seq counter starts at %d (current UNIX time in µs), "
                            "above any seq issued before", self.path, fresh, self._next_seq)
            else:
                log.info("new spool %s: seq counter starts at %d (current UNIX time in µs)",
                         self.path, self._next_seq)

    def _check(self) -> None:
        """Raise _CorruptError unless ``path`` is a sound spool (or an empty file).

        Done on a read-only connection so that a file found unusable is moved aside as it
        was found: closing a read-write WAL connection writes to the file.
        """
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                   timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: cannot open: {exc}") from exc
        try:
            check = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
            if check != ["ok"]:
                raise _CorruptError("quick_check: " + "; ".join(check))
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            self._raise_open_error(exc)
        finally:
            conn.close()
        if not tables:
            if app_id not in (0, APPLICATION_ID):
                raise _CorruptError(f"not a pihub spool (application_id {app_id:#x})")
            return
        if app_id != APPLICATION_ID or not {"meta", "batches"} <= tables or tables - _TABLES:
            raise _CorruptError(f"not a pihub spool (tables {sorted(tables)}, "
                                f"application_id {app_id:#x})")
        if version != SCHEMA_VERSION:
            raise _CorruptError(f"spool schema version {version}, this pihub knows "
                                f"{SCHEMA_VERSION}")

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: cannot open: {exc}") from exc
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            # Takes effect only on a database without tables, i.e. a fresh one.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            # The WAL is truncated back to this after a checkpoint instead of staying at
            # its high-water mark.
            conn.execute("PRAGMA journal_size_limit=4194304")
        except sqlite3.Error as exc:
            self._raise_open_error(exc)
        if str(mode).lower() != "wal":
            self._close_conn()
            raise SpoolError(f"spool {self.path}: cannot use WAL mode (got {mode!r})")

    def _raise_open_error(self, exc: sqlite3.Error) -> NoReturn:
        if getattr(exc, "sqlite_errorname", None) in _CORRUPT_CODES:
            raise _CorruptError(str(exc)) from exc
        self._close_conn()
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            raise SpoolError(f"spool {self.path} is in use by another process "
                             f"(another pihub with the same state_dir?): {exc}") from exc
        raise SpoolError(f"spool {self.path}: cannot open: {exc}") from exc

    def _load(self) -> str | None:
        """Create the schema if there is none, and load the counters.

        Returns why the seq counter had to start afresh, or None when it was resumed.
        """
        conn = self._conn
        assert conn is not None
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                conn.executescript(
                    "BEGIN;" + _SCHEMA
                    + f"PRAGMA application_id={APPLICATION_ID};"
                    + f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
                )
                return self._start_counter("there was no spool")
            size, depth, batches, top, top_id = conn.execute(
                "SELECT coalesce(sum(length(payload)), 0), coalesce(sum(count), 0), count(*),"
                " max(last_seq), coalesce(max(id), 0) FROM batches").fetchone()
            self._size, self._depth, self._batches = size, depth, batches
            self._top_id = top_id
            row = conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            if row is not None and (top is None or row[0] > top):
                self._next_seq = row[0]
                return None
            if top is not None:
                # The counter row is gone (or behind) but batches survive: resume above them.
                log.warning("spool %s: seq counter missing or behind; resuming at %d, above "
                            "the highest seq stored", self.path, top + 1)
                self._set_counter(top + 1)
                return None
            return self._start_counter("the seq counter was missing")
        except sqlite3.Error as exc:
            self._raise_open_error(exc)

    def _start_counter(self, why: str) -> str:
        self._set_counter(time.time_ns() // 1000)
        return why

    def _set_counter(self, value: int) -> None:
        assert self._conn is not None
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?)",
                           (value,))
        self._next_seq = value

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("-wal", "-shm", "-journal"):
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    side.rename(f"{aside}{suffix}")
            self.path.rename(aside)
        except OSError as exc:
            raise SpoolError(f"spool {self.path} is unusable and cannot be moved aside: {exc}"
                             ) from exc
        return aside

    # -- the consumer's side ------------------------------------------------------------

    def append(self, readings: Sequence[Reading], per_pack: int | None = None,
               ) -> list[StoredBatch]:
        """Accept ``readings``: number them, encode, and commit them in one transaction,
        as packs of at most ``per_pack`` readings (and ``max_batch_bytes``).

        Returns the stored batches (those the ``max_bytes`` bound did not drop at once).
        Raises :class:`~pihub.errors.SpoolError` when the database cannot take them (disk
        full, I/O error): nothing is stored, no seq is used, and the spool stays usable.
        Raises :class:`~pihub.senml.SenMLError` (a ValueError) for a reading that cannot
        be encoded; then nothing is stored either.
        """
        if not readings:
            return []
        with self._append_lock:
            first = self._next_seq
            packs = encode_packs(self.hub_id, readings, first, self.max_batch_bytes, per_pack)
            rows = [(seq, seq + count - 1, count, payload) for seq, count, payload in packs]
            with self._db_lock:
                conn = self._connection()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    stored = []
                    for row in rows:
                        cur = conn.execute("INSERT INTO batches (first_seq, last_seq, count, "
                                           "payload) VALUES (?, ?, ?, ?)", row)
                        assert cur.lastrowid is not None
                        stored.append(StoredBatch(cur.lastrowid, *row))
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'",
                                 (first + len(readings),))
                    size = self._size + sum(len(b.payload) for b in stored)
                    dropped = self._drop_oldest(conn, size) if size > self.max_bytes else None
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    _rollback(conn)
                    raise SpoolError(f"spool {self.path}: cannot store {len(readings)} "
                                     f"readings: {exc}") from exc
                self._next_seq = first + len(readings)
                if stored:
                    self._top_id = stored[-1].id
                self._size = size
                self._depth += len(readings)
                self._batches += len(stored)
                if dropped is not None:
                    stored = self._account_drop(dropped, stored)
                return stored

    def _drop_oldest(self, conn: sqlite3.Connection, size: int) -> _Dropped:
        """Delete the oldest batches until ``size`` fits; part of append's transaction."""
        freed = batches = readings = 0
        last_id = first_seq = last_seq = -1
        for bid, bfirst, blast, count, length in conn.execute(
                "SELECT id, first_seq, last_seq, count, length(payload) FROM batches"
                " ORDER BY id"):
            if size - freed <= self.max_bytes:
                break
            if first_seq < 0:
                first_seq = bfirst
            last_id, last_seq = bid, blast
            freed, batches, readings = freed + length, batches + 1, readings + count
        conn.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
        return _Dropped(last_id, freed, batches, readings, first_seq, last_seq)

    def _account_drop(self, dropped: _Dropped, stored: list[StoredBatch]) -> list[StoredBatch]:
        """Update the counters for a committed drop; caller holds _db_lock."""
        self._size -= dropped.bytes
        self._batches -= dropped.batches
        self._depth -= dropped.readings
        self._dropped += dropped.readings
        log.warning("spool %s over its bound of %d bytes: dropped the %d oldest readings "
                    "(seq %d..%d)", self.path, self.max_bytes, dropped.readings,
                    dropped.first_seq, dropped.last_seq)
        return [b for b in stored if b.id > dropped.last_id]

    # -- the publisher's side -----------------------------------------------------------

    def pending(self, after_id: int = 0, limit: int = 100) -> list[StoredBatch]:
        """Up to ``limit`` batches with ids above ``after_id``, oldest first."""
        with self._db_lock:
            conn = self._connection()
            if after_id >= self._top_id:
                return []
            try:
                rows = conn.execute(
                    "SELECT id, first_seq, last_seq, count, payload FROM batches"
                    " WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
            except sqlite3.Error as exc:
                raise SpoolError(f"spool {self.path}: cannot read batches: {exc}") from exc
        return [StoredBatch(*row) for row in rows]

    def ack(self, batch_id: int) -> None:
        """Delete batch ``batch_id``: the broker has it. Acking twice is harmless."""
        self.ack_many((batch_id,))

    def ack_many(self, ids: Iterable[int]) -> None:
        """Delete the batches ``ids`` (unknown ids are ignored) in one transaction."""
        params = [(i,) for i in ids]
        if not params:
            return
        with self._db_lock:
            conn = self._connection()
            relaxed = self.synchronous != "NORMAL"
            try:
                if relaxed:
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                size = depth = batches = 0
                for (bid,) in params:
                    row = conn.execute("SELECT count, length(payload) FROM batches WHERE id = ?",
                                       (bid,)).fetchone()
                    if row is not None:
                        conn.execute("DELETE FROM batches WHERE id = ?", (bid,))
                        depth, size, batches = depth + row[0], size + row[1], batches + 1
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise SpoolError(f"spool {self.path}: cannot delete acked batches: {exc}"
                                 ) from exc
            finally:
                if relaxed:
                    conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._size -= size
            self._depth -= depth
            self._batches -= batches
            if self._batches == 0 and batches:
                self._shrink(conn)

    def _shrink(self, conn: sqlite3.Connection) -> None:
        """Give a drained backlog's pages back to the file system; caller holds _db_lock."""
        try:
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if free > 2 * _KEEP_FREE_PAGES:
                # executescript, because execute() steps this pragma once: one page freed.
                conn.executescript(f"PRAGMA incremental_vacuum({free - _KEEP_FREE_PAGES});")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("spool %s: could not give free space back: %s", self.path, exc)

    # -- state --------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Readings in the spool."""
        return self._depth

    @property
    def batches(self) -> int:
        """Batches in the spool."""
        return self._batches

    @property
    def dropped(self) -> int:
        """Readings dropped for the ``max_bytes`` bound since the spool was opened."""
        return self._dropped

    @property
    def size_bytes(self) -> int:
        """Payload bytes in the spool (what ``max_bytes`` bounds)."""
        return self._size

    @property
    def next_seq(self) -> int:
        """The seq the next accepted reading will get."""
        return self._next_seq

    @property
    def closed(self) -> bool:
        return self._conn is None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolError(f"spool {self.path} is closed")
        return self._conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        """Checkpoint and close the database. Idempotent."""
        with self._db_lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("spool %s: checkpoint on close failed: %s", self.path, exc)
            self._close_conn()
            self._unlock()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._conn is None:
            return f"<Spool {str(self.path)!r} closed>"
        return (f"<Spool {str(self.path)!r} depth={self._depth} batches={self._batches} "
                f"bytes={self._size}/{self.max_bytes} next_seq={self._next_seq} "
                f"dropped={self._dropped}>")


def _shorten(text: str, limit: int = 300) -> str:
    """One log line's worth of ``text`` (quick_check can list thousands of pages)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back after a failed statement; SQLite may already have done it (SQLITE_FULL)."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("spool: rollback failed: %s", exc)
