"""Calibration of the daily detectors: raw statistics turned into tail probabilities that hold.

A detector's raw statistic is a standardised residual ``z`` of the day (or of a window) against the
fast model's negative binomial. If the model were right, ``z`` would be a standard normal and its
tail the probability to state. Real series have bursts, batch entries, drift and weather, so the
raw tail is far too confident. The probability stated is therefore read off what the same
statistic did out of sample in the weeks before:

- **Own errors set the scale.** Each series' own out-of-sample residuals of the last
  ``CALIBRATION_WEEKS`` weeks (each day judged by a forecast made before it) give its excess
  dispersion ``phi`` (the mean squared Pearson residual, each term capped so one burst cannot set
  it), shrunk towards 1 with the weight of ``SCALE_PSEUDO`` days; ``z`` is divided by
  ``sqrt(phi)``. A series the model describes well keeps its ``z``.
- **The pool sets the shape of the tail.** The rescaled residuals of every series in the same
  volume band (expected tickets a day: ``BANDS``) are pooled: thousands of series-days, so the
  empirical tail is read directly down to about one in ten thousand, with a power-law (Pareto)
  tail beyond the largest ``TAIL_K`` (Hill's estimator) and the model's own Gaussian as a prior
  worth ``PRIOR_WEIGHT`` values where a pool is small.

Everything is one-sided: ``p_up`` is how often a value this high came, ``p_down`` this low.
Calibration samples are taken on fixed dates (every other Sunday: detectors.panel's grid), so the
daily job and the backtest, whatever their first day, judge a day with the same samples, and the
backtest computes each sample once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

from forecasting.counts import BAND_NAMES, BANDS, CountDist, band_of  # noqa: F401

CALIBRATION_WEEKS = 26      # weeks of out-of-sample residuals behind each day's calibration
WINDOW_WEEKS = 16           # weeks of window statistics behind a window detector's calibration
SCALE_PSEUDO = 28.0         # days of prior belief that the model's dispersion is right (phi = 1)
PEARSON_CAP = 25.0          # a day's squared Pearson residual counts at most this much in phi
PRIOR_WEIGHT = 50.0
TAIL_K = 50
MIN_POOL = 2000             # a volume band's pool smaller than this borrows the next band's values
PRIOR_XI = 0.25             # the prior's power-law tail (index 4), for the Hill estimate's shrinkage
XI_WEIGHT = 5.0


def midp_z(y: np.ndarray, mu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed standardised residual of counts ``y`` under NB(mu, r): the normal quantile of the
    mid-p tail (half the probability of ``y`` itself on each side), read from the tail the count is
    in (the upper one at or above the mean), so that ``z`` stays exact far out (|z| up to ~37)."""
    y = np.asarray(y, dtype=float)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-6)
    y, mu, r = np.broadcast_arrays(y, mu, np.asarray(r, dtype=float))
    z = np.empty(y.shape)
    high = y >= mu
    if high.any():
        d = CountDist(mu[high], r[high])
        up = 0.5 * (d.sf(y[high] - 1) + d.sf(y[high]))        # P(Y > y) + P(Y = y)/2
        z[high] = -ndtri(np.clip(up, 1e-300, 1.0))
    low = ~high
    if low.any():
        d = CountDist(mu[low], r[low])
        down = 0.5 * (d.cdf(y[low]) + d.cdf(y[low] - 1))      # P(Y < y) + P(Y = y)/2
        z[low] = ndtri(np.clip(down, 1e-300, 1.0))
    return z


def excess_dispersion(y: np.ndarray, mu: np.ndarray, r: np.ndarray, pseudo: float = SCALE_PSEUDO) -> np.ndarray:
    """Each series' out-of-sample dispersion beyond the NB (1 = as the model says), from rows of
    days: the mean squared Pearson residual, each term capped at PEARSON_CAP, shrunk to 1."""
    var = CountDist(np.maximum(mu, 1e-6), r).var
    ok = np.isfinite(y) & np.isfinite(mu)
    pearson = np.where(ok, np.minimum((np.nan_to_num(y) - mu) ** 2 / np.maximum(var, 1e-9), PEARSON_CAP), 0.0)
    n = ok.sum(axis=1)
    return (pearson.sum(axis=1) + pseudo) / (n + pseudo)


@dataclass
class PooledTail:
    """The pooled, sorted sample of one band (signed standardised values) with its tails."""

    values: np.ndarray  # sorted ascending
    xi_up: float
    xi_down: float

    @classmethod
    def fit(cls, values: np.ndarray) -> "PooledTail":
        v = np.sort(values[np.isfinite(values)])
        return cls(v, _hill(v[::-1]), _hill(-v))

    def sf(self, x: np.ndarray) -> np.ndarray:
        """P(V >= x), blended with the prior, Pareto beyond the TAIL_K-th largest."""
        v, n = self.values, len(self.values)
        x = np.asarray(x, dtype=float)
        count = n - np.searchsorted(v, x, side="left")
        prior = _prior_up(x)
        s = (count + PRIOR_WEIGHT * prior) / (n + PRIOR_WEIGHT)
        k = min(TAIL_K, n // 20)
        if k >= 5 and v[n - k] > 0:
            xk = v[n - k]
            sk = (k + PRIOR_WEIGHT * _prior_up(np.array([xk]))[0]) / (n + PRIOR_WEIGHT)
            far = x > xk
            with np.errstate(divide="ignore", invalid="ignore"):
                pareto = sk * np.exp(-np.log(np.maximum(x, xk) / xk) / self.xi_up)
            s = np.where(far, pareto, s)
        return np.clip(s, 1e-300, 1.0)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(V <= x), the same way on the lower side."""
        mirrored = PooledTail(-self.values[::-1], self.xi_down, self.xi_up)
        return mirrored.sf(-np.asarray(x, dtype=float))

    def upper_quantile(self, q: float) -> float:
        """The value x with P(V >= x) = q (for the normal range shown to offices)."""
        return _invert(self.sf, q, 1.0)

    def lower_quantile(self, q: float) -> float:
        return -_invert(lambda x: self.cdf(-x), q, 1.0)


def _hill(desc: np.ndarray) -> float:
    """Hill's tail index estimate (xi) from the values in descending order, shrunk to PRIOR_XI."""
    k = min(TAIL_K, len(desc) // 20)
    if k < 5 or desc[k - 1] <= 0:
        return PRIOR_XI
    top = desc[:k - 1]
    own = float(np.mean(np.log(top / desc[k - 1])))
    return (own * (k - 1) + PRIOR_XI * XI_WEIGHT) / (k - 1 + XI_WEIGHT)


def _prior_up(x: np.ndarray) -> np.ndarray:
    """The prior P(V >= x) for a standardised value: gaussian_prior on either side of zero."""
    x = np.asarray(x, dtype=float)
    knee, alpha = 2.0, 4.0
    u = np.abs(x)
    tail = np.where(u <= knee, ndtr(-u), ndtr(-knee) * (np.maximum(u, knee) / knee) ** (-alpha))
    return np.where(x >= 0, tail, 1.0 - tail)


def _invert(sf, q: float, start: float) -> float:
    """x with sf(x) = q for a decreasing sf (bisection on a bracket)."""
    lo, hi = -10.0, max(start, 1.0)
    while sf(np.array([hi]))[0] > q and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if sf(np.array([mid]))[0] > q:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass
class Calibration:
    """One statistic's calibration for one day: per-series scale and band, a pooled tail per band."""

    scale: np.ndarray               # (S,) divide z by this
    band: np.ndarray                # (S,) band index
    tails: dict[int, PooledTail]    # band -> pooled tail
    n_own: np.ndarray               # (S,) out-of-sample values of each series behind it
    _bounds: dict = field(default_factory=dict, repr=False)

    def p_up(self, z: np.ndarray) -> np.ndarray:
        return self._apply(z, "sf")

    def p_down(self, z: np.ndarray) -> np.ndarray:
        return self._apply(z, "cdf")

    def _apply(self, z: np.ndarray, side: str) -> np.ndarray:
        zs = np.asarray(z, dtype=float) / self.scale
        out = np.ones(len(zs))
        for b, tail in self.tails.items():
            m = self.band == b
            if m.any():
                out[m] = getattr(tail, side)(zs[m])
        missing = ~np.isin(self.band, list(self.tails))
        if missing.any():  # a band with no sample: the prior alone
            out[missing] = _prior_up(zs[missing]) if side == "sf" else 1.0 - _prior_up(zs[missing])
        return out

    def z_bounds(self, q: float) -> tuple[np.ndarray, np.ndarray]:
        """Per series, the values of z with calibrated tails q below and q above (the normal range
        is ``q = 0.005``; a central interval of level L is ``q = (1 - L) / 2``)."""
        if q not in self._bounds:
            lo, hi = np.full(len(self.scale), ndtri(q)), np.full(len(self.scale), -ndtri(q))
            for b, tail in self.tails.items():
                m = self.band == b
                if m.any():
                    lo[m], hi[m] = tail.lower_quantile(q), tail.upper_quantile(q)
            self._bounds[q] = (lo * self.scale, hi * self.scale)
        return self._bounds[q]

    @classmethod
    def build(cls, z: np.ndarray, band: np.ndarray, scale: np.ndarray | None = None,
              n_own: np.ndarray | None = None) -> "Calibration":
        """From a (series x samples) matrix of out-of-sample values (NaN where none), each
        series' band and scale (default 1)."""
        S = len(band)
        scale = np.ones(S) if scale is None else scale
        zs = z / scale[:, None]
        n = np.isfinite(z).sum(axis=1) if n_own is None else n_own
        # a band with too few values borrows its neighbours' (the busiest bands of a small city
        # hold a handful of series): from the busiest band down, a pool is merged into the next
        # band below until it has MIN_POOL values; the series keep their band
        counts = {int(b): int(np.isfinite(zs[band == b]).sum()) for b in np.unique(band)}
        group, members, acc = {}, [], 0
        for b in sorted(counts, reverse=True):
            members.append(b)
            acc += counts[b]
            if acc >= MIN_POOL or b == min(counts):
                for m in members:
                    group[m] = tuple(members)
                members, acc = [], 0
        if members:  # what is left at the bottom joins the last group formed
            last = group[min(group)] if group else ()
            for m in members + list(last):
                group[m] = tuple(members) + last
        tails = {}
        for key in set(group.values()):
            vals = zs[np.isin(band, key)].ravel()
            vals = vals[np.isfinite(vals)]
            if len(vals):
                tail = PooledTail.fit(vals)
                for b in key:
                    tails[b] = tail
        return cls(scale, band, tails, n)

    def summary(self) -> dict[str, int]:
        """Pooled values per band (for reports)."""
        return {BAND_NAMES[b]: int(len(t.values)) for b, t in sorted(self.tails.items())}
