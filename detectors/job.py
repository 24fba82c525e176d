"""The daily detection as the DAG runs it, one scope at a time.

A city scope judges the city's and its districts' series (all tickets, level-1 and level-2
categories); the province scope judges the province's series, with its cities as the drill-down.
Each reads the last ``PANEL_DAYS`` days, builds a panel and runs ``detectors.engine`` on the
day, with the city's profile and the cool-down carried from the anomalies already stored. The day's
anomalies of the scope are replaced, so a rerun gives the same rows, not duplicates.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, delete, insert, select

from detectors.calibration import CALIBRATION_WEEKS
from detectors.engine import MIN_COOLDOWN, Cooldown, decide, score_all
from detectors.panel import Expectations, Panel
from detectors.profiles import DetectionConfig
from hotline.core.reference import DEFAULT_CONFIG_DIR, City, load_reference
from warehouse.aggregate import read_counts
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import anomalies

HISTORY_DAYS = 420  # each expectation's history: more than a year, so last year's season is in it
# The oldest origin a day's judgement reads: the one-day calibration's oldest block (26 weeks before
# the day, detectors.calibration.CALIBRATION_WEEKS, on a two-week grid); the level-shift
# calibration's oldest window (16 weeks of 14-day windows) and the drift τ² behind it (8 more weeks)
# reach less far.
OLDEST_ORIGIN = 7 * (CALIBRATION_WEEKS + 4)
# The panel reaches further back, so that this oldest expectation still gets its full HISTORY_DAYS:
# the daily run and the backtest then fit exactly the same windows.
PANEL_DAYS = HISTORY_DAYS + OLDEST_ORIGIN + 7
CITY_DETECT_LEVELS = (("city", "all"), ("city", "l1"), ("city", "l2"),
                      ("district", "all"), ("district", "l1"), ("district", "l2"))
PROVINCE_DETECT_LEVELS = (("province", "all"), ("province", "l1"), ("province", "l2"),
                          ("city", "all"), ("city", "l1"), ("city", "l2"))


def load_panel(engine: Engine, start: dt.date, end: dt.date, scope: str, level: str,
               country: str = "CN", districts: list[str] | None = None) -> Panel | None:
    """The panel of a city (its city and district series) or a province (its province series and,
    for the drill-down, its cities'), ``start``..``end``, on the region's holiday calendar. Days
    without tickets from the first loaded day to ``end`` are zeros. ``districts`` (a city's codes
    from the reference) lets the district rows be read by the series index."""
    levels = PROVINCE_DETECT_LEVELS if level == "province" else CITY_DETECT_LEVELS
    frames = [read_counts(engine, r, c, start=start, end=end, city_code=None if level == "province" else scope,
                          region_codes=districts if (level == "city" and r == "district" and districts) else None)
              for r, c in levels]
    if level == "province":
        frames = [f[f["province_code"] == scope] for f in frames]
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    return Panel.from_rows(pd.concat(frames, ignore_index=True), end, country)


def districts_of(ref, scope: str) -> list[str] | None:
    """A configured city's district codes (None for a province or an unknown code)."""
    city = ref.regions.by_code.get(scope)
    return [d.code for d in city.districts] if isinstance(city, City) else None


@dataclass(frozen=True)
class DetectResult:
    """What a detection run of one scope stored: its anomalies, by severity, over its series."""

    scope: str
    anomalies: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    series: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_scope(engine: Engine, day: dt.date, scope: str, config_dir: str | Path = DEFAULT_CONFIG_DIR,
                 cfg: DetectionConfig | None = None) -> DetectResult:
    ref = load_reference(config_dir)
    level = ref.regions.level_of(scope)
    if level not in ("city", "province"):
        raise ValueError(f"detect: {scope} is not a configured city or province code")
    run_id = new_run_id("detect")
    with stage_run(engine, "detect", day, {"scope": scope}, run_id) as run:
        cfg = cfg or DetectionConfig.load(config_dir)
        panel = load_panel(engine, day - dt.timedelta(days=PANEL_DAYS), day, scope, level,
                           ref.regions.province(ref.regions.province_of(scope)).calendar, districts_of(ref, scope))
        if panel is None:
            run.metrics = {"anomalies": 0}
            return DetectResult(scope)
        prof = cfg.arrays(panel)
        own = (panel.keys["region_level"] == level).to_numpy() if level == "province" else np.ones(len(panel), bool)
        for d in prof.enabled:
            prof.enabled[d] &= own  # the province scope alerts on province series only; cities have their own
        dets = {d: cfg.detector(d) for d in prof.detectors}
        t = panel.index(day)
        results = score_all(panel, Expectations(panel), t, dets)
        memory = max(int(prof.cooldown.max(initial=0)), *MIN_COOLDOWN.values())
        cool = Cooldown.from_records(recent_anomalies(engine, day, memory, panel.ids[own].tolist()))
        res = decide(panel, t, results, dets, prof, cool, ref)
        store(engine, res, day, sorted(set(panel.keys.loc[own, "region_code"])), run_id)
        metrics = {"anomalies": int(len(res)), "by_severity": res["severity"].value_counts().to_dict(),
                   "series": len(panel)}
        run.metrics = metrics
        return DetectResult(scope, **metrics)


def recent_anomalies(engine: Engine, day: dt.date, days: int, series_ids: list[str]) -> pd.DataFrame:
    """Stored anomalies of the ``days`` days before ``day`` (the cool-down's memory)."""
    a = anomalies.c
    q = select(a.series_id, a.ds, a.kind, a.severity).where(
        a.ds >= day - dt.timedelta(days=days), a.ds < day)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).mappings().all(), columns=["series_id", "ds", "kind", "severity"])
    return df[df["series_id"].isin(set(series_ids))]


def store(engine: Engine, res: pd.DataFrame, day: dt.date, codes: list[str], run_id: str) -> None:
    """Replace the day's anomalies of these regions with ``res``."""
    with engine.begin() as conn:
        conn.execute(delete(anomalies).where(and_(anomalies.c.ds == day, anomalies.c.region_code.in_(codes))))
        if len(res):
            rows = res.assign(ds=day, run_id=run_id)[[c.name for c in anomalies.columns]]
            rows = rows.astype(object).where(rows.notna(), None)
            conn.execute(insert(anomalies), rows.to_dict("records"))
