"""The province's trend view: which level-2 categories are rising in which cities this month, where
a hotspot moved to (cities rising now that were not last month) or cooled, issues rising in
several cities at once (cross-city), and whether last year showed the same rise (seasonal).

Rising: the month's tickets per day against the previous month's, at least ``min_count`` tickets,
``ratio`` times as many and a Poisson z of ``z``. All from ``daily_counts`` (city x level-2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from hotline.core.config import TrendsSection, read_sla
from hotline.core.reference import Reference
from proposals.panel import read_monthly
from warehouse.schema import anomalies

_DEFAULTS = TrendsSection()


@dataclass(frozen=True)
class TrendConfig:
    # the defaults and their meaning: hotline.core.config.TrendsSection (docs/CONFIG.md)
    min_count: int = _DEFAULTS.min_count
    ratio: float = _DEFAULTS.ratio
    z: float = _DEFAULTS.z
    cross_city_min: int = _DEFAULTS.cross_city_min

    @classmethod
    def load(cls, config_dir: Any) -> "TrendConfig":
        """The ``trends:`` section of config/sla.yaml, validated."""
        sec = read_sla(config_dir).trends
        return cls(sec.min_count, sec.ratio, sec.z, sec.cross_city_min)


def _rising(cur: pd.Series, prev: pd.Series, days_cur: int, days_prev: int, cfg: TrendConfig) -> pd.Series:
    exp = prev * days_cur / days_prev
    z = (cur - exp) / np.sqrt(exp + 1.0)
    return (cur >= cfg.min_count) & (cur >= cfg.ratio * exp) & (z >= cfg.z)


def hotspots(engine: Engine, month: pd.Period, province_code: str, ref: Reference,
             cfg: TrendConfig = TrendConfig()) -> dict[str, Any]:
    df = read_monthly(engine, month - 14, month, province_code, [("city", "l2")])
    wide = df.pivot_table(index=["region_code", "category_code"], columns="month", values="n_tickets",
                          aggfunc="sum", fill_value=0.0)
    col = lambda m: wide[m] if m in wide.columns else pd.Series(0.0, index=wide.index)  # noqa: E731
    days = lambda m: m.days_in_month  # noqa: E731

    def rising(m: pd.Period) -> pd.Series:
        if col(m - 1).sum() <= 0:  # the warehouse has no counts that month: nothing to compare with
            return pd.Series(False, index=wide.index)
        return _rising(col(m), col(m - 1), days(m), days(m - 1), cfg)  # from nothing counts: a hotspot moving in

    now, before = rising(month), rising(month - 1)
    have_last_year = (month - 13) in wide.columns and col(month - 13).sum() > 0
    seasonal = rising(month - 12) if have_last_year else pd.Series(False, index=wide.index)
    anom = _anomaly_cities(engine, month, province_code, ref)
    rows = []
    for cat in sorted(set(wide.index.get_level_values(1))):
        idx = wide.index.get_level_values(1) == cat
        r_now = sorted(wide.index[idx & now.to_numpy()].get_level_values(0))
        r_before = sorted(wide.index[idx & before.to_numpy()].get_level_values(0))
        if not r_now and not r_before:
            continue
        cur, prev = float(col(month)[idx].sum()), float(col(month - 1)[idx].sum())
        exp = prev * days(month) / days(month - 1)
        rows.append({"category": cat, "rising": r_now, "rising_last_month": r_before,
                     "new": [c for c in r_now if c not in r_before], "cooled": [c for c in r_before if c not in r_now],
                     "seasonal": sorted(wide.index[idx & seasonal.to_numpy()].get_level_values(0)) if r_now else [],
                     "tickets": int(cur), "tickets_prev": int(prev),
                     "change": None if exp <= 0 else round(cur / exp - 1, 4),
                     "anomaly_cities": anom.get(cat, []),
                     "cross_city": len(r_now) >= cfg.cross_city_min or len(anom.get(cat, [])) >= cfg.cross_city_min})
    rows.sort(key=lambda r: (-len(r["rising"]), -len(r["new"]), -(r["change"] or 0), r["category"]))
    totals = {str(m): int(col(m).sum()) for m in (month - 1, month, month - 12) if m in wide.columns}
    return {"month": str(month), "categories": rows, "totals": totals, "last_year": bool(have_last_year),
            "cross_city": [r for r in rows if r["cross_city"]]}


def _anomaly_cities(engine: Engine, month: pd.Period, province_code: str, ref: Reference) -> dict[str, list[str]]:
    """Per level-2 category: the cities with a rising anomaly in the month (city or district series)."""
    a = anomalies.c
    parent = ref.regions.district_parent()
    cities = {c.code for c in ref.regions.province(province_code).cities}
    q = (select(a.region_code, a.category_code, func.count()).where(
        a.ds >= month.start_time.date(), a.ds <= month.end_time.date(), a.category_level == "l2",
        a.kind.in_(["spike", "level_shift", "emerging", "spread"]), a.observed > func.coalesce(a.expected, 0))
         .group_by(a.region_code, a.category_code))
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for region, cat, _n in conn.execute(q):
            city = region if region in cities else parent.get(region)
            if city in cities:
                out.setdefault(cat, set()).add(city)
    return {k: sorted(v) for k, v in out.items()}
