"""One day's detection over a panel, as the DAG and the backtest both run it.

``score_all`` runs each detector a profile needs once over every series; ``decide`` turns the
scores into anomaly records: the series' profile threshold and minimum volume, the cool-down
(a series and kind that alerted within ``cooldown_days`` stays quiet unless the severity rises),
the severity, and an explanation that names the districts (or cities) and sub-categories that
drove a regional or aggregate anomaly, with their share of the excess (ThirdEye-style drill-down).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors.base import ANOMALY_COLUMNS, severity
from detectors.count_detectors import ConsensusDetector, PanelDetector, Result
from detectors.panel import Expectations, Panel
from detectors.profiles import ProfileArrays
from hotline.reference import Reference

SEVERITY_RANK = {"yellow": 1, "orange": 2, "red": 3}
GATED = {"spike_drop", "robust_seasonal", "consensus", "level_shift"}  # need min_expected volume
CHANGE = {"spike_drop": "day", "robust_seasonal": "day", "consensus": "day", "level_shift": "window", "spread": "window"}
# A sustained change stays true for days and a new issue stays new: once raised, they are not
# raised again the next morning (a rising severity still gets through).
MIN_COOLDOWN = {"level_shift": 7, "spread": 7, "emerging": 28}
RECORD_COLUMNS = ANOMALY_COLUMNS + ["region_level", "region_code", "category_level", "category_code", "city_code"]


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
    """Each detector's result for day ``t``; a consensus reuses its members' results."""
    out: dict[str, Result] = {}
    for name, det in sorted(detectors.items(), key=lambda kv: isinstance(kv[1], ConsensusDetector)):
        if isinstance(det, ConsensusDetector):
            members = {m: out[m] for m in det.members if m in out and _same(detectors.get(m), det, m)}
            out[name] = det.score_day(panel, exp, t, members)
        else:
            out[name] = det.score_day(panel, exp, t)
    return out


def _same(member: PanelDetector | None, cons: ConsensusDetector, name: str) -> bool:
    """Whether the standalone detector has the parameters the consensus gives its member."""
    if member is None:
        return False
    wanted = (cons.member_params or {}).get(name, {})
    return all(getattr(member, k) == v for k, v in wanted.items())


def decide(panel: Panel, t: int, results: dict[str, Result], detectors: dict[str, PanelDetector],
           prof: ProfileArrays, cooldown: Cooldown, ref: Reference | None = None) -> pd.DataFrame:
    """The day's anomaly records (RECORD_COLUMNS), after thresholds, volume floor and cool-down."""
    day = panel.days[t]
    y = panel.y(t)
    keys = panel.keys
    rows = []
    for name, res in results.items():
        if name not in prof.enabled:
            continue
        hit = prof.enabled[name] & (res["score"] >= prof.threshold[name])
        if name in GATED:  # enough volume to matter, or a jump from almost nothing to a real number
            big = np.nan_to_num(res["obs"]) >= 3 * prof.min_expected + 3
            hit &= (np.nan_to_num(res["expected"]) >= prof.min_expected) | ((res["kind"] == "spike") & big)
        if name in CHANGE:  # practical significance: offices act on large changes, not merely sure ones
            ratio = np.nan_to_num(res["obs"]) / np.maximum(np.nan_to_num(res["exp"]), 1e-9)
            need = 1 + (prof.min_change if CHANGE[name] == "day" else prof.min_shift)
            hit &= (ratio >= need) | (ratio <= 1 / need)
        for i in np.flatnonzero(hit):
            sev = str(severity(res["score"][i], prof.threshold[name][i]))
            sid, kind = str(panel.ids[i]), str(res["kind"][i])
            if not cooldown.allows(sid, kind, day, max(int(prof.cooldown[i]), MIN_COOLDOWN.get(kind, 0)),
                                   SEVERITY_RANK[sev]):
                continue
            cooldown.last[(sid, kind)] = (day, SEVERITY_RANK[sev])
            text = detectors[name].describe(res, i)
            drill = contributors(panel, res, i, ref)
            rows.append({"series_id": sid, "ds": day, "observed": float(y[i]), "expected": _f(res["expected"][i]),
                         "lower": _f(res["lower"][i]), "upper": _f(res["upper"][i]), "score": float(res["score"][i]),
                         "severity": sev, "kind": kind, "detector": name,
                         "explanation": text + (f"。{drill}" if drill else ""),
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
    for label, kids, namer in (("主要来源", region.get(i), _region_name), ("细分类别", category.get(i), _category_name)):
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
