"""Repeat complaints (同人同事): a ticket is a repeat when the same caller (``caller_key``, a salted
hash; no phone number is read or stored) asked about the same level-2 category in the same place
(district, else city) within ``repeat_window_days`` before it. Rates per month, place and category
go to ``repeat_rates``; a rerun of a month replaces its rows."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, select

from sla.lights import SlaConfig
from warehouse.runs import finish_run, new_run_id, start_run
from warehouse.schema import repeat_rates, tickets

COLS = ["ticket_id", "caller_key", "received_at", "category_l2", "city_code", "district_code"]


def find_repeats(df: pd.DataFrame, window_days: int) -> pd.Series:
    """For each ticket (rows of ``COLS``), the id of the earlier ticket it repeats, or None."""
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


def month_rates(engine: Engine, month: pd.Period, province_code: str, cfg: SlaConfig) -> dict[str, Any]:
    """Find the month's repeats (looking back ``repeat_window_days`` before it) and store the rates."""
    lo = month.start_time.tz_localize("Asia/Shanghai").tz_convert("UTC") - pd.Timedelta(days=cfg.repeat_window_days)
    first, last = month.start_time.date(), month.end_time.date()
    t = tickets.c
    q = select(*[getattr(t, c) for c in COLS], t.received_date).where(
        t.province_code == province_code, t.received_at >= lo.to_pydatetime(), t.received_date <= last)
    run_id = new_run_id("repeats")
    start_run(engine, run_id, "repeats", last, {"month": str(month)})
    try:
        with engine.connect() as conn:
            df = pd.DataFrame(conn.execute(q).all(), columns=[*COLS, "received_date"])
        df["repeat_of"] = find_repeats(df[COLS], cfg.repeat_window_days) if len(df) else None
        df = df[pd.to_datetime(df["received_date"]).dt.date >= first] if len(df) else df
        rows = _rates(df, month, run_id)
        with engine.begin() as conn:
            conn.execute(delete(repeat_rates).where(repeat_rates.c.month == first))
            if rows:
                conn.execute(repeat_rates.insert(), rows)
        n, r = int(len(df)), int(df["repeat_of"].notna().sum()) if len(df) else 0
        finish_run(engine, run_id, "success", {"tickets": n, "repeats": r})
        return {"month": str(month), "tickets": n, "repeats": r, "rows": len(rows)}
    except Exception as exc:
        finish_run(engine, run_id, "failed", None, f"{type(exc).__name__}: {exc}")
        raise


def _rates(df: pd.DataFrame, month: pd.Period, run_id: str) -> list[dict[str, Any]]:
    if df.empty:
        return []
    d = df.assign(level=np.where(df["district_code"].notna(), "district", "city"),
                  place=df["district_code"].fillna(df["city_code"]),
                  rep=df["repeat_of"].notna().astype(int), caller=df["caller_key"].notna().astype(int))
    out = []
    for cat_col in ("category_l2", None):
        keys = ["level", "place", "city_code"] + ([cat_col] if cat_col else [])
        g = d.groupby(keys, dropna=False).agg(n=("ticket_id", "size"), c=("caller", "sum"), r=("rep", "sum"))
        for k, row in g.iterrows():
            out.append({"month": month.start_time.date(), "region_level": k[0], "region_code": k[1],
                        "city_code": k[2], "category_code": k[3] if cat_col else "*", "n_tickets": int(row["n"]),
                        "n_with_caller": int(row["c"]), "n_repeat": int(row["r"]), "run_id": run_id})
    return out


def read_rates(engine: Engine, month: pd.Period, city: str | None = None) -> pd.DataFrame:
    r = repeat_rates.c
    q = select(repeat_rates).where(r.month == month.start_time.date())
    if city:
        q = q.where(r.city_code == city)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).mappings().all())
    if not df.empty:
        df["rate"] = df["n_repeat"] / df["n_with_caller"].where(df["n_with_caller"] > 0)
    return df
