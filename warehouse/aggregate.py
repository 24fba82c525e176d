"""daily_counts: tickets counted per local day at every level of both hierarchies, in SQL.

Region levels province / city / district times category levels all / l1 / l2: nine GROUP BYs
over the touched days only, so re-aggregating one day costs that day's tickets, not the history.
A ticket without a district (a foreign export's row with no borough) counts at city and province
level only.

n_overdue counts, as of the aggregation, tickets closed after their deadline or still open past it.
"""
from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, and_, bindparam, case, delete, func, insert, literal, or_, select

from hotline.core.reference import ALL_CATEGORIES
from hotline.core.series import series_ids
from warehouse.locks import WRITE_LOCK, run_lock
from warehouse.schema import COUNT_COLUMNS, UTCDateTime, daily_counts, tickets

REGION_COLUMNS = {"province": tickets.c.province_code, "city": tickets.c.city_code,
                  "district": tickets.c.district_code}
CATEGORY_COLUMNS = {"all": None, "l1": tickets.c.category_l1, "l2": tickets.c.category_l2}


def _ranges(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive runs of days, so a bulk load aggregates in a few range scans."""
    out: list[tuple[dt.date, dt.date]] = []
    for d in sorted(set(days)):
        if out and d == out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def _count_exprs(now_param):
    t = tickets.c
    overdue = or_(and_(t.closed_at.is_not(None), t.closed_at > t.deadline_at),
                  and_(t.closed_at.is_(None), t.deadline_at < now_param))
    return [
        func.count().label("n_tickets"),
        func.sum(case((t.closed_at.is_not(None), 1), else_=0)).label("n_closed"),
        func.sum(case((and_(t.deadline_at.is_not(None), overdue), 1), else_=0)).label("n_overdue"),
        func.sum(case((t.is_repeat, 1), else_=0)).label("n_repeat"),
        func.sum(case((t.satisfaction.is_not(None), 1), else_=0)).label("n_rated"),
        func.sum(case((t.satisfaction == "unsatisfied", 1), else_=0)).label("n_unsatisfied"),
        func.sum(case((t.resolved, 1), else_=0)).label("n_resolved"),
    ]


def aggregate_days(engine: Engine, days: Iterable[dt.date], now: dt.datetime | None = None) -> int:
    """Recompute daily_counts for ``days``; returns the number of days aggregated."""
    days = sorted(set(days))
    if not days:
        return 0
    with run_lock(engine, WRITE_LOCK), engine.begin() as conn:
        return aggregate_in(conn, days, now)


def aggregate_in(conn: Connection, days: Iterable[dt.date], now: dt.datetime | None = None) -> int:
    """:func:`aggregate_days` inside the caller's transaction, which holds the warehouse's write
    lock (``warehouse.locks.WRITE_LOCK``): two at once would each delete and re-insert the same
    days' counts."""
    days = sorted(set(days))
    if not days:
        return 0
    now = now or dt.datetime.now(dt.timezone.utc)
    now_param = bindparam("now", value=now, type_=UTCDateTime)
    counts = _count_exprs(now_param)
    target_cols = ["ds", "region_level", "region_code", "category_level", "category_code",
                   "province_code", "city_code", *COUNT_COLUMNS, "aggregated_at"]
    for lo, hi in _ranges(days):
        conn.execute(delete(daily_counts).where(daily_counts.c.ds.between(lo, hi)))
        for rlevel, rcol in REGION_COLUMNS.items():
            for clevel, ccol in CATEGORY_COLUMNS.items():
                city_col = {"province": literal(None, type_=tickets.c.city_code.type),
                            "city": tickets.c.city_code, "district": tickets.c.city_code}[rlevel]
                cat_col = ccol if ccol is not None else literal(ALL_CATEGORIES)
                group = [tickets.c.received_date, rcol, tickets.c.province_code]
                if rlevel != "province":
                    group.append(tickets.c.city_code)
                if ccol is not None:
                    group.append(ccol)
                sel = (select(tickets.c.received_date, literal(rlevel), rcol, literal(clevel), cat_col,
                              tickets.c.province_code, city_col, *counts,
                              bindparam("agg_at", value=now, type_=UTCDateTime))
                       .where(tickets.c.received_date.between(lo, hi))
                       .group_by(*group))
                if rlevel == "district":
                    sel = sel.where(tickets.c.district_code.is_not(None))
                conn.execute(insert(daily_counts).from_select(target_cols, sel))
    return len(days)


RAW_COLUMNS = ["ds", "region_level", "region_code", "category_level", "category_code", "province_code", "city_code",
               "y"]


def read_counts(engine: Engine, region_level: str, category_level: str, start: dt.date | None = None,
                end: dt.date | None = None, city_code: str | None = None, value: str = "n_tickets",
                region_codes: list[str] | None = None) -> pd.DataFrame:
    """The stored rows of one level pair (RAW_COLUMNS; days without tickets are absent), ``ds``
    as datetime64. Millions of rows for a province: read through the driver's cursor (plain
    tuples, dates parsed in one pass), not as SQLAlchemy rows. ``region_codes`` (a city's
    districts) reads them by the series index instead of scanning every district for the city's."""
    dc = daily_counts.c
    q = select(dc.ds, dc.region_level, dc.region_code, dc.category_level, dc.category_code,
               dc.province_code, dc.city_code, dc[value].label("y")).where(
        dc.region_level == region_level, dc.category_level == category_level)
    if start:
        q = q.where(dc.ds >= start)
    if end:
        q = q.where(dc.ds <= end)
    if region_codes is not None:
        q = q.where(dc.region_code.in_(sorted(region_codes)))
    elif city_code:
        q = q.where(dc.city_code == city_code) if region_level != "city" else q.where(dc.region_code == city_code)
    compiled = q.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    params = dict(compiled.params)
    if engine.dialect.name == "sqlite":  # dates as SQLAlchemy stores them there (ISO text)
        params = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in params.items()}
    params = [params[k] for k in compiled.positiontup] if compiled.positional else params
    with engine.connect() as conn:
        cur = conn.connection.driver_connection.cursor()
        try:
            if engine.dialect.driver == "psycopg2":  # COPY out as CSV: some 3x faster than fetching tuples
                buf = io.BytesIO()
                cur.copy_expert(b"COPY (" + cur.mogrify(str(compiled), params) + b") TO STDOUT WITH (FORMAT csv)", buf)
                buf.seek(0)
                df = pd.read_csv(buf, names=RAW_COLUMNS, header=None, keep_default_na=False,
                                 na_values={"city_code": [""]},
                                 dtype={c: str for c in RAW_COLUMNS[1:7]} | {"y": "int64"})
                df["city_code"] = df["city_code"].astype(object).where(df["city_code"].notna(), None)
            else:
                cur.execute(str(compiled), params)
                df = pd.DataFrame(cur.fetchall(), columns=RAW_COLUMNS)
        finally:
            cur.close()
    df["ds"] = pd.to_datetime(df["ds"])
    return df


def read_series(engine: Engine, region_level: str, category_level: str, start: dt.date | None = None,
                end: dt.date | None = None, city_code: str | None = None, value: str = "n_tickets") -> pd.DataFrame:
    """The series frame of one level pair: ``series_id, ds, y`` plus key columns.

    Days with no tickets between a series' province's first loaded day and ``end`` (or its last
    loaded day) are zeros.
    """
    df = read_counts(engine, region_level, category_level, start, end, city_code, value)
    if df.empty:
        return pd.DataFrame(columns=["series_id", "ds", "y", "region_level", "region_code",
                                     "category_level", "category_code"])
    df["series_id"] = series_ids(df)
    keys = df.drop_duplicates("series_id").set_index("series_id")[
        ["region_level", "region_code", "category_level", "category_code", "province_code", "city_code"]]
    parts = []
    for _, g in df.groupby("province_code"):
        # a quiet last day is a zero, not the end of the data: fill to the requested end
        last = max(g["ds"].max(), pd.Timestamp(end)) if end else g["ds"].max()
        days = pd.date_range(g["ds"].min(), last, freq="D")
        wide = (g.pivot_table(index="series_id", columns="ds", values="y", aggfunc="sum")
                .reindex(columns=days, fill_value=0))
        long = wide.fillna(0).stack().rename("y").reset_index()
        long.columns = ["series_id", "ds", "y"]
        parts.append(long)
    out = pd.concat(parts, ignore_index=True).join(keys, on="series_id")
    out["y"] = out["y"].astype(int)
    return out[["series_id", "ds", "y", "region_level", "region_code", "category_level", "category_code",
                "province_code", "city_code"]]


def load_counts(engine: Engine, series: pd.DataFrame, days: pd.DatetimeIndex, counts: np.ndarray,
                chunk_days: int = 31, measures: dict[str, np.ndarray] | None = None) -> int:
    """Write daily_counts (ticket counts only; the other measures 0 unless given in ``measures``,
    arrays shaped like ``counts`` by column name) straight from district x level-2 counts, rolled up
    to every level of both hierarchies, replacing those days. For province-scale detector
    backtests, where building every ticket would take hours."""
    measures = dict(measures or {})
    unknown = sorted(set(measures) - set(COUNT_COLUMNS[1:]))
    if unknown:
        raise ValueError(f"load_counts: unknown measure(s) {unknown}; known: {list(COUNT_COLUMNS[1:])}")
    if "province_code" not in series.columns:
        raise ValueError("load_counts: the series frame needs a province_code column (the generator's has one)")
    prov = series["province_code"]
    now = dt.datetime.now(dt.timezone.utc)
    regions = {"province": prov, "city": series["city_code"], "district": series["district_code"]}
    cats = {"all": pd.Series("*", index=series.index), "l1": series["category_l1"], "l2": series["category_l2"]}
    written = 0
    for lo in range(0, len(days), chunk_days):
        bdays = days[lo:lo + chunk_days]
        blocks = {"n_tickets": counts[:, lo:lo + chunk_days],
                  **{k: np.asarray(v)[:, lo:lo + chunk_days] for k, v in measures.items()}}
        parts = []
        for rl, rcode in regions.items():
            for cl, ccode in cats.items():
                key = pd.DataFrame({"region_code": rcode.to_numpy(), "category_code": ccode.to_numpy(),
                                    "province_code": prov.to_numpy(),
                                    "city_code": None if rl == "province" else series["city_code"].to_numpy()})
                cols_long = []
                for name, block in blocks.items():
                    g = pd.concat([key, pd.DataFrame(block, columns=bdays)], axis=1).groupby(
                        ["region_code", "category_code", "province_code", "city_code"], dropna=False).sum()
                    cols_long.append(g.stack().rename(name))
                long = pd.concat(cols_long, axis=1).reset_index().rename(columns={"level_4": "ds"})
                long = long[long["n_tickets"] > 0]
                parts.append(long.assign(region_level=rl, category_level=cl))
        rows = pd.concat(parts, ignore_index=True)
        sqlite = engine.dialect.name == "sqlite"
        ds = pd.to_datetime(rows["ds"])
        rows["ds"] = ds.dt.strftime("%Y-%m-%d") if sqlite else ds.dt.date
        for c in COUNT_COLUMNS:
            rows[c] = rows[c].astype(int) if c in rows else 0
        # as UTCDateTime stores it: naive UTC text on SQLite, timestamptz elsewhere
        rows["aggregated_at"] = now.replace(tzinfo=None).isoformat(" ") if sqlite else now
        rows["city_code"] = rows["city_code"].astype(object).where(rows["city_code"].notna(), None)
        cols = [c.name for c in daily_counts.columns]
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO daily_counts ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        with engine.begin() as conn:
            conn.execute(delete(daily_counts).where(daily_counts.c.ds.between(bdays[0].date(), bdays[-1].date())))
            if engine.dialect.driver == "psycopg2":  # COPY: some 20x faster than executemany on PostgreSQL
                buf = io.StringIO()
                rows[cols].to_csv(buf, index=False, header=False)
                buf.seek(0)
                with conn.connection.dbapi_connection.cursor() as cur:
                    cur.copy_expert(f"COPY daily_counts ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", buf)
            else:
                # straight to the driver's executemany: row dicts and bind processing cost more than the
                # insert (columns as lists, zipped: iterating pandas' string arrays one by one is slow)
                conn.exec_driver_sql(sql, list(zip(*(rows[c].tolist() for c in cols))))
        written += len(rows)
    if engine.dialect.name == "postgresql":  # fresh statistics: the planner picks the series index
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE daily_counts")
    return written
