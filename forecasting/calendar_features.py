"""Calendar features shared by the models: day kinds and last year's analogous day.

Around Spring Festival the analogous day last year is the one with the same distance to the lunar
new year (the festival moves by up to a month); elsewhere it is 364 days back (same weekday).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from hotline.core.calendar import calendar_frame

SF_WINDOW = 40  # days either side of Spring Festival aligned by the lunar calendar


def day_kinds(start: dt.date, end: dt.date, country: str = "CN") -> pd.DataFrame:
    """calendar_frame plus `kind`: 0..6 weekday for ordinary days, 7 holiday, 8 Spring Festival
    holiday; a 调休 make-up workday counts as a Monday-to-Friday day (kind 2, a mid-week day)."""
    cal = calendar_frame(start, end, country=country)
    kind = cal["weekday"].to_numpy().copy()
    kind[cal["is_makeup_workday"].to_numpy()] = 2
    sf = np.abs(cal["days_from_spring_festival"].to_numpy()) <= 8
    kind[cal["is_holiday"].to_numpy()] = 7
    kind[cal["is_holiday"].to_numpy() & sf] = 8
    cal["kind"] = kind
    return cal


def analog_positions(cal: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """For each position in ``cal``, the position of last year's analogous day (or -1)."""
    dfs = cal["days_from_spring_festival"].to_numpy()
    ds = cal["ds"].to_numpy().astype("datetime64[D]")
    out = positions - 364
    near = np.abs(dfs[positions]) <= SF_WINDOW
    if near.any():
        # the day with the same distance to the previous Spring Festival
        sf_days = ds - dfs.astype("timedelta64[D]")
        for i in np.flatnonzero(near):
            p = positions[i]
            this_sf = sf_days[p]
            prev = np.flatnonzero((sf_days < this_sf - np.timedelta64(300, "D")) & (dfs == dfs[p]))
            out[i] = prev[-1] if len(prev) else p - 364
    return np.where(out >= 0, out, -1)
