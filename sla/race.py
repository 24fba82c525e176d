"""The monthly horse race as a stage: read the month's handling figures per city, district and
category from the warehouse (in SQL, so three years of tickets cost one month's scan), rank with
:mod:`sla.ranking`, keep the result in ``rankings`` (a rerun of the month replaces its rows) and
compare with last month's ranks."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, delete, func, or_, select

from hotline.core.reference import Reference
from sla.job import month_bounds_utc
from sla.lights import SlaConfig
from sla.ranking import AGG_COLUMNS, METRICS, RankingConfig, benchmark, best_first, rank_units
from sla.repeats import month_rates, read_rates
from warehouse.db import seconds_between
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import rankings, tickets

KEYS = ["city_code", "district_code", "category_l2"]
SATISFIED = ("satisfied", "basically_satisfied")




def read_aggregates(engine: Engine, month: pd.Period, province_code: str, tz: str) -> pd.DataFrame:
    """Per city, district and level-2 category: the month's :data:`sla.ranking.AGG_COLUMNS`.
    Closed in the month: handling time, on time, satisfaction, resolution. Due in the month:
    overdue (closed after the deadline, or still open). Received in the month: repeats (from
    ``repeat_rates``, which :func:`sla.repeats.month_rates` fills)."""
    lo, hi = month_bounds_utc(month, tz)
    t = tickets.c
    hours = seconds_between(engine, t.closed_at, t.received_at) / 3600.0
    one = lambda cond: func.sum(case((cond, 1), else_=0))  # noqa: E731
    closed = (select(t.city_code, t.district_code, t.category_l2,
                     func.count().label("handling_hours_n"), func.sum(hours).label("handling_hours_x"),
                     func.sum(hours * hours).label("handling_hours_x2"),
                     one(t.deadline_at.is_not(None)).label("on_time_n"),
                     one(and_(t.deadline_at.is_not(None), t.closed_at <= t.deadline_at)).label("on_time_x"),
                     one(t.satisfaction.is_not(None)).label("satisfaction_n"),
                     one(t.satisfaction.in_(SATISFIED)).label("satisfaction_x"),
                     one(t.resolved.is_not(None)).label("resolution_n"),
                     one(t.resolved.is_(True)).label("resolution_x"))
              .where(t.province_code == province_code, t.closed_at >= lo, t.closed_at < hi)
              .group_by(t.city_code, t.district_code, t.category_l2))
    due = (select(t.city_code, t.district_code, t.category_l2, func.count().label("overdue_n"),
                  one(or_(t.closed_at.is_(None), t.closed_at > t.deadline_at)).label("overdue_x"))
           .where(t.province_code == province_code, t.deadline_at >= lo, t.deadline_at < hi)
           .group_by(t.city_code, t.district_code, t.category_l2))
    with engine.connect() as conn:
        a = pd.DataFrame(conn.execute(closed).mappings().all())
        b = pd.DataFrame(conn.execute(due).mappings().all())
    rr = read_rates(engine, month, province_code=province_code)
    frames = []
    for df in (a, b):
        if not df.empty:
            frames.append(df.assign(district_code=df["district_code"].fillna("")).set_index(KEYS))
    if not rr.empty:
        rr = rr[rr["category_code"] != "*"]
        rep = pd.DataFrame({"city_code": rr["city_code"],
                            "district_code": rr["region_code"].where(rr["region_level"] == "district", ""),
                            "category_l2": rr["category_code"], "repeat_n": rr["n_with_caller"],
                            "repeat_x": rr["n_repeat"]})
        frames.append(rep.groupby(KEYS).sum())
    if not frames:
        return pd.DataFrame(columns=[*KEYS, *AGG_COLUMNS])
    out = pd.concat(frames, axis=1).fillna(0)
    for c in AGG_COLUMNS:
        out[c] = out[c].astype(float) if c in out else 0.0
    out = out[AGG_COLUMNS].reset_index()
    out["district_code"] = out["district_code"].replace("", None)
    return out


def _groups(ref: Reference, province_code: str, level: str) -> dict[str, str]:
    prov = ref.regions.province(province_code)
    if level == "city":
        return {c.code: c.tier for c in prov.cities}
    return {d.code: c.code for c in prov.cities for d in c.districts}


def rank_month(agg: pd.DataFrame, ref: Reference, province_code: str, level: str, cfg: RankingConfig,
               previous: dict[str, int] | None = None) -> pd.DataFrame:
    """Rank the province's cities within their tiers, or every city's districts within their city
    (one scale for the province's districts); the benchmark is the province's, per category."""
    bench = benchmark(agg)
    if level == "city":
        return rank_units(agg, "city_code", _groups(ref, province_code, "city"), cfg, bench, previous)
    d = agg[agg["district_code"].notna()]
    return rank_units(d, "district_code", _groups(ref, province_code, "district"), cfg, bench, previous)


def stored_ranks(engine: Engine, month: pd.Period, level: str, scopes: list[str]) -> pd.DataFrame:
    r = rankings.c
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(select(rankings).where(
            r.month == month.start_time.date(), r.level == level, r.scope.in_(scopes))).mappings().all())


def run_ranking(engine: Engine, month: pd.Period, ref: Reference, sla: SlaConfig, cfg: RankingConfig,
                province_code: str, levels: tuple[str, ...] = ("city", "district"),
                repeats: bool = True) -> dict[str, Any]:
    """Rank the month at each level, store it, and return it (with last month's ranks: the stored
    ones, or computed from the tickets when last month was never ranked)."""
    tz = ref.regions.province(province_code).timezone
    run_id = new_run_id("ranking")
    with stage_run(engine, "ranking", month.end_time.date(), {"month": str(month), "levels": list(levels)},
                   run_id) as run:
        out: dict[str, Any] = {"month": str(month), "province": province_code, "levels": {}}

        def figures(m: pd.Period) -> pd.DataFrame:
            if repeats:
                month_rates(engine, m, province_code, sla, tz)
            return read_aggregates(engine, m, province_code, tz)

        agg = figures(month)
        before: pd.DataFrame | None = None  # last month's figures, read only when its ranking is not stored
        for level in levels:
            scopes = _scopes(ref, province_code, level)
            prev = stored_ranks(engine, month - 1, level, scopes)
            if len(prev):
                previous = {r.unit_code: (r.group_key, int(r.rank)) for r in prev.itertuples() if pd.notna(r.rank)}
                source = "stored"
            else:
                before = figures(month - 1) if before is None else before
                pr = rank_month(before, ref, province_code, level, cfg) if len(before) else None
                previous = ({r.unit: (r.group, int(r.rank)) for r in pr.itertuples() if pd.notna(r.rank)}
                            if pr is not None else {})
                source = "computed" if previous else "none"
            res = rank_month(agg, ref, province_code, level, cfg, previous)
            _store(engine, res, month, level, province_code, run_id, source)
            out["levels"][level] = {"result": res, "previous": source}
        out["tickets_closed"] = int(agg["handling_hours_n"].sum()) if len(agg) else 0
        out["coverage"] = coverage(engine, month, province_code)
        run.metrics = {"month": str(month), "closed": out["tickets_closed"],
                       "units": {k: len(v["result"]) for k, v in out["levels"].items()}}
        return out


def _scopes(ref: Reference, province_code: str, level: str) -> list[str]:
    prov = ref.regions.province(province_code)
    return [province_code] if level == "city" else [c.code for c in prov.cities]


def _store(engine: Engine, res: pd.DataFrame, month: pd.Period, level: str, province_code: str, run_id: str,
           previous_source: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for r in res.itertuples():
        rows.append({"month": month.start_time.date(), "level": level,
                     "scope": province_code if level == "city" else r.group, "unit_code": r.unit,
                     "group_key": r.group, "rank": None if pd.isna(r.rank) else int(r.rank),
                     "group_size": int(r.group_size), "composite": None if pd.isna(r.composite) else float(r.composite),
                     "rank_prev": None if r.rank_prev is None or pd.isna(r.rank_prev) else int(r.rank_prev),
                     "flagged": bool(r.flagged), "metrics": r.metrics,
                     "notes": {"closed": int(r.closed), "significantly_worse": list(r.significantly_worse),
                               "previous": previous_source},
                     "run_id": run_id, "created_at": now})
    k = rankings.c
    with engine.begin() as conn:
        conn.execute(delete(rankings).where(k.month == month.start_time.date(), k.level == level,
                                            k.scope.in_({r["scope"] for r in rows} | {province_code})))
        if rows:
            conn.execute(rankings.insert(), rows)


def load_stored(engine: Engine, month: pd.Period, ref: Reference, province_code: str,
                levels: tuple[str, ...] = ("city", "district")) -> dict[str, Any] | None:
    """A stored month in the shape :func:`run_ranking` returns (None when the month was never
    ranked): what the report, the brief and the board read."""
    out: dict[str, Any] = {"month": str(month), "province": province_code, "levels": {}}
    closed = 0
    for level in levels:
        df = stored_ranks(engine, month, level, _scopes(ref, province_code, level))
        if df.empty:
            continue
        notes = df["notes"].map(lambda n: n or {})
        res = pd.DataFrame({"unit": df["unit_code"], "group": df["group_key"],
                            "closed": notes.map(lambda n: n.get("closed", 0)),
                            "rankable": df["rank"].notna(), "composite": df["composite"], "rank": df["rank"],
                            "group_size": df["group_size"], "rank_prev": df["rank_prev"], "flagged": df["flagged"],
                            "significantly_worse": notes.map(lambda n: n.get("significantly_worse", [])),
                            "metrics": df["metrics"]})
        out["levels"][level] = {"result": best_first(res),
                                "previous": notes.iloc[0].get("previous", "stored")}
        if level == "city":
            closed = int(res["closed"].sum())
    if not out["levels"]:
        return None
    out["tickets_closed"] = closed
    out["coverage"] = coverage(engine, month, province_code)
    return out


def latest_month(engine: Engine, province_code: str, before: dt.date) -> pd.Period | None:
    """The last month the province's cities were ranked before ``before``."""
    k = rankings.c
    with engine.connect() as conn:
        m = conn.execute(select(func.max(k.month)).where(k.month < before, k.level == "city",
                                                         k.scope == province_code)).scalar()
    return None if m is None else pd.Timestamp(m).to_period("M")


def coverage(engine: Engine, month: pd.Period, province_code: str) -> dict[str, Any]:
    """Whether the warehouse holds tickets from long enough before the month for its closures and
    repeats (30 days, the repeat window): a later start leaves closures of older tickets out."""
    t = tickets.c
    with engine.connect() as conn:
        first = conn.execute(select(func.min(t.received_date)).where(t.province_code == province_code)).scalar()
    if first is None:
        return {"first_ticket_day": None, "complete": False}
    first = pd.Timestamp(first).date()
    need = month.start_time.date() - dt.timedelta(days=30)
    return {"first_ticket_day": str(first), "complete": first <= need}


def as_json(out: dict[str, Any], ref: Reference, lang: str = "zh") -> dict[str, Any]:
    """The stage's result as plain JSON: per level, the groups best first with every metric."""
    doc = {k: v for k, v in out.items() if k != "levels"}
    doc["levels"] = {}
    for level, item in out["levels"].items():
        res = item["result"]
        groups = []
        order, names = _group_meta(ref, out["province"], level, lang)
        for g, part in sorted(res.groupby("group", sort=False), key=lambda kv: order.get(kv[0], len(order))):
            units = []
            for r in part.itertuples():
                rank = None if pd.isna(r.rank) else int(r.rank)
                prev = None if r.rank_prev is None or pd.isna(r.rank_prev) else int(r.rank_prev)
                units.append({"code": r.unit, "name": ref.regions.name(r.unit, lang), "rank": rank,
                              "rank_prev": prev, "movement": None if rank is None or prev is None else prev - rank,
                              "composite": None if pd.isna(r.composite) else round(float(r.composite), 2),
                              "flagged": bool(r.flagged), "closed": int(r.closed),
                              "significantly_worse": list(r.significantly_worse), "metrics": r.metrics})
            groups.append({"group": g, "name": names.get(g, g), "ranked": int(part["group_size"].iloc[0]),
                           "units": units})
        doc["levels"][level] = {"previous": item["previous"], "groups": groups}
    doc["metrics"] = {m: {"zh": v[2], "en": v[3], "higher_is_better": v[1], "unit": v[4]} for m, v in METRICS.items()}
    return doc


def _group_meta(ref: Reference, province_code: str, level: str, lang: str) -> tuple[dict[str, int], dict[str, str]]:
    """Each group's place and name: the tiers from the largest (tiers.yaml order) with their names,
    or the districts' cities in the region file's order."""
    if level == "city":
        from hotline.core.reference import load_tiers

        tiers = load_tiers(ref.config_dir)["tiers"]
        return {t: i for i, t in enumerate(tiers)}, {t: str(v.get(lang, t)) for t, v in tiers.items()}
    cities = ref.regions.province(province_code).cities
    return {c.code: i for i, c in enumerate(cities)}, {c.code: ref.regions.name(c.code, lang) for c in cities}
