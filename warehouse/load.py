"""Bulk loading: canonical tickets upserted through a staging table, quarantine rows appended.

PostgreSQL takes the batch through COPY, SQLite through one executemany; both then run one
``INSERT ... SELECT ... ON CONFLICT (ticket_id) DO UPDATE`` that keeps the newer version of a
ticket (by ``updated_at``), so reruns and backfills are idempotent.
"""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select

from hotline.core.tickets import CANONICAL_COLUMNS
from warehouse.schema import quarantine, staged_tickets

TICKET_COLUMNS = CANONICAL_COLUMNS + ["ingest_run_id"]
_TS = ("received_at", "deadline_at", "closed_at", "updated_at")
_BOOL = ("is_repeat", "resolved")


@dataclass
class UpsertResult:
    inserted: int
    updated: int
    unchanged: int
    touched_dates: set[dt.date]


def ts_strings(s: pd.Series, dialect: str) -> np.ndarray:
    """UTC timestamps as text: SQLAlchemy's SQLite format, or ISO 8601 with offset for COPY."""
    v = pd.to_datetime(s, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    txt = np.datetime_as_string(v, unit="us")
    txt = np.char.replace(txt, "T", " ") if dialect == "sqlite" else np.char.add(txt, "+00")
    out = txt.astype(object)
    out[np.isnat(v)] = None
    return out


def _clean_objects(s: pd.Series) -> np.ndarray:
    vals = s.astype("object").to_numpy()
    missing = pd.isna(vals)
    if missing.any():
        vals = vals.copy()
        vals[missing] = None
    return vals


def _column_values(df: pd.DataFrame, dialect: str) -> list[np.ndarray]:
    """Each ticket column as an object array of DB-ready values (None for NULL)."""
    cols = []
    for c in TICKET_COLUMNS:
        s = df[c]
        if c in _TS:
            cols.append(ts_strings(s, dialect))
        elif c == "received_date":
            cols.append(np.array([d.isoformat() for d in s], dtype=object))
        elif c in _BOOL:
            vals = _clean_objects(s)
            t, f = ("t", "f") if dialect == "postgresql" else (1, 0)
            cols.append(np.array([None if v is None else (t if v else f) for v in vals], dtype=object))
        else:
            cols.append(_clean_objects(s))
    return cols


_FREE_TEXT = ("content", "department", "category_raw", "street_code", "ticket_id")


def _copy_text(names: list[str], cols: list[np.ndarray], escape: tuple[str, ...] = _FREE_TEXT) -> str:
    """Rows in PostgreSQL's COPY text format: tab-separated, \\N for NULL; the ``escape`` columns
    (free text) get their backslashes, tabs and line breaks escaped."""
    parts = []
    for name, vals in zip(names, cols):
        if name in escape:
            parts.append(["\\N" if v is None else
                          str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
                          for v in vals.tolist()])
        else:
            parts.append(["\\N" if v is None else str(v) for v in vals.tolist()])
    return "".join(["\t".join(r) + "\n" for r in zip(*parts)])


def copy_rows(conn: Connection, table: str, names: list[str], cols: list[np.ndarray],
              escape: tuple[str, ...] = _FREE_TEXT) -> None:
    """Insert columns of DB-ready values (see :func:`_column_values`) in one go: COPY on
    PostgreSQL, one executemany on SQLite; inside the caller's transaction."""
    collist = ", ".join(names)
    cur = conn.connection.cursor()
    if conn.dialect.name == "postgresql":
        cur.copy_expert(f"COPY {table} ({collist}) FROM STDIN", io.StringIO(_copy_text(names, cols, escape)))
    else:
        ph = ", ".join("?" for _ in names)
        cur.executemany(f"INSERT INTO {table} ({collist}) VALUES ({ph})", list(zip(*cols)))


def insert_new(conn: Connection, table: str, names: list[str], cols: list[np.ndarray],
               escape: tuple[str, ...] = ()) -> int:
    """Insert the rows whose primary key is not in ``table`` yet; returns how many went in. A
    rerun inserts nothing: COPY into a temporary table, then INSERT ... ON CONFLICT DO NOTHING on
    PostgreSQL; INSERT OR IGNORE on SQLite."""
    collist = ", ".join(names)
    cur = conn.connection.cursor()
    if conn.dialect.name == "postgresql":
        cur.execute(f"CREATE TEMP TABLE _new_{table} (LIKE {table}) ON COMMIT DROP")
        cur.copy_expert(f"COPY _new_{table} ({collist}) FROM STDIN", io.StringIO(_copy_text(names, cols, escape)))
        cur.execute(f"INSERT INTO {table} ({collist}) SELECT {collist} FROM _new_{table} ON CONFLICT DO NOTHING")
        n = cur.rowcount
        cur.execute(f"DROP TABLE _new_{table}")
        return n
    before = conn.connection.total_changes
    cur.executemany(f"INSERT OR IGNORE INTO {table} ({collist}) VALUES ({', '.join('?' for _ in names)})",
                    list(zip(*cols)))
    return conn.connection.total_changes - before


def _copy_into(conn: Connection, table: str, cols: list[np.ndarray]) -> None:
    copy_rows(conn, table, list(TICKET_COLUMNS), cols)


def _stage(conn: Connection, df: pd.DataFrame) -> None:
    """The batch into a temporary table of the connection (the direct path)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS stage_tickets (LIKE tickets) ON COMMIT DROP")
    else:
        conn.exec_driver_sql("DROP TABLE IF EXISTS temp.stage_tickets")
        conn.exec_driver_sql("CREATE TEMP TABLE stage_tickets AS SELECT * FROM tickets WHERE 0")
    _copy_into(conn, "stage_tickets", _column_values(df, conn.dialect.name))


def _merge(conn: Connection, source: str, n: int) -> UpsertResult:
    """Upsert ``source`` (a table or subquery of ticket rows) into tickets; newer versions win."""
    collist = ", ".join(TICKET_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in TICKET_COLUMNS if c != "ticket_id")
    existing, newer = conn.exec_driver_sql(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN s.updated_at > t.updated_at THEN 1 ELSE 0 END), 0) "
        f"FROM {source} s JOIN tickets t ON t.ticket_id = s.ticket_id").one()
    dates = conn.exec_driver_sql(
        f"SELECT DISTINCT received_date FROM {source} s UNION "
        f"SELECT DISTINCT t.received_date FROM tickets t JOIN {source} s ON s.ticket_id = t.ticket_id "
        "WHERE s.updated_at > t.updated_at").scalars().all()
    conn.exec_driver_sql(
        f"INSERT INTO tickets ({collist}) SELECT {collist} FROM {source} s WHERE true "
        f"ON CONFLICT (ticket_id) DO UPDATE SET {updates} WHERE excluded.updated_at > tickets.updated_at")
    touched = {d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in dates}
    existing, newer = int(existing), int(newer)
    return UpsertResult(n - existing, newer, existing - newer, touched)


def upsert_tickets(engine: Engine, df: pd.DataFrame, run_id: str) -> UpsertResult:
    """Upsert canonical tickets; return what changed and the local days whose counts are stale."""
    if df.empty:
        return UpsertResult(0, 0, 0, set())
    df = df.assign(ingest_run_id=run_id)
    with engine.begin() as conn:
        _stage(conn, df)
        res = _merge(conn, "stage_tickets", len(df))
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TABLE temp.stage_tickets")
    return res


def stage_batch(engine: Engine, df: pd.DataFrame, run_id: str) -> int:
    """Write-audit-publish, step one: park a batch in staged_tickets until the gate lets it through."""
    if df.empty:
        return 0
    with engine.begin() as conn:
        _copy_into(conn, "staged_tickets", _column_values(df.assign(ingest_run_id=run_id), conn.dialect.name))
    return len(df)


def publish_in(conn: Connection, run_id: str) -> UpsertResult:
    """Write-audit-publish, last step: merge a run's staged batch into tickets and clear it,
    inside the caller's transaction (which also recomputes the touched days' counts, so that a
    failure leaves the batch staged and a retry recomputes what it must)."""
    n = conn.execute(select(func.count()).select_from(staged_tickets).where(
        staged_tickets.c.ingest_run_id == run_id)).scalar_one()
    if n == 0:
        return UpsertResult(0, 0, 0, set())
    src = f"(SELECT * FROM staged_tickets WHERE ingest_run_id = '{_safe_id(run_id)}')"
    res = _merge(conn, src, n)
    conn.execute(delete(staged_tickets).where(staged_tickets.c.ingest_run_id == run_id))
    return res


def _safe_id(run_id: str) -> str:
    if not all(ch.isalnum() or ch in "-_:.+T" for ch in run_id):
        raise ValueError(f"unexpected characters in run id {run_id!r}")
    return run_id


def insert_quarantine(engine: Engine, bad: pd.DataFrame, run_id: str, source: str) -> int:
    """Append quarantine rows; a problem already on record (same source, file, row and reason,
    e.g. from an earlier load of the same file) is not appended again. Returns the rows added."""
    if bad.empty:
        return 0
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{**{k: (None if v is None or (isinstance(v, float) and v != v) else v) for k, v in r.items()},
             "run_id": run_id, "source": source, "quarantined_at": now}
            for r in bad.to_dict("records")]
    files = sorted({r["source_file"] for r in rows if r["source_file"] is not None})
    q = quarantine.c
    with engine.begin() as conn:
        known: set[tuple] = set()
        for part in (files[i:i + 500] for i in range(0, len(files), 500)):
            known |= set(map(tuple, conn.execute(select(q.source_file, q.source_row, q.reason).where(
                q.source == source, q.source_file.in_(part))).all()))
        rows = [r for r in rows if (r["source_file"], r["source_row"], r["reason"]) not in known]
        if rows:
            conn.execute(insert(quarantine), rows)
    return len(rows)
