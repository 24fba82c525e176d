"""`hotline calibrate`: the probabilities the detectors state, against what happened.

Every day of a period is judged as the daily job judges it (the same panel, expectations and
calibration, nothing from the future), and every one-sided test the detectors make is recorded:
its calibrated tail ``p``, the threshold the office's budget set that day (``alpha``), the series'
volume band and its city's tier. Then:

- **PIT histogram**: the day's calibrated probability integral transform, randomised within the
  count's own probability (so that it is exactly uniform under a right model, small counts
  included); flat when the stated distribution is right, a U when it is too narrow, a hump when
  too wide;
- **coverage** of the calibrated central intervals at 50/80/95/99%, read on the same PIT (integer
  intervals over-cover small counts by construction: an interval of [0, 1] for a series of 0.3 a
  day holds 96% of days, whatever its nominal level);
- **exceedance**: at 1e-2, 1e-3 and 1e-4, and at each severity threshold (alpha: yellow and above,
  alpha/10: orange and above, alpha/100: red), how often a test came out at or below the claimed
  rate, against the claim (ratio 1 = true; 2 = days called that rare came twice as often), in all
  and by detector, volume band and tier.

Real events are included: they are part of what an office is told is rare.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.calibration import BAND_NAMES
from detectors.engine import score_all, thresholds
from detectors.panel import Expectations, Panel
from detectors.profiles import DetectionConfig

LEVELS = (1e-2, 1e-3, 1e-4)
SEVERITY_STEPS = (("yellow", 1.0), ("orange", 10.0), ("red", 100.0))  # alert threshold / step
COVERAGE = (50, 80, 95, 99)
PIT_BINS = 10
SHORT_DAYS = 28  # a series with fewer of its own out-of-sample days is judged on its pool (its scale ~ 1)


@dataclass
class Record:
    """The tests and one-day predictive checks of a replay, accumulated day by day."""

    detector: list[np.ndarray] = field(default_factory=list)
    p: list[np.ndarray] = field(default_factory=list)
    alpha: list[np.ndarray] = field(default_factory=list)
    band: list[np.ndarray] = field(default_factory=list)
    tier: list[np.ndarray] = field(default_factory=list)
    pit: list[np.ndarray] = field(default_factory=list)
    covered: dict[int, list[np.ndarray]] = field(default_factory=lambda: {c: [] for c in COVERAGE})
    series: set = field(default_factory=set)
    short: set = field(default_factory=set)  # series judged with fewer than SHORT_DAYS residuals of their own
    days: set = field(default_factory=set)

    def add(self, panel: Panel, t: int, results: dict[str, dict], alpha: dict[str, np.ndarray], keep: np.ndarray,
            tiers: np.ndarray) -> None:
        sd = results.get("spike_drop")
        if sd is None:
            return
        band = sd["calibration"].band
        tests = {
            ("spike_drop", "up"): (sd["p_up"], sd["mu"] > 0),
            ("spike_drop", "down"): (sd["p_down"], sd["p_down"] < 1.0),
        }
        if "level_shift" in results:
            ls = results["level_shift"]
            tests[("level_shift", "up")] = (ls["p_up"], ls["tests"] > 0)
            tests[("level_shift", "down")] = (ls["p_down"], ls["tests"] > 0)
        for name in ("emerging", "spread"):
            if name in results:
                tests[(name, "up")] = (results[name]["p"], results[name]["tests"] > 0)
        for (name, _side), (p, made) in tests.items():
            m = keep & made
            self.detector.append(np.full(int(m.sum()), name, object))
            self.p.append(p[m])
            self.alpha.append(alpha.get(name, np.zeros(len(p)))[m])
            self.band.append(band[m])
            self.tier.append(tiers[m])
        live = keep & (sd["mu"] > 0) & np.isfinite(panel.Y[:, t])
        pit = sd["pit"][live]
        self.pit.append(pit)
        for c in COVERAGE:  # the central interval of level c, read on the randomised PIT (exact for counts)
            self.covered[c].append(np.abs(pit - 0.5) <= c / 200)
        self.series.update(np.asarray(panel.ids)[keep].tolist())
        self.short.update(np.asarray(panel.ids)[keep & (sd["calibration"].n_own < SHORT_DAYS)].tolist())
        self.days.add(panel.days[t])

    def frame(self) -> pd.DataFrame:
        cat = lambda xs, dtype=float: np.concatenate(xs) if xs else np.array([], dtype)  # noqa: E731
        return pd.DataFrame({"detector": cat(self.detector, object), "p": cat(self.p), "alpha": cat(self.alpha),
                             "band": cat(self.band, int), "tier": cat(self.tier, object)})


def _ratio(hits: float, claimed: float) -> float | None:
    return None if claimed <= 0 else round(hits / claimed, 3)


def exceedance(tests: pd.DataFrame) -> dict[str, Any]:
    """Observed against claimed, at the fixed levels and at the severity thresholds."""
    n = len(tests)
    out = {"tests": n, "levels": [], "severity": []}
    for a in LEVELS:
        hits = int((tests["p"] <= a).sum())
        out["levels"].append({"claimed": a, "hits": hits, "expected": round(n * a, 2),
                              "observed_rate": hits / n if n else None, "ratio": _ratio(hits, n * a)})
    for name, step in SEVERITY_STEPS:
        thr = tests["alpha"] / step
        ok = thr > 0
        hits = int((tests["p"][ok] <= thr[ok]).sum())
        claimed = float(thr[ok].sum())
        out["severity"].append({"severity": name, "threshold": f"alpha/{step:g}" if step > 1 else "alpha",
                                "hits": hits, "expected": round(claimed, 2), "ratio": _ratio(hits, claimed)})
    return out


def summarise(rec: Record) -> dict[str, Any]:
    tests = rec.frame()
    pit = np.concatenate(rec.pit) if rec.pit else np.array([])
    hist = np.histogram(np.clip(pit, 0, 1 - 1e-12), bins=PIT_BINS, range=(0, 1))[0]
    shares = (hist / max(len(pit), 1)).tolist()
    coverage = {c: (float(np.concatenate(v).mean()) if v and sum(len(x) for x in v) else None)
                for c, v in rec.covered.items()}
    out = {"series": len(rec.series), "days": len(rec.days), "series_days": int(len(pit)),
           "short_series": len(rec.short),
           "pit": {"bins": PIT_BINS, "shares": [round(x, 4) for x in shares],
                   "worst_bin_ratio": round(max(shares) * PIT_BINS, 3) if len(pit) else None},
           "coverage": {str(c): (round(v, 4) if v is not None else None) for c, v in coverage.items()},
           "exceedance": exceedance(tests),
           "by_detector": {d: exceedance(g) for d, g in tests.groupby("detector")},
           "by_band": {BAND_NAMES[b]: exceedance(g) for b, g in tests.groupby("band")},
           "by_tier": {t: exceedance(g) for t, g in tests.groupby("tier")}}
    return out


def replay(panel: Panel, days: pd.DatetimeIndex, cfg: DetectionConfig, keep: np.ndarray, tiers: np.ndarray,
           own: np.ndarray | None = None, rec: Record | None = None,
           progress: Callable[[int], None] | None = None) -> Record:
    """Judge each of ``days`` on ``panel`` as the daily job would and record the tests of the
    series in ``keep``; ``own``: the series the scope alerts on (the province scope's own)."""
    rec = rec or Record()
    prof = cfg.arrays(panel)
    if own is not None:
        for d in prof.enabled:
            prof.enabled[d] &= own
    dets = {d: cfg.detector(d) for d in sorted(set(prof.detectors) | {"spike_drop"})}
    exp = Expectations(panel)
    for day in days:
        t = panel.index(day)
        results = score_all(panel, exp, t, dets)
        rec.add(panel, t, results, thresholds(panel, results, prof), keep, tiers)
        exp.forget_before(t - 7 * 30)
        if progress:
            progress(1)
    return rec


def tiers_of(panel: Panel, tier_of_city: dict[str, str]) -> np.ndarray:
    k = panel.keys
    return np.where(k["region_level"] == "province", "province",
                    k["city_code"].map(lambda c: tier_of_city.get(c, "-")).to_numpy())


def level_mask(panel: Panel, level: str | None) -> np.ndarray:
    """Series of ``REGION:CATEGORY`` (e.g. district:l2; ``all`` or None: every series)."""
    if not level or level == "all":
        return np.ones(len(panel), bool)
    rl, _, cl = level.partition(":")
    m = panel.keys["region_level"].to_numpy() == rl
    return m & (panel.keys["category_level"].to_numpy() == cl) if cl else m


def scope_panels(engine, start: dt.date, end: dt.date, ref, province: str, panel_days: int) -> Iterator[
        tuple[str, str, Panel]]:
    """Each scope of the province (its cities in the warehouse, then the province) as a panel."""
    from sqlalchemy import select

    from detectors.job import districts_of, load_panel
    from warehouse.schema import daily_counts

    prov = ref.regions.province(province)
    with engine.connect() as conn:
        present = {r[0] for r in conn.execute(select(daily_counts.c.region_code).where(
            daily_counts.c.region_level == "city").distinct())}
    for code, level in [(c.code, "city") for c in prov.cities if c.code in present] + [(province, "province")]:
        panel = load_panel(engine, start - dt.timedelta(days=panel_days), end, code, level, prov.calendar,
                           districts_of(ref, code))
        if panel is not None:
            yield code, level, panel
