"""Count-aware, calendar-aware detectors.

Every detector judges a day against what the days before it lead one to expect, and works on the
whole panel of a scope at once (one vectorised pass per day, not one model per series):

- ``spike_drop``: the day's count against the fast forecasting model's one-day-ahead negative
  binomial (weekdays, holidays, 调休 and last year's season are in the expectation), by tail
  probability, so a series averaging 2 a day is not judged by a Gaussian z-score.
- ``robust_seasonal``: independent of the forecaster: a robust decomposition (level = median of
  the deseasonalised last four weeks, weekday profile = medians of the last eight, holiday factors
  pooled from the past holidays) on the Anscombe scale 2·sqrt(y + 3/8), where a count's noise has
  unit variance, with a MAD scale.
- ``level_shift``: a change-point scan over the last 5 to 14 days against a baseline frozen
  before them (a window total's tail, with the week-to-week drift τ² the history shows):
  sustained rises and falls no single day reveals.
- ``emerging``: a category growing from a low base (it never had a baseline to exceed): the last
  week against the Poisson tail of the quiet weeks before it, unless it rose the same way at this
  time last year (a seasonal return is not a new issue).
- ``spread``: a city's category rising over the last week in several of its districts at once,
  raised once, on the city series, naming the districts.
- ``consensus``: the ``min_agree``-th highest score of its members: two detectors must agree.
"""
from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import poisson

from detectors.base import BaseDetector
from detectors.panel import Expectations, Panel
from forecasting.counts import CountDist
from forecasting.models import ORDINARY, holiday_factors

Result = dict[str, np.ndarray]


def _empty(n: int, kind: str) -> Result:
    nan = np.full(n, np.nan)
    return {"score": np.zeros(n), "expected": nan, "lower": nan, "upper": nan, "kind": np.full(n, kind, object),
            "obs": np.zeros(n), "exp": np.zeros(n), "note": np.full(n, "", object)}


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
            for col in ("score", "expected", "lower", "upper", "kind"):
                out[col] = res[col][i]
            out["explanation"] = [self.describe(res, j) if s >= self.threshold else ""
                                  for j, s in zip(i, res["score"][i])]
            parts.append(out)
        return pd.concat(parts, ignore_index=True)

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        raise NotImplementedError

    def describe(self, res: Result, i: int) -> str:
        return str(res["note"][i])


class SpikeDropDetector(PanelDetector):
    name = "spike_drop"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spike", "needs_history_days": 28}

    def __init__(self, threshold: float = 0.999, min_expected: float = 1.0, drops: bool = True):
        self.threshold = threshold
        self.min_expected = min_expected
        self.drops = drops

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        fit = exp.at(t - 1)
        if fit is None:
            return _empty(n, "spike")
        mu, r = fit[0][:, 0], fit[1][:, 0]
        y = panel.y(t)
        dist = CountDist(np.maximum(mu, 1e-6), r)
        spike, drop = dist.cdf(y - 1), dist.sf(y)  # 1 - P(Y >= y), 1 - P(Y <= y)
        if not self.drops:
            drop = np.zeros(n)
        drop = np.where(mu >= max(self.min_expected, 3.0), drop, 0.0)  # a drop needs something to drop from
        spike = np.where((mu >= self.min_expected) | (y >= 3 * self.min_expected + 3), spike, 0.0)
        band = CountDist(np.maximum(mu, 1e-6), r)
        return {"score": np.maximum(spike, drop), "expected": mu, "lower": band.ppf(0.005), "upper": band.ppf(0.995),
                "kind": np.where(drop > spike, "drop", "spike").astype(object), "obs": y, "exp": mu,
                "note": np.full(n, "", object)}

    def describe(self, res: Result, i: int) -> str:
        word = "骤降" if res["kind"][i] == "drop" else "突增"
        return f"当日{word}：{res['obs'][i]:g} 件，预期 {res['exp'][i]:.1f} 件"

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"threshold": 0.99, "drops": False}]


def _anscombe(x):
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def _holiday_factors(panel: Panel, t: int, days: int = 420) -> np.ndarray:
    """Each series' holiday / Spring Festival factors (its category group's) from the days before
    ``t``; 0.55 and 0.4 where the history has no such day."""
    lo = max(0, t - days)
    pooled, per_series = holiday_factors(panel.Y[:, lo:t], panel.kinds[lo:t], panel.groups)
    pooled = np.where(np.isfinite(pooled), pooled, [0.55, 0.4])
    return np.where(np.isfinite(per_series), per_series, pooled[None, :])


class RobustSeasonalDetector(PanelDetector):
    name = "robust_seasonal"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spike", "needs_history_days": 28}

    def __init__(self, threshold: float = 0.999, weeks: int = 8, min_expected: float = 1.0,
                 shrink_counts: float = 40.0):
        self.threshold = threshold
        self.weeks = weeks
        self.min_expected = min_expected
        self.shrink_counts = shrink_counts

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        lo = max(0, t - 7 * self.weeks)
        if t - lo < 28:
            return _empty(n, "spike")
        Yw = panel.Y[:, lo:t]
        kw = panel.kinds[lo:t]
        ordinary = kw < ORDINARY
        median = np.nanmedian if np.isnan(Yw).any() else np.median  # (np.median is far faster)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.stack([median(Yw[:, ordinary & (kw == k)], axis=1) if (ordinary & (kw == k)).any()
                            else np.full(n, np.nan) for k in range(7)], axis=1)
            tot = np.nansum(Yw, axis=0)
            pooled = np.array([np.median(tot[ordinary & (kw == k)]) if (ordinary & (kw == k)).any() else np.nan
                               for k in range(7)])
            pooled = np.nan_to_num(pooled / np.nanmean(pooled), nan=1.0)
            prof = med / np.nanmean(med, axis=1, keepdims=True)
            mass = np.nansum(np.where(ordinary, Yw, 0.0), axis=1)[:, None]
            w = mass / (mass + self.shrink_counts)
            prof = np.where(np.isfinite(prof), w * prof + (1 - w) * pooled[None, :], pooled[None, :])
            prof = np.maximum(prof, 0.05)
            full = np.concatenate([prof, _holiday_factors(panel, t)], axis=1)
            fitted_factor = full[np.arange(n)[:, None], kw[None, :]]
            cols = np.flatnonzero(ordinary)  # ordinary days only: holidays have their own factor
            level = np.nan_to_num(median((Yw / fitted_factor)[:, cols[-28:]], axis=1))
            res = (_anscombe(Yw) - _anscombe(level[:, None] * fitted_factor))[:, cols]
            mad = median(np.abs(res - median(res, axis=1, keepdims=True)), axis=1)
        scale = np.maximum(np.nan_to_num(1.4826 * mad, nan=1.0), 1.0)
        e = level * full[:, panel.kinds[t]]
        y = panel.y(t)
        z = (_anscombe(y) - _anscombe(e)) / scale
        score = 2 * ndtr(np.abs(z)) - 1
        spike_ok = (e >= self.min_expected) | (y >= 3 * self.min_expected + 3)
        drop_ok = e >= max(self.min_expected, 3.0)
        score = np.where(z > 0, np.where(spike_ok, score, 0.0), np.where(drop_ok, score, 0.0))

        def inv(a):
            return np.maximum((a / 2) ** 2 - 0.375, 0.0)
        return {"score": score, "expected": e, "lower": inv(_anscombe(e) - 2.807 * scale),
                "upper": inv(_anscombe(e) + 2.807 * scale), "kind": np.where(z < 0, "drop", "spike").astype(object),
                "obs": y, "exp": e, "note": np.full(n, "", object), "z": z}

    def describe(self, res: Result, i: int) -> str:
        return f"稳健季节残差 {res['z'][i]:+.1f}（观测 {res['obs'][i]:g}，基线 {res['exp'][i]:.1f}）"

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"weeks": 6, "threshold": 0.99}]


def window_tails(O: np.ndarray, mu: np.ndarray, r: np.ndarray, tau2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(sum >= O) and P(sum <= O) for a window's total, whose days share a drift: variance
    sum(mu + mu²/r) + (sum mu)²·τ², as a negative binomial with that mean and variance."""
    M = mu.sum(axis=1)
    var = CountDist(mu, r).var.sum(axis=1) + M ** 2 * tau2
    r_eff = np.where(var > M * (1 + 1e-6), M ** 2 / np.maximum(var - M, 1e-12), np.inf)
    dist = CountDist(np.maximum(M, 1e-6), r_eff)
    return dist.sf(O - 1), dist.cdf(O)


class LevelShiftDetector(PanelDetector):
    name = "level_shift"
    _tags: ClassVar[dict[str, Any]] = {"kind": "level_shift", "needs_history_days": 42}

    def __init__(self, threshold: float = 0.99, window: int = 14, spans: tuple[int, ...] = (5, 7, 10, 14),
                 min_expected: float = 0.0):
        self.threshold = threshold
        self.window = window
        self.spans = spans
        self.min_expected = min_expected

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        """A change-point scan: for each span k of the last days (against a baseline frozen
        ``window`` days back), the tail of the span's total, most of whose days must be off the
        baseline the same way; the smallest tail, Bonferroni-corrected over the spans."""
        n = len(panel)
        w = min(self.window, exp.horizon)
        fit = exp.at(t - w)
        if fit is None:
            return _empty(n, "level_shift")
        mu, r = fit[0][:, :w], fit[1][:, :w]
        raw = np.nan_to_num(panel.Y[:, t - w + 1:t + 1])
        tau2 = exp.tau2(t - w)
        # a day counts at most 3 standard deviations (noise and drift) off: one wild day is a
        # spike, not a shift
        sd = np.sqrt(CountDist(mu, r).var)
        reach = 3 * sd + 3 * mu * np.sqrt(tau2)[:, None]
        recent = np.clip(raw, np.maximum(mu - reach, 0.0), mu + reach)
        spans = [k for k in self.spans if k <= w] or [w]
        best_p, best_k, sign = np.ones(n), np.full(n, spans[0]), np.ones(n)
        for k in spans:
            up, dn = window_tails(recent[:, -k:].sum(axis=1), mu[:, -k:], r[:, -k:], tau2)
            above = (recent[:, -k:] > mu[:, -k:]).sum(axis=1)
            up = np.where(above >= (k + 1) // 2 + 1, up, 1.0)
            dn = np.where(k - above >= (k + 1) // 2 + 1, dn, 1.0)
            p = np.minimum(up, dn)
            better = p < best_p
            best_p, best_k = np.where(better, p, best_p), np.where(better, k, best_k)
            sign = np.where(better, np.where(up <= dn, 1.0, -1.0), sign)
        score = 1 - np.minimum(best_p * len(spans), 1.0)
        score = np.where(mu.mean(axis=1) >= self.min_expected, score, 0.0)
        rows = np.arange(n)
        cum_o = np.cumsum(raw[:, ::-1], axis=1)
        cum_m = np.cumsum(mu[:, ::-1], axis=1)
        return {"score": score, "expected": mu.mean(axis=1), "lower": np.full(n, np.nan), "upper": np.full(n, np.nan),
                "kind": np.full(n, "level_shift", object), "obs": cum_o[rows, best_k - 1],
                "exp": cum_m[rows, best_k - 1], "note": np.full(n, "", object), "cusum": sign, "window": best_k,
                "days_obs": raw, "days_exp": mu}

    def describe(self, res: Result, i: int) -> str:
        word = "持续上升" if res["cusum"][i] >= 0 else "持续下降"
        o, e = res["obs"][i], res["exp"][i]
        return f"近{int(res['window'][i])}日{word}：共 {o:g} 件，基线预期 {e:.0f} 件（{(o / e - 1) * 100 if e > 0 else 0:+.0f}%）"

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"window": 10, "spans": (5, 10)}]


class EmergingDetector(PanelDetector):
    name = "emerging"
    _tags: ClassVar[dict[str, Any]] = {"kind": "emerging", "needs_history_days": 56}

    def __init__(self, threshold: float = 0.999, low_base: float = 1.0, min_week: float = 14.0,
                 base_days: int = 56, recent_days: int = 7, seasonal_return: float = 0.5):
        self.threshold = threshold
        self.low_base = low_base
        self.min_week = min_week
        self.base_days = base_days
        self.recent_days = recent_days
        self.seasonal_return = seasonal_return

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        rd, bd = self.recent_days, self.base_days
        recent = np.nansum(panel.Y[:, max(0, t - rd + 1):t + 1], axis=1)
        lo = max(0, t - rd - bd + 1)
        seen = t - rd + 1 - lo
        if seen < 28:
            return _empty(n, "emerging")
        rate = np.nansum(panel.Y[:, lo:t - rd + 1], axis=1) / seen
        tail = poisson.sf(recent - 1, np.maximum(rate, 0.05) * rd)
        ok = (rate < self.low_base) & (recent >= self.min_week)
        ly = t - 364
        if ly - 28 >= 0:  # the same weeks last year: a category that rises every year at this time
            c = np.nancumsum(np.nan_to_num(panel.Y[:, ly - 28:ly + 29]), axis=1)
            weekly = c[:, rd:] - c[:, :-rd]
            ok &= weekly.max(axis=1) < self.seasonal_return * recent
        return {"score": np.where(ok, 1 - tail, 0.0), "expected": rate, "lower": np.full(n, np.nan),
                "upper": np.full(n, np.nan), "kind": np.full(n, "emerging", object), "obs": recent,
                "exp": rate * rd, "note": np.full(n, "", object)}

    def describe(self, res: Result, i: int) -> str:
        return (f"新出现的问题：近{self.recent_days}日 {res['obs'][i]:g} 件，此前日均 {res['expected'][i]:.2f} 件")

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"low_base": 0.5, "min_week": 10.0}]


class SpreadDetector(PanelDetector):
    name = "spread"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spread", "needs_history_days": 42}

    def __init__(self, threshold: float = 0.999, window: int = 7, min_districts: int = 3,
                 min_share: float = 0.5, min_ratio: float = 1.15, max_top_share: float = 0.6):
        self.threshold = threshold
        self.window = window
        self.min_districts = min_districts
        self.min_share = min_share
        self.min_ratio = min_ratio
        self.max_top_share = max_top_share

    def score_day(self, panel: Panel, exp: Expectations, t: int) -> Result:
        n = len(panel)
        out = _empty(n, "spread")
        w = min(self.window, exp.horizon)
        fit = exp.at(t - w)
        region, _ = panel.children()
        if fit is None or not region:
            return out
        mu, r = fit[0][:, :w], fit[1][:, :w]
        O = np.nansum(panel.Y[:, t - w + 1:t + 1], axis=1)
        M = mu.sum(axis=1)
        tail = window_tails(O, mu, r, exp.tau2(t - w))[0]
        note = out["note"]
        for i, kids in region.items():
            if len(kids) < self.min_districts or M[i] <= 0:
                continue
            active = kids[M[kids] >= 0.5]
            rising = active[O[active] >= self.min_ratio * M[active]]
            excess = np.maximum(O[kids] - M[kids], 0.0)
            if (len(rising) < self.min_districts or len(rising) < self.min_share * len(active)
                    or excess.sum() <= 0 or excess.max() > self.max_top_share * excess.sum()):
                continue
            out["score"][i] = 1 - tail[i]
            note[i] = f"{len(rising)}/{len(active)}"
        out.update(obs=O, exp=M, expected=M / w)
        return out

    def describe(self, res: Result, i: int) -> str:
        o, e = res["obs"][i], res["exp"][i]
        return (f"多区同步上升：{res['note'][i]} 个区上升，近{self.window}日共 {o:g} 件，预期 {e:.0f} 件"
                f"（{(o / e - 1) * 100 if e > 0 else 0:+.0f}%）")

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"window": 10, "min_districts": 2}]


class ConsensusDetector(PanelDetector):
    name = "consensus"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spike", "needs_history_days": 28}

    def __init__(self, threshold: float = 0.999, members: tuple[str, ...] = ("spike_drop", "robust_seasonal"),
                 min_agree: int = 2, member_params: dict[str, dict] | None = None):
        self.threshold = threshold
        self.members = members
        self.min_agree = min_agree
        self.member_params = member_params

    def score_day(self, panel: Panel, exp: Expectations, t: int, scored: dict[str, Result] | None = None) -> Result:
        scored = scored or {}
        params = self.member_params or {}
        res = [scored[m] if m in scored else DETECTORS[m](**params.get(m, {})).score_day(panel, exp, t)
               for m in self.members]
        scores = np.sort(np.stack([r["score"] for r in res]), axis=0)[::-1]
        agreed = scores[min(self.min_agree, len(res)) - 1]
        first = res[0]
        same_way = np.all(np.stack([r["kind"] == first["kind"] for r in res]), axis=0)
        out = dict(first)
        out["score"] = np.where(same_way | (self.min_agree <= 1), agreed, 0.0)
        # the size of the change is judged against the expectation least favourable to an alert
        exps = np.stack([r["exp"] for r in res])
        out["exp"] = np.where(first["kind"] == "drop", exps.min(axis=0), exps.max(axis=0))
        out["members"] = res
        return out

    def describe(self, res: Result, i: int) -> str:
        parts = [DETECTORS[m](**(self.member_params or {}).get(m, {})).describe(r, i)
                 for m, r in zip(self.members, res["members"])]
        return "；".join(dict.fromkeys(parts))

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"members": ("spike_drop", "robust_seasonal"), "min_agree": 1, "threshold": 0.99}]


DETECTORS: dict[str, type[PanelDetector]] = {d.name: d for d in (
    SpikeDropDetector, RobustSeasonalDetector, LevelShiftDetector, EmergingDetector, SpreadDetector,
    ConsensusDetector)}
