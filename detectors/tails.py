"""Calibrated tail probabilities: how often a value this extreme has really come, not how often a
textbook distribution says it should.

A detector's raw statistic (a standardised residual ``z``, a CUSUM sum, a window's tail) is only
as good as the model behind it: real complaint series have bursts, batch entries and shifts that
no negative binomial or Gaussian describes, so a raw tail of 1e-9 may in truth come every few
months. The probability stated to an office is therefore the statistic's *calibrated* tail: its
rank among the same statistic's own out-of-sample past values (each computed before its day was
known), blended with a prior where that past is short, and beyond the largest values seen, a
power-law (Pareto) tail whose index is estimated from the largest past values (Hill's estimator).
Heavy-tailed series get heavy tails; light-tailed ones get the tail their data shows, a little on
the safe side (a power law falls off more slowly than a Gaussian).

- :class:`OnlineTail`: one stream, O(1) work per value (``score-csv``): cumulative counts and
  log-sums of past values on a fixed grid; the tail probability interpolates the counts (log-log)
  and extrapolates beyond them.

``surprise(p) = -log10(p)``: 3 = a one-in-a-thousand day. It keeps the ordering where ``1 - p``
runs out of digits, so scores rank down to p ~ 1e-300.
"""
from __future__ import annotations

import bisect
import math

import numpy as np

_SQRT2 = math.sqrt(2.0)
# Thresholds on |z| at which past values are counted: fine in the body, geometric in the tail.
GRID = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 17.0, 20.0, 24.0, 28.0,
        34.0, 40.0, 48.0, 56.0, 68.0, 80.0, 100.0, 120.0, 150.0, 180.0, 220.0, 270.0, 330.0, 400.0, 500.0, 1000.0)
_LOG_GRID = tuple(math.log(g) for g in GRID)
_G0 = GRID[0]
_NG = len(GRID)
_bisect_right = bisect.bisect_right
MIN_P = 1e-300


def surprise(p) -> np.ndarray | float:
    """``-log10(p)``: 2 = a one-in-a-hundred value, 6 = one in a million."""
    if np.ndim(p) == 0:
        return -math.log10(max(float(p), MIN_P))
    return -np.log10(np.maximum(np.asarray(p, dtype=float), MIN_P))


def gaussian_prior(u: float, knee: float = 2.0, alpha: float = 4.0) -> float:
    """The prior one-sided tail of a standardised residual: Gaussian up to ``knee`` standard
    deviations, a power law of index ``alpha`` beyond (real series are heavier-tailed than any
    Gaussian; the series' own values take over as they come)."""
    if u <= knee:
        return 0.5 * math.erfc(u / _SQRT2)
    return 0.5 * math.erfc(knee / _SQRT2) * (u / knee) ** (-alpha)


class _Side:
    """Counts and log-sums of the past values at or beyond each grid threshold (one side)."""

    __slots__ = ("count", "logsum", "last")

    def __init__(self) -> None:
        self.count = [0] * len(GRID)
        self.logsum = [0.0] * len(GRID)
        self.last = 0  # the last threshold with min_count values past it (counts only grow)

    def learn(self, u: float, min_count: int) -> None:
        if u < GRID[0]:
            return
        lu = math.log(u)
        count, logsum = self.count, self.logsum
        for i in range(bisect.bisect_right(GRID, u)):
            count[i] += 1
            logsum[i] += lu
        last = self.last
        while last + 1 < _NG and count[last + 1] >= min_count:
            last += 1
        self.last = last


class OnlineTail:
    """Calibrated tail probabilities of a stream of standardised values, learnt as they come.

    ``pvalue(z)`` judges ``z`` against the values learnt so far (call it before ``learn(z)`` to
    stay out of sample). Two-sided by default: ``2 * min(P(Z >= z), P(Z <= z))``, each side with
    its own counts (spikes and drops have different tails: counts cannot fall below zero). One-sided
    (``two_sided=False``): ``P(Z >= z)`` for a non-negative statistic such as a CUSUM sum.

    Parameters: ``prior`` (the one-sided tail before any data, e.g. :func:`gaussian_prior`) with
    the weight of ``prior_weight`` values; ``min_count``: the tail is read off the counts up to the
    last grid threshold with at least this many values beyond it, and extrapolated past it by a
    power law whose index comes from those values (Hill's estimator), shrunk to ``prior_alpha`` with
    the weight of ``prior_alpha_weight`` values.
    """

    def __init__(self, two_sided: bool = True, prior=gaussian_prior, prior_weight: float = 30.0,
                 min_count: int = 8, prior_alpha: float = 4.0, prior_alpha_weight: float = 2.0):
        self.two_sided = two_sided
        self.prior = prior
        self.prior_weight = prior_weight
        self.min_count = min_count
        self.prior_alpha = prior_alpha
        self.prior_alpha_weight = prior_alpha_weight
        self.n_ = 0
        self.up_, self.down_ = _Side(), _Side()
        self._prior_grid = [prior(g) for g in GRID]

    def judge(self, z: float) -> float:
        """``pvalue(z)``, then ``learn(z)``: the out-of-sample step of a stream, the two inlined
        (score-csv calls this once a row; the same arithmetic as ``pvalue`` and ``learn``)."""
        if z >= 0:
            side, u, at_zero = self.up_, z, (0.5 if self.two_sided else 1.0)
        elif self.two_sided:
            side, u, at_zero = self.down_, -z, 0.5
        else:
            self.n_ += 1
            self.down_.learn(-z, self.min_count)
            return 1.0
        w = self.prior_weight
        count, prior = side.count, self._prior_grid
        denom = self.n_ + w
        self.n_ += 1
        if u < _G0:  # inside the body: no counts change, a linear blend to the first threshold
            p = at_zero + ((count[0] + w * prior[0]) / denom - at_zero) * u / _G0
        else:
            j = _bisect_right(GRID, u) - 1
            lu = math.log(u)
            last = side.last
            if j < last:
                lo = (count[j] + w * prior[j]) / denom
                hi = (count[j + 1] + w * prior[j + 1]) / denom
                p = lo * (hi / lo) ** ((lu - _LOG_GRID[j]) / (_LOG_GRID[j + 1] - _LOG_GRID[j]))
            else:
                s_last = (count[last] + w * prior[last]) / denom
                hill = side.logsum[last] - count[last] * _LOG_GRID[last]
                xi = (hill + self.prior_alpha_weight / self.prior_alpha) / (count[last] + self.prior_alpha_weight)
                p = s_last * math.exp(-(lu - _LOG_GRID[last]) / xi)
                p = p if p > MIN_P else MIN_P
            logsum = side.logsum  # learn: every threshold at or below u counts it
            for i in range(j + 1):
                count[i] += 1
                logsum[i] += lu
            while last + 1 < _NG and count[last + 1] >= self.min_count:
                last += 1
            side.last = last
        p = p * 2.0 if self.two_sided else p
        return p if p < 1.0 else 1.0

    def learn(self, z: float) -> None:
        self.n_ += 1
        if z >= 0:
            self.up_.learn(z, self.min_count)
        else:
            self.down_.learn(-z, self.min_count)

    def pvalue(self, z: float) -> float:
        if not self.two_sided:
            return min(1.0, self._sf(self.up_, z, 1.0)) if z > 0 else 1.0
        side, u = (self.up_, z) if z >= 0 else (self.down_, -z)
        return min(1.0, 2.0 * self._sf(side, u, 0.5))

    def _sf(self, side: _Side, u: float, at_zero: float) -> float:
        """P(U >= u) on one side: the blended counts (log-log between grid thresholds), a power
        law beyond the last threshold with ``min_count`` values past it."""
        n, w = self.n_, self.prior_weight
        count, prior = side.count, self._prior_grid
        denom = n + w
        if u < GRID[0]:
            s0 = (count[0] + w * prior[0]) / denom
            return at_zero + (s0 - at_zero) * u / GRID[0]
        last = side.last
        j = bisect.bisect_right(GRID, u) - 1
        if j < last:
            lo = (count[j] + w * prior[j]) / denom
            hi = (count[j + 1] + w * prior[j + 1]) / denom
            t = (math.log(u) - _LOG_GRID[j]) / (_LOG_GRID[j + 1] - _LOG_GRID[j])
            return lo * (hi / lo) ** t
        s_last = (count[last] + w * prior[last]) / denom
        # Hill: mean log(u / threshold) of the values past it, shrunk to the prior's index
        hill = side.logsum[last] - count[last] * _LOG_GRID[last]
        xi = (hill + self.prior_alpha_weight / self.prior_alpha) / (count[last] + self.prior_alpha_weight)
        return max(s_last * math.exp(-(math.log(u) - _LOG_GRID[last]) / xi), MIN_P)
