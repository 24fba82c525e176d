"""The analyst's backtest: replay history day by day exactly as the daily DAG would have judged
it, and score the warnings against a labels file.

Each scope (every city, then the province) is loaded once as a panel; day ``t`` is judged by
``detectors.engine`` reading only the columns up to ``t`` (the DAG's 420-day window, its profile
and its cool-down), so no day sees the future. A sweep scores every grid point in the same pass:
the detectors run once per day for each distinct set of detector parameters, and each grid
point applies its own thresholds, volume floor and cool-down.

An alert matches a labelled event when its series is the event's or related to it (the event's
region or its city / districts, the event's category or its parent / sub-categories) and its
day falls between the event's start and ``GRACE`` days after its end. Event-level recall is the
share of events with a matching alert, precision the share of alerts that match an event, the
delay is the first matching alert's day minus the event's start, and false alerts are the
alerts that match no event, per district and month.
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from detectors.engine import RECORD_COLUMNS, Cooldown, decide, score_all
from detectors.job import OLDEST_ORIGIN, PANEL_DAYS, districts_of, load_panel
from detectors.panel import Expectations, parent_category
from detectors.profiles import DetectionConfig
from hotline.core.reference import ConfigError, Reference
from hotline.core.series import series_id
from warehouse.schema import daily_counts

log = logging.getLogger(__name__)
GRACE = {"spike": 2, "drop": 2}  # days after an event's end an alert still belongs to it
DEFAULT_GRACE = 7
LABEL_COLUMNS = ["type", "start", "end", "region", "category"]


class LabelsError(ValueError):
    pass


def read_labels(path: str | Path, ref: Reference) -> pd.DataFrame:
    """The labels CSV (type, start, end, region, category; region_level / category_level optional),
    checked row by row: a bad row is an error naming the file, line and field."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise LabelsError(f"{path}: labels file not found") from None
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise LabelsError(f"{path}: missing column(s) {missing}; a labels file has {', '.join(LABEL_COLUMNS)}")
    rows = []
    for n, r in enumerate(df.to_dict("records"), start=2):
        try:
            start, end = dt.date.fromisoformat(r["start"].strip()), None
        except ValueError:
            raise LabelsError(f"{path}, line {n}, field start: {r['start']!r} is not a date (YYYY-MM-DD)") from None
        try:
            end = dt.date.fromisoformat(r["end"].strip()) if r["end"].strip() else start
        except ValueError:
            raise LabelsError(f"{path}, line {n}, field end: {r['end']!r} is not a date (YYYY-MM-DD)") from None
        if end < start:
            raise LabelsError(f"{path}, line {n}, field end: {end} is before start {start}")
        region = r["region"].strip()
        level = r.get("region_level", "").strip() or ref.regions.level_of(region)
        if level not in ("province", "city", "district"):
            raise LabelsError(f"{path}, line {n}, field region: {region!r} is not a configured region code")
        cat = r["category"].strip() or "*"
        clevel = r.get("category_level", "").strip() or ("all" if cat in ("*", "all") else "l2" if "." in cat else "l1")
        city = {"district": ref.regions.parent_of(region), "city": region}.get(level, "")
        rows.append({"type": r["type"].strip(), "start": start, "end": end, "region_level": level,
                     "region": region, "city": r.get("city", "").strip() or city,
                     "province": ref.regions.province_of(region), "category_level": clevel,
                     "category": "*" if clevel == "all" else cat})
    return pd.DataFrame(rows, columns=["type", "start", "end", "region_level", "region", "city", "province",
                                       "category_level", "category"])


def related(alert: pd.Series, event: pd.Series) -> bool:
    """Whether an alert's series is the event's, or an aggregate over it or a part of it, one step
    away in each hierarchy: the event's region, its city (for a district event) or its districts
    (for a city event); the event's category, its level-1 parent or its sub-categories. An
    all-categories series counts only in the event's own region or city; a province series only
    on the event's own category or its parent."""
    rl, rc = alert["region_level"], alert["region_code"]
    cl, cc = alert["category_level"], alert["category_code"]
    same_cat = (cc == event["category"] or (cl == "l1" and parent_category(event["category"]) == cc)
                or (event["category_level"] == "l1" and parent_category(cc) == event["category"])
                or event["category_level"] == "all")
    near = (rc == event["region"] or (rl == "city" and rc == event["city"])
            or (event["region_level"] == "city" and rl == "district" and alert["city_code"] == event["region"]))
    if rl == "province":
        return bool(rc == event["province"] and same_cat and cl != "all")
    return bool(near and (same_cat or cl == "all"))


def match(alerts: pd.DataFrame, labels: pd.DataFrame) -> tuple[np.ndarray, list[pd.DataFrame]]:
    """For each alert, whether it matches an event; for each event, its matching alerts."""
    matched = np.zeros(len(alerts), bool)
    per_event = []
    days = pd.to_datetime(alerts["ds"]).dt.date.to_numpy() if len(alerts) else np.array([])
    for _, ev in labels.iterrows():
        last = ev["end"] + dt.timedelta(days=GRACE.get(ev["type"], DEFAULT_GRACE))
        cand = np.flatnonzero((days >= ev["start"]) & (days <= last))
        ok = [i for i in cand if related(alerts.iloc[i], ev)]
        matched[ok] = True
        per_event.append(alerts.iloc[ok])
    return matched, per_event


def metrics(alerts: pd.DataFrame, labels: pd.DataFrame, n_districts: int, n_days: int,
            offices: dict[str, int] | None = None) -> dict[str, Any]:
    """Event-level recall (all events, and the events whose excess is material by their tier's
    rule when ``labels`` has a ``material`` column), alert-level precision, F1, delays by kind,
    false alerts per district and month, and the budget achieved: alerts (and false alerts) per
    office and month at each level (``offices``: level -> number of offices)."""
    matched, per_event = match(alerts, labels)
    detected = np.array([len(a) > 0 for a in per_event], bool)
    delays = [int((pd.Timestamp(a["ds"].min()).date() - ev["start"]).days) if len(a) else None
              for a, (_, ev) in zip(per_event, labels.iterrows())]
    tp = int(matched.sum())
    precision = tp / len(alerts) if len(alerts) else 1.0
    recall = float(detected.mean()) if len(labels) else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    months = n_days / 30.4375
    by_kind = {}
    for kind in sorted(set(labels["type"])):
        d = [x for x, k in zip(delays, labels["type"]) if k == kind and x is not None]
        n = int((labels["type"] == kind).sum())
        by_kind[kind] = {"events": n, "detected": int(sum(1 for x, k in zip(delays, labels["type"])
                                                              if k == kind and x is not None)),
                         "median_delay_days": float(np.median(d)) if d else None}
    out = {"events": int(len(labels)), "detected": int(detected.sum()), "alerts": int(len(alerts)),
           "true_alerts": tp, "false_alerts": int(len(alerts) - tp),
           "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
           "median_delay_days": {k: v["median_delay_days"] for k, v in by_kind.items()},
           "by_kind": by_kind,
           "false_alerts_per_district_month": round((len(alerts) - tp) / max(n_districts, 1) / max(months, 1e-9), 3)}
    if "material" in labels.columns and len(labels):
        mat = labels["material"].fillna(False).to_numpy(bool)
        out["material_events"] = int(mat.sum())
        out["material_detected"] = int((detected & mat).sum())
        out["recall_material"] = round(float(detected[mat].mean()), 4) if mat.any() else None
    if offices:
        level = alerts["region_level"].to_numpy() if len(alerts) else np.array([], object)
        out["alerts_per_office_month"] = {
            lv: round(float((level == lv).sum()) / max(n, 1) / max(months, 1e-9), 3) for lv, n in offices.items()}
        out["false_alerts_per_office_month"] = {
            lv: round(float(((level == lv) & ~matched).sum()) / max(n, 1) / max(months, 1e-9), 3)
            for lv, n in offices.items()}
    return {**out, "_matched": matched, "_delays": delays, "_per_event": per_event}


def event_excess(panel, exp: Expectations, labels: pd.DataFrame,
                 horizon: int = 14) -> dict[int, tuple[float, float, float]]:
    """For each labelled event on one of this panel's series: its observed and expected tickets over
    its first days (at most ``horizon``; a spike's busiest day), expected by the forecast made the
    day before it began, and the number of days."""
    out = {}
    pos = {str(sid): i for i, sid in enumerate(panel.ids)}
    for j, ev in enumerate(labels.itertuples()):
        i = pos.get(series_id(ev.region_level, ev.region, ev.category_level, ev.category))
        if i is None:
            continue
        try:
            t0 = panel.index(ev.start)
        except KeyError:
            continue
        fit = exp.at(t0 - 1)
        if fit is None:
            continue
        k = min(horizon, (ev.end - ev.start).days + 1, panel.Y.shape[1] - t0)
        out[j] = (float(np.nansum(panel.Y[i, t0:t0 + k])), float(fit[0][i, :k].sum()), float(k))
    return out


def material(labels: pd.DataFrame, excess: dict[int, tuple[float, float, float]], cfg: DetectionConfig) -> np.ndarray:
    """Whether each event's excess is material by its tier's rule (min_excess tickets a day for its
    level, on average over its first days, and min_change for a one-day spike, min_shift for the
    others); None where it was not measured."""
    out = []
    for j, ev in enumerate(labels.itertuples()):
        if j not in excess:
            out.append(None)
            continue
        obs, expd, days = excess[j]
        prof = cfg.profile(ev.city or "", ev.category if ev.category != "*" else "*")
        level = ev.region_level if ev.region_level in ("district", "city", "province") else "district"
        need = prof["min_excess"][level] if isinstance(prof["min_excess"], dict) else prof["min_excess"]
        change = prof["min_change"] if ev.type == "spike" else prof["min_shift"]
        ratio = obs / max(expd, 1e-9)
        per_day = (obs - expd if ev.type != "drop" else expd - obs) / max(days, 1)
        big = per_day >= need
        changed = ratio >= 1 + change if ev.type != "drop" else ratio <= 1 / (1 + change)
        out.append(bool(big and changed))
    return np.array(out, dtype=object)


@dataclass
class GridPoint:
    name: str
    cfg: DetectionConfig


def parse_sweep(specs: list[str]) -> list[dict[str, Any]]:
    """['min_expected=1,2', 'level_shift.h=6,8'] -> the grid's settings (their product)."""
    axes = []
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--sweep {spec!r}: expected PARAM=V1,V2,...")
        key, values = spec.split("=", 1)
        vals = [_value(v) for v in values.split(",") if v.strip()]
        if not vals:
            raise ConfigError(f"--sweep {spec!r}: no values")
        axes.append([(key.strip(), v) for v in vals])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def _value(text: str) -> Any:
    text = text.strip()
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def run_backtest(engine: Engine, labels: pd.DataFrame, start: dt.date, end: dt.date, config_dir: str | Path,
                 ref: Reference, province: str, profile: str | None = None,
                 sweep: list[dict] | None = None, progress=None) -> dict[str, Any]:
    """Replay ``start``..``end`` for every grid point; metrics per point, alerts and event charts.
    ``progress(n)`` is called with each day judged (per scope)."""
    base = DetectionConfig.load(config_dir)
    grid = [GridPoint(",".join(f"{k}={v}" for k, v in s.items()) or "config", base.with_overrides(s) if s else base)
            for s in (sweep or [{}])]
    prov = ref.regions.province(province)
    with engine.connect() as conn:
        present = {r[0] for r in conn.execute(select(daily_counts.c.region_code).where(
            daily_counts.c.region_level == "city").distinct())}
    scopes = [(c.code, "city") for c in prov.cities if c.code in present] + [(province, "province")]
    n_districts = sum(len(c.districts) for c in prov.cities if c.code in present)
    alerts = {g.name: [] for g in grid}
    excess: dict[int, tuple[float, float, float]] = {}
    event_ids = {series_id(r.region_level, r.region, r.category_level, r.category) for r in labels.itertuples()}
    bands: dict[str, dict[str, list]] = {}
    days = pd.date_range(start, end)
    for scope, level in scopes:
        panel = load_panel(engine, start - dt.timedelta(days=PANEL_DAYS), end, scope, level, prov.calendar,
                           districts_of(ref, scope))
        if panel is None:
            continue
        own = (panel.keys["region_level"] == level).to_numpy() if level == "province" else np.ones(len(panel), bool)
        exp = Expectations(panel)
        excess.update(event_excess(panel, exp, labels))
        profs = []
        for g in grid:
            p = g.cfg.arrays(panel, profile)
            for d in p.enabled:
                p.enabled[d] &= own
            profs.append((g, p, Cooldown(), {d: g.cfg.detector(d) for d in p.detectors}))
        watch = [i for i, sid in enumerate(panel.ids) if own[i] and sid in event_ids]
        for day in days:
            t = panel.index(day)
            cache: dict[tuple, Any] = {}
            for g, p, cool, dets in profs:
                key = tuple(sorted((n, repr(sorted(vars(d).items()))) for n, d in dets.items()))
                if key not in cache:
                    cache[key] = score_all(panel, exp, t, dets)
                res = cache[key]
                alerts[g.name].append(decide(panel, t, res, dets, p, cool, ref))
            first = next(iter(cache.values()))
            src = first.get("spike_drop")
            for i in watch:
                b = bands.setdefault(str(panel.ids[i]), {"ds": [], "observed": [], "expected": [], "lower": [],
                                                        "upper": []})
                b["ds"].append(day.date())
                b["observed"].append(float(panel.y(t)[i]))
                for k in ("expected", "lower", "upper"):
                    b[k].append(float(src[k][i]) if src is not None else float("nan"))
            exp.forget_before(t - OLDEST_ORIGIN - 7)
            if progress:
                progress(1)
        log.info("backtest: %s done", scope)
    n_days = len(days)
    offices = {"district": n_districts, "city": sum(1 for s_, lv in scopes if lv == "city"), "province": 1}
    out = {"period": [str(start), str(end)], "profile": profile or "by tier", "districts": n_districts,
           "offices": offices, "grid": [], "alerts": {}, "bands": bands}
    labels = labels.assign(material=material(labels, excess, base)) if len(labels) else labels
    out["labels"] = labels
    for g in grid:
        frame = pd.concat([a for a in alerts[g.name] if len(a)], ignore_index=True) if any(
            len(a) for a in alerts[g.name]) else pd.DataFrame(columns=RECORD_COLUMNS)
        m = metrics(frame, labels, n_districts, n_days, offices)
        out["grid"].append({"setting": g.name, **m})
        out["alerts"][g.name] = frame
    return out


def best(grid: list[dict], max_false: float) -> dict | None:
    """The highest F1 among the settings with at most ``max_false`` false alerts per district
    office and month."""
    ok = [g for g in grid if g["false_alerts_per_district_month"] <= max_false]
    return max(ok, key=lambda g: (g["f1"], -g["false_alerts_per_district_month"])) if ok else None


def public(point: dict) -> dict:
    """A grid point's metrics without the internal arrays (for --json)."""
    return {k: v for k, v in point.items() if not k.startswith("_")}


def replay_into_warehouse(engine: Engine, start: dt.date, end: dt.date, config_dir: str | Path, ref: Reference,
                          province: str) -> int:
    """Run the daily detection for each day ``start``..``end`` as the DAG would have (the cool-down
    carried from day to day) and store the anomalies: a warehouse built from history then holds
    the alert history a running pipeline would have. Returns the number stored."""
    from detectors.job import store
    from warehouse.runs import stage_run

    with stage_run(engine, "detect", end, {"scope": province, "replay": [str(start), str(end)]}) as run:
        empty = pd.DataFrame(columns=["type", "start", "end", "region_level", "region", "city", "province",
                                      "category_level", "category"])
        alerts = run_backtest(engine, empty, start, end, config_dir, ref, province)["alerts"]["config"]
        prov = ref.regions.province(province)
        codes = [prov.code] + [c.code for c in prov.cities] + [d.code for c in prov.cities for d in c.districts]
        days = pd.to_datetime(alerts["ds"]) if len(alerts) else pd.Series(dtype="datetime64[ns]")
        for day in pd.date_range(start, end):
            store(engine, alerts[days == day] if len(alerts) else alerts, day.date(), codes, run.id)
        run.metrics = {"anomalies": int(len(alerts)), "days": (end - start).days + 1}
    return int(len(alerts))
