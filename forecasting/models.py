"""Forecasting models on arrays (statsforecast style): each takes a matrix of daily counts
``Y`` (series x days, NaN before a series starts) and the calendar of the history plus the
horizon, and returns the mean ``mu`` (series x horizon) and a negative binomial dispersion ``r``
per series (``inf`` = Poisson), from which count intervals are drawn.

- :class:`FastModel`: vectorised over all series at once (level x weekday/holiday profile x
  last year's seasonal ratio), with the profile and the seasonal ratio shrunk towards the pooled
  series for sparse ones. The workhorse for thousands of district x category series.
  :class:`FastLocalModel` is the same without last year's ratio, :class:`FastTrendModel` with a
  damped local trend instead of it, both from the same pass.
- :class:`SeasonalNaive`: the same weekday last week; last year's same lunar day around
  Spring Festival. The baseline every model must beat.
- :class:`ETSModel`: statsmodels' exponential smoothing with weekly seasonality, per series.
- :class:`ProphetModel`: Prophet with Chinese holidays and 调休 make-up workdays, per series.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.calendar_features import analog_positions

ORDINARY = 7  # kinds 0..6 are weekdays; 7 holiday; 8 Spring Festival holiday


@dataclass
class Fitted:
    mu: np.ndarray  # (series, horizon)
    r: np.ndarray   # (series,) negative binomial size; inf for Poisson
    variants: dict[str, np.ndarray] | None = None  # other means from the same fit, by model alias


def _dispersion(y: np.ndarray, fitted: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """Method-of-moments NB size per series from in-sample fits (Pearson dispersion), each day's
    term capped at ``cap`` times the series' median term (at least 1): a one-day batch of 50 in a
    series of 5 a day is not its spread (uncapped, it would make the next month look ordinary)."""
    ok = np.isfinite(y) & np.isfinite(fitted) & (fitted > 0)
    mu = np.where(ok, fitted, np.nan)
    pearson = np.where(ok, (y - fitted) ** 2 / np.maximum(fitted, 1e-9), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        limit = cap * np.maximum(np.nanmedian(pearson, axis=1, keepdims=True), 1.0)
        phi = np.nanmean(np.minimum(pearson, limit), axis=1)
        mbar = np.nanmean(mu, axis=1)
    r = np.where(np.isfinite(phi) & (phi > 1.05), mbar / np.maximum(phi - 1, 1e-6), np.inf)
    return r


def _holiday_key(name: str) -> str:
    """The holiday a day belongs to, from its calendar name ("Labour Day", "National Day", ...):
    the same holiday last year behaves like this year's (Golden Week is not Tomb-sweeping Day)."""
    return str(name or "").split(";")[0].split(",")[0].strip().lower()


def named_holiday_factors(Y: np.ndarray, k_hist: np.ndarray, names_hist: np.ndarray, names_fut: np.ndarray,
                          k_fut: np.ndarray, groups: np.ndarray, fallback: np.ndarray,
                          pseudo: float = 200.0) -> np.ndarray:
    """Each series' factor (series x horizon) for the future holidays (kind 7) that the history has
    met under the same name: the group's count on those days against the ordinary days within three
    weeks of them, shrunk to ``fallback`` (series x horizon, the pooled holiday factor) by the
    group's volume on those days. NaN for the other future days."""
    out = np.full(fallback.shape, np.nan)
    fut_keys = np.array([_holiday_key(n) for n in names_fut])
    hist_keys = np.array([_holiday_key(n) for n in names_hist])
    want = {k for k, kind in zip(fut_keys, k_fut) if k and kind == 7}
    if not want:
        return out
    gid = np.unique(groups, return_inverse=True)[1]
    onehot = np.zeros((gid.max() + 1, len(Y)))
    onehot[gid, np.arange(len(Y))] = 1.0
    G = onehot @ np.nan_to_num(Y)
    ords = np.flatnonzero(k_hist < ORDINARY)
    for key in want:
        idx = np.flatnonzero((hist_keys == key) & (k_hist == 7))
        if not len(idx) or not len(ords):
            continue
        near = (np.abs(ords[None, :] - idx[:, None]) <= 21).astype(float)
        near /= np.maximum(near.sum(axis=1, keepdims=True), 1.0)
        g_den = G[:, ords] @ near.T
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            own = np.clip(np.nanmedian(np.where(g_den > 0, G[:, idx] / g_den, np.nan), axis=1), 0.1, 3.0)
        w = (G[:, idx].sum(axis=1) / (G[:, idx].sum(axis=1) + pseudo))[gid]
        cols = np.flatnonzero((fut_keys == key) & (k_fut == 7))
        own_s = own[gid]
        for h in cols:
            out[:, h] = np.where(np.isfinite(own_s), w * own_s + (1 - w) * fallback[:, h], np.nan)
    return out


def holiday_factors(Y: np.ndarray, k_hist: np.ndarray, groups: np.ndarray,
                    pseudo: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Holiday and Spring Festival factors (kinds 7, 8), each day's count against the ordinary
    days within three weeks of it, over the whole history (they are rare): pooled over all series
    (shape 2), and per series from its group (a category across regions: Golden Week brings
    tourism complaints up while the line as a whole goes quiet), shrunk to the pooled factor by the
    group's holiday volume (shape series x 2). NaN where the history has no such day."""
    gid = np.unique(groups, return_inverse=True)[1]
    onehot = np.zeros((gid.max() + 1, len(Y)))
    onehot[gid, np.arange(len(Y))] = 1.0
    G = onehot @ np.nan_to_num(Y)
    total = G.sum(axis=0)
    ords = np.flatnonzero(k_hist < ORDINARY)
    pooled, per_group = np.full(2, np.nan), np.full((len(G), 2), np.nan)
    for j, k in enumerate((7, 8)):
        idx = np.flatnonzero(k_hist == k)
        if len(idx) and len(ords):
            near = (np.abs(ords[None, :] - idx[:, None]) <= 21).astype(float)
            near /= np.maximum(near.sum(axis=1, keepdims=True), 1.0)
            den, g_den = near @ total[ords], G[:, ords] @ near.T
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no volume around a holiday: no evidence
                pooled[j] = float(np.clip(np.nanmedian(np.where(den > 0, total[idx] / den, np.nan)), 0.1, 1.5))
                own = np.clip(np.nanmedian(np.where(g_den > 0, G[:, idx] / g_den, np.nan), axis=1), 0.1, 3.0)
            w = G[:, idx].sum(axis=1) / (G[:, idx].sum(axis=1) + pseudo)
            per_group[:, j] = w * own + (1 - w) * pooled[j]
    return pooled, per_group[gid]


class FastModel:
    """Level x calendar profile x yearly ratio, for every series in one pass."""

    alias = "fast"

    def __init__(self, profile_weeks: int = 8, half_life: float = 10.0, shrink_counts: float = 40.0,
                 yearly_pseudo: float = 300.0, horizon_inflation: float = 0.015, holiday_pseudo: float = 200.0):
        self.profile_weeks = profile_weeks
        self.half_life = half_life
        self.shrink_counts = shrink_counts
        self.yearly_pseudo = yearly_pseudo
        self.horizon_inflation = horizon_inflation
        self.holiday_pseudo = holiday_pseudo

    def fit_predict(self, Y: np.ndarray, kinds: np.ndarray, cal: pd.DataFrame, horizon: int,
                    groups: np.ndarray | None = None) -> Fitted:
        S, T = Y.shape
        k_hist, k_fut = kinds[:T], kinds[T:T + horizon]
        W = min(T, 7 * self.profile_weeks)
        groups = np.zeros(S, dtype=int) if groups is None else groups
        kw = k_hist[T - W:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # one-off outliers (a batch entry, a duplicated feed) must not set the profile or level
            # (the yearly ratio below caps last year's days more loosely: last year's real peaks matter)
            cap = 5 * np.nan_to_num(np.nanmedian(Y[:, T - W:], axis=1, keepdims=True)) + 5
            y = np.minimum(Y[:, T - W:], cap)
            ordinary = kw < ORDINARY
            base = np.nanmean(np.where(ordinary, y, np.nan), axis=1)
            tot_w = np.nansum(y, axis=0)
            tot_base = np.nanmean(np.where(ordinary, tot_w, np.nan))
            pooled = np.ones(9)
            prof_s = np.ones((S, 9))
            n_s = np.nansum(np.where(ordinary, y, 0), axis=1)
            for k in range(7):
                m = kw == k
                if m.any() and tot_base > 0:
                    pooled[k] = np.nanmean(tot_w[m]) / tot_base
                    prof_s[:, k] = np.nanmean(y[:, m], axis=1) / np.where(base > 0, base, np.nan)
            # the pooled weekly shape itself is only as sure as the tickets behind it: a panel of one
            # sparse series shrinks towards a flat week
            n_pool = float(np.nansum(np.where(ordinary, tot_w, 0.0)))
            pooled[:7] = (n_pool * pooled[:7] + self.shrink_counts) / (n_pool + self.shrink_counts)
            hol_pooled, hol_series = holiday_factors(Y, k_hist, groups, self.holiday_pseudo)
            for j, (k, default) in enumerate(((7, 0.55), (8, 0.4))):
                pooled[k] = hol_pooled[j] if np.isfinite(hol_pooled[j]) else default * np.mean(pooled[:5])
            wgt = (n_s / (n_s + self.shrink_counts))[:, None]
            prof = np.where(np.isfinite(prof_s), wgt * prof_s + (1 - wgt) * pooled[None, :], pooled[None, :])
            # holiday factors by group, not by series (too few days)
            prof[:, 7:] = np.where(np.isfinite(hol_series), hol_series, pooled[None, 7:])
            prof = np.maximum(prof, 0.02)

            # level: exponentially weighted, deseasonalised, outliers capped
            z = y / prof[np.arange(S)[:, None], kw[None, :]]
            med = np.nanmedian(z, axis=1, keepdims=True)
            z = np.minimum(z, 5 * np.nan_to_num(med) + 5)
            age = np.arange(W)[::-1]
            w = 0.5 ** (age / self.half_life)
            # holidays say little about the ordinary level (their factor is pooled and uncertain): a long
            # holiday at the end of the window must not drag the level after it
            wz = np.where(np.isfinite(z) & ordinary[None, :], w[None, :], 0.0)
            level = (np.nansum(z * wz, axis=1) + 0.02) / (wz.sum(axis=1) + 0.2)

            # yearly ratio: last year's analogous day against last year's origin
            fut_pos = np.arange(T, T + horizon)
            yearly = np.ones((S, horizon))
            if T >= 364 + 35:
                dz = Y / prof[np.arange(S)[:, None], k_hist[None, :]]
                # the seasonal level is read on ordinary days (holidays have their own factor, and
                # last year's fell on other dates); a window of holidays only falls back to all days
                dz_ord = np.where(k_hist[None, :] < ORDINARY, dz, np.nan)

                a_fut = analog_positions(cal, fut_pos)
                a0 = T - 364
                # last year's days count at most 3 times the median of last year's span (+3): a storm
                # week or a batch entry last year is not this year's season
                span = [max(a0 - 28, 0), min(max(int(a_fut.max()) + 4, a0), T)]
                ref = np.nan_to_num(np.nanmedian(dz_ord[:, span[0]:span[1]], axis=1))[:, None]
                dz_ord = np.minimum(dz_ord, 3 * ref + 3)
                dz = np.minimum(dz, 3 * ref + 3)

                def seasonal_level(lo: int, hi: int) -> np.ndarray:
                    v = np.nanmean(dz_ord[:, lo:hi], axis=1)
                    return np.nan_to_num(np.where(np.isfinite(v), v, np.nanmean(dz[:, lo:hi], axis=1)))

                origin = seasonal_level(a0 - 28, a0)
                # the same ratio for the series' group (a category across regions): far less noisy
                gid = np.unique(groups, return_inverse=True)[1]
                ng = gid.max() + 1
                g_origin = np.bincount(gid, weights=origin, minlength=ng)
                for h, a in enumerate(a_fut):
                    if a < 3 or a + 4 > T:
                        continue
                    target = seasonal_level(a - 3, a + 4)
                    g_ratio = (np.bincount(gid, weights=target, minlength=ng) * 7 + 1) / (g_origin * 7 + 1)
                    c = self.yearly_pseudo  # pseudo-count (tickets a week) pulling a series to its group
                    prior = g_ratio[gid]
                    yearly[:, h] = np.clip((target * 7 + c * prior) / (origin * 7 + c), 0.2, 5.0)
            day_prof = prof[:, k_fut]
            if "holiday_name" in cal.columns and (k_fut == 7).any():
                # a holiday the history has met by name takes last year's factor for that holiday
                named = named_holiday_factors(Y, k_hist, cal["holiday_name"].to_numpy()[:T],
                                              cal["holiday_name"].to_numpy()[T:T + horizon], k_fut, groups,
                                              day_prof, self.holiday_pseudo)
                day_prof = np.where(np.isfinite(named), named, day_prof)
            mu = level[:, None] * day_prof * yearly

            # in-sample one-step fits over the window for the dispersion
            fitted = np.full_like(y, np.nan)
            # start from the first two weeks' level, not the first day's count: a low first day
            # would otherwise read as weeks of misfit, and as overdispersion the series does not have
            run = np.nan_to_num(np.nanmedian(np.where(ordinary[None, :14], z[:, :14], np.nan), axis=1))
            alpha = 1 - 0.5 ** (1 / self.half_life)
            for t in range(W):
                fitted[:, t] = run * prof[np.arange(S), kw[t]]
                zt = z[:, t]
                run = np.where(np.isfinite(zt), (1 - alpha) * run + alpha * zt, run)
            # the spread is read on the window but its last two days: a surge that began yesterday is
            # not the series' ordinary spread (it would make today's second day of it look ordinary)
            r = _dispersion(y[:, :-2], fitted[:, :-2])
        r_h = r[:, None] / (1 + self.horizon_inflation * np.arange(1, horizon + 1))[None, :]
        mu = np.where(np.isfinite(mu), mu, 0.0)
        local = level[:, None] * day_prof
        # a damped local trend: the last four weeks' deseasonalised mean against the four before,
        # per day, carried forward with a damping of 0.95 a day (at most ~19 days of drift)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            zo = np.where(ordinary[None, :], z, np.nan)
            recent, before = np.nanmean(zo[:, -28:], axis=1), np.nanmean(zo[:, -56:-28], axis=1)
            growth = np.nan_to_num((recent - before) / 28.0 / np.maximum(level, 0.1))
        drift = np.cumsum(0.95 ** np.arange(1, horizon + 1))
        trend = local * np.clip(1 + growth[:, None] * drift[None, :], 0.5, 2.0)
        return Fitted(mu, r_h, {"fast_local": np.where(np.isfinite(local), local, 0.0),
                                "fast_trend": np.where(np.isfinite(trend), trend, 0.0)})


class FastLocalModel:
    """The fast model without last year's ratio: for series whose own backtest shows no stable
    yearly shape (a storm or a campaign last year is not this year's season). Computed in the same
    pass as the fast model."""

    alias = "fast_local"

    def fit_predict(self, Y: np.ndarray, kinds: np.ndarray, cal: pd.DataFrame, horizon: int,
                    groups: np.ndarray | None = None) -> Fitted:
        fit = FastModel().fit_predict(Y, kinds, cal, horizon, groups=groups)
        return Fitted(fit.variants[self.alias], fit.r)


class FastTrendModel(FastLocalModel):
    """A robust trend and season: the fast model's level and weekly/holiday profile, with a damped
    local trend (the last four weeks' deseasonalised level against the four before) instead of last
    year's ratio. Computed in the same pass as the fast model."""

    alias = "fast_trend"


class SeasonalNaive:
    """The same weekday last week (last year's same lunar day near Spring Festival)."""

    alias = "seasonal_naive"

    def fit_predict(self, Y: np.ndarray, kinds: np.ndarray, cal: pd.DataFrame, horizon: int,
                    groups: np.ndarray | None = None) -> Fitted:
        S, T = Y.shape
        fut = np.arange(T, T + horizon)
        src = T - 7 + (np.arange(horizon) % 7)
        mu = np.nan_to_num(Y[:, np.clip(src, 0, T - 1)])
        if T >= 364 + 14:
            a = analog_positions(cal, fut)
            sf_near = np.abs(cal["days_from_spring_festival"].to_numpy()[fut]) <= 20
            for h in np.flatnonzero(sf_near & (a >= 0) & (a < T)):
                mu[:, h] = np.nan_to_num(Y[:, a[h]])
        fitted = np.concatenate([np.full((S, 7), np.nan), Y[:, :-7]], axis=1)
        r = _dispersion(Y[:, -56:], fitted[:, -56:])
        return Fitted(np.maximum(mu, 0.0), np.repeat(r[:, None], horizon, axis=1))


class ETSModel:
    """statsmodels Holt-Winters: damped trend, additive weekly seasonality, per series."""

    alias = "ets"

    def fit_predict(self, Y: np.ndarray, kinds: np.ndarray, cal: pd.DataFrame, horizon: int,
                    groups: np.ndarray | None = None) -> Fitted:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        S, T = Y.shape
        mu = np.zeros((S, horizon))
        r = np.full(S, np.inf)
        for s in range(S):
            y = Y[s][np.isfinite(Y[s])][-365:]
            if len(y) < 28:
                mu[s] = np.mean(y) if len(y) else 0.0
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal="add", seasonal_periods=7,
                                           initialization_method="estimated").fit()
            mu[s] = np.maximum(fit.forecast(horizon), 0.0)
            r[s] = _dispersion(y[None, :], np.maximum(fit.fittedvalues, 1e-3)[None, :])[0]
        return Fitted(mu, np.repeat(r[:, None], horizon, axis=1))


class ProphetModel:
    """Prophet with Chinese public holidays and 调休 make-up workdays as regressors."""

    alias = "prophet"

    def fit_predict(self, Y: np.ndarray, kinds: np.ndarray, cal: pd.DataFrame, horizon: int,
                    groups: np.ndarray | None = None) -> Fitted:
        import logging

        from prophet import Prophet

        logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
        logging.getLogger("prophet").setLevel(logging.WARNING)
        S, T = Y.shape
        ds = cal["ds"].iloc[:T + horizon].reset_index(drop=True)
        hol = pd.DataFrame({"holiday": np.where(kinds[:T + horizon] == 8, "spring_festival", "public_holiday"),
                            "ds": ds})[kinds[:T + horizon] >= 7]
        makeup = cal["is_makeup_workday"].iloc[:T + horizon].astype(float).to_numpy()
        mu = np.zeros((S, horizon))
        r = np.full(S, np.inf)
        for s in range(S):
            ok = np.isfinite(Y[s])
            frame = pd.DataFrame({"ds": ds[:T][ok], "y": Y[s][ok], "makeup": makeup[:T][ok]})
            m = Prophet(holidays=hol if len(hol) else None, weekly_seasonality=True,
                        yearly_seasonality=len(frame) >= 365, daily_seasonality=False, uncertainty_samples=0)
            m.add_regressor("makeup")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(frame)
            fut = pd.DataFrame({"ds": ds[T:T + horizon], "makeup": makeup[T:T + horizon]})
            mu[s] = np.maximum(m.predict(fut)["yhat"].to_numpy(), 0.0)
            fitted = np.maximum(m.predict(frame[["ds", "makeup"]])["yhat"].to_numpy(), 1e-3)
            r[s] = _dispersion(frame["y"].to_numpy()[None, -112:], fitted[None, -112:])[0]
        return Fitted(mu, np.repeat(r[:, None], horizon, axis=1))


MODELS = {m.alias: m for m in (FastModel, FastLocalModel, FastTrendModel, SeasonalNaive, ETSModel, ProphetModel)}
VECTORISED = ("fast", "fast_local", "fast_trend", "seasonal_naive")  # fitted on every series at once
FAST_VARIANTS = ("fast_local", "fast_trend")  # computed in the fast model's pass
