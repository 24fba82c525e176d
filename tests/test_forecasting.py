"""forecasting.forecast: the contract, count-aware intervals, bad input, and the daily job."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from forecasting import FORECAST_COLUMNS, ForecastInputError, forecast
from forecasting.evaluate import evaluate
from forecasting.models import ETSModel


def _series(values, start="2024-01-01", sid="s"):
    return pd.DataFrame({"series_id": sid, "ds": pd.date_range(start, periods=len(values)), "y": values})


def _weekly(n, level=20.0, seed=0, start="2024-01-01", sid="s"):
    rng = np.random.default_rng(seed)
    wk = np.array([1.2, 1.1, 1.05, 1.0, 1.0, 0.7, 0.6])
    mu = level * wk[pd.date_range(start, periods=n).weekday]
    return _series(rng.poisson(mu).astype(float), start, sid)


def test_output_follows_the_forecast_frame_contract():
    hist = pd.concat([_weekly(200, 20, 1, sid="a"), _weekly(200, 3, 2, sid="b")])
    fc = forecast(hist, 14, model="fast")
    assert list(fc.columns) == FORECAST_COLUMNS
    assert fc.groupby("series_id").size().to_dict() == {"a": 14, "b": 14}
    assert fc["ds"].min() == pd.Timestamp("2024-07-19")
    for lv in (80, 95):
        lo, hi = fc[f"yhat_lo_{lv}"], fc[f"yhat_hi_{lv}"]
        assert (lo >= 0).all() and (lo <= hi).all() and (lo == lo.round()).all() and (hi == hi.round()).all()
    assert (fc["yhat_lo_95"] <= fc["yhat_lo_80"]).all() and (fc["yhat_hi_80"] <= fc["yhat_hi_95"]).all()


def test_weekly_rhythm_is_forecast():
    fc = forecast(_weekly(300, 50, 3), 14, model="fast").set_index("ds")
    mondays = fc[fc.index.weekday == 0]["yhat"].mean()
    sundays = fc[fc.index.weekday == 6]["yhat"].mean()
    assert mondays > 1.6 * sundays


def test_empty_history_is_a_clear_error():
    with pytest.raises(ForecastInputError, match="empty"):
        forecast(pd.DataFrame(columns=["series_id", "ds", "y"]), 7)
    with pytest.raises(ForecastInputError, match="column"):
        forecast(pd.DataFrame({"ds": [], "y": []}), 7)


def test_all_zero_series_forecasts_zero_with_a_tight_honest_band():
    fc = forecast(_series(np.zeros(120)), 10, model="auto")
    assert (fc["yhat"] < 0.05).all() and (fc["yhat_hi_95"] <= 1).all() and (fc["yhat_lo_80"] == 0).all()


def test_a_mostly_zero_series_keeps_a_nonzero_upper_bound():
    y = np.zeros(200)
    y[::5] = 1  # one ticket every five days
    fc = forecast(_series(y), 14, model="auto")
    assert (fc["model"] == "fast").all()
    assert (fc["yhat_hi_95"] >= 1).all() and fc["yhat"].between(0.05, 0.6).all()


def test_a_series_shorter_than_two_weeks_still_forecasts():
    fc = forecast(_series([3.0, 5, 4, 6, 2, 1, 1, 4, 5]), 7, model="auto")
    assert len(fc) == 7 and np.isfinite(fc["yhat"]).all() and fc["yhat"].between(0.5, 10).all()


def test_missing_days_inside_a_series_count_as_zero_and_do_not_break_it():
    h = _weekly(150, 10, 4)
    h = h.drop(h.index[60:75])  # a two-week gap in the rows
    fc = forecast(h, 14, model="fast")
    assert np.isfinite(fc["yhat"]).all() and fc["yhat"].mean() > 3


def test_a_single_huge_outlier_does_not_blow_up_the_forecast():
    h = _weekly(150, 10, 5)
    h.loc[h.index[-3], "y"] = 5000
    fc = forecast(h, 14, model="fast")
    assert fc["yhat"].max() < 40


@pytest.mark.parametrize("start", ["2026-06-01", "2027-06-01"])
def test_horizons_past_the_calendar_package_still_forecast(start):
    fc = forecast(_weekly(400, 15, 6, start=start), 60, model="fast")
    assert len(fc) == 60 and np.isfinite(fc[["yhat", "yhat_hi_95"]].to_numpy()).all()


def test_a_failing_model_falls_back_to_the_fast_one(monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(ETSModel, "fit_predict", boom)
    fc = forecast(_weekly(200, 30, 7), 7, model="ets")
    assert (fc["model"] == "fast").all() and np.isfinite(fc["yhat"]).all()


def test_the_fallback_is_passed_in_for_failing_models_and_short_series(monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(ETSModel, "fit_predict", boom)
    fc = forecast(_weekly(200, 30, 7), 7, model="ets", fallback="seasonal_naive")
    assert (fc["model"] == "seasonal_naive").all() and np.isfinite(fc["yhat"]).all()
    short = forecast(_weekly(30, 20, 8), 7, model="auto", fallback="seasonal_naive")
    assert (short["model"] == "seasonal_naive").all()
    with pytest.raises(ForecastInputError, match="fallback 'ets'"):
        forecast(_weekly(30, 20, 8), 7, fallback="ets")


def test_every_model_runs_through_the_one_public_runner():
    from forecasting.api import run_model, to_matrix
    from forecasting.models import MODELS

    m = to_matrix(_weekly(120, 20, 9), 7)
    for alias in sorted(set(MODELS) - {"prophet"}):
        fit = run_model(alias, m.Y, m, 7)
        assert fit.mu.shape == (1, 7) and np.isfinite(fit.mu).all(), alias


def test_the_fast_model_beats_seasonal_naive_on_generated_series():
    from generator.province import ProvinceGenerator

    gen = ProvinceGenerator(scale=0.01, seed=8, anomalies=False)
    s, days, lam = gen.expected(dt.date(2024, 1, 1), dt.date(2024, 8, 31))
    y = np.random.default_rng(1).poisson(lam)
    grp = pd.DataFrame(y, index=pd.MultiIndex.from_frame(s[["city_code", "category_l1"]])).groupby(level=[0, 1]).sum()
    hist = grp.stack().reset_index()
    hist.columns = ["city", "cat", "i", "y"]
    hist = hist.assign(series_id=hist["city"] + "|" + hist["cat"], ds=days[hist["i"]])[["series_id", "ds", "y"]]
    rep = evaluate(hist, horizon=14, folds=3, models=("fast", "seasonal_naive")).set_index("model")
    assert rep.loc["fast", "mase"] < 0.9 * rep.loc["seasonal_naive", "mase"]
    assert 0.7 < rep.loc["fast", "coverage_80"] < 0.95 and rep.loc["fast", "coverage_95"] > 0.9


def test_the_daily_job_stores_forecasts_and_a_rerun_replaces_them(engine, small_generator, mapper_factory):
    from forecasting.job import ForecastSettings, forecast_scope
    from ingestion.pipeline import ingest
    from ingestion.sources import GeneratorSource
    from warehouse.schema import forecasts

    origin = dt.date(2024, 6, 30)
    ingest(engine, GeneratorSource(small_generator, origin - dt.timedelta(days=90), origin), mapper_factory())
    fs = ForecastSettings(horizon=10, history_days=91)
    first = forecast_scope(engine, origin, "440100", fs)
    with engine.connect() as conn:
        n1 = conn.execute(select(func.count()).select_from(forecasts)).scalar_one()
    again = forecast_scope(engine, origin, "440100", fs)
    with engine.connect() as conn:
        n2, lo = conn.execute(select(func.count(), func.min(forecasts.c.ds))).one()
    assert first.series == again.series > 20 and n1 == n2 == first.series * 10
    assert sum(first.models.values()) == first.series
    assert lo == origin + dt.timedelta(days=1)


def test_a_city_forecast_is_made_coherent(engine, small_generator, mapper_factory):
    from forecasting.job import ForecastSettings, forecast_scope
    from forecasting.reconcile import coherence_gap
    from ingestion.pipeline import ingest
    from ingestion.sources import GeneratorSource
    from warehouse.schema import forecasts

    origin = dt.date(2024, 6, 30)
    ingest(engine, GeneratorSource(small_generator, origin - dt.timedelta(days=90), origin), mapper_factory())
    forecast_scope(engine, origin, "440300", ForecastSettings(horizon=7, history_days=91))
    with engine.connect() as conn:
        fc = pd.DataFrame(conn.execute(select(forecasts)).mappings().all())
    assert coherence_gap(fc) < 1e-6
    lv = fc["region_level"] + ":" + fc["category_level"]
    d_l1 = fc[lv == "district:l1"].groupby(["region_code", "ds"])["yhat"].sum()
    d_all = fc[lv == "district:all"].set_index(["region_code", "ds"])["yhat"]
    assert np.allclose(d_l1.reindex(d_all.index).to_numpy(), d_all.to_numpy(), rtol=1e-3)
    l2 = fc[lv == "city:l2"].assign(l1=lambda f: f["category_code"].str.split(".").str[0])
    l2_sum = l2.groupby(["l1", "ds"])["yhat"].sum()
    l1 = fc[lv == "city:l1"].set_index(["category_code", "ds"])["yhat"]
    assert np.allclose(l2_sum.reindex(l1.index).fillna(0).to_numpy(), l1.to_numpy(), rtol=1e-6, atol=1e-9)
    assert (fc["yhat_lo_80"] >= 0).all() and (fc["yhat_lo_80"] <= fc["yhat_hi_80"] + 1e-9).all()


def test_the_province_is_the_sum_of_its_cities(engine, small_generator, mapper_factory):
    from forecasting.job import ForecastSettings, forecast_scope, province_from_cities
    from ingestion.pipeline import ingest
    from ingestion.sources import GeneratorSource
    from warehouse.schema import forecasts

    origin = dt.date(2024, 6, 30)
    ingest(engine, GeneratorSource(small_generator, origin - dt.timedelta(days=60), origin), mapper_factory())
    fs = ForecastSettings(horizon=5, history_days=61)
    for city in ("440100", "440300", "445300"):
        forecast_scope(engine, origin, city, fs)
    res = province_from_cities(engine, origin, "440000")
    with engine.connect() as conn:
        fc = pd.DataFrame(conn.execute(select(forecasts)).mappings().all())
    prov = fc[(fc.region_level == "province") & (fc.category_level == "all")].set_index("ds")["yhat"]
    cities = fc[(fc.region_level == "city") & (fc.category_level == "all")].groupby("ds")["yhat"].sum()
    assert res.series > 1 and res.models == {"sum_of_cities": res.series} and len(prov) == 5
    assert np.allclose(prov.sort_index().to_numpy(), cities.sort_index().to_numpy())


@pytest.mark.parametrize("with_ids", [False, True])
def test_forecast_backtest_command_reads_a_csv(tmp_path, with_ids):
    import json

    from click.testing import CliRunner

    from hotline.cli import main

    h = pd.concat([_weekly(150, 25, 9, sid="a"), _weekly(150, 6, 10, sid="b")])
    path = tmp_path / "series.csv"
    (h if with_ids else h[h["series_id"] == "a"].drop(columns="series_id")).to_csv(path, index=False)
    r = CliRunner().invoke(main, ["forecast-backtest", "--csv", str(path), "--horizon", "14", "--folds", "3",
                                  "--models", "fast,seasonal_naive,auto", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    rows = {m["model"]: m for m in out["models"]}
    assert set(rows) == {"fast", "seasonal_naive", "auto"} and out["series"] == (2 if with_ids else 1)
    for m in rows.values():
        assert {"mase", "smape", "coverage_80", "coverage_95", "seconds"} <= set(m) and m["mase"] > 0
    assert rows["fast"]["mase"] < rows["seasonal_naive"]["mase"]
