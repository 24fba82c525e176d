"""Count-aware, calendar-aware detectors with calibrated tail probabilities.

Every detector judges a day against what the days before it lead one to expect, works on the
whole panel of a scope at once (one vectorised pass per day, not one model per series), and states
how unusual the day is as a *calibrated* one-sided tail probability ``p``: how often a value this
far out has really come, read off the same statistic's out-of-sample record in the weeks before
(detectors.calibration). ``score = 1 - p`` and ``surprise = -log10 p`` go with it.

- ``spike_drop``: the day's count against the fast forecasting model's one-day-ahead negative
  binomial (weekdays, holidays, 调休 and last year's season are in the expectation), as a mid-p
  standardised residual, rescaled by the series' own out-of-sample dispersion and read against
  the pooled residuals of its volume band.
- ``level_shift``: a change-point scan over the last 5 to 14 days against a baseline frozen before
  them (a window total's tail, with the week-to-week drift τ² the history shows): sustained rises
  and falls no single day reveals; calibrated on the same scan at the ends of past weeks.
- ``emerging``: a category growing from a low base (it never had a baseline to exceed): the last
  week (but its busiest day: one batch is not an issue) against the Poisson tail of the quiet
  weeks before it, unless it rose the same way at this
  time last year (a seasonal return is not a new issue); calibrated on the weekly record of every
  low-base series of the scope.
- ``spread``: a city's category rising over the last week in several of its districts at once,
  raised once, on the city series, naming the districts.

Each result also says how many one-sided tests it made per series (``tests``): the alert budget
is shared out over them (detectors.engine).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from scipy.stats import poisson

from detectors.base import BaseDetector
from detectors.calibration import WINDOW_WEEKS, Calibration, band_of, midp_z
from detectors.panel import WEEKS_PER_BLOCK, Expectations, Panel
from detectors.tails import surprise
from forecasting.counts import CountDist

Result = dict[str, np.ndarray]
P_FLOOR = 1e-300


def _empty(n: int, kind: str) -> Result:
    nan = np.full(n, np.nan)
    return {"p": np.ones(n), "score": np.zeros(n), "surprise": np.zeros(n), "expected": nan, "lower": nan,
            "upper": nan, "kind": np.full(n, kind, object), "obs": np.zeros(n), "exp": np.zeros(n),
            "note": np.full(n, "", object), "tests": np.zeros(n), "history": np.zeros(n)}


def _finish(res: Result) -> Result:
    """score and surprise from p."""
    p = np.clip(np.nan_to_num(res["p"], nan=1.0), P_FLOOR, 1.0)
    res["p"], res["score"], res["surprise"] = p, 1.0 - p, surprise(p)
    return res


def _z_of_tail(tail: np.ndarray) -> np.ndarray:
    """A one-sided tail probability as a standardised value (0 for tails of a half or more)."""
    return np.maximum(-ndtri(np.clip(tail, P_FLOOR, 1.0)), 0.0)


def _history(panel: Panel, t: int) -> np.ndarray:
    """Days of each series on record up to and including day t (within the panel)."""
    return np.isfinite(panel.Y[:, :t + 1]).sum(axis=1).astype(float)


class PanelDetector(BaseDetector):
    """A detector that scores one day of a panel at a time (``score_day``); ``fit``/``score`` on
    long frames wrap it for the contract."""

    def _fit(self, history: pd.DataFrame) -> None:
        self.history_ = history

    def _score(self, frame: pd.DataFrame) -> pd.DataFrame:
        past = self.history_[self.history_["ds"] < frame["ds"].min()]
        panel = Panel.from_long(pd.concat([past, frame], ignore_index=True))
        exp = Expectations(panel)
        pos = pd.Series(np.arange(len(panel)), index=panel.ids)
        parts = []
        for day, today in frame.groupby("ds", sort=True):
            t = panel.index(day)
            res = self.score_day(panel, exp, t)
            i = pos.reindex(today["series_id"]).to_numpy()
            out = today.rename(columns={"y": "observed"}).copy()
            for col in ("p", "score", "surprise", "expected", "lower", "upper", "kind"):
                out[col] = res[col][i]
            out["explanation"] = [self.describe(res, j) if p <= self.alpha else "" for j, p in zip(i, res["p"][i])]
            parts.append(out)
        return pd.concat(parts, ignore_index=True)

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        raise NotImplementedError

    def describe(self, res: Result, i: int) -> str:
        return str(res["note"][i])


class SpikeDropDetector(PanelDetector):
    name = "spike_drop"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spike", "needs_history_days": 28}

    def __init__(self, alpha: float = 1e-4, min_expected: float = 1.0, drops: bool = True):
        super().__init__(alpha)
        self.min_expected = min_expected
        self.drops = drops

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        fit = exp.at(t - 1)
        if fit is None:
            return _empty(n, "spike")
        mu, r = fit[0][:, 0], fit[1][:, 0]
        y = panel.y(t)
        z = midp_z(y, mu, r)
        cal = exp.day_calibration(t)
        up, down = cal.p_up(z), cal.p_down(z)
        spike_ok = (mu >= self.min_expected) | (y >= 3 * self.min_expected + 3)
        drop_ok = (mu >= max(self.min_expected, 3.0)) & self.drops  # a drop needs something to drop from
        up, down = np.where(spike_ok, up, 1.0), np.where(drop_ok, down, 1.0)
        z_lo, z_hi = cal.z_bounds(0.005)  # the calibrated 99% range, as counts
        band = CountDist(np.maximum(mu, 1e-6), r)
        lower = band.ppf(np.clip(ndtr(z_lo), 0.0, 1.0))
        upper = band.isf(np.clip(ndtr(-z_hi), 0.0, 1.0))
        # the day's randomised PIT under the calibrated count distribution, P(Y >= k) = p_up(z(k)):
        # uniform when the stated probabilities hold (for `hotline calibrate`; deterministic per day)
        at_least_y, above_y = cal.p_up(z), cal.p_up(midp_z(y + 1, mu, r))
        pit = 1.0 - at_least_y + np.random.default_rng(t).random(n) * np.maximum(at_least_y - above_y, 0.0)
        return _finish({"p": np.minimum(up, down), "p_up": up, "p_down": down, "pit": pit,
                        "calibration": cal, "mu": mu, "r": r, "expected": mu, "lower": lower, "upper": upper,
                        "kind": np.where(down < up, "drop", "spike").astype(object), "obs": y, "exp": mu,
                        # a test is made on every series that day, whatever its count (a quiet series'
                        # spike must also be big to alert, which only lowers its chance)
                        "note": np.full(n, "", object), "z": z, "tests": (mu > 0) + drop_ok.astype(float),
                        "history": _history(panel, t)})

    def describe(self, res: Result, i: int) -> str:
        word = "骤降" if res["kind"][i] == "drop" else "突增"
        return f"当日{word}：{res['obs'][i]:g} 件，预期 {res['exp'][i]:.1f} 件"

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"alpha": 1e-2, "drops": False}]


def window_tails(O: np.ndarray, mu: np.ndarray, r: np.ndarray, tau2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(sum >= O) and P(sum <= O) for a window's total, whose days share a drift: variance
    sum(mu + mu²/r) + (sum mu)²·τ², as a negative binomial with that mean and variance."""
    M = mu.sum(axis=1)
    var = CountDist(mu, r).var.sum(axis=1) + M ** 2 * tau2
    r_eff = np.where(var > M * (1 + 1e-6), M ** 2 / np.maximum(var - M, 1e-12), np.inf)
    dist = CountDist(np.maximum(M, 1e-6), r_eff)
    return dist.sf(O - 1), dist.cdf(O)


def _calibrated(exp: Expectations, key: tuple, t: int, lag: int, stat) -> Calibration:
    """A window statistic's calibration for day ``t``: the statistic (``stat(day) -> (z, volume)``)
    at the ends of the last WINDOW_WEEKS windows of ``lag`` days that start on a grid origin and end
    before ``t``, pooled by volume band."""
    grid = tuple(exp.grid_before(t, WINDOW_WEEKS // WEEKS_PER_BLOCK, lag=lag))

    def make() -> Calibration:
        zs, vols = [], []
        for o in grid:
            z, vol = exp.derived(key + ("at", o + lag), o, lambda o=o: stat(o + lag))
            zs.append(z)
            vols.append(vol)
        n = len(exp.panel)
        if not zs:
            return Calibration.build(np.full((n, 1), np.nan), np.zeros(n, int))
        with np.errstate(all="ignore"):
            vol = np.nanmean(np.stack(vols, axis=1), axis=1)
        return Calibration.build(np.stack(zs, axis=1), band_of(vol))
    return exp.derived(key + ("cal", grid), min(grid, default=t), make)


class LevelShiftDetector(PanelDetector):
    name = "level_shift"
    _tags: ClassVar[dict[str, Any]] = {"kind": "level_shift", "needs_history_days": 42}

    def __init__(self, alpha: float = 1e-4, window: int = 14, spans: tuple[int, ...] = (5, 7, 10, 14),
                 min_expected: float = 0.0):
        super().__init__(alpha)
        self.window = window
        self.spans = spans
        self.min_expected = min_expected

    def scan(self, panel: Panel, exp: Expectations, t: int) -> Result | None:
        """The raw change-point scan for day ``t``: for each span k of the last days (against a
        baseline frozen ``window`` days back), the tail of the span's total, most of whose days must
        be off the baseline the same way; the smallest tail, Bonferroni-corrected over the spans,
        as a signed standardised value ``z`` (positive: a rise)."""
        n = len(panel)
        w = min(self.window, exp.horizon)
        fit = exp.at(t - w)
        if fit is None or t >= panel.Y.shape[1]:
            return None
        mu, r = fit[0][:, :w], fit[1][:, :w]
        raw = np.nan_to_num(panel.Y[:, t - w + 1:t + 1])
        tau2 = exp.tau2(t - w)
        dev = raw - mu
        spans = [k for k in self.spans if k <= w] or [w]
        best_p, best_k, sign = np.ones(n), np.full(n, spans[0]), np.ones(n)
        rows = np.arange(n)
        for k in spans:
            # the span's total without its most extreme day the way tested: one wild day is a
            # spike, not a shift, and most days must be off the baseline the same way
            d, m, y = dev[:, -k:], mu[:, -k:], raw[:, -k:]
            hi, lo = np.argmax(d, axis=1), np.argmin(d, axis=1)
            O = y.sum(axis=1)
            keep_up = np.ones_like(m, bool)
            keep_up[rows, hi] = False
            keep_dn = np.ones_like(m, bool)
            keep_dn[rows, lo] = False
            up = window_tails(O - y[rows, hi], np.where(keep_up, m, 0.0), np.where(keep_up, r[:, -k:], np.inf), tau2)[0]
            dn = window_tails(O - y[rows, lo], np.where(keep_dn, m, 0.0), np.where(keep_dn, r[:, -k:], np.inf), tau2)[1]
            above = (d > 0).sum(axis=1)
            up = np.where(above >= (k + 1) // 2 + 1, up, 1.0)
            dn = np.where(k - above >= (k + 1) // 2 + 1, dn, 1.0)
            p = np.minimum(up, dn)
            better = p < best_p
            best_p, best_k = np.where(better, p, best_p), np.where(better, k, best_k)
            sign = np.where(better, np.where(up <= dn, 1.0, -1.0), sign)
        z = sign * _z_of_tail(np.minimum(best_p * len(spans), 1.0))
        cum_o = np.cumsum(raw[:, ::-1], axis=1)
        cum_m = np.cumsum(mu[:, ::-1], axis=1)
        return {"z": z, "volume": mu.mean(axis=1), "cusum": sign, "window": best_k, "days": best_k.astype(float),
                "obs": cum_o[rows, best_k - 1], "exp": cum_m[rows, best_k - 1], "days_obs": raw, "days_exp": mu}

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        res = self.scan(panel, exp, t)
        if res is None:
            return _empty(n, "level_shift")
        key = (self.name, self.window, tuple(self.spans))

        def stat(day: int):
            s = self.scan(panel, exp, day)
            return (np.full(n, np.nan), np.full(n, np.nan)) if s is None else (s["z"], s["volume"])
        cal = _calibrated(exp, key, t, min(self.window, exp.horizon), stat)
        up, down = cal.p_up(res["z"]), cal.p_down(res["z"])
        tested = res["volume"] >= self.min_expected  # (the test is made whatever its outcome)
        ok = tested & (res["z"] != 0)  # z = 0: no shift either way
        p = np.where(ok, np.where(res["cusum"] >= 0, up, down), 1.0)
        return _finish({**res, "p": p, "p_up": np.where(ok, up, 1.0), "p_down": np.where(ok, down, 1.0),
                        "expected": res["volume"], "lower": np.full(n, np.nan),
                        "upper": np.full(n, np.nan), "kind": np.full(n, "level_shift", object),
                        "note": np.full(n, "", object), "tests": 2.0 * tested, "history": _history(panel, t)})

    def describe(self, res: Result, i: int) -> str:
        word = "持续上升" if res["cusum"][i] >= 0 else "持续下降"
        o, e = res["obs"][i], res["exp"][i]
        return (f"近{int(res['window'][i])}日{word}：共 {o:g} 件，基线预期 {e:.0f} 件"
                f"（{(o / e - 1) * 100 if e > 0 else 0:+.0f}%）")

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"window": 10, "spans": (5, 10)}]


class EmergingDetector(PanelDetector):
    name = "emerging"
    _tags: ClassVar[dict[str, Any]] = {"kind": "emerging", "needs_history_days": 56}

    def __init__(self, alpha: float = 1e-4, low_base: float = 1.0, min_week: float = 14.0,
                 base_days: int = 56, recent_days: int = 7, seasonal_return: float = 0.5):
        super().__init__(alpha)
        self.low_base = low_base
        self.min_week = min_week
        self.base_days = base_days
        self.recent_days = recent_days
        self.seasonal_return = seasonal_return

    def week(self, panel: Panel, t: int) -> Result | None:
        """The last ``recent_days`` but their busiest day against the Poisson tail of the
        ``base_days`` before them, as a standardised value ``z``, for the series with a low base
        (NaN for the others)."""
        rd, bd = self.recent_days, self.base_days
        if t >= panel.Y.shape[1]:
            return None
        recent = np.nansum(panel.Y[:, max(0, t - rd + 1):t + 1], axis=1)
        lo = max(0, t - rd - bd + 1)
        seen = t - rd + 1 - lo
        if seen < 28:
            return None
        rate = np.nansum(panel.Y[:, lo:t - rd + 1], axis=1) / seen
        # without the week's busiest day: a batch entered on one day is not an issue emerging
        trimmed = recent - np.nanmax(np.nan_to_num(panel.Y[:, max(0, t - rd + 1):t + 1]), axis=1)
        tail = poisson.sf(trimmed - 1, np.maximum(rate, 0.05) * (rd - 1))
        low = rate < self.low_base
        return {"z": np.where(low, _z_of_tail(tail), np.nan), "rate": rate, "recent": recent, "low": low}

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        rd = self.recent_days
        res = self.week(panel, t)
        if res is None:
            return _empty(n, "emerging")
        recent, rate = res["recent"], res["rate"]
        ok = res["low"] & (recent >= self.min_week)
        ly = t - 364
        if ly - 28 >= 0:  # the same weeks last year: a category that rises every year at this time
            c = np.nancumsum(np.nan_to_num(panel.Y[:, ly - 28:ly + 29]), axis=1)
            weekly = c[:, rd:] - c[:, :-rd]
            ok &= weekly.max(axis=1) < self.seasonal_return * recent
        key = (self.name, self.low_base, self.base_days, rd)

        def stat(day: int):
            w = self.week(panel, day)
            return (np.full(n, np.nan), np.full(n, np.nan)) if w is None else (w["z"], np.zeros(n))
        cal = _calibrated(exp, key, t, rd, stat)
        p = np.where(ok & (np.nan_to_num(res["z"]) > 0), cal.p_up(np.nan_to_num(res["z"])), 1.0)
        return _finish({"p": p, "expected": rate, "lower": np.full(n, np.nan), "upper": np.full(n, np.nan),
                        "kind": np.full(n, "emerging", object), "obs": recent, "exp": rate * rd,
                        "days": np.full(n, float(rd)),
                        "note": np.full(n, "", object), "z": res["z"], "tests": res["low"].astype(float),
                        "history": _history(panel, t)})

    def describe(self, res: Result, i: int) -> str:
        return (f"新出现的问题：近{self.recent_days}日 {res['obs'][i]:g} 件，此前日均 {res['expected'][i]:.2f} 件")

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"low_base": 0.5, "min_week": 10.0}]


class SpreadDetector(PanelDetector):
    name = "spread"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spread", "needs_history_days": 42}

    def __init__(self, alpha: float = 1e-4, window: int = 7, min_districts: int = 3,
                 min_share: float = 0.5, min_ratio: float = 1.15, max_top_share: float = 0.6):
        super().__init__(alpha)
        self.window = window
        self.min_districts = min_districts
        self.min_share = min_share
        self.min_ratio = min_ratio
        self.max_top_share = max_top_share

    def total(self, panel: Panel, exp: Expectations, t: int) -> Result | None:
        """Each series' total over the last ``window`` days against the forecast made before them,
        as a standardised upper tail ``z`` (drift τ² included)."""
        w = min(self.window, exp.horizon)
        fit = exp.at(t - w)
        if fit is None or t >= panel.Y.shape[1]:
            return None
        mu, r = fit[0][:, :w], fit[1][:, :w]
        O = np.nansum(panel.Y[:, t - w + 1:t + 1], axis=1)
        tail = window_tails(O, mu, r, exp.tau2(t - w))[0]
        return {"z": _z_of_tail(tail), "O": O, "M": mu.sum(axis=1), "volume": mu.mean(axis=1)}

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        out = _empty(n, "spread")
        res = self.total(panel, exp, t)
        region, _ = panel.children()
        if res is None or not region:
            return out
        w = min(self.window, exp.horizon)
        O, M = res["O"], res["M"]
        eligible = np.zeros(n, bool)
        hit = np.zeros(n, bool)
        note = out["note"]
        for i, kids in region.items():
            if len(kids) < self.min_districts or M[i] <= 0:
                continue
            eligible[i] = True
            active = kids[M[kids] >= 0.5]
            rising = active[O[active] >= self.min_ratio * M[active]]
            excess = np.maximum(O[kids] - M[kids], 0.0)
            if (len(rising) < self.min_districts or len(rising) < self.min_share * len(active)
                    or excess.sum() <= 0 or excess.max() > self.max_top_share * excess.sum()):
                continue
            hit[i] = True
            note[i] = f"{len(rising)}/{len(active)}"
        key = (self.name, w)

        def stat(day: int):
            s = self.total(panel, exp, day)
            return (np.full(n, np.nan), np.full(n, np.nan)) if s is None else (s["z"], s["volume"])
        cal = _calibrated(exp, key, t, w, stat)
        p = np.where(hit & (res["z"] > 0), cal.p_up(res["z"]), 1.0)
        out.update(p=p, obs=O, exp=M, expected=M / w, z=res["z"], tests=eligible.astype(float),
                   days=np.full(n, float(w)), history=_history(panel, t))
        return _finish(out)

    def describe(self, res: Result, i: int) -> str:
        o, e = res["obs"][i], res["exp"][i]
        return (f"多区同步上升：{res['note'][i]} 个区上升，近{self.window}日共 {o:g} 件，预期 {e:.0f} 件"
                f"（{(o / e - 1) * 100 if e > 0 else 0:+.0f}%）")

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"window": 10, "min_districts": 2}]


DETECTORS: dict[str, type[PanelDetector]] = {d.name: d for d in (
    SpikeDropDetector, LevelShiftDetector, EmergingDetector, SpreadDetector)}
