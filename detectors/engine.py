"""One day's detection over a panel, as the DAG and the backtest both run it.

``score_all`` runs each detector a profile needs once over every series; ``decide`` turns the
calibrated tail probabilities into anomaly records:

- **the budget sets the threshold**: an office's monthly budget is split between its detectors
  (``SHARES``: half to one-day spikes and drops, a quarter to level shifts, an eighth each to
  emerging issues and spread) and each part shared over the detector's one-sided tests of the day
  on the office's series, so that on ordinary variation the office gets at most about ``budget``
  alerts a month. A series' share is weighted by the square root of its expected volume (a
  weighted Bonferroni split): a busy series, where an unusual day means many tickets, gets a looser
  threshold than a sparse one, and the total stays the budget;
- **materiality**: the volume floor (``min_expected``), an excess of at least ``min_excess`` tickets
  a day (a deficit for drops; for a sustained change, on average over its window) and a change of
  at least ``min_change`` (a day) or ``min_shift`` (a window);
- the cool-down (a series and kind that alerted within ``cooldown_days`` stays quiet unless the
  severity rises), the severity (SEVERITY_RULE) and an explanation that names the districts (or
  cities) and sub-categories that drove a regional or aggregate anomaly, with their share of the
  excess (ThirdEye-style drill-down).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors.base import ANOMALY_COLUMNS, severity
from detectors.count_detectors import PanelDetector, Result
from detectors.panel import Expectations, Panel
from detectors.profiles import ProfileArrays
from hotline.core.reference import Reference
from hotline.core.severity import SEVERITY_RANK

DAYS_PER_MONTH = 30.44
GATED = {"spike_drop", "level_shift"}  # need min_expected volume
CHANGE = {"spike_drop": "day", "level_shift": "window", "spread": "window", "emerging": "window"}
# A sustained change stays true for days and a new issue stays new: once raised, they are not
# raised again the next morning (a rising severity still gets through).
MIN_COOLDOWN = {"level_shift": 7, "spread": 7, "emerging": 28}
RECORD_COLUMNS = ANOMALY_COLUMNS + ["threshold", "excess", "history_days", "region_level", "region_code",
                                    "category_level", "category_code", "city_code"]


@dataclass
class Cooldown:
    """The last alert per (series, kind): day and severity rank."""

    last: dict[tuple[str, str], tuple[pd.Timestamp, int]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: pd.DataFrame) -> "Cooldown":
        c = cls()
        for r in records.sort_values("ds").itertuples(index=False):
            c.last[(r.series_id, r.kind)] = (pd.Timestamp(r.ds), SEVERITY_RANK[r.severity])
        return c

    def allows(self, sid: str, kind: str, day: pd.Timestamp, days: int, rank: int) -> bool:
        prev = self.last.get((sid, kind))
        return prev is None or (day - prev[0]).days > days or rank > prev[1]


def score_all(panel: Panel, exp: Expectations, t: int, detectors: dict[str, PanelDetector]) -> dict[str, Result]:
    """Each detector's result for day ``t``."""
    return {name: det.score_day(panel, exp, t) for name, det in detectors.items()}


SHARES = {"spike_drop": 0.5, "level_shift": 0.25, "emerging": 0.125, "spread": 0.125}


def thresholds(panel: Panel, results: dict[str, Result], prof: ProfileArrays,
               shares: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Each detector's alert threshold ``alpha`` per series. An office's monthly budget is split
    between the detectors it runs (``shares``, renormalised over the enabled ones) and each
    detector's part shared over its one-sided tests of the day on the office's series, a series'
    share weighted by the square root of its expected daily volume (at least ``min_expected``).
    An office's thresholds then sum, over its tests, to ``budget / 30.44`` a day."""
    shares = shares or SHARES
    n = len(panel)
    office = (panel.keys["region_level"] + ":" + panel.keys["region_code"]).to_numpy()
    volume = np.nan_to_num(results["spike_drop"]["exp"]) if "spike_drop" in results else np.ones(n)
    weight = np.sqrt(np.maximum(volume, np.maximum(prof.min_expected, 1e-3)))
    enabled = {d: prof.enabled[d] for d in results if d in prof.enabled}
    share_sum = sum(shares.get(d, 0.0) * on for d, on in enabled.items())  # per series: its detectors' shares
    out = {}
    for name, res in results.items():
        on = enabled.get(name, np.zeros(n, bool))
        tests = on * np.nan_to_num(res.get("tests", np.zeros(n)))
        part = np.where(share_sum > 0, shares.get(name, 0.0) * on / np.maximum(share_sum, 1e-12), 0.0)
        per_office = pd.Series(tests * weight).groupby(office).transform("sum").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(per_office > 0,
                                 prof.budget * part * weight / (DAYS_PER_MONTH * np.maximum(per_office, 1e-12)), 0.0)
    return out


def decide(panel: Panel, t: int, results: dict[str, Result], detectors: dict[str, PanelDetector],
           prof: ProfileArrays, cooldown: Cooldown, ref: Reference | None = None) -> pd.DataFrame:
    """The day's anomaly records (RECORD_COLUMNS), after the budget's thresholds, materiality and
    cool-down."""
    day = panel.days[t]
    y = panel.y(t)
    keys = panel.keys
    alphas = thresholds(panel, results, prof)
    rows = []
    for name, res in results.items():
        if name not in prof.enabled:
            continue
        p, alpha = res["p"], alphas[name]
        obs, exp = np.nan_to_num(res["obs"]), np.nan_to_num(res["exp"])
        down = (res["kind"] == "drop") | ((res["kind"] == "level_shift") & (res.get("cusum", np.ones(len(p))) < 0))
        excess = np.where(down, exp - obs, obs - exp)  # tickets beyond the expectation, the alert's way
        days = np.maximum(np.nan_to_num(res.get("days", np.ones(len(p)))), 1.0)  # the window's length
        ratio = obs / np.maximum(exp, 1e-9)
        need = 1 + (prof.min_change if CHANGE.get(name) == "day" else prof.min_shift)
        changed = np.where(down, ratio <= 1 / need, ratio >= need)
        material = (excess / days >= prof.min_excess) & changed  # an excess a day, sustained for a window
        hit = prof.enabled[name] & material & (p <= alpha)
        if name in GATED:  # enough volume to matter, or a jump from almost nothing to a real number
            big = obs >= 3 * prof.min_expected + 3
            hit &= (np.nan_to_num(res["expected"]) >= prof.min_expected) | ((res["kind"] == "spike") & big)
        for i in np.flatnonzero(hit):
            sev = str(severity(p[i], alpha[i]))
            sid, kind = str(panel.ids[i]), str(res["kind"][i])
            if not cooldown.allows(sid, kind, day, max(int(prof.cooldown[i]), MIN_COOLDOWN.get(kind, 0)),
                                   SEVERITY_RANK[sev]):
                continue
            cooldown.last[(sid, kind)] = (day, SEVERITY_RANK[sev])
            text = detectors[name].describe(res, i)
            drill = contributors(panel, res, i, ref)
            rows.append({"series_id": sid, "ds": day, "observed": float(y[i]), "expected": _f(res["expected"][i]),
                         "lower": _f(res["lower"][i]), "upper": _f(res["upper"][i]), "score": float(res["score"][i]),
                         "p_value": float(p[i]), "surprise": float(res["surprise"][i]), "severity": sev,
                         "kind": kind, "detector": name, "explanation": text + (f"。{drill}" if drill else ""),
                         "threshold": float(alpha[i]), "excess": float(excess[i]),
                         "history_days": int(res["history"][i]),
                         **keys.iloc[i][["region_level", "region_code", "category_level", "category_code",
                                         "city_code"]].to_dict()})
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def _f(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def contributors(panel: Panel, res: Result, i: int, ref: Reference | None, top: int = 3) -> str:
    """'主要来源 天河区 52%、白云区 31%；细分类别 噪音扰民 70%' for a series with children."""
    region, category = panel.children()
    sign = -1.0 if res["kind"][i] == "drop" or res.get("cusum", np.zeros(len(panel)))[i] < 0 else 1.0
    parts = []
    for label, kids, namer in (("主要来源", region.get(i), _region_name),
                               ("细分类别", category.get(i), _category_name)):
        if kids is None or len(kids) == 0:
            continue
        if "days_obs" in res:  # a window's total: the children over the parent's own span
            k = int(res["window"][i])
            excess = np.maximum(sign * (res["days_obs"][kids, -k:] - res["days_exp"][kids, -k:]).sum(axis=1), 0.0)
        else:
            excess = np.maximum(sign * (res["obs"][kids] - res["exp"][kids]), 0.0)
        total = excess.sum()
        if total <= 0:
            continue
        order = np.argsort(-excess)[:top]
        named = [f"{namer(panel, kids[j], ref)} {excess[j] / total:.0%}" for j in order if excess[j] > 0]
        parts.append(f"{label}（占超出量）{'、'.join(named)}" if sign > 0 else f"{label}（占减少量）{'、'.join(named)}")
    return "；".join(parts)


def _region_name(panel: Panel, j: int, ref: Reference | None) -> str:
    code = panel.keys["region_code"].iat[j]
    return ref.regions.name(code) if ref else code


def _category_name(panel: Panel, j: int, ref: Reference | None) -> str:
    code = panel.keys["category_code"].iat[j]
    return ref.taxonomy.name(code) if ref else code
