"""The daily detection as the DAG runs it: per city, the day's counts at every city level judged
against the history before them; anomalies stored keyed by day, series and detector."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, delete, insert

from detectors.count_detectors import EmergingDetector, LevelShiftDetector, SpikeDropDetector
from forecasting.job import CITY_LEVELS
from warehouse.aggregate import read_series
from warehouse.runs import finish_run, new_run_id, start_run
from warehouse.schema import anomalies

HISTORY_DAYS = 420  # more than a year, so last year's season is part of what is expected


def detect_city(engine: Engine, day: dt.date, city: str) -> dict[str, Any]:
    run_id = new_run_id("detect")
    start_run(engine, run_id, "detect", day, {"scope": city})
    try:
        first = day - dt.timedelta(days=HISTORY_DAYS)
        frames = [read_series(engine, r, c, start=first, end=day, city_code=city) for r, c in CITY_LEVELS]
        series = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
        if series is None:
            finish_run(engine, run_id, "success", {"anomalies": 0})
            return {"scope": city, "anomalies": 0, "by_severity": {}}
        keys = series.drop_duplicates("series_id").set_index("series_id")[
            ["region_level", "region_code", "category_level", "category_code"]]
        data = series[["series_id", "ds", "y"]]
        history, today = data[data["ds"] < pd.Timestamp(day)], data[data["ds"] == pd.Timestamp(day)]
        found = []
        for det in (SpikeDropDetector(), LevelShiftDetector(), EmergingDetector()):
            found.append(det.fit(history).detect(today))
        res = pd.concat([f for f in found if len(f)], ignore_index=True) if any(len(f) for f in found) else \
            pd.DataFrame(columns=found[0].columns)
        res = res.join(keys, on="series_id")
        store(engine, res, day, sorted(set(keys["region_code"])), run_id)
        metrics = {"anomalies": int(len(res)), "by_severity": res["severity"].value_counts().to_dict()}
        finish_run(engine, run_id, "success", metrics)
        return {"scope": city, **metrics}
    except Exception as exc:
        finish_run(engine, run_id, "failed", None, f"{type(exc).__name__}: {exc}")
        raise


def store(engine: Engine, res: pd.DataFrame, day: dt.date, codes: list[str], run_id: str) -> None:
    """Replace the day's anomalies of these regions (a city and its districts) with ``res``."""
    with engine.begin() as conn:
        conn.execute(delete(anomalies).where(and_(anomalies.c.ds == day, anomalies.c.region_code.in_(codes))))
        if len(res):
            rows = res.assign(ds=day, run_id=run_id)[[c.name for c in anomalies.columns]]
            rows = rows.astype(object).where(rows.notna(), None)
            conn.execute(insert(anomalies), rows.to_dict("records"))
