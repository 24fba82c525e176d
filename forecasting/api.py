"""The public entry point: ``forecast(history, horizon, levels=(80, 95), model="auto")``.

``history`` is the long series frame (``series_id, ds, y`` plus key columns); the result is the
forecast frame ``series_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95, model``.
Intervals are negative binomial (Poisson where a series shows no overdispersion) quantiles around
the model's mean: whole numbers, never negative, and honest for series that are mostly zeros.

``model="auto"`` chooses per series by a rolling-origin backtest on its own history (mean
absolute scaled error); the fast vectorised model is the fallback for short, sparse or failing
series, and a model that raises never stops the run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.calendar_features import day_kinds
from forecasting.counts import CountDist
from forecasting.models import MODELS, Fitted

log = logging.getLogger(__name__)
FORECAST_COLUMNS = ["series_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "model"]


class ForecastInputError(ValueError):
    """History that cannot be forecast (empty, or without the required columns)."""


@dataclass
class Matrix:
    ids: np.ndarray
    Y: np.ndarray          # series x days, NaN before a series starts
    cal: pd.DataFrame      # calendar of history + horizon
    kinds: np.ndarray
    start: pd.Timestamp
    groups: np.ndarray | None = None  # series of one group share a yearly shape (a category)


def to_matrix(history: pd.DataFrame, horizon: int, country: str = "CN") -> Matrix:
    missing = {"series_id", "ds", "y"} - set(history.columns)
    if missing:
        raise ForecastInputError(f"history lacks column(s) {sorted(missing)}; expected series_id, ds, y")
    h = history.dropna(subset=["ds"])
    if h.empty:
        raise ForecastInputError("history is empty: nothing to forecast")
    if (h["y"] < 0).any():
        raise ForecastInputError("history has negative counts")
    h = h.assign(ds=pd.to_datetime(h["ds"]).dt.normalize())
    start, end = h["ds"].min(), h["ds"].max()
    days = pd.date_range(start, end, freq="D")
    wide = h.pivot_table(index="series_id", columns="ds", values="y", aggfunc="sum").reindex(columns=days)
    # a day missing inside a series' span counts as zero; before its first day it is unknown
    first = h.groupby("series_id")["ds"].min().reindex(wide.index)
    before = np.asarray(days)[None, :] < first.to_numpy()[:, None]
    Y = wide.to_numpy(dtype=float)
    Y = np.where(np.isnan(Y) & ~before, 0.0, Y)
    cal = day_kinds(start.date(), (end + pd.Timedelta(days=horizon)).date(), country)
    ids = wide.index.to_numpy()
    # "<region>|<category>" ids (the warehouse's) group by category; others form one group
    groups = np.array([str(i).split("|", 1)[1] if "|" in str(i) else "" for i in ids])
    return Matrix(ids, Y, cal, cal["kind"].to_numpy(), start, groups)


def intervals(fit: Fitted, levels=(80, 95)) -> dict[str, np.ndarray]:
    """Integer bounds from NB(mu, r) (Poisson where r is infinite), never negative.

    A count's quantiles are whole numbers, so an interval built from plain quantiles covers more
    than its level (a Poisson(2) 10%-90% interval [0, 4] covers 95%). Each bound is the integer
    whose tail probability is nearest the nominal one, so coverage is close to the level on average.
    """
    dist = CountDist(fit.mu, fit.r)
    cdf, ppf = dist.cdf, dist.ppf

    out = {"yhat": fit.mu}
    for lv in levels:
        q = (1 - lv / 100) / 2
        lo = ppf(q)  # P(Y <= lo) >= q > P(Y < lo)
        below, at = cdf(lo - 1), cdf(lo)
        lo = np.where(at - q < q - below, lo + 1, lo)  # exclude lo itself when that is nearer
        hi = ppf(1 - q)
        under, at_hi = cdf(hi - 1), cdf(hi)
        hi = np.where((1 - q) - under < at_hi - (1 - q), hi - 1, hi)
        lo = np.maximum(np.nan_to_num(lo), 0.0)
        out[f"yhat_lo_{lv}"] = lo
        out[f"yhat_hi_{lv}"] = np.maximum(np.nan_to_num(hi), lo)
    return out


def _run(alias: str, Y: np.ndarray, m: Matrix, horizon: int, rows: np.ndarray | None = None) -> Fitted:
    model = MODELS[alias]()
    T = Y.shape[1]
    if alias == "fast":
        groups = None if m.groups is None else (m.groups if rows is None else m.groups[rows])
        return model.fit_predict(Y, m.kinds[:T + horizon], m.cal.iloc[:T + horizon], horizon, groups=groups)
    return model.fit_predict(Y, m.kinds[:T + horizon], m.cal.iloc[:T + horizon], horizon)


def mase_scale(Y: np.ndarray) -> np.ndarray:
    """In-sample MAE of the weekly seasonal naive: the MASE denominator (floored for sparse series)."""
    d = np.abs(Y[:, 7:] - Y[:, :-7])
    with np.errstate(all="ignore"):
        return np.maximum(np.nanmean(d, axis=1), 0.1)


def backtest_errors(alias: str, m: Matrix, horizon: int, folds: int) -> np.ndarray:
    """Per-series MASE of a model over rolling origins (folds x horizon days at the end)."""
    S, T = m.Y.shape
    errs = np.zeros(S)
    counted = np.zeros(S)
    for f in range(folds, 0, -1):
        cut = T - f * horizon
        if cut < 28:
            continue
        train, test = m.Y[:, :cut], m.Y[:, cut:cut + horizon]
        fit = _run(alias, train, m, horizon)
        scale = mase_scale(train)
        with np.errstate(all="ignore"):
            e = np.nanmean(np.abs(fit.mu - test), axis=1) / scale
        ok = np.isfinite(e)
        errs[ok] += e[ok]
        counted[ok] += 1
    return np.where(counted > 0, errs / np.maximum(counted, 1), np.inf)


def forecast(history: pd.DataFrame, horizon: int, levels=(80, 95), model: str = "auto", *,
             folds: int = 3, heavy_min_mean: float = 30.0, heavy_max_series: int = 50,
             candidates: tuple[str, ...] = ("fast", "seasonal_naive", "ets"), margin: float = 0.05,
             min_mean_for_choice: float = 2.0) -> pd.DataFrame:
    """Forecast every series of ``history`` ``horizon`` days past its last day.

    ``model``: ``auto``, ``fast``, ``seasonal_naive``, ``ets`` or ``prophet``. In ``auto`` the fast
    model and the seasonal naive are backtested on every series; the per-series models in
    ``candidates`` (ETS, Prophet) only on the busiest series (mean >= ``heavy_min_mean`` a day, at
    most ``heavy_max_series`` of them), where their cost buys accuracy.
    """
    if horizon < 1:
        raise ForecastInputError("horizon must be at least one day")
    m = to_matrix(history, horizon)
    S, T = m.Y.shape
    chosen = np.array(["fast"] * S, dtype=object)
    if model == "auto":
        scores = {"fast": backtest_errors("fast", m, horizon, folds)}
        if "seasonal_naive" in candidates:
            scores["seasonal_naive"] = backtest_errors("seasonal_naive", m, horizon, folds)
        with np.errstate(all="ignore"):
            mean = np.nanmean(m.Y[:, -56:], axis=1)
        heavy = np.flatnonzero(np.nan_to_num(mean) >= heavy_min_mean)
        heavy = heavy[np.argsort(-mean[heavy])][:heavy_max_series]
        for alias in (c for c in candidates if c not in ("fast", "seasonal_naive")):
            sc = np.full(S, np.inf)
            if len(heavy):
                sub = Matrix(m.ids[heavy], m.Y[heavy], m.cal, m.kinds, m.start,
                             None if m.groups is None else m.groups[heavy])
                try:
                    sc[heavy] = backtest_errors(alias, sub, horizon, folds)
                except Exception as exc:  # noqa: BLE001 - a failing model never stops the run
                    log.warning("model %s failed in backtest: %s", alias, exc)
            scores[alias] = sc
        names = list(scores)
        table = np.vstack([scores[n] for n in names])
        # another model must beat the fast one clearly (backtest noise is large on few folds)
        table[1:] = table[1:] * (1 + margin)
        best = np.argmin(np.where(np.isfinite(table), table, np.inf), axis=0)
        chosen = np.array([names[i] if np.isfinite(table[i, s]) else "fast" for s, i in enumerate(best)], dtype=object)
        # short or sparse series keep the fast model: a naive copy of last week's zeros would
        # claim a zero-width interval
        observed_days = np.sum(np.isfinite(m.Y), axis=1)
        chosen[(observed_days < 56) | (np.nan_to_num(mean) < min_mean_for_choice)] = "fast"
    elif model in MODELS:
        chosen[:] = model
    else:
        raise ForecastInputError(f"unknown model {model!r}; choose auto or one of {sorted(MODELS)}")

    parts = {k: np.zeros((S, horizon)) for k in ["yhat"] + [f"yhat_{b}_{lv}" for lv in levels for b in ("lo", "hi")]}
    used = chosen.copy()
    for alias in dict.fromkeys(chosen):
        rows = np.flatnonzero(chosen == alias)
        try:
            fit = _run(alias, m.Y[rows], m, horizon, rows)
        except Exception as exc:  # noqa: BLE001 - fall back to the fast model, never stop the run
            log.warning("model %s failed on %d series (%s); using the fast model", alias, len(rows), exc)
            fit = _run("fast", m.Y[rows], m, horizon, rows)
            used[rows] = "fast"
        for k, v in intervals(fit, levels).items():
            parts[k][rows] = v
    end = m.start + pd.Timedelta(days=T - 1)
    ds = pd.date_range(end + pd.Timedelta(days=1), periods=horizon, freq="D")
    out = pd.DataFrame({
        "series_id": np.repeat(m.ids, horizon),
        "ds": np.tile(ds, S),
        **{k: v.reshape(-1) for k, v in parts.items()},
        "model": np.repeat(used, horizon),
    })
    return out[["series_id", "ds", "yhat", *[c for c in out.columns if c.startswith("yhat_")], "model"]]
