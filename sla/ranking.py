"""The horse race (赛马): each month, rank the cities of a province within their size tier (and the
districts of a city among themselves) on six handling metrics, fairly.

Fair, in three steps (the method of hospital league tables and funnel plots):

1. **Category mix** (indirect standardisation): every metric has a province-wide rate per level-2
   category this month. A unit's *expected* value is what the province would score on the unit's
   own mix of categories; its *adjusted* value is the province's overall value plus (observed -
   expected). A city with many hard categories (complaints with 13-day deadlines, low
   satisfaction) is measured against what those categories achieve elsewhere, not punished for them.
   The adjustment is exact when a unit is better or worse than the province by the same amount in
   every category; when its edge differs by category, the mix weights that edge (as indirect
   standardisation always does), so two units with identical per-category figures but different
   mixes can still differ a little.
2. **Scale**: each metric's score is the gap (observed - expected) over the gaps' spread across
   all ranked units of the level (sign so that higher is better), clipped to +/-3; the composite is
   the weighted mean of the scores as a T-score (50 = the province's level for the unit's mix, 10 =
   one spread).
3. **Noise**: units with fewer than ``min_closed`` closed tickets are listed, not ranked, and a
   metric counts as significantly worse only beyond the funnel limit (z of observed - expected
   against its binomial or handling-time variance). Gaps are not shrunk towards zero: shrinkage
   pulls a noisier (harder-mix) unit's gap more than an easier one's, and would rank a city with
   a harder mix below one with the same handling.

Ranks are within the group (the size tier for cities, the city for districts), ties share a rank.
The bottom of each group of two or more is flagged for follow-up, with the metrics significantly
worse than its mix predicts (funnel z below -``significance_z``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hotline.core.config import RankingSection, read_sla
from hotline.core.reference import ConfigError

# name -> (kind, higher is better, zh, en, unit)
METRICS: dict[str, tuple[str, bool, str, str, str]] = {
    "on_time": ("rate", True, "按时办结率", "On-time completion", "%"),
    "handling_hours": ("mean", False, "平均办理时长", "Mean handling time", "h"),
    "overdue": ("rate", False, "超期率", "Overdue rate", "%"),
    "repeat": ("rate", False, "重复诉求率", "Repeat-complaint rate", "%"),
    "satisfaction": ("rate", True, "满意率", "Satisfaction", "%"),
    "resolution": ("rate", True, "解决率", "Resolution rate", "%"),
}
# the aggregate's columns: <metric>_n (denominator), <metric>_x (events, or the sum of hours), and
# handling_hours_x2 (sum of squared hours)
AGG_COLUMNS = [f"{m}_{s}" for m in METRICS for s in ("n", "x")] + ["handling_hours_x2"]


_DEFAULTS = RankingSection()


@dataclass(frozen=True)
class RankingConfig:
    # the defaults and their meaning: hotline.core.config.RankingSection (docs/CONFIG.md)
    weights: Mapping[str, float] = field(default_factory=lambda: dict(RankingSection().weights))
    min_closed: int = _DEFAULTS.min_closed
    min_metric_n: int = _DEFAULTS.min_metric_n
    significance_z: float = _DEFAULTS.significance_z
    bottom: int = _DEFAULTS.bottom

    @classmethod
    def from_section(cls, sec: RankingSection, where: str) -> "RankingConfig":
        """From config/sla.yaml's validated ``ranking:`` section (keys, kinds and ranges checked
        there); the weights must name known metrics and have a positive sum."""
        weights = dict(sec.weights)
        unknown = sorted(set(weights) - set(METRICS))
        if unknown:
            raise ConfigError(f"{where}: ranking.weights: unknown metric(s) {', '.join(unknown)}; "
                             f"known: {', '.join(METRICS)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigError(f"{where}: ranking.weights must be >= 0 with a positive sum")
        return cls(weights, sec.min_closed, sec.min_metric_n, sec.significance_z, sec.bottom)


def benchmark(agg: pd.DataFrame) -> pd.DataFrame:
    """Per category: each metric's province-wide rate (or mean hours and their variance)."""
    cat = agg.groupby("category_l2")[AGG_COLUMNS].sum()
    out = pd.DataFrame(index=cat.index)
    for m, (kind, *_rest) in METRICS.items():
        n = cat[f"{m}_n"].where(cat[f"{m}_n"] > 0)
        out[m] = cat[f"{m}_x"] / n
        if kind == "mean":
            out[f"{m}_var"] = (cat["handling_hours_x2"] / n - out[m] ** 2).clip(lower=0)
        else:
            out[f"{m}_var"] = out[m] * (1 - out[m])
    overall = agg[AGG_COLUMNS].sum()
    out.attrs["overall"] = {m: float(overall[f"{m}_x"] / overall[f"{m}_n"]) if overall[f"{m}_n"] > 0 else None
                            for m in METRICS}
    return out


def rank_units(agg: pd.DataFrame, unit_col: str, groups: Mapping[str, str], cfg: RankingConfig,
               bench: pd.DataFrame | None = None, previous: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Rank the units of ``agg`` (rows: unit x category_l2 with :data:`AGG_COLUMNS`) within
    ``groups`` (unit -> group key). ``bench`` (from :func:`benchmark`) defaults to ``agg``'s own;
    ``previous`` maps unit -> (last month's group, rank): the rank counts only in the same group.
    Units outside ``groups`` (a region no longer configured) are left out. One row per unit, best
    first within each group."""
    bench = benchmark(agg) if bench is None else bench
    overall = bench.attrs["overall"]
    agg = agg[agg[unit_col].isin(set(groups))]
    units = sorted(groups)
    per = agg.groupby(unit_col)[AGG_COLUMNS].sum().reindex(units, fill_value=0)
    b = bench.reindex(agg["category_l2"].unique())
    rows = agg.join(b, on="category_l2")
    res = pd.DataFrame(index=pd.Index(units, name="unit"))
    res["group"] = [groups[u] for u in units]
    res["closed"] = per["handling_hours_n"].astype(int)
    res["rankable"] = res["closed"] >= cfg.min_closed
    detail: dict[str, pd.DataFrame] = {}
    for m, (kind, higher, *_rest) in METRICS.items():
        n = rows[f"{m}_n"]
        e = (n * rows[m].fillna(0)).groupby(rows[unit_col]).sum().reindex(units, fill_value=0).astype(float)
        v = (n * rows[f"{m}_var"].fillna(0)).groupby(rows[unit_col]).sum().reindex(units, fill_value=0).astype(float)
        nn = per[f"{m}_n"].astype(float)
        o = per[f"{m}_x"].astype(float)
        has = (nn > 0) & (overall[m] is not None)
        obs, exp = (o / nn).where(has), (e / nn).where(has)
        base = overall[m] if overall[m] is not None else np.nan
        adj = (base + obs - exp)
        if kind == "rate":
            adj = adj.clip(0, 1)
        sign = 1.0 if higher else -1.0
        z = (sign * (o - e) / np.sqrt(v.where(v > 0))).where(has)
        # a metric with too few tickets behind it (a handful rated, a few due) gets no score: its
        # noisy gap would also widen the spread that scales everyone else's
        gap = (obs - exp).where(res["rankable"] & has & (nn >= cfg.min_metric_n))
        spread = float(gap.std(ddof=0)) if gap.notna().sum() >= 2 else 0.0
        score = (sign * gap / spread).clip(-3, 3) if spread > 1e-12 else gap * 0.0
        detail[m] = pd.DataFrame({"n": nn.astype(int), "observed": obs, "expected": exp, "adjusted": adj,
                                  "benchmark": base, "z": z, "score": score})
    w = pd.Series({m: float(cfg.weights.get(m, 0.0)) for m in METRICS})
    scores = pd.DataFrame({m: detail[m]["score"] for m in METRICS})
    wsum = scores.notna().mul(w, axis=1).sum(axis=1)
    comp = scores.fillna(0).mul(w, axis=1).sum(axis=1) / wsum.where(wsum > 0)
    res["composite"] = (50 + 10 * comp).where(res["rankable"])
    # ranks on the composite as shown (two decimals): equal at that precision is a shared rank
    res["rank"] = res[res["rankable"]].groupby("group")["composite"].transform(
        lambda c: c.round(2).rank(ascending=False, method="min"))
    res["group_size"] = res["group"].map(res[res["rankable"]].groupby("group").size()).fillna(0).astype(int)
    for m in METRICS:
        sc = detail[m]["score"].where(res["rankable"]).round(6)
        detail[m]["rank"] = sc.groupby(res["group"]).rank(ascending=False, method="min")
    prev = previous or {}
    res["rank_prev"] = [prev[u][1] if u in prev and prev[u][0] == res.at[u, "group"] else None for u in units]
    # the bottom ``bottom`` of each group, ties included; a group tied throughout has no bottom
    ranked = res[res["rankable"]]
    worst_rank = ranked.groupby("group")["composite"].transform(
        lambda c: c.round(2).rank(ascending=False, method="max"))
    res["flagged"] = ((worst_rank > ranked["group_size"] - cfg.bottom) & (ranked["rank"] > 1)).reindex(
        res.index).fillna(False).astype(bool)
    res["significantly_worse"] = [[m for m in METRICS if detail[m].at[u, "z"] < -cfg.significance_z
                                   and res.at[u, "rankable"]] for u in units]
    res["metrics"] = [{m: {k: _clean(detail[m].at[u, k]) for k in detail[m].columns} for m in METRICS}
                      for u in units]
    return best_first(res.reset_index())


def best_first(res: pd.DataFrame) -> pd.DataFrame:
    """Rows by group, then rank (units not ranked last), then code."""
    order = res["rank"].fillna(10_000)
    return res.assign(_o=order).sort_values(["group", "_o", "unit"]).drop(columns="_o").reset_index(drop=True)


def _clean(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    v = float(v)
    return None if not np.isfinite(v) else round(v, 6)


def load_ranking_config(config_dir: Any) -> RankingConfig:
    """The ``ranking:`` section of config/sla.yaml."""
    from pathlib import Path

    return RankingConfig.from_section(read_sla(config_dir).ranking, str(Path(config_dir) / "sla.yaml"))
