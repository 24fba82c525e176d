"""The daily forecast as the DAG runs it: per city (and once for the province), read the series
from daily_counts, forecast them, and store the result keyed by the origin day (reruns replace)."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, delete, func, insert, select

from forecasting.api import forecast
from forecasting.reconcile import reconcile_city
from hotline.core.config import ForecastingFile
from hotline.core.series import series_ids
from warehouse.aggregate import read_series
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import forecasts

# Which (region level, category level) pairs a city's task covers (made coherent by
# forecasting.reconcile); the province is the sum of its cities (province_from_cities).
# District x level-2 series (thousands) are left to a later, batched job.
CITY_LEVELS = (("city", "all"), ("city", "l1"), ("city", "l2"), ("district", "all"), ("district", "l1"))
PROVINCE_LEVELS = (("province", "all"), ("province", "l1"))


# The daily forecast's settings: config/hotline.yaml `forecasting:`, validated (hotline.core.config).
ForecastSettings = ForecastingFile


@dataclass(frozen=True)
class ForecastResult:
    """What a forecast run of one scope stored: its series and how many each model took."""

    scope: str
    series: int = 0
    models: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def forecast_scope(engine: Engine, origin: dt.date, scope: str, fs: ForecastSettings,
                   calendar: str = "CN") -> ForecastResult:
    """Forecast one scope (``province`` or a city code) from ``origin`` (the last day of history),
    on the region's holiday ``calendar`` (CN with 调休, US, none)."""
    run_id = new_run_id("forecast")
    with stage_run(engine, "forecast", origin, {"scope": scope, "horizon": fs.horizon, "model": fs.model},
                   run_id) as run:
        first = origin - dt.timedelta(days=fs.history_days - 1)
        levels = PROVINCE_LEVELS if scope == "province" else CITY_LEVELS
        frames = [read_series(engine, r, c, start=first, end=origin, city_code=None if scope == "province" else scope)
                  for r, c in levels]
        history = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
        if history is None:
            run.metrics = {"series": 0}
            return ForecastResult(scope)
        history = history[history["ds"] <= pd.Timestamp(origin)]
        fc = forecast(history[["series_id", "ds", "y"]], fs.horizon, model=fs.model, candidates=fs.candidates,
                      calendar=calendar)
        keys = history.drop_duplicates("series_id").set_index("series_id")[
            ["region_level", "region_code", "category_level", "category_code"]]
        fc = fc.join(keys, on="series_id")
        if scope != "province":
            fc = reconcile_city(fc)
        store(engine, fc, origin, run_id)
        models = fc.drop_duplicates("series_id")["model"].value_counts().to_dict()
        metrics = {"series": int(fc["series_id"].nunique()), "models": models}
        run.metrics = metrics
        return ForecastResult(scope, **metrics)


def province_from_cities(engine: Engine, origin: dt.date, province_code: str) -> ForecastResult:
    """Bottom-up for the province: its total and its categories are the sums of its cities'
    (coherent) forecasts for the same origin; interval bounds add up (a conservative band)."""
    run_id = new_run_id("forecast")
    with stage_run(engine, "forecast", origin, {"scope": "province", "method": "bottom-up"}, run_id) as run:
        f = forecasts.c
        cols = [f.yhat, f.yhat_lo_80, f.yhat_hi_80, f.yhat_lo_95, f.yhat_hi_95]
        with engine.connect() as conn:
            sums = [func.sum(c).label(c.name) for c in cols]
            rows = conn.execute(select(f.ds, f.category_level, f.category_code, *sums)
                                .where(f.origin == origin, f.region_level == "city",
                                       f.category_level.in_(["all", "l1"]), f.region_code.like(province_code[:2] + "%"))
                                .group_by(f.ds, f.category_level, f.category_code)).mappings().all()
        fc = pd.DataFrame(rows)
        if fc.empty:
            run.metrics = {"series": 0}
            return ForecastResult("province")
        fc = fc.assign(region_level="province", region_code=province_code, model="sum_of_cities")
        fc["series_id"] = series_ids(fc)
        store(engine, fc, origin, run_id)
        n = int(fc["series_id"].nunique())
        metrics = {"series": n, "models": {"sum_of_cities": n}}
        run.metrics = metrics
        return ForecastResult("province", **metrics)


def store(engine: Engine, fc: pd.DataFrame, origin: dt.date, run_id: str) -> int:
    ids = fc["series_id"].unique().tolist()
    rows = fc.assign(origin=origin, run_id=run_id, ds=pd.to_datetime(fc["ds"]).dt.date)
    cols = [c.name for c in forecasts.columns]
    records = rows[cols].to_dict("records")
    with engine.begin() as conn:
        for i in range(0, len(ids), 500):
            conn.execute(delete(forecasts).where(and_(forecasts.c.origin == origin,
                                                      forecasts.c.series_id.in_(ids[i:i + 500]))))
        for i in range(0, len(records), 20_000):
            conn.execute(insert(forecasts), records[i:i + 20_000])
    return len(records)
