"""Coherence across the hierarchy: a city's districts sum to the city, categories to the total.

Top-down proportional within a city (its total is the best-forecast series; the children keep
their own shape and are scaled to it), with iterative proportional fitting for the district x
category table, which has two parents (its district's total and the city's category). The
province is the sum of its cities (bottom-up), done when all cities are in. Interval bounds are
scaled with their mean, an approximation: a sum's interval is narrower than the sum of its parts'.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

VALUE_COLUMNS = ["yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]


def _scale(fc: pd.DataFrame, mask: pd.Series, factor: pd.Series) -> None:
    """Multiply the value columns of ``mask`` rows by ``factor`` (aligned on their index)."""
    f = factor.reindex(fc.index[mask]).fillna(1.0).to_numpy()[:, None]
    fc.loc[mask, VALUE_COLUMNS] = fc.loc[mask, VALUE_COLUMNS].to_numpy() * f


def _ratio(parent: pd.Series, children_sum: pd.Series) -> pd.Series:
    return (parent / children_sum.replace(0, np.nan)).fillna(1.0)


def reconcile_city(fc: pd.DataFrame) -> pd.DataFrame:
    """Make one city's forecast frame coherent. Needs the key columns region_level,
    region_code, category_level, category_code; returns a copy."""
    fc = fc.copy()
    fc[VALUE_COLUMNS] = fc[VALUE_COLUMNS].astype(float)
    lv = fc["region_level"] + ":" + fc["category_level"]
    fc["_l1"] = fc["category_code"].str.split(".").str[0]
    top = fc[lv == "city:all"].set_index("ds")["yhat"]
    if top.empty:
        return fc.drop(columns="_l1")

    def step(child: str, parent_of) -> None:
        m = lv == child
        if not m.any():
            return
        kids = fc[m]
        key = parent_of(kids)
        sums = kids.groupby([key, kids["ds"]])["yhat"].transform("sum")
        parent = pd.Series([parents.get((k, d), np.nan) for k, d in zip(key, kids["ds"])], index=kids.index)
        _scale(fc, m, _ratio(parent, sums))

    # city l1 -> city total
    parents = {("*", d): v for d, v in top.items()}
    step("city:l1", lambda k: pd.Series("*", index=k.index))
    # city l2 -> its city l1
    l1 = fc[lv == "city:l1"]
    parents = {(c, d): v for c, d, v in zip(l1["category_code"], l1["ds"], l1["yhat"])}
    step("city:l2", lambda k: k["_l1"])
    # district totals -> city total
    parents = {("*", d): v for d, v in top.items()}
    step("district:all", lambda k: pd.Series("*", index=k.index))
    # district x l1: rows to the district totals, columns to the city's categories (IPF)
    dm = lv == "district:l1"
    if dm.any():
        dist_tot = fc[lv == "district:all"]
        row_t = {(r, d): v for r, d, v in zip(dist_tot["region_code"], dist_tot["ds"], dist_tot["yhat"])}
        col_t = {(c, d): v for c, d, v in zip(l1["category_code"], l1["ds"], l1["yhat"])}
        for _ in range(20):
            kids = fc[dm]
            rs = kids.groupby(["region_code", "ds"])["yhat"].transform("sum")
            target = pd.Series([row_t.get((r, d), np.nan) for r, d in zip(kids["region_code"], kids["ds"])],
                               index=kids.index)
            _scale(fc, dm, _ratio(target, rs))
            kids = fc[dm]
            cs = kids.groupby(["category_code", "ds"])["yhat"].transform("sum")
            target = pd.Series([col_t.get((c, d), np.nan) for c, d in zip(kids["category_code"], kids["ds"])],
                               index=kids.index)
            _scale(fc, dm, _ratio(target, cs))
    return fc.drop(columns="_l1")


def coherence_gap(fc: pd.DataFrame) -> float:
    """Largest relative gap between a city total and the sum of its districts or categories."""
    lv = fc["region_level"] + ":" + fc["category_level"]
    top = fc[lv == "city:all"].set_index("ds")["yhat"]
    gaps = []
    for child in ("city:l1", "district:all"):
        s = fc[lv == child].groupby("ds")["yhat"].sum()
        if len(s):
            gaps.append(float(((s - top).abs() / top.clip(lower=1e-9)).max()))
    return max(gaps, default=0.0)
