"""The count distribution every forecast and detector shares: negative binomial with mean ``mu``
and size ``r`` (variance mu + mu²/r), Poisson where ``r`` is infinite. Vectorised over arrays."""
from __future__ import annotations

import numpy as np
from scipy.stats import nbinom, poisson


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

    def cdf(self, k):
        return np.where(self.pois, poisson.cdf(k, self.mu), nbinom.cdf(k, self.r, self.p))

    def sf(self, k):
        return np.where(self.pois, poisson.sf(k, self.mu), nbinom.sf(k, self.r, self.p))

    def ppf(self, q):
        return np.where(self.pois, poisson.ppf(q, self.mu), nbinom.ppf(q, self.r, self.p))

    def isf(self, q):
        """The smallest k with P(Y > k) <= q: exact for upper tails too small for ``ppf(1 - q)``."""
        return np.where(self.pois, poisson.isf(q, self.mu), nbinom.isf(q, self.r, self.p))
