"""Count-aware, calendar-aware detectors built on the fast forecasting model.

Each day is judged against what the history before it leads one to expect (the fast model's
negative binomial, which knows weekdays, holidays and 调休), so a Spring Festival dip or a make-up
Saturday is not an anomaly, and a series averaging 2 a day is judged by its tail probabilities,
not by a Gaussian z-score.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.stats import poisson

from detectors.base import BaseDetector
from forecasting.api import to_matrix
from forecasting.counts import CountDist
from forecasting.models import FastModel


def _expect(history: pd.DataFrame, horizon: int):
    """The fast model's mean and NB size for the ``horizon`` days after ``history``."""
    m = to_matrix(history, horizon)
    fit = FastModel().fit_predict(m.Y, m.kinds, m.cal, horizon, groups=m.groups)
    return m.ids, fit.mu, np.broadcast_to(fit.r, fit.mu.shape)


def _tails(y: np.ndarray, mu: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(Y >= y) and P(Y <= y) under the count distribution."""
    dist = CountDist(np.maximum(mu, 1e-6), r)
    return dist.sf(y - 1), dist.cdf(y)


class _Sequential(BaseDetector):
    """Scores the frame's days in order, each against the history before it (no peeking)."""

    def _fit(self, history: pd.DataFrame) -> None:
        self.history_ = history

    def _score(self, frame: pd.DataFrame) -> pd.DataFrame:
        hist = self.history_
        parts = []
        for day, today in frame.groupby("ds", sort=True):
            past = hist[hist["ds"] < day]
            parts.append(self._score_day(past, today))
            hist = pd.concat([past, today], ignore_index=True)
        return pd.concat(parts, ignore_index=True) if parts else frame.assign(score=0.0)

    def _score_day(self, past: pd.DataFrame, today: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError


class SpikeDropDetector(_Sequential):
    """A day's count against the one-day-ahead negative binomial: spikes and drops."""

    name = "spike_drop"
    _tags: ClassVar[dict[str, Any]] = {"kind": "spike", "needs_history_days": 28}

    def __init__(self, threshold: float = 0.999, min_expected: float = 1.0, drops: bool = True):
        self.threshold = threshold
        self.min_expected = min_expected
        self.drops = drops

    def _score_day(self, past: pd.DataFrame, today: pd.DataFrame) -> pd.DataFrame:
        out = today.rename(columns={"y": "observed"}).copy()
        if past.empty:
            return out.assign(score=0.0, expected=np.nan, kind="spike")
        ids, mu, r = _expect(past, 1)
        lut = pd.DataFrame({"series_id": ids, "expected": mu[:, 0], "r": r[:, 0]})
        out = out.merge(lut, on="series_id", how="left")
        exp = out["expected"].fillna(0.0).to_numpy()
        rr = out["r"].fillna(np.inf).to_numpy()
        obs = out["observed"].to_numpy(dtype=float)
        up, low = _tails(obs, exp, rr)
        spike = 1 - up
        drop = (1 - low) if self.drops else np.zeros_like(spike)
        drop = np.where(exp >= max(self.min_expected, 3.0), drop, 0.0)  # a drop needs something to drop from
        spike = np.where((exp >= self.min_expected) | (obs >= 3 * self.min_expected + 3), spike, 0.0)
        out["score"] = np.maximum(spike, drop)
        out["kind"] = np.where(drop > spike, "drop", "spike")
        band = CountDist(exp, rr)
        out["lower"], out["upper"] = band.ppf(0.005), band.ppf(0.995)
        out["explanation"] = [f"观测 {o:g}，预期 {e:.1f} (observed vs expected)" for o, e in zip(obs, exp)]
        return out.drop(columns=["r"])

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"threshold": 0.99, "drops": False}]


class LevelShiftDetector(_Sequential):
    """CUSUM of standardised residuals against a baseline frozen ``window`` days back: sustained
    rises (or falls) that no single day reveals."""

    name = "level_shift"
    _tags: ClassVar[dict[str, Any]] = {"kind": "level_shift", "needs_history_days": 42}

    def __init__(self, threshold: float = 0.99, window: int = 14, k: float = 1.0, h: float = 8.0,
                 min_expected: float = 2.0):
        self.threshold = threshold
        self.window = window
        self.k = k
        self.h = h
        self.min_expected = min_expected

    def _score_day(self, past: pd.DataFrame, today: pd.DataFrame) -> pd.DataFrame:
        out = today.rename(columns={"y": "observed"}).copy()
        day = today["ds"].iloc[0]
        cut = day - pd.Timedelta(days=self.window)
        base = past[past["ds"] <= cut]
        if base["ds"].nunique() < 28:
            return out.assign(score=0.0, expected=np.nan, kind="level_shift")
        ids, mu, r = _expect(base, self.window)
        recent = pd.concat([past[past["ds"] > cut], today]).pivot_table(
            index="series_id", columns="ds", values="y", aggfunc="sum").reindex(ids).fillna(0.0)
        recent = recent.reindex(columns=pd.date_range(cut + pd.Timedelta(days=1), day), fill_value=0.0).to_numpy()
        var = mu + np.where(np.isfinite(r), mu ** 2 / np.where(np.isfinite(r), r, 1.0), 0.0)
        z = (recent - mu) / np.sqrt(np.maximum(var, 1e-6))
        up = np.zeros(len(ids))
        dn = np.zeros(len(ids))
        for t in range(z.shape[1]):
            up = np.maximum(0.0, up + z[:, t] - self.k)
            dn = np.maximum(0.0, dn - z[:, t] - self.k)
        s = np.maximum(up, dn)
        score = 1 - 0.01 ** (s / self.h)  # 0.99 when the CUSUM reaches h
        ok = mu.mean(axis=1) >= self.min_expected
        lut = pd.DataFrame({"series_id": ids, "score": np.where(ok, score, 0.0), "expected": mu[:, -1],
                            "kind": "level_shift",
                            "explanation": [f"近{self.window}日累计偏离 {v:.1f}（CUSUM）" for v in s]})
        return out.merge(lut, on="series_id", how="left").fillna({"score": 0.0})

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"window": 21, "h": 6.0}]


class EmergingDetector(BaseDetector):
    """A category growing from a low base, which never had a baseline to exceed: the last week's
    count against the Poisson tail of the quiet period before it."""

    name = "emerging"
    _tags: ClassVar[dict[str, Any]] = {"kind": "emerging", "needs_history_days": 56}

    def __init__(self, threshold: float = 0.999, low_base: float = 1.0, min_week: float = 14.0,
                 base_days: int = 56, recent_days: int = 7):
        self.threshold = threshold
        self.low_base = low_base
        self.min_week = min_week
        self.base_days = base_days
        self.recent_days = recent_days

    def _fit(self, history: pd.DataFrame) -> None:
        self.history_ = history

    def _score(self, frame: pd.DataFrame) -> pd.DataFrame:
        allh = pd.concat([self.history_, frame], ignore_index=True)
        parts = []
        for day, today in frame.groupby("ds", sort=True):
            h = allh[allh["ds"] <= day]
            recent = h[h["ds"] > day - pd.Timedelta(days=self.recent_days)].groupby("series_id")["y"].sum()
            lo = day - pd.Timedelta(days=self.recent_days + self.base_days)
            base = h[(h["ds"] > lo) & (h["ds"] <= day - pd.Timedelta(days=self.recent_days))]
            rate = base.groupby("series_id")["y"].sum() / self.base_days
            out = today.rename(columns={"y": "observed"}).copy()
            rw = recent.reindex(out["series_id"]).fillna(0.0).to_numpy()
            rb = rate.reindex(out["series_id"]).fillna(0.0).to_numpy()
            expected_week = np.maximum(rb, 0.05) * self.recent_days
            tail = poisson.sf(rw - 1, expected_week)
            ok = (rb < self.low_base) & (rw >= self.min_week)
            out["score"] = np.where(ok, 1 - tail, 0.0)
            out["expected"] = rb
            out["kind"] = "emerging"
            out["explanation"] = [f"近{self.recent_days}日 {w:g} 件，此前日均 {b:.2f} 件 (new issue from a low base)"
                                  for w, b in zip(rw, rb)]
            parts.append(out)
        return pd.concat(parts, ignore_index=True)

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"low_base": 0.5, "min_week": 10.0}]


DETECTORS = {d.name: d for d in (SpikeDropDetector, LevelShiftDetector, EmergingDetector)}
