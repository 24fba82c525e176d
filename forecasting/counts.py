"""The count distribution every forecast and detector shares: negative binomial with mean ``mu``
and size ``r`` (variance mu + mu²/r), Poisson where ``r`` is infinite. Vectorised over arrays."""
from __future__ import annotations

import numpy as np
from scipy.stats import nbinom, poisson

BANDS = np.array([0.3, 1.0, 3.0, 10.0, 30.0, 100.0])  # band edges, expected tickets a day
BAND_NAMES = ["<0.3", "0.3-1", "1-3", "3-10", "10-30", "30-100", ">=100"]


def band_of(mean_per_day) -> np.ndarray:
    """Volume band index (0..6) of each series from its expected tickets a day: the pools in which
    the detectors' tails and the forecast intervals are calibrated."""
    return np.searchsorted(BANDS, np.nan_to_num(np.asarray(mean_per_day, dtype=float)), side="right")


class CountDist:
    def __init__(self, mu, r):
        self.mu = np.maximum(np.asarray(mu, dtype=float), 1e-9)
        r = np.broadcast_to(np.asarray(r, dtype=float), self.mu.shape)
        self.pois = ~np.isfinite(r)
        self.r = np.where(self.pois, 1.0, r)
        self.p = self.r / (self.r + self.mu)

    @property
    def var(self):
        """mu + mu²/r (mu for Poisson)."""
        return self.mu + np.where(self.pois, 0.0, self.mu ** 2 / self.r)

    def _tail(self, k, upper: bool) -> np.ndarray:
        """P(Y <= k), or P(Y > k) when ``upper``: each family computed only where it applies (the
        Poisson and the negative binomial entries of a panel), not both everywhere."""
        k = np.broadcast_to(np.asarray(k, dtype=float), self.mu.shape)
        out = np.empty(self.mu.shape)
        pois = self.pois
        if pois.any():
            out[pois] = (poisson.sf if upper else poisson.cdf)(k[pois], self.mu[pois])
        nb = ~pois
        if nb.any():
            out[nb] = (nbinom.sf if upper else nbinom.cdf)(k[nb], self.r[nb], self.p[nb])
        return out

    def cdf(self, k):
        return self._tail(k, upper=False)

    def sf(self, k):
        return self._tail(k, upper=True)

    def ppf(self, q):
        return np.where(self.pois, poisson.ppf(q, self.mu), nbinom.ppf(q, self.r, self.p))

    def isf(self, q):
        """The smallest k with P(Y > k) <= q: exact for upper tails too small for ``ppf(1 - q)``."""
        return np.where(self.pois, poisson.isf(q, self.mu), nbinom.isf(q, self.r, self.p))
