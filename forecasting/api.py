"""The public entry point: ``forecast(history, horizon, levels=(80, 95), model="auto")``.

``history`` is the long series frame (``series_id, ds, y`` plus key columns); the result is the
forecast frame ``series_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95, model``.
Intervals are negative binomial (Poisson where a series shows no overdispersion) quantiles around
the model's mean: whole numbers, never negative, and honest for series that are mostly zeros.
Their spread is **calibrated on the models' own out-of-sample errors**: the backtest folds
(rolling origins over the end of the history) give each series' mean squared Pearson residual of
what came against what was forecast (its excess dispersion, shrunk to its volume band's) and how
the misses grow with the horizon; the interval's negative binomial takes that variance.

``calendar``: the region's holidays (CN with 调休, a country code such as US, or none).

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
from forecasting.counts import BANDS, CountDist, band_of
from forecasting.models import FAST_VARIANTS, MODELS, VECTORISED, Fitted
from hotline.core.series import category_part

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
    groups = np.array([category_part(i) for i in ids])
    return Matrix(ids, Y, cal, cal["kind"].to_numpy(), start, groups)


def run_model(alias: str, Y: np.ndarray, m: Matrix, horizon: int, rows: np.ndarray | None = None) -> Fitted:
    """Fit the model ``alias`` (one of MODELS) on ``Y`` (the rows ``rows`` of ``m``, all by default;
    ``Y`` may end before ``m`` does, as in a backtest fold) and forecast ``horizon`` days. Every
    model has the one signature ``fit_predict(Y, kinds, cal, horizon, groups=None)``; ``groups``
    (the series' category, for pooling) is used by the models that pool."""
    T = Y.shape[1]
    groups = None if m.groups is None else (m.groups if rows is None else m.groups[rows])
    return MODELS[alias]().fit_predict(Y, m.kinds[:T + horizon], m.cal.iloc[:T + horizon], horizon, groups=groups)


def mase_scale(Y: np.ndarray) -> np.ndarray:
    """In-sample MAE of the weekly seasonal naive: the MASE denominator (floored for sparse series)."""
    d = np.abs(Y[:, 7:] - Y[:, :-7])
    with np.errstate(all="ignore"):
        return np.maximum(np.nanmean(d, axis=1), 0.1)


@dataclass
class Folds:
    """A model's fits at the backtest's rolling origins: ``(cut, fit)``, the fit from the days
    before ``cut`` for the ``horizon`` days from it."""

    alias: str
    fits: list[tuple[int, Fitted]]


def fold_fits(alias: str, m: Matrix, horizon: int, folds: int) -> Folds:
    S, T = m.Y.shape
    out = []
    for f in range(folds, 0, -1):
        cut = T - f * horizon
        if cut >= 28:
            out.append((cut, run_model(alias, m.Y[:, :cut], m, horizon)))
    return Folds(alias, out)


def variant_folds(folds: Folds, alias: str) -> Folds | None:
    """The folds of a model computed in the same pass as ``folds``' (fast_local in fast's)."""
    if not folds.fits or not folds.fits[0][1].variants or alias not in folds.fits[0][1].variants:
        return None
    return Folds(alias, [(cut, Fitted(fit.variants[alias], fit.r)) for cut, fit in folds.fits])


def backtest_errors(alias: str, m: Matrix, horizon: int, folds: int | Folds) -> np.ndarray:
    """Per-series MASE of a model over rolling origins (folds x horizon days at the end)."""
    fitted = folds if isinstance(folds, Folds) else fold_fits(alias, m, horizon, folds)
    S, T = m.Y.shape
    errs = np.zeros(S)
    counted = np.zeros(S)
    for cut, fit in fitted.fits:
        train, test = m.Y[:, :cut], m.Y[:, cut:cut + horizon]
        scale = mase_scale(train)
        with np.errstate(all="ignore"):
            e = np.nanmean(np.abs(fit.mu[:, :test.shape[1]] - test), axis=1) / scale
        ok = np.isfinite(e)
        errs[ok] += e[ok]
        counted[ok] += 1
    return np.where(counted > 0, errs / np.maximum(counted, 1), np.inf)


HORIZON_BUCKETS = np.array([1, 7, 14, 30])  # a bucket's last horizon (1, 2-7, 8-14, 15-30, 31+)
PEARSON_CAP = 25.0   # one day's squared Pearson residual counts at most this much (|z| <= 5)
SCALE_PSEUDO = 14.0  # days of belief in the band's dispersion before a series' own


def horizon_bucket(h: np.ndarray) -> np.ndarray:
    """Bucket of each horizon (1-based): 0 for h=1, 1 for 2-7, 2 for 8-14, 3 for 15-30, 4 beyond."""
    return np.searchsorted(HORIZON_BUCKETS, np.asarray(h), side="left")


@dataclass
class IntervalCalibration:
    """How much wider (or narrower) than the model says each series' forecasts have really missed:
    ``phi`` (series,), the mean squared Pearson residual of its out-of-sample forecasts at the
    backtest's rolling origins (each term capped at PEARSON_CAP), shrunk to its volume band's with
    the weight of SCALE_PSEUDO days; and ``by_bucket`` (buckets,), how the misses grow with the
    horizon, pooled over every series. The interval's distribution keeps the model's mean and
    takes ``phi * by_bucket`` times its variance (never narrower than Poisson)."""

    ids: np.ndarray
    phi: np.ndarray
    by_bucket: np.ndarray

    @classmethod
    def from_folds(cls, m: Matrix, folds: list[Folds], rows_of: list[np.ndarray]) -> "IntervalCalibration":
        S = len(m.ids)
        total, count = np.zeros(S), np.zeros(S)
        volume = np.zeros(S)
        nb = len(HORIZON_BUCKETS) + 1
        b_total, b_count = np.zeros(nb), np.zeros(nb)
        for fold, rows in zip(folds, rows_of):
            for cut, fit in fold.fits:
                h = min(fit.mu.shape[1], m.Y.shape[1] - cut)
                y = m.Y[rows, cut:cut + h]
                mu, r = fit.mu[:, :h], np.broadcast_to(fit.r, fit.mu.shape)[:, :h]
                var = CountDist(np.maximum(mu, 1e-9), r).var
                ok = np.isfinite(y)
                pearson = np.where(ok, np.minimum((np.nan_to_num(y) - mu) ** 2 / np.maximum(var, 1e-9),
                                                  PEARSON_CAP), 0.0)
                np.add.at(total, rows, pearson.sum(axis=1))
                np.add.at(count, rows, ok.sum(axis=1))
                np.add.at(volume, rows, np.where(ok, mu, 0.0).sum(axis=1))
                bucket = horizon_bucket(np.arange(1, h + 1))
                np.add.at(b_total, bucket, pearson.sum(axis=0))
                np.add.at(b_count, bucket, ok.sum(axis=0))
        with np.errstate(all="ignore"):
            band = band_of(volume / np.maximum(count, 1))
        pooled = np.ones(len(BANDS) + 1)
        for b in np.unique(band[count > 0]):
            sel = (band == b) & (count > 0)
            pooled[b] = total[sel].sum() / count[sel].sum()
        phi = (total + SCALE_PSEUDO * pooled[band]) / (count + SCALE_PSEUDO)
        overall = b_total.sum() / max(b_count.sum(), 1)
        with np.errstate(all="ignore"):
            by_bucket = np.where(b_count >= 200, (b_total / np.maximum(b_count, 1)) / max(overall, 1e-9), 1.0)
        return cls(m.ids, phi, by_bucket)

    def adjust(self, fit: Fitted, rows: np.ndarray) -> Fitted:
        """``fit`` (of the series ``rows``) with its variance scaled by the measured misses."""
        H = fit.mu.shape[1]
        factor = self.phi[rows][:, None] * self.by_bucket[horizon_bucket(np.arange(1, H + 1))][None, :]
        mu = fit.mu
        var = CountDist(np.maximum(mu, 1e-9), np.broadcast_to(fit.r, mu.shape)).var * factor
        r = np.where(var > mu * (1 + 1e-6), mu ** 2 / np.maximum(var - mu, 1e-12), np.inf)
        return Fitted(mu, r)


def intervals(fit: Fitted, levels=(80, 95)) -> dict[str, np.ndarray]:
    """Integer bounds from NB(mu, r) (Poisson where r is infinite), never negative.

    A count's quantiles are whole numbers, so an interval built from plain quantiles covers more
    than its level (a Poisson(2) 10%-90% interval [0, 4] covers 95%). The lower bound is the integer
    whose tail probability is nearest the nominal one; the upper bound then takes the rest of the
    level, so that an interval floored at 0 (with no lower tail to leave out) holds its level and
    not its level plus the missing tail.
    """
    dist = CountDist(fit.mu, fit.r)
    cdf, ppf = dist.cdf, dist.ppf
    out = {"yhat": fit.mu}
    for lv in levels:
        q_lo = (1 - lv / 100) / 2
        lo = ppf(q_lo)  # P(Y <= lo) >= q > P(Y < lo)
        below, at = cdf(lo - 1), cdf(lo)
        lo = np.maximum(np.nan_to_num(np.where(at - q_lo < q_lo - below, lo + 1, lo)), 0.0)
        q_hi = np.clip(cdf(lo - 1) + lv / 100, 0.0, 1.0)  # what is left below the interval, plus the level
        hi = ppf(q_hi)
        under, at_hi = cdf(hi - 1), cdf(hi)
        hi = np.where(q_hi - under < at_hi - q_hi, hi - 1, hi)
        out[f"yhat_lo_{lv}"] = lo
        out[f"yhat_hi_{lv}"] = np.maximum(np.nan_to_num(hi), lo)
    return out


SHORT_NAMES = {"fast": "fast", "fast_local": "local", "fast_trend": "trend", "seasonal_naive": "naive",
               "ets": "ets", "prophet": "prophet"}


def _label(members: tuple[str, ...]) -> str:
    """``fast`` for one model, ``local+trend`` for the mean of two (the forecasts table's model)."""
    return members[0] if len(members) == 1 else "+".join(SHORT_NAMES[a] for a in members)


def _mean_fit(fits: list[Fitted], rows: np.ndarray) -> Fitted:
    """The mean of some models' forecasts of ``rows`` (the first model's dispersion)."""
    mu = np.mean([f.mu[rows] for f in fits], axis=0)
    return Fitted(mu, np.broadcast_to(fits[0].r, fits[0].mu.shape)[rows])


def forecast(history: pd.DataFrame, horizon: int, levels=(80, 95), model: str = "auto", *,
             calendar: str = "CN", folds: int = 3, heavy_min_mean: float = 30.0, heavy_max_series: int = 50,
             candidates: tuple[str, ...] = ("fast", "fast_local", "fast_trend", "seasonal_naive", "ets"),
             margin: float = 0.05, min_mean_for_choice: float = 2.0, calibrate: bool = True,
             fallback: str = "fast") -> pd.DataFrame:
    """Forecast every series of ``history`` ``horizon`` days past its last day.

    ``model``: ``auto`` or one of MODELS (``fast``, ``fast_local``, ``fast_trend``,
    ``seasonal_naive``, ``ets``, ``prophet``). In ``auto`` the vectorised candidates are backtested on
    every series (``folds`` rolling origins of ``horizon`` days) and each series gets **the mean of
    its two best** (a combination is never far from the better of its members, and far less at the
    mercy of a noisy choice: one backtest of a few weeks cannot tell close models apart); the
    per-series models in ``candidates`` (ETS, Prophet) are backtested only on the busiest series
    (mean >= ``heavy_min_mean`` a day, at most ``heavy_max_series``) and used alone where they beat
    the best combination by ``margin``. Short (< 8 weeks) or sparse (mean < ``min_mean_for_choice``)
    series keep the fast model. ``calendar``: the region's holidays (CN with 调休, US, none).
    ``calibrate``: the intervals take the variance the chosen forecast's own backtest misses show
    (a model given by name is backtested for that alone). The ``model`` column names the choice
    (``local+trend`` for a mean of two). ``fallback``: the vectorised model that short or sparse
    series keep and that stands in for a model that fails.
    """
    if horizon < 1:
        raise ForecastInputError("horizon must be at least one day")
    if fallback not in VECTORISED:
        raise ForecastInputError(f"fallback {fallback!r}: choose a vectorised model ({', '.join(VECTORISED)})")
    m = to_matrix(history, horizon, calendar)
    S, T = m.Y.shape
    members = [(fallback,)] * S
    fitted: dict[str, tuple[Folds, np.ndarray]] = {}  # alias -> (folds, the rows of m they cover)
    if model == "auto":
        for alias in ("fast", "seasonal_naive"):
            if alias == "fast" or alias in candidates:
                fitted[alias] = (fold_fits(alias, m, horizon, folds), np.arange(S))
        for alias in FAST_VARIANTS:  # the fast model without last year's ratio, or with a trend: same fits
            variant = variant_folds(fitted["fast"][0], alias) if alias in candidates else None
            if variant is not None:
                fitted[alias] = (variant, np.arange(S))
        vec = list(fitted)
        scores = {a: backtest_errors(a, m, horizon, f) for a, (f, _) in fitted.items()}
        with np.errstate(all="ignore"):
            mean = np.nanmean(m.Y[:, -56:], axis=1)
        heavy = np.flatnonzero(np.nan_to_num(mean) >= heavy_min_mean)
        heavy = heavy[np.argsort(-mean[heavy])][:heavy_max_series]
        for alias in (c for c in candidates if c not in VECTORISED):
            sc = np.full(S, np.inf)
            if len(heavy):
                sub = Matrix(m.ids[heavy], m.Y[heavy], m.cal, m.kinds, m.start,
                             None if m.groups is None else m.groups[heavy])
                try:
                    f = fold_fits(alias, sub, horizon, folds)
                    sc[heavy] = backtest_errors(alias, sub, horizon, f)
                    fitted[alias] = (f, heavy)
                except Exception as exc:  # noqa: BLE001 - a failing model never stops the run
                    log.warning("model %s failed in backtest: %s", alias, exc)
            scores[alias] = sc
        table = np.vstack([scores[a] for a in vec])
        order = np.argsort(np.where(np.isfinite(table), table, np.inf), axis=0)
        # the combination's own backtest error: the mean of its two members' fold forecasts
        pair = [(vec[order[0, s]], vec[order[1, s]]) if len(vec) > 1 and np.isfinite(table[order[1, s], s])
                else (vec[order[0, s]],) for s in range(S)]
        combo_err = np.full(S, np.inf)
        for key in set(pair):
            rows = np.array([s for s in range(S) if pair[s] == key])
            combo_err[rows] = backtest_errors(
                "combo", Matrix(m.ids[rows], m.Y[rows], m.cal, m.kinds, m.start), horizon,
                Folds("combo", [(cut, _mean_fit([fitted[a][0].fits[i][1] for a in key], rows))
                                for i, (cut, _) in enumerate(fitted[key[0]][0].fits)]))
        members = list(pair)
        for alias in (c for c in candidates if c not in VECTORISED and c in scores):
            better = scores[alias] * (1 + margin) < combo_err  # a per-series model alone, where it pays
            for s in np.flatnonzero(better):
                members[s] = (alias,)
        observed_days = np.sum(np.isfinite(m.Y), axis=1)
        for s in np.flatnonzero((observed_days < 56) | (np.nan_to_num(mean) < min_mean_for_choice)):
            members[s] = (fallback,)  # a naive copy of last week's zeros would claim a zero-width interval
    elif model in MODELS:
        members = [(model,)] * S
        if calibrate:
            try:
                fitted[model] = (fold_fits(model, m, horizon, folds), np.arange(S))
            except Exception as exc:  # noqa: BLE001 - intervals as the model states them, never a stop
                log.warning("model %s failed in its calibration folds (%s): intervals uncalibrated", model, exc)
    else:
        raise ForecastInputError(f"unknown model {model!r}; choose auto or one of {sorted(MODELS)}")

    groups: dict[tuple[str, ...], np.ndarray] = {}
    for s, key in enumerate(members):
        groups.setdefault(key, []).append(s)
    groups = {k: np.array(v) for k, v in groups.items()}

    calibration = None
    if calibrate and fitted:
        parts_of = []
        for key, rows in groups.items():
            if not all(a in fitted for a in key):
                continue
            f0, cover = fitted[key[0]]
            if len(key) == 1 and len(cover) != S:  # a per-series model's folds cover its rows only
                pos = np.searchsorted(cover, rows)
                parts_of.append((Folds(key[0], [(cut, _mean_fit([fit], pos)) for cut, fit in f0.fits]), rows))
            else:
                parts_of.append((Folds(_label(key), [(cut, _mean_fit([fitted[a][0].fits[i][1] for a in key], rows))
                                                     for i, (cut, _) in enumerate(f0.fits)]), rows))
        if parts_of:
            calibration = IntervalCalibration.from_folds(m, [p for p, _ in parts_of], [r for _, r in parts_of])

    parts = {k: np.zeros((S, horizon)) for k in ["yhat"] + [f"yhat_{b}_{lv}" for lv in levels for b in ("lo", "hi")]}
    used = np.array([_label(k) for k in members], dtype=object)
    whole: dict[str, Fitted] = {}  # the vectorised models, fitted once on every series (as in the folds)

    def vectorised(alias: str) -> Fitted:
        base = "fast" if alias in FAST_VARIANTS else alias
        if base not in whole:
            whole[base] = run_model(base, m.Y, m, horizon)
        full = whole[base]
        return Fitted(full.variants[alias], full.r) if alias in FAST_VARIANTS else full

    for key, rows in groups.items():
        try:
            if all(a in VECTORISED for a in key):
                fit = _mean_fit([vectorised(a) for a in key], rows)
            else:
                fit = run_model(key[0], m.Y[rows], m, horizon, rows)
        except Exception as exc:  # noqa: BLE001 - fall back, never stop the run
            log.warning("model %s failed on %d series (%s); using %s", _label(key), len(rows), exc, fallback)
            fit = _mean_fit([vectorised(fallback)], rows)
            used[rows] = fallback
        if calibration is not None:
            fit = calibration.adjust(fit, rows)
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
