"""Locks across processes, so that two runs of the same day never interleave their writes.

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own,
  keyed by a 64-bit hash of the lock's name; it goes with the session if the process dies.
- SQLite: ``flock`` on a file in ``<warehouse>.locks/`` beside the database file; the kernel
  drops it when the process dies.

A run that finds the lock held waits up to ``wait_seconds`` and then raises :class:`RunLocked`,
whose message names the lock and who holds it. Locks are not re-entrant: take each once.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text

# The warehouse's write section: publishing a batch and recomputing daily counts. Two of them at
# once would each delete and re-insert the same days' counts.
WRITE_LOCK = "warehouse-write"
DEFAULT_WAIT_SECONDS = 900.0


class RunLocked(RuntimeError):
    """Another run holds the lock; the message says which lock and who holds it."""


def day_lock_name(day: dt.date | None) -> str:
    """The lock a run of the daily pipeline takes for its day (``day:2026-11-25``)."""
    return f"day:{day.isoformat() if day else 'undated'}"


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"hotline:{name}".encode()).digest()[:8], "big", signed=True)


def _holder_pg(conn, key: int) -> str:
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    row = conn.execute(text(
        "SELECT l.pid, a.client_addr, a.application_name, a.backend_start FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid::bigint = :c AND l.objid::bigint = :o AND l.objsubid = 1"), {"c": classid, "o": objid}).first()
    if row is None:
        return "another session (it has just let go; try again)"
    since = f" since {row.backend_start:%Y-%m-%d %H:%M:%S %Z}" if row.backend_start else ""
    return f"PostgreSQL session pid {row.pid}{since}"


def _sqlite_path(engine: Engine) -> Path | None:
    db = engine.url.database
    if not db or db == ":memory:":
        return None
    return Path(db).with_name(Path(db).name + ".locks")


@contextlib.contextmanager
def run_lock(engine: Engine, name: str, wait_seconds: float = DEFAULT_WAIT_SECONDS,
             poll_seconds: float = 0.2) -> Iterator[None]:
    """Hold the lock ``name`` for the ``with`` block; wait up to ``wait_seconds`` for it."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    if engine.dialect.name == "postgresql":
        key = _key(name)
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise RunLocked(f"another run holds the lock {name!r} ({_holder_pg(conn, key)}); waited "
                                    f"{wait_seconds:g} s. It ends by itself; run again after it does")
                time.sleep(poll_seconds)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            conn.close()
        return
    folder = _sqlite_path(engine)
    if folder is None:  # an in-memory database lives in one process
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(path).read_text(errors="replace").strip() or "another process"
                    raise RunLocked(f"another run holds the lock {name!r} ({holder}); waited {wait_seconds:g} s. "
                                    f"It ends by itself; run again after it does") from None
                time.sleep(poll_seconds)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def day_lock(engine: Engine, day: dt.date | None, wait_seconds: float = DEFAULT_WAIT_SECONDS):
    """The lock a run of the daily pipeline takes for its day while it writes."""
    return run_lock(engine, day_lock_name(day), wait_seconds)
