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

from proposals.config import COMPONENTS, ProposalsConfig

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


def candidate_id(region_level: str, region_code: str, category_level: str, category_code: str) -> str:
    return f"{region_level}:{region_code}|{category_level}:{category_code}"


def parse_id(cid: str) -> tuple[str, str, str, str]:
    region, cat = cid.split("|", 1)
    rl, rc = region.split(":", 1)
    cl, cc = cat.split(":", 1)
    return rl, rc, cl, cc


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


def rank_scope(monthly: pd.DataFrame, daily: pd.DataFrame, coverage: pd.Series, month: pd.Period, scope: Scope,
               cfg: ProposalsConfig, anomaly_counts: pd.DataFrame | None = None,
               parent_region: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Score every candidate of ``scope`` for the evidence ``month``.

    ``monthly``: one row per series and month (``series_id``, key columns, ``month`` as a monthly
    Period, the count columns of daily_counts), covering the scope's own total (category ``*``),
    its candidates and their sub-regions. ``daily``: ``series_id, ds, y`` for the days of
    ``month``. ``coverage``: days with data per month. ``anomaly_counts``: ``region_level,
    region_code, category_level, category_code, severity, n`` raised in the month.
    Returns one row per eligible candidate, best first, with each component and its evidence.
    """
    sc = cfg.scoring
    parent_region = dict(parent_region or {})
    months = pd.period_range(month - (int(sc["history_months"]) - 1), month, freq="M")
    m = monthly[monthly["month"].isin(months)]
    keys = m.drop_duplicates("series_id").set_index("series_id")[
        ["region_level", "region_code", "category_level", "category_code"]]
    counts = m.pivot_table(index="series_id", columns="month", values="n_tickets", aggfunc="sum")
    counts = counts.reindex(columns=months).fillna(0.0)
    avg = _daily(counts, coverage)
    days_m = float(coverage.get(month, 0) or 0)
    if days_m == 0:
        return pd.DataFrame()
    total_id = candidate_id(scope.level, scope.code, "all", "*")
    scope_total = float(counts.loc[total_id, month]) if total_id in counts.index else float(counts[month].sum())

    is_cand = (keys["category_level"].isin(["l1", "l2"])
               & ~keys["category_code"].map(cfg.excluded)
               & (((keys["region_level"] == scope.level) & (keys["region_code"] == scope.code))
                  | ((keys["region_level"] == scope.child_level) & keys["region_code"].isin(scope.children))))
    cands = keys[is_cand].copy()
    v = counts.loc[cands.index, month].to_numpy(dtype=float)
    eligible = (v >= float(sc["min_tickets"])) & (v >= float(sc["min_share_of_scope"]) * scope_total)
    cands = cands[eligible]
    if cands.empty:
        return pd.DataFrame()
    ids = cands.index
    v = counts.loc[ids, month].to_numpy(dtype=float)
    a = avg.loc[ids]
    # the expectation of every series and month (candidates, their sub-regions), computed once
    expect, seasonal = _expectations(avg, month)

    # growth: the month (and its peak fortnight) against what was expected of it: the same month
    # last year scaled by how the 3 months before compare with the same 3 months a year before
    # (seasonal naive with the level carried forward), or, without 15 months of history, the 3
    # months before. The ratio is taken at its lower 2-sigma bound (counting noise and the usual
    # month-to-month misses, `month_noise`), so a rise must be more than noise to score.
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
            # counting noise of the observed and of the months the expectation is made of (about
            # twice a month's worth: last year's month and the two 3-month levels), and the usual misses
            noise = np.sqrt(1.0 / np.maximum(count, 1.0) + 2.0 / np.maximum(expected * days_m, 1.0) + sigma0 ** 2)
            ratios[name] = raw * np.exp(-2.0 * noise)
    out["growth_month"] = ratios["month"]
    out["growth_peak"] = ratios["peak"]
    out["growth_ratio"] = np.fmax(ratios["month"], np.nan_to_num(ratios["peak"], nan=0.0))
    out["peak_start"] = peak_start

    comp = pd.DataFrame(index=ids, columns=list(COMPONENTS), dtype=float)
    vmax = max(float(v.max()), 1.0)
    comp["volume"] = np.log1p(v) / math.log1p(vmax)
    comp["growth"] = _log_score(out["growth_ratio"].to_numpy(), float(sc["growth_full"]))

    # persistence: months of the last N above what was expected of them (the same expectation as
    # growth: a seasonal peak that comes every year is not "staying high"), by the set margin and
    # by more than counting noise (per 30 days, Poisson)
    n_p = int(sc["persistence_months"])
    window = [month - k for k in range(n_p) if (month - k) in expect.columns]
    e30 = expect.loc[ids, window] * 30.0
    bar = (float(sc["persistence_level"]) * e30 + 2.0 * np.sqrt(e30.clip(lower=0)) + 2.0) / 30.0
    high = (a[window] > bar) & a[window].notna() & bar.notna()
    out["months_high"] = high.sum(axis=1).where(bar.notna().sum(axis=1) >= 3)
    comp["persistence"] = (out["months_high"] / n_p).fillna(0.0)

    # spread: sub-regions where the same category rose significantly (Poisson z) in the month
    # districts are looked at in the peak fortnight only where the candidate itself surged in it
    surged = [p if g >= 1.1 else None for p, g in zip(peak_start, np.nan_to_num(ratios["peak"], nan=0.0))]
    out["regions_up"], out["regions_total"], out["focus"], out["focus_share"] = _spread(
        cands, counts, expect[month], month, days_m, scope, float(sc["spread_z"]), daily, surged, sigma0)
    comp["spread"] = (out["regions_up"] / max(len(scope.children), 1)).clip(0, 1)

    # rates against the scope's own, shrunk towards it for small candidates
    cur = m[m["month"] == month].groupby("series_id")[["n_tickets", "n_closed", "n_overdue", "n_repeat", "n_rated",
                                                        "n_unsatisfied", "n_resolved"]].sum()
    tot = cur.loc[total_id] if total_id in cur.index else cur.sum()
    cc = cur.reindex(ids).fillna(0.0)
    k = float(sc["rate_prior_tickets"])
    detail = tot["n_closed"] > 0 or tot["n_rated"] > 0  # counts-only history has no ticket detail: rates unknown
    for comp_name, (num, den, complement) in RATES.items():
        if not detail:
            out[f"{comp_name}_rate"] = np.nan
            out[f"{comp_name}_scope_rate"] = np.nan
            comp[comp_name] = 0.0
            continue
        n_num = cc[num] if not complement else cc[den] - cc[num]
        p0_num = tot[num] if not complement else tot[den] - tot[num]
        p0 = p0_num / tot[den] if tot[den] > 0 else np.nan
        rate = (n_num + k * p0) / (cc[den] + k)
        out[f"{comp_name}_rate"] = np.where(cc[den] > 0, n_num / cc[den].where(cc[den] > 0), np.nan)
        out[f"{comp_name}_scope_rate"] = p0
        if p0 and p0 > 0 and np.isfinite(p0):
            comp[comp_name] = ((rate / p0 - 1.0) / (float(sc["rate_full"]) - 1.0)).clip(0, 1).where(cc[den] > 0, 0.0)
        else:
            comp[comp_name] = 0.0

    # anomalies raised in the month on the candidate or inside it (sub-regions, sub-categories)
    out["anomaly_points"], out["anomalies"] = _anomalies(cands, anomaly_counts, sc["anomaly_weights"],
                                                        parent_region)
    comp["anomalies"] = 1.0 - np.exp(-out["anomaly_points"] / 3.0)

    # forecast: the seasonal ratio of the next 1-3 months to this one, from the previous years
    fc = _seasonal_outlook(counts.loc[ids], coverage, month, [float(x) for x in sc["outlook_discount"]])
    out = out.join(fc)
    comp["forecast"] = _log_score(out["outlook_effective"].to_numpy(), float(sc["forecast_full"]))

    comp = comp.fillna(0.0).astype(float)
    w = pd.Series(cfg.weights)
    out["score"] = (comp[list(COMPONENTS)] * w[list(COMPONENTS)]).sum(axis=1) / w.sum()
    for c in COMPONENTS:
        out[f"c_{c}"] = comp[c]
    out = out.join(cands)
    out.index.name = "candidate"
    return out.sort_values(["score", "tickets"], ascending=[False, False]).reset_index()


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
            cols = [c for c in wide.columns if pd.Timestamp(start) <= c < pd.Timestamp(start) + pd.Timedelta(days=PEAK_WINDOW)]
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
    # a previous choice holds back everything overlapping it, unless that issue itself worsened
    holding = []
    for p in previous:
        then, now = float(p.get("daily_avg") or 0), now_avg.get(p.get("chosen"))
        worsened = bool(then) and now is not None and now >= float(sc["worsened_ratio"]) * then
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
            clean[k] = v
        recs.append(clean)
    return recs
