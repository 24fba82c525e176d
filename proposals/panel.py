"""What the proposals stage reads from the warehouse: monthly sums of daily_counts, the evidence
month's days, days covered per month, anomalies of the month, sample tickets and streets."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine, and_, case, distinct, extract, func, literal, or_, select
from sqlalchemy import text as text_

from hotline.core.pii import mask_outgoing
from hotline.core.reference import DEFAULT_TIMEZONE
from hotline.core.series import series_ids
from warehouse.schema import COUNT_COLUMNS, anomalies, daily_counts, tickets


def month_bounds(month: pd.Period) -> tuple[dt.date, dt.date]:
    return month.start_time.date(), month.end_time.date()


def _level_filter(levels: Sequence[tuple[str, str]]):
    c = daily_counts.c
    return or_(*[and_(c.region_level == r, c.category_level == k) for r, k in levels])


def read_monthly(engine: Engine, first: pd.Period, last: pd.Period, province_code: str,
                 levels: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Monthly sums per series of the province at the given (region level, category level) pairs."""
    c = daily_counts.c
    y, m = extract("year", c.ds).label("y"), extract("month", c.ds).label("m")
    q = (select(c.region_level, c.region_code, c.city_code, c.category_level, c.category_code, y, m,
                *[func.sum(getattr(c, n)).label(n) for n in COUNT_COLUMNS])
         .where(c.province_code == province_code, c.ds >= first.start_time.date(), c.ds <= last.end_time.date(),
                _level_filter(levels))
         .group_by(c.region_level, c.region_code, c.city_code, c.category_level, c.category_code, y, m))
    names = ["region_level", "region_code", "city_code", "category_level", "category_code", "y", "m", *COUNT_COLUMNS]
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).all(), columns=names)
    if df.empty:
        return pd.DataFrame(columns=["series_id", "region_level", "region_code", "city_code", "category_level",
                                     "category_code", "month", *COUNT_COLUMNS])
    df["month"] = pd.PeriodIndex.from_fields(year=df.pop("y").astype(int), month=df.pop("m").astype(int), freq="M")
    df["series_id"] = series_ids(df)
    for n in COUNT_COLUMNS:
        df[n] = df[n].astype(float)
    return df


def read_days(engine: Engine, month: pd.Period, province_code: str, levels: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """``series_id, ds, y`` (tickets) for each day of the month at the given levels."""
    c = daily_counts.c
    lo, hi = month_bounds(month)
    q = select(c.region_level, c.region_code, c.category_level, c.category_code, c.ds, c.n_tickets).where(
        c.province_code == province_code, c.ds >= lo, c.ds <= hi, _level_filter(levels))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).all(), columns=["rl", "rc", "cl", "cc", "ds", "y"])
    if df.empty:
        return pd.DataFrame(columns=["series_id", "ds", "y"])
    df["series_id"] = series_ids(df, ("rl", "rc", "cl", "cc"))
    df["ds"] = pd.to_datetime(df["ds"])
    return df[["series_id", "ds", "y"]]


def coverage(engine: Engine, first: pd.Period, last: pd.Period, province_code: str) -> pd.Series:
    """Days with data per month (the province's total is stored for every loaded day)."""
    c = daily_counts.c
    y, m = extract("year", c.ds), extract("month", c.ds)
    q = (select(y, m, func.count(distinct(c.ds))).where(
        c.region_level == "province", c.region_code == province_code, c.category_level == "all",
        c.ds >= first.start_time.date(), c.ds <= last.end_time.date()).group_by(y, m))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.Series({pd.Period(year=int(a), month=int(b), freq="M"): int(n) for a, b, n in rows}, dtype=float)


def last_day(engine: Engine, province_code: str) -> dt.date | None:
    c = daily_counts.c
    with engine.connect() as conn:
        d = conn.execute(select(func.max(c.ds)).where(c.region_level == "province",
                                                     c.region_code == province_code)).scalar()
    return pd.Timestamp(d).date() if d is not None else None


def anomaly_counts(engine: Engine, month: pd.Period, province_code: str) -> pd.DataFrame:
    """The month's rising anomalies (drops are no evidence of a problem): one row per series and
    day with its worst severity, however many detectors and kinds agreed."""
    from hotline.core.severity import SEVERITY_RANK

    a = anomalies.c
    lo, hi = month_bounds(month)
    q = (select(a.ds, a.region_level, a.region_code, a.category_level, a.category_code, a.severity)
         .where(a.ds >= lo, a.ds <= hi, a.region_code.like(province_code[:2] + "%"), a.kind != "drop",
                or_(a.expected.is_(None), a.observed > a.expected)))
    cols = ["ds", "region_level", "region_code", "category_level", "category_code", "severity"]
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).all(), columns=cols)
    if df.empty:
        return df
    df["rank"] = df["severity"].map(SEVERITY_RANK).fillna(0)
    df = df.sort_values("rank").drop_duplicates(cols[:5], keep="last")
    return df.drop(columns="rank").reset_index(drop=True)


def _ticket_filter(region_level: str, region_code: str, category_level: str, category_code: str, month: pd.Period):
    t = tickets.c
    lo, hi = month_bounds(month)
    conds = [t.received_date >= lo, t.received_date <= hi]
    conds.append({"province": t.province_code, "city": t.city_code, "district": t.district_code}[region_level]
                 == region_code)
    if category_level == "l1":
        conds.append(t.category_l1 == category_code)
    elif category_level == "l2":
        conds.append(t.category_l2 == category_code)
    return and_(*conds)


def sample_titles(engine: Engine, cid: tuple[str, str, str, str], month: pd.Period, n: int = 5,
                  length: int = 40) -> list[str]:
    """Up to ``n`` distinct ticket texts of the month (latest first), cut to a title, PII masked."""
    t = tickets.c
    q = (select(t.content).where(_ticket_filter(*cid, month), t.content.is_not(None))
         .order_by(t.received_at.desc()).limit(n * 20))
    out: list[str] = []
    with engine.connect() as conn:
        for (text,) in conn.execute(q):
            title = mask_outgoing(" ".join(str(text).split()))
            title = title if len(title) <= length else title[:length] + "…"
            if title not in out:
                out.append(title)
            if len(out) >= n:
                break
    return out


def top_streets(engine: Engine, cid: tuple[str, str, str, str], month: pd.Period, n: int = 5) -> list[tuple[str, int]]:
    t = tickets.c
    q = (select(t.street_code, func.count()).where(_ticket_filter(*cid, month), t.street_code.is_not(None))
         .group_by(t.street_code).order_by(func.count().desc()).limit(n))
    with engine.connect() as conn:
        return [(str(s), int(k)) for s, k in conn.execute(q)]


def _handling_days(engine: Engine, as_of: dt.datetime):
    """Days from receipt to closing, or to ``as_of`` for a ticket not closed by then, as a SQL
    expression on this dialect."""
    t = tickets.c
    end = case((or_(t.closed_at.is_(None), t.closed_at > as_of), literal(as_of, t.closed_at.type)),
               else_=t.closed_at)
    if engine.dialect.name == "sqlite":
        return func.julianday(end) - func.julianday(t.received_at)
    if engine.dialect.name in ("mysql", "mariadb"):
        return func.timestampdiff(text_("SECOND"), t.received_at, end) / 86400.0
    return extract("epoch", end - t.received_at) / 86400.0


def handling(engine: Engine, first: pd.Period, last: pd.Period, province_code: str,
             timezone: str = DEFAULT_TIMEZONE) -> pd.DataFrame:
    """``series_id, n_handled, handling_days`` of the tickets received in the months
    ``first``..``last``, for the province, its cities and districts, at every category level: what
    'long handling times' are measured on. As the office saw it at the end of ``last`` (in the
    province's ``timezone``): a ticket closed later, or not yet, counts its days open so far, so a
    problem whose tickets stay open is not made to look fast by leaving them out, and a month's
    figure does not change when it is re-run later."""
    t = tickets.c
    as_of = (last + 1).start_time.tz_localize(timezone).tz_convert("UTC").to_pydatetime()
    days = _handling_days(engine, as_of)
    q = (select(t.city_code, t.district_code, t.category_l2, func.count(), func.sum(days))
         .where(t.province_code == province_code, t.received_date >= first.start_time.date(),
                t.received_date <= last.end_time.date(), t.received_at < as_of,
                or_(t.closed_at.is_(None), t.closed_at >= t.received_at))
         .group_by(t.city_code, t.district_code, t.category_l2))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).all(), columns=["city", "district", "l2", "n_handled", "handling_days"])
    if df.empty:
        return pd.DataFrame(columns=["series_id", "n_handled", "handling_days"])
    df["n_handled"] = df["n_handled"].astype(float)
    df["handling_days"] = df["handling_days"].astype(float)
    df["l1"] = df["l2"].str.split(".").str[0]
    df["all"] = "*"
    df["province"] = province_code
    parts = []
    for rl in ("province", "city", "district"):
        for cl in ("all", "l1", "l2"):
            g = df.dropna(subset=[rl]).groupby([rl, cl])[["n_handled", "handling_days"]].sum().reset_index()
            g["series_id"] = series_ids(g.assign(_rl=rl, _cl=cl), ("_rl", rl, "_cl", cl))
            parts.append(g[["series_id", "n_handled", "handling_days"]])
    return pd.concat(parts, ignore_index=True)
