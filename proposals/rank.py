"""Candidates for the issue of the month and their scores: pure functions over frames, no database.

A candidate is a category (level 1 or 2) in a place: for a city, the city as a whole (across its
districts) or one district; for the province, the province as a whole or one city. Its id has the
series-id form ``city:440300|l2:utilities.water_supply``. Every component is in [0, 1]; the score
is their weighted mean (config/proposals.yaml) and every component is kept for display.

Counts are compared as daily averages over the days the warehouse covers in each month, so a
month that is still running, or the first, partial month of the data, compares fairly.
"""
from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hotline.core.series import parse, series_id
from proposals.config import COMPONENTS, MAX_OF, PRINCIPLES, ProposalsConfig

RATES = {  # component -> (numerator, denominator, complement)
    "repeat": ("n_repeat", "n_tickets", False),
    "unresolved": ("n_resolved", "n_closed", True),
    "unsatisfied": ("n_unsatisfied", "n_rated", False),
    "overdue": ("n_overdue", "n_tickets", False),
}
PEAK_WINDOW = 14  # days: the peak fortnight of the month counts as growth too (a surge is not diluted)
SEASONAL_PRIOR = 10.0  # pseudo-tickets per 30 days that shrink seasonal ratios of small series towards 1


@dataclass(frozen=True)
class Scope:
    code: str            # a city code, or the province code
    level: str           # city or province
    children: tuple[str, ...]  # its districts (city) or cities (province)

    @property
    def child_level(self) -> str:
        return "district" if self.level == "city" else "city"


@contextmanager
def warnings_off():
    """numpy's "mean of empty slice" for series with no history: the NaN is the answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


candidate_id = series_id  # a candidate is a series of the warehouse (hotline/core/series.py)


def parse_id(cid: str) -> tuple[str, str, str, str]:
    return tuple(parse(cid))


def overlaps(a: str, b: str, parent: Mapping[str, str]) -> bool:
    """Two candidates overlap when their categories are the same or one contains the other, and
    their places are the same or one contains the other."""
    ra, ca = parse_id(a)[1], parse_id(a)[3]
    rb, cb = parse_id(b)[1], parse_id(b)[3]
    cat = ca == cb or ca.split(".")[0] == cb or cb.split(".")[0] == ca
    place = ra == rb or parent.get(ra) == rb or parent.get(rb) == ra
    return cat and place


def _daily(counts: pd.DataFrame, coverage: pd.Series) -> pd.DataFrame:
    """Monthly counts (series x months) as daily averages; months covered less than half: NaN."""
    days = coverage.reindex(counts.columns).astype(float)
    full = pd.Series([m.days_in_month for m in counts.columns], index=counts.columns, dtype=float)
    ok = days >= 0.5 * full
    out = counts.div(days.where(ok), axis=1)
    return out


def _log_score(ratio: np.ndarray, full: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.log(np.maximum(ratio, 1e-9)) / math.log(full)
    return np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)


@dataclass
class ScopeScores:
    """A scope's candidates (best first) and its 苗头 watch list (surges, new issues, peaks ahead)."""
    candidates: pd.DataFrame
    sprouts: pd.DataFrame


def rank_scope(monthly: pd.DataFrame, daily: pd.DataFrame, coverage: pd.Series, month: pd.Period, scope: Scope,
               cfg: ProposalsConfig, anomaly_counts: pd.DataFrame | None = None,
               parent_region: Mapping[str, str] | None = None, **kw: Any) -> pd.DataFrame:
    """The scope's candidates, best first (see :func:`score_scope`)."""
    return score_scope(monthly, daily, coverage, month, scope, cfg, anomaly_counts, parent_region, **kw).candidates


def _share_score(share: np.ndarray, full: float, span: float) -> np.ndarray:
    """A share of the scope's tickets on a log scale: the largest candidate's share scores 1, a
    ``span``-th of it 0."""
    if not full > 0:
        return np.zeros(len(share))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.log(np.maximum(share, 1e-12) / full) / math.log(span) + 1.0
    return np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)


def score_scope(monthly: pd.DataFrame, daily: pd.DataFrame, coverage: pd.Series, month: pd.Period, scope: Scope,
                cfg: ProposalsConfig, anomaly_counts: pd.DataFrame | None = None,
                parent_region: Mapping[str, str] | None = None, previous: Sequence[str] = (),
                earlier: Sequence[tuple[str, str]] = (), lead_department: Mapping[str, str] | None = None,
                handling: pd.DataFrame | None = None) -> ScopeScores:
    """Score the scope's candidates for the evidence ``month`` by the four principles.

    ``monthly``: one row per series and month (``series_id``, key columns, ``month`` as a monthly
    Period, the count columns of daily_counts): the scope's total (category ``*``), its categories,
    and the same for its sub-regions. ``daily``: ``series_id, ds, y`` for the days of ``month``.
    ``coverage``: days with data per month. ``anomaly_counts``: ``region_level, region_code,
    category_level, category_code, severity, n`` raised in the month. ``previous``: the scope's
    last chosen issues, newest first (balance); ``earlier``: ``(month, candidate)`` of every earlier
    choice (a problem returning after its campaign); ``lead_department``: category code -> 牵头部门;
    ``handling``: ``series_id, n_handled, handling_days`` over the last 12 months.

    A candidate is a category of the scope as a whole, present in several of its sub-regions.
    Every component is in [0, 1]; a principle is the weighted mean of its known components; the
    score is the principles' weighted mean (the outlook's share counted only as far as frequency
    or hardness carries it) less the balance penalty.
    """
    sc = cfg.scoring
    parent_region = dict(parent_region or {})
    months = pd.period_range(month - (int(sc["history_months"]) - 1), month, freq="M")
    year = [p for p in months if p > month - 12]
    m = monthly[monthly["month"].isin(months)]
    empty = ScopeScores(pd.DataFrame(), pd.DataFrame())
    if m.empty:
        return empty
    keys = m.drop_duplicates("series_id").set_index("series_id")[
        ["region_level", "region_code", "category_level", "category_code"]]
    counts = m.pivot_table(index="series_id", columns="month", values="n_tickets", aggfunc="sum")
    counts = counts.reindex(columns=months).fillna(0.0)
    avg = _daily(counts, coverage)
    days_m = float(coverage.get(month, 0) or 0)
    if days_m == 0:
        return empty
    total_id = candidate_id(scope.level, scope.code, "all", "*")
    levels = list(sc["candidate_levels"])
    whole_mask = ((keys["region_level"] == scope.level) & (keys["region_code"] == scope.code))
    cat_ok = keys["category_level"].isin(levels) & ~keys["category_code"].map(cfg.excluded)
    child_mask = (keys["region_level"] == scope.child_level) & keys["region_code"].isin(scope.children)
    scope_months = (counts.loc[total_id] if total_id in counts.index else
                    counts[whole_mask & (keys["category_level"] == "all")].sum()).reindex(months).fillna(0.0)
    scope_total = float(scope_months[month])
    scope_year = float(scope_months[year].sum())

    is_row = cat_ok & (whole_mask | child_mask)
    rows = keys[is_row].copy()
    v = counts.loc[rows.index, month].to_numpy(dtype=float)
    keep = (v >= float(sc["min_tickets"])) & ((rows["region_level"] != scope.level).to_numpy()
                                              | (v >= float(sc["min_share_of_scope"]) * scope_total))
    rows = rows[keep]
    if rows.empty:
        return empty
    ids = rows.index
    whole = (rows["region_level"] == scope.level).to_numpy()
    v = counts.loc[ids, month].to_numpy(dtype=float)
    a = avg.loc[ids]
    expect, seasonal = _expectations(avg, month)

    # --- outlook (未诉先办): the month against what was expected of it, the months ahead -------------
    recent = a[[month - k for k in (1, 2, 3)]].mean(axis=1, skipna=True).to_numpy()
    yoy = a[month - 12].to_numpy() if (month - 12) in a.columns else np.full(len(ids), np.nan)
    expected = expect.loc[ids, month].to_numpy()
    peak, peak_start = _peak_window(daily, ids, month)
    out = pd.DataFrame(index=ids)
    out["tickets"] = v
    out["daily_avg"] = v / days_m
    out["base_recent"] = recent
    out["base_last_year"] = yoy
    out["expected_daily"] = expected
    out["expected_basis"] = np.where(seasonal.loc[ids].to_numpy(), "seasonal", "recent")
    sigma0 = float(sc["month_noise"])
    ratios = {}
    for name, count, span in (("month", v, days_m), ("peak", peak, float(PEAK_WINDOW))):
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = (count + 0.5) / (expected * span + 0.5)
            noise = np.sqrt(1.0 / np.maximum(count, 1.0) + 2.0 / np.maximum(expected * days_m, 1.0) + sigma0 ** 2)
            ratios[name] = raw * np.exp(-2.0 * noise)
    out["growth_month"] = ratios["month"]
    out["growth_peak"] = ratios["peak"]
    out["growth_ratio"] = np.fmax(ratios["month"], np.nan_to_num(ratios["peak"], nan=0.0))
    out["peak_start"] = peak_start
    comp = pd.DataFrame(np.nan, index=ids, columns=list(COMPONENTS), dtype=float)
    surged = [p if g >= 1.1 else None for p, g in zip(peak_start, np.nan_to_num(ratios["peak"], nan=0.0))]
    out["regions_up"], out["regions_total"], out["focus"], out["focus_share"] = _spread(
        rows, counts, expect[month], month, days_m, scope, float(sc["spread_z"]), daily, surged, sigma0)
    n_children = max(len(scope.children), 1)
    growth = pd.Series(_log_score(out["growth_ratio"].to_numpy(), float(sc["growth_full"])), index=ids)
    out["anomaly_points"], out["anomalies"] = _anomalies(rows, anomaly_counts, sc["anomaly_weights"], parent_region)
    fc = _seasonal_outlook(counts.loc[ids], coverage, month, [float(x) for x in sc["outlook_discount"]])
    out = out.join(fc)

    # --- frequency (高频): share of the scope's tickets over 12 months and in the month; breadth -------
    year_counts = counts.loc[ids, year].sum(axis=1).to_numpy()
    out["tickets_year"] = year_counts
    prev_year = [month - k for k in range(12, 24)]
    covered = all(float(coverage.get(q, 0) or 0) >= 0.9 * q.days_in_month for q in prev_year + list(year))
    out["tickets_prev_year"] = (counts.reindex(index=ids, columns=prev_year).fillna(0.0).sum(axis=1).to_numpy()
                                if covered and len(year) == 12 else np.nan)
    out["share_year"] = year_counts / scope_year if scope_year > 0 else np.nan
    out["share_month"] = v / scope_total if scope_total > 0 else np.nan
    level_of = rows["category_level"].to_numpy()
    span = float(sc["frequency_range"])
    all_whole = keys[whole_mask & cat_ok]
    for lvl in levels:
        ref_ids = all_whole.index[all_whole["category_level"] == lvl]
        full_y = float(counts.loc[ref_ids, year].sum(axis=1).max()) / scope_year if len(ref_ids) and scope_year else 0.0
        full_m = float(counts.loc[ref_ids, month].max()) / scope_total if len(ref_ids) and scope_total else 0.0
        sel = level_of == lvl
        comp.loc[ids[sel], "share_year"] = _share_score(out["share_year"].to_numpy()[sel], full_y, span)
        comp.loc[ids[sel], "share_month"] = _share_score(out["share_month"].to_numpy()[sel], full_m, span)
    present, n_with_data = _breadth(rows, counts, year, scope, float(sc["breadth_share"]),
                                    float(sc["breadth_min_tickets"]))
    out["breadth_regions"] = [",".join(p) for p in present]
    out["breadth_n"] = [len(p) for p in present]
    out["breadth_total"] = n_with_data
    comp["breadth"] = np.where(whole, out["breadth_n"] / max(n_with_data, 1), 0.0)
    need = min(int(sc["min_breadth"]), max(n_with_data, 1))

    # --- continuity (持续): months of the last 12 at a high level, quarters, a problem returning -------
    high = _high_months(counts, keys[whole_mask & cat_ok], year, coverage, float(sc["high_top"]),
                        int(sc["high_top_min"]))
    hi = high.reindex(index=ids).fillna(False).astype(bool)
    out["months_high"] = hi.sum(axis=1).to_numpy()
    comp["months_high"] = out["months_high"] / 12.0
    quarters = [year[i:i + 3] for i in range(len(year) - 12, len(year), 3)] if len(year) >= 12 else []
    out["quarters_high"] = (sum((hi[q].sum(axis=1) >= 2).astype(int) for q in quarters) if quarters
                            else pd.Series(0, index=ids)).to_numpy()
    comp["quarters_high"] = out["quarters_high"] / 4.0
    recent_high = hi[[p for p in year if p > month - 3]].sum(axis=1) >= 2
    cool = int(sc["cooldown_months"])
    within = int(sc["returned_within_months"])
    returned_from: list[str | None] = []
    for cid, rh in zip(ids, recent_high):
        hit = None
        if rh:
            for when, was in earlier:
                gap = (month - pd.Period(when, freq="M")).n
                if cool <= gap <= within and overlaps(cid, was, parent_region):
                    hit = str(when)
                    break
        returned_from.append(hit)
    out["returned_from"] = returned_from
    comp["returned"] = [1.0 if r else 0.0 for r in returned_from]

    # --- hard (难点): rates over 12 months against the scope's, shrunk towards it for small candidates --
    cur = m[m["month"].isin(year)].groupby("series_id")[["n_tickets", "n_closed", "n_overdue", "n_repeat", "n_rated",
                                                        "n_unsatisfied", "n_resolved"]].sum()
    tot = cur.loc[total_id] if total_id in cur.index else cur.reindex(keys.index[whole_mask]).sum()
    cc = cur.reindex(ids).fillna(0.0)
    k = float(sc["rate_prior_tickets"])
    for comp_name, (num, den, complement) in RATES.items():
        out[f"{comp_name}_rate"] = np.nan
        out[f"{comp_name}_scope_rate"] = np.nan
        if not tot[den] > 0 or (complement and not tot[num] > 0):
            # the source does not report it (counts-only history, or no closed ticket of the scope
            # ever marked resolved: a source without the field): unknown, not zero
            continue
        n_num = cc[num] if not complement else cc[den] - cc[num]
        p0_num = tot[num] if not complement else tot[den] - tot[num]
        p0 = p0_num / tot[den]
        if not (p0 > 0 and np.isfinite(p0)):
            continue  # none in the whole scope for a year: the source does not flag it (unknown)
        rate = (n_num + k * p0) / (cc[den] + k)
        out[f"{comp_name}_rate"] = np.where(cc[den] > 0, n_num / cc[den].where(cc[den] > 0), np.nan)
        out[f"{comp_name}_scope_rate"] = p0
        comp[comp_name] = ((rate / p0 - 1.0) / (float(sc["rate_full"]) - 1.0)).clip(0, 1).where(cc[den] > 0, 0.0)
    out["handling_days"] = np.nan
    out["handling_scope_days"] = np.nan
    if handling is not None and not handling.empty:
        h = handling.set_index("series_id")
        if total_id in h.index and h.loc[total_id, "n_handled"] > 0:
            d0 = float(h.loc[total_id, "handling_days"] / h.loc[total_id, "n_handled"])
            hh = h.reindex(ids).fillna(0.0)
            shrunk = (hh["handling_days"] + k * d0) / (hh["n_handled"] + k)
            out["handling_days"] = (hh["handling_days"] / hh["n_handled"].where(hh["n_handled"] > 0)).to_numpy()
            out["handling_scope_days"] = d0
            if d0 > 0:
                comp["long_handling"] = ((shrunk / d0 - 1.0) / (float(sc["handling_full"]) - 1.0)).clip(0, 1)

    # --- outlook components: a rise counts for the scope only where it is broad ------------------
    # several sub-regions rose, and no one of them holds most of the excess
    broad = (((out["regions_up"].to_numpy() >= need)
              & (out["focus_share"].fillna(0.0).to_numpy() <= float(sc["max_focus_share"])))
             | ~whole | (n_children < 2))
    out["rise_broad"] = broad
    comp["growth"] = np.where(broad, growth.to_numpy(), 0.0)
    comp["forecast"] = _log_score(out["outlook_effective"].to_numpy(), float(sc["forecast_full"]))
    out["spread"] = (out["regions_up"] / n_children).clip(0, 1)  # evidence, shown with the rise

    # --- principles, the gate on the outlook, balance ---------------------------------------------
    groups = {}
    for p, names in PRINCIPLES.items():
        w = pd.Series(cfg.components[p]).reindex(list(names)).fillna(0.0)
        vals = comp[list(names)]
        if p in MAX_OF:
            groups[p] = vals.mul(w, axis=1).max(axis=1, skipna=True).clip(upper=1.0)
            continue
        den = vals.notna().mul(w, axis=1).sum(axis=1)
        groups[p] = (vals.fillna(0.0).mul(w, axis=1).sum(axis=1) / den.where(den > 0))
    gate = (np.fmax(groups["frequency"].fillna(0.0), groups["hard"].fillna(0.0)) / float(sc["outlook_gate"])).clip(0, 1)
    out["gate"] = gate
    W = pd.Series(cfg.principles)
    num = pd.Series(0.0, index=ids)
    den = pd.Series(0.0, index=ids)
    for p in PRINCIPLES:
        g = groups[p] * (gate if p == "outlook" else 1.0)
        known = groups[p].notna() & (W[p] > 0)
        num += (g.fillna(0.0) * W[p]).where(known, 0.0)
        den += known.astype(float) * W[p]
        out[f"p_{p}"] = groups[p]
    for p in PRINCIPLES:
        g = groups[p] * (gate if p == "outlook" else 1.0)
        out[f"contrib_{p}"] = (g * W[p] / den.where(den > 0)).where(groups[p].notna())
    out["score_base"] = num / den.where(den > 0)
    dept_of = dict(lead_department or {})
    pen, why = _balance(ids, previous, dept_of, cfg.balance)
    out["balance_penalty"] = pen
    out["balance_reason"] = why
    out["score"] = (out["score_base"].fillna(0.0) - out["balance_penalty"]).clip(lower=0.0)
    for c in COMPONENTS:
        out[f"c_{c}"] = comp[c]
    out = out.join(rows)
    out.index.name = "candidate"
    out["eligible"] = whole & (out["breadth_n"].to_numpy() >= need)
    out = out.reset_index()
    cands = out[out["eligible"]].sort_values(["score", "tickets"], ascending=[False, False]).reset_index(drop=True)
    return ScopeScores(cands, _sprouts(out, scope, cfg, need))


def _breadth(rows: pd.DataFrame, counts: pd.DataFrame, year: Sequence[pd.Period], scope: Scope, ratio: float,
             min_tickets: float) -> tuple[list[list[str]], int]:
    """Per row: the sub-regions where its category is a notable problem over the last 12 months
    (its share of the sub-region's tickets at least ``ratio`` times the scope's share, and at least
    ``min_tickets``); and how many sub-regions have tickets at all."""
    yr = counts[list(year)].sum(axis=1)
    child_tot = {c: float(yr.get(candidate_id(scope.child_level, c, "all", "*"), 0.0)) for c in scope.children}
    with_data = [c for c, n in child_tot.items() if n > 0]
    scope_tot = float(yr.get(candidate_id(scope.level, scope.code, "all", "*"), sum(child_tot.values())))
    out = []
    for cid, level, cl, cc in zip(rows.index, rows["region_level"], rows["category_level"], rows["category_code"]):
        if level != scope.level or scope_tot <= 0:
            out.append([])
            continue
        share = float(yr.get(cid, 0.0)) / scope_tot
        present = []
        for c in with_data:
            n = float(yr.get(candidate_id(scope.child_level, c, cl, cc), 0.0))
            if n >= min_tickets and n / child_tot[c] >= ratio * share:
                present.append(c)
        out.append(present)
    return out, len(with_data)


def _high_months(counts: pd.DataFrame, whole: pd.DataFrame, year: Sequence[pd.Period], coverage: pd.Series,
                 top: float, top_min: int) -> pd.DataFrame:
    """Whether each of the scope's categories was at a high level in each of the last 12 months:
    among the top ``top`` share (at least ``top_min``) of the scope's categories of its level by
    tickets that month. Months the warehouse covers less than half of are not high."""
    out = pd.DataFrame(False, index=whole.index, columns=list(year))
    for lvl, grp in whole.groupby("category_level"):
        c = counts.reindex(index=grp.index, columns=list(year)).fillna(0.0)
        n = max(int(top_min), int(math.ceil(top * len(grp))))
        rank = c.rank(axis=0, ascending=False, method="min")
        ok = pd.Series([float(coverage.get(p, 0) or 0) >= 0.5 * p.days_in_month for p in year], index=list(year))
        out.loc[grp.index] = (rank <= n) & (c > 0) & ok
    return out


def _balance(ids: pd.Index, previous: Sequence[str], dept_of: Mapping[str, str],
             weights: Mapping[str, float]) -> tuple[list[float], list[str | None]]:
    """The penalty for sharing a lead department or a category family with the scope's last chosen
    issues (newest first), and the reason as ``dept:N|family:N``."""
    last = [p for p in previous if p][: int(weights["last_choices"])]
    depts = [dept_of.get(parse_id(p)[3]) for p in last]
    fams = [parse_id(p)[3].split(".")[0] for p in last]
    pen, why = [], []
    for cid in ids:
        cc = parse_id(cid)[3]
        nd = sum(1 for d in depts if d and d == dept_of.get(cc))
        nf = sum(1 for f in fams if f == cc.split(".")[0])
        pen.append(nd * float(weights["same_department"]) + nf * float(weights["same_family"]))
        why.append(f"dept:{nd}|family:{nf}" if nd or nf else None)
    return pen, why


def _sprouts(out: pd.DataFrame, scope: Scope, cfg: ProposalsConfig, need: int) -> pd.DataFrame:
    """The 苗头 watch list: surges beyond noise, issues new this month and seasonal peaks ahead.
    A rise concentrated in one sub-region is listed under that sub-region (for a city, its
    district; the province leaves one city's rise to that city's own proposal)."""
    sc = cfg.scoring
    whole = out["region_level"] == scope.level
    # new: fewer tickets in the 12 months before than one a month (or a 20th of this month's)
    before = out["tickets_year"] - out["tickets"]
    emerging = before < np.maximum(12.0, 0.05 * out["tickets"])
    surge = out["growth_ratio"].fillna(0) >= float(sc["sprout_growth"])
    peak = whole & (out["outlook_ratio"].fillna(0) >= float(sc["sprout_outlook"]))
    broad = out["rise_broad"] & whole
    if scope.level == "province":
        show = whole & (((emerging | surge) & broad) | peak)
    else:
        show = (~whole & (emerging | surge)) | (whole & (emerging | surge) & broad) | peak
    s = out[show].copy()
    if s.empty:
        return s
    s["sprout_kind"] = np.where(emerging[show], "emerging", np.where(surge[show], "surge", "peak_ahead"))
    s["excess"] = (s["tickets"] - s["expected_daily"].fillna(0) * s["tickets"] / s["daily_avg"].where(
        s["daily_avg"] > 0)).fillna(s["tickets"])
    order = {"emerging": 0, "surge": 0, "peak_ahead": 1}
    s = s.assign(_o=s["sprout_kind"].map(order)).sort_values(["_o", "excess"], ascending=[True, False])
    return s.drop(columns="_o").head(int(sc["sprouts"])).reset_index(drop=True)


EPS = 1.0 / 30.0  # one ticket a month keeps empty months finite on the log scale


def _expected_matrix(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected daily average of every month (column) from the months before it: the same month
    a year before times the ratio of the 3 months before to the same 3 a year earlier; with less
    than 15 months before it, the mean of the 3 months before. NaN with less than 3. Also which
    cells used the seasonal form."""
    e = np.full_like(x, np.nan)
    seasonal_used = np.zeros(x.shape, dtype=bool)
    for j in range(3, x.shape[1]):
        prev3 = np.nanmean(x[:, j - 3:j], axis=1)
        if j >= 15:
            prev3_ly = np.nanmean(x[:, j - 15:j - 12], axis=1)
            seasonal = (x[:, j - 12] + EPS) * (prev3 + EPS) / (prev3_ly + EPS) - EPS
            seasonal_used[:, j] = np.isfinite(seasonal)
            e[:, j] = np.where(seasonal_used[:, j], seasonal, prev3)
        else:
            e[:, j] = prev3
    return np.maximum(e, 0.0), seasonal_used


def _expectations(avg: pd.DataFrame, month: pd.Period) -> tuple[pd.DataFrame, pd.Series]:
    """Every series' expected daily average for each month up to ``month``, and whether the
    expectation for ``month`` is the seasonal one."""
    cols = [c for c in avg.columns if c <= month]
    with np.errstate(invalid="ignore"), warnings_off():
        e, used = _expected_matrix(avg[cols].to_numpy(dtype=float))
    return pd.DataFrame(e, index=avg.index, columns=cols), pd.Series(used[:, -1], index=avg.index)


def _peak_window(daily: pd.DataFrame, ids: pd.Index, month: pd.Period) -> tuple[np.ndarray, list[Any]]:
    """Each candidate's largest 14-day sum within the month and the window's first day."""
    days = pd.date_range(month.start_time, month.end_time.normalize(), freq="D")
    if daily is None or daily.empty:
        return np.full(len(ids), np.nan), [None] * len(ids)
    d = daily[daily["series_id"].isin(ids)]
    wide = d.pivot_table(index="series_id", columns="ds", values="y", aggfunc="sum").reindex(
        index=ids, columns=days).fillna(0.0)
    last_day = d["ds"].max() if len(d) else days[0]
    wide = wide.loc[:, wide.columns <= last_day]
    if wide.shape[1] < PEAK_WINDOW:
        return np.full(len(ids), np.nan), [None] * len(ids)
    roll = wide.T.rolling(PEAK_WINDOW).sum().T.iloc[:, PEAK_WINDOW - 1:]
    arg = np.nanargmax(roll.to_numpy(), axis=1)
    starts = [roll.columns[i] - pd.Timedelta(days=PEAK_WINDOW - 1) for i in arg]
    return roll.to_numpy()[np.arange(len(ids)), arg], [s.date() for s in starts]


def _spread(cands: pd.DataFrame, counts: pd.DataFrame, expected: pd.Series, month: pd.Period, days_m: float,
            scope: Scope, z_min: float, daily: pd.DataFrame | None = None, peak_start: Sequence[Any] = (),
            sigma0: float = 0.0) -> tuple[list[int], list[int], list[str | None], list[float]]:
    """Per candidate: sub-regions with a significant rise, how many sub-regions it has, and the
    sub-region contributing most of the candidate's excess over its expectation (with its share).
    A sub-region is judged on the month and on the candidate's peak fortnight (the higher z), so a
    two-week city-wide surge is seen in its districts as it is in the city. ``expected``: every
    series' expected daily average for the month."""

    def z_of(obs: pd.Series, base: pd.Series) -> pd.Series:
        return (obs - base) / np.sqrt(base + (sigma0 * base) ** 2 + 1.0)

    base_m = expected * days_m
    obs_m = counts[month]
    z = z_of(obs_m, base_m)
    excess = (obs_m - base_m).clip(lower=0)
    wide = None
    if daily is not None and not daily.empty:
        wide = daily.pivot_table(index="series_id", columns="ds", values="y", aggfunc="sum")
    window_z: dict[tuple[str, Any], float] = {}
    starts = dict(zip(cands.index, peak_start)) if len(peak_start) == len(cands) else {}
    zd, exd = z.to_dict(), excess.fillna(0).to_dict()
    up_n, tot_n, focus, share = [], [], [], []
    for cid, level, cl, cc in zip(cands.index, cands["region_level"], cands["category_level"],
                                  cands["category_code"]):
        whole = level == scope.level
        subs = [candidate_id(scope.child_level, c, cl, cc) for c in scope.children] if whole else [cid]
        subs = [s for s in subs if s in zd]
        start = starts.get(cid)
        if whole and start is not None and wide is not None:
            cols = [c for c in wide.columns
                    if pd.Timestamp(start) <= c < pd.Timestamp(start) + pd.Timedelta(days=PEAK_WINDOW)]
            got = wide.reindex(index=subs, columns=cols).fillna(0).sum(axis=1)
            zw = z_of(got, expected.reindex(subs) * len(cols))
            for sub in subs:
                window_z[(sub, start)] = float(zw.get(sub, np.nan))
        up_n.append(sum(1 for s in subs if max(zd[s], window_z.get((s, start), -np.inf)) >= z_min))
        tot_n.append(len(scope.children) if whole else 1)
        ex = {s: exd.get(s, 0.0) for s in subs}
        total = sum(ex.values())
        if whole and total > 0:
            top = max(ex, key=ex.get)
            focus.append(parse_id(top)[1])
            share.append(float(ex[top] / total))
        else:
            focus.append(None)
            share.append(float("nan"))
    return up_n, tot_n, focus, share


def _anomalies(cands: pd.DataFrame, an: pd.DataFrame | None, weights: Mapping[str, float],
               parent_region: Mapping[str, str]) -> tuple[list[float], list[int]]:
    """Per candidate: points (each day with a rising anomaly on it or inside it, weighted by that
    day's worst severity: one event seen at several levels counts once) and the number of days."""
    if an is None or an.empty:
        return [0.0] * len(cands), [0] * len(cands)
    an = an.assign(parent_region=an["region_code"].map(parent_region),
                   l1=an["category_code"].str.split(".").str[0],
                   points=an["severity"].map(lambda s: float(weights.get(s, 1))))
    pts, ns = [], []
    for _, row in cands.iterrows():
        place = (an["region_code"] == row["region_code"]) | (an["parent_region"] == row["region_code"])
        cat = (an["category_code"] == row["category_code"])
        if row["category_level"] == "l1":
            cat = cat | (an["l1"] == row["category_code"])
        by_day = an[place & cat].groupby("ds")["points"].max()
        pts.append(float(by_day.sum()))
        ns.append(int(len(by_day)))
    return pts, ns


def _seasonal_outlook(counts: pd.DataFrame, coverage: pd.Series, month: pd.Period,
                      discount: Sequence[float] = (1.0, 0.8, 0.6)) -> pd.DataFrame:
    """The next 1-3 months as this month's volume times the same months' ratio in the previous one
    or two years (geometric mean; small series shrink towards no change). ``outlook_h`` is the
    expected ratio h months ahead (``_lo``/``_hi``: the range over the years used);
    ``outlook_ratio`` the largest; ``outlook_effective`` the largest after discounting later
    months (a rise next month is more pressing than one in three)."""
    per30 = counts.div(coverage.reindex(counts.columns).astype(float).where(lambda d: d >= 10), axis=1) * 30.0
    out = {}
    for h in (1, 2, 3):
        logs = []
        for y in (1, 2):
            a, b = month - 12 * y, month - 12 * y + h
            if a in per30.columns and b in per30.columns:
                logs.append(np.log((per30[b] + SEASONAL_PRIOR) / (per30[a] + SEASONAL_PRIOR)))
        if logs:
            stack = pd.concat(logs, axis=1)
            out[f"outlook_{h}"] = np.exp(stack.mean(axis=1, skipna=True))
            out[f"outlook_{h}_lo"] = np.exp(stack.min(axis=1, skipna=True))
            out[f"outlook_{h}_hi"] = np.exp(stack.max(axis=1, skipna=True))
        else:
            for suffix in ("", "_lo", "_hi"):
                out[f"outlook_{h}{suffix}"] = pd.Series(np.nan, index=counts.index)
    df = pd.DataFrame(out, index=counts.index)
    df["outlook_ratio"] = df[["outlook_1", "outlook_2", "outlook_3"]].max(axis=1, skipna=True)
    eff = pd.concat([np.exp(np.log(df[f"outlook_{h}"]) * discount[h - 1]) for h in (1, 2, 3)], axis=1)
    df["outlook_effective"] = eff.max(axis=1, skipna=True)
    df["outlook_month"] = df[["outlook_1", "outlook_2", "outlook_3"]].fillna(0).to_numpy().argmax(axis=1) + 1
    return df


def choose(ranked: pd.DataFrame, cfg: ProposalsConfig, previous: Sequence[Mapping[str, Any]],
           taxonomy_parent: Mapping[str, str], region_parent: Mapping[str, str],
           override: str | None = None) -> dict[str, Any]:
    """The model's choice, the chosen issue (an analyst's override wins) and the watch list.

    ``previous``: earlier choices of the scope within the cool-down (``month``, ``chosen``,
    ``daily_avg`` at the time). A candidate overlapping one of them is held back unless that
    issue's daily volume rose by ``worsened_ratio`` since; held-back ones are listed in ``blocked``.
    """
    sc = cfg.scoring
    blocked: dict[str, str] = {}
    now_avg = dict(zip(ranked["candidate"], ranked["daily_avg"]))
    now_n = dict(zip(ranked["candidate"], ranked["tickets"])) if "tickets" in ranked else {}
    # a previous choice holds back everything overlapping it, unless that issue itself worsened:
    # its daily volume up by worsened_ratio at the lower 2-sigma bound of the two months' counting
    # noise (110 -> 139 tickets is not worse; 100 -> 200 is)
    holding = []
    for p in previous:
        then, now = float(p.get("daily_avg") or 0), now_avg.get(p.get("chosen"))
        worsened = False
        if then and now is not None:
            n_now, n_then = float(now_n.get(p.get("chosen")) or 0), float(p.get("tickets") or 0)
            noise = math.sqrt(1.0 / max(n_now, 1.0) + (1.0 / n_then if n_then > 0 else 0.0))
            worsened = now / then * math.exp(-2.0 * noise) >= float(sc["worsened_ratio"])
        if p.get("chosen") and not worsened:
            holding.append(p)
    for cid in ranked["candidate"]:
        for p in holding:
            if overlaps(cid, p["chosen"], region_parent):
                blocked[cid] = str(p["month"])
                break
    order = [c for c in ranked["candidate"] if c not in blocked]
    model_choice = order[0] if order else None
    chosen = override if override is not None else model_choice
    watch: list[str] = []
    taken = [chosen] if chosen else []
    for c in order:
        if len(watch) >= int(sc["watch_list"]):
            break
        if any(overlaps(c, t, region_parent) for t in taken):
            continue
        watch.append(c)
        taken.append(c)
    return {"model_choice": model_choice, "chosen": chosen, "watch": watch, "blocked": blocked}


def candidate_records(ranked: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """The top candidates as JSON-ready dicts (NaN -> None, dates as ISO text)."""
    recs = []
    for rec in ranked.head(limit).to_dict("records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, (dt.date, pd.Timestamp)):
                v = v.isoformat()[:10]
            elif isinstance(v, (np.floating, float)):
                v = None if not np.isfinite(v) else round(float(v), 6)
            elif isinstance(v, np.integer):
                v = int(v)
            elif isinstance(v, np.bool_):
                v = bool(v)
            clean[k] = v
        recs.append(clean)
    return recs
