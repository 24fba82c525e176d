"""Repeat complaints (同人同事): a ticket is a repeat when the same caller (``caller_key``, a salted
hash; no phone number is read or stored) asked about the same level-2 category in the same place
(district, else city) within ``repeat_window_days`` before it. Rates per month, place and category
go to ``repeat_rates``; a rerun of a month replaces its rows."""
from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, case, delete, func, select

from hotline.core.reference import DEFAULT_TIMEZONE
from sla.job import month_bounds_utc
from sla.lights import SlaConfig
from warehouse.db import seconds_between
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import repeat_rates, tickets

COLS = ["ticket_id", "caller_key", "received_at", "category_l2", "city_code", "district_code"]


def find_repeats(df: pd.DataFrame, window_days: int) -> pd.Series:
    """For each ticket (rows of ``COLS``), the id of the earlier ticket it repeats, or None: the
    rule itself, on tickets in memory (``month_rates`` applies it in the database)."""
    if df.empty:
        return pd.Series([], dtype=object)
    d = df.assign(place=df["district_code"].fillna(df["city_code"]),
                  t=pd.to_datetime(df["received_at"], utc=True))
    d = d.sort_values(["caller_key", "category_l2", "place", "t", "ticket_id"], kind="stable")
    same = (d["caller_key"].notna() & (d["caller_key"] == d["caller_key"].shift())
            & (d["category_l2"] == d["category_l2"].shift()) & (d["place"] == d["place"].shift()))
    close = (d["t"] - d["t"].shift()) <= pd.Timedelta(days=window_days)
    prev = d["ticket_id"].shift()
    out = pd.Series(np.where(same & close, prev, None), index=d.index, dtype=object)
    return out.reindex(df.index)


def month_rates(engine: Engine, month: pd.Period, province_code: str, cfg: SlaConfig,
                tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """Find the month's repeats (looking back ``repeat_window_days`` before it) and store the rates.
    The database does the work (a window function over caller, category and place, then counts per
    place and category), so a month of a large province never comes into memory; the rule is the
    one :func:`find_repeats` states (tests hold the two equal)."""
    lo, hi = month_bounds_utc(month, tz)
    back = lo - dt.timedelta(days=cfg.repeat_window_days)
    t = tickets.c
    place = func.coalesce(t.district_code, t.city_code)
    prev = func.lag(t.received_at).over(partition_by=(t.caller_key, t.category_l2, place),
                                        order_by=(t.received_at, t.ticket_id))
    inner = (select(t.ticket_id, t.received_at, t.caller_key, t.category_l2, t.city_code, t.district_code,
                    prev.label("prev_at"))
             .where(t.province_code == province_code, t.received_at >= back, t.received_at < hi,
                    t.received_date >= back.date(), t.received_date <= month.end_time.date())
             .subquery())
    i = inner.c
    rep = case((and_(i.caller_key.is_not(None), i.prev_at.is_not(None),
                     func.round(seconds_between(engine, i.received_at, i.prev_at) * 1000)
                     <= cfg.repeat_window_days * 86_400_000), 1), else_=0)
    q = (select(i.city_code, i.district_code, i.category_l2, func.count().label("n"),
                func.sum(case((i.caller_key.is_not(None), 1), else_=0)).label("c"), func.sum(rep).label("r"))
         .where(i.received_at >= lo).group_by(i.city_code, i.district_code, i.category_l2))
    run_id = new_run_id("repeats")
    with stage_run(engine, "repeats", month.end_time.date(), {"month": str(month)}, run_id) as run:
        with engine.connect() as conn:
            df = pd.DataFrame(conn.execute(q).all(),
                              columns=["city_code", "district_code", "category_l2", "n", "c", "r"])
        rows = _rates(df, month, run_id)
        with engine.begin() as conn:  # this province's rows of the month (its cities share its prefix)
            conn.execute(delete(repeat_rates).where(repeat_rates.c.month == month.start_time.date(),
                                                    repeat_rates.c.city_code.like(f"{province_code[:2]}%")))
            if rows:
                conn.execute(repeat_rates.insert(), rows)
        n, r = int(df["n"].sum()), int(df["r"].sum())
        run.metrics = {"tickets": n, "repeats": r}
        return {"month": str(month), "tickets": n, "repeats": r, "rows": len(rows)}


def _rates(df: pd.DataFrame, month: pd.Period, run_id: str) -> list[dict[str, Any]]:
    """Rows of ``repeat_rates`` from counts per city, district and category (n, with caller, repeats)."""
    if df.empty:
        return []
    d = df.assign(level=np.where(df["district_code"].notna(), "district", "city"),
                  place=df["district_code"].fillna(df["city_code"]))
    out = []
    for cat_col in ("category_l2", None):
        keys = ["level", "place", "city_code"] + ([cat_col] if cat_col else [])
        g = d.groupby(keys, dropna=False)[["n", "c", "r"]].sum().reset_index()
        out.append(pd.DataFrame({"month": month.start_time.date(), "region_level": g["level"],
                                 "region_code": g["place"],
                                 "city_code": g["city_code"], "category_code": g[cat_col] if cat_col else "*",
                                 "n_tickets": g["n"].astype(int), "n_with_caller": g["c"].astype(int),
                                 "n_repeat": g["r"].astype(int), "run_id": run_id}))
    rows = pd.concat(out, ignore_index=True).astype(object).to_dict("records")
    for r in rows:
        for k in ("n_tickets", "n_with_caller", "n_repeat"):
            r[k] = int(r[k])
    return rows


def read_rates(engine: Engine, month: pd.Period, city: str | None = None,
               province_code: str | None = None) -> pd.DataFrame:
    """The month's stored rates, of one city or of one province's cities."""
    r = repeat_rates.c
    q = select(repeat_rates).where(r.month == month.start_time.date())
    if city:
        q = q.where(r.city_code == city)
    if province_code:
        q = q.where(r.city_code.like(f"{province_code[:2]}%"))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).mappings().all())
    if not df.empty:
        df["rate"] = df["n_repeat"] / df["n_with_caller"].where(df["n_with_caller"] > 0)
    return df
