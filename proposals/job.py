"""The monthly proposals run: rank each scope's candidates, choose (respecting the cool-down and
an analyst's override), store in ``proposals``, and write the reports under var/reports/proposals/."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select, update

from hotline.core.reference import Reference
from proposals import panel
from proposals.config import ProposalsConfig
from proposals.rank import Scope, candidate_records, choose, score_scope
from proposals.report import label
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import pipeline_runs, proposals

CITY_LEVELS = (("city", "all"), ("city", "l1"), ("city", "l2"), ("district", "all"), ("district", "l1"),
               ("district", "l2"))
PROVINCE_LEVELS = (("province", "all"), ("province", "l1"), ("province", "l2"), ("city", "l1"), ("city", "l2"))


class ProposalError(ValueError):
    pass


def parse_month(text: str) -> pd.Period:
    """``YYYY-MM`` as a monthly Period (pandas alone would also take "March" or "2026")."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", str(text).strip()):
        raise ProposalError(f"--month {text!r}: expected YYYY-MM")
    return pd.Period(str(text).strip(), freq="M")


@dataclass
class ScopeResult:
    scope: Scope
    month: pd.Period
    ranked: pd.DataFrame
    choice: dict[str, Any]
    previous: list[dict[str, Any]] = field(default_factory=list)
    override: dict[str, Any] | None = None
    report_paths: dict[str, Any] | None = None
    lost_override: dict[str, Any] | None = None  # an earlier override whose candidate is gone
    sprouts: pd.DataFrame = field(default_factory=pd.DataFrame)  # 苗头: surges, new issues, peaks ahead
    history: list[dict[str, Any]] = field(default_factory=list)  # every earlier choice, newest first


@dataclass
class MonthData:
    """Everything read once for a month and province, shared by its scopes."""
    month: pd.Period
    monthly: pd.DataFrame
    daily: pd.DataFrame
    coverage: pd.Series
    anomalies: pd.DataFrame
    region_parent: dict[str, str]
    handling: pd.DataFrame | None = None
    _current: pd.DataFrame | None = None

    @property
    def current(self) -> pd.DataFrame:
        """The evidence month's rows of ``monthly``."""
        if self._current is None:
            self._current = self.monthly[self.monthly["month"] == self.month]
        return self._current


def scopes_of(ref: Reference, province_code: str, cities: Iterable[str] | None = None,
              include_province: bool = True) -> list[Scope]:
    prov = ref.regions.province(province_code)
    wanted = set(cities) if cities else None
    out = [Scope(c.code, "city", tuple(d.code for d in c.districts)) for c in prov.cities
           if wanted is None or c.code in wanted]
    if wanted:
        unknown = wanted - {c.code for c in prov.cities}
        if unknown:
            raise ProposalError(f"--city {', '.join(sorted(unknown))}: not a city of {prov.zh} ({province_code})")
    if include_province:
        out.append(Scope(prov.code, "province", tuple(c.code for c in prov.cities)))
    return out


def read_month(engine: Engine, month: pd.Period, ref: Reference, province_code: str, cfg: ProposalsConfig,
               province_scope: bool = True) -> MonthData:
    first = month - (int(cfg.scoring["history_months"]) - 1)
    levels = sorted(set(CITY_LEVELS) | (set(PROVINCE_LEVELS) if province_scope else set()))
    monthly = panel.read_monthly(engine, first, month, province_code, levels)
    day_levels = [lv for lv in levels if lv[1] != "all"]
    parent = {**ref.regions.district_parent(), **ref.regions.city_parent()}
    return MonthData(month, monthly, panel.read_days(engine, month, province_code, day_levels),
                     panel.coverage(engine, first, month, province_code),
                     panel.anomaly_counts(engine, month, province_code), parent,
                     panel.handling(engine, month - 11, month, province_code,
                                    ref.regions.province(province_code).timezone))


def previous_choices(engine: Engine, scope: str, month: pd.Period, months: int) -> list[dict[str, Any]]:
    """The scope's chosen issues of the ``months`` before ``month``, newest first."""
    first = (month - months).start_time.date()
    p = proposals.c
    with engine.connect() as conn:
        rows = conn.execute(select(p.month, p.chosen, p.candidates).where(
            p.scope == scope, p.month >= first, p.month < month.start_time.date(), p.chosen.is_not(None))
            .order_by(p.month.desc())).mappings().all()
    out = []
    for r in rows:
        rec = next((c for c in r["candidates"] or [] if c.get("candidate") == r["chosen"]), {})
        out.append({"month": str(pd.Timestamp(r["month"]).to_period("M")), "chosen": r["chosen"],
                    "daily_avg": rec.get("daily_avg"), "tickets": rec.get("tickets")})
    return out


def stored(engine: Engine, month: pd.Period, scope: str) -> dict[str, Any] | None:
    p = proposals.c
    with engine.connect() as conn:
        r = conn.execute(select(proposals).where(p.month == month.start_time.date(),
                                                 p.scope == scope)).mappings().first()
    return dict(r) if r else None


def rank_one(data: MonthData, scope: Scope, cfg: ProposalsConfig, ref: Reference, engine: Engine,
             override: str | None = None) -> ScopeResult:
    sc = cfg.scoring
    history = previous_choices(engine, scope.code, data.month,
                               max(int(sc["returned_within_months"]), int(sc["cooldown_months"]), 12))
    prev = [h for h in history if (data.month - pd.Period(h["month"], freq="M")).n <= int(sc["cooldown_months"])]
    recent = [h["chosen"] for h in history if (data.month - pd.Period(h["month"], freq="M")).n <= 12]
    depts = {code: c.department for code, c in ref.taxonomy.categories.items()}
    scores = score_scope(data.monthly, data.daily, data.coverage, data.month, scope, cfg, data.anomalies,
                         data.region_parent, previous=recent, earlier=[(h["month"], h["chosen"]) for h in history],
                         lead_department=depts, handling=data.handling)
    ranked = scores.candidates
    old = stored(engine, data.month, scope.code)
    ov = lost = None
    names = set(ranked["candidate"]) if not ranked.empty else set()
    if override is None and old and old["status"] in ("overridden", "override_lost"):
        earlier = {"by": old["override_by"], "reason": old["override_reason"], "at": old["overridden_at"],
                   "candidate": old["chosen"] if old["status"] == "overridden" else
                   ((old.get("reports") or {}).get("override") or {}).get("candidate")}
        if earlier["candidate"] in names:  # an analyst's earlier choice stands on a rerun
            override, ov = earlier["candidate"], earlier
        else:  # the data no longer has it: the model's pick, and the override kept on record
            lost = earlier
    if override is not None and override not in names:
        raise ProposalError(f"override {override!r} is not a candidate of {scope.code} for {data.month}: "
                            f"see `hotline propose --month {data.month} --city {scope.code}` for the ids")
    tax_parent = {c: ref.taxonomy.parent(c) for c in ref.taxonomy.l2_codes()}
    choice = (choose(ranked, cfg, prev, tax_parent, data.region_parent, override) if not ranked.empty
              else {"model_choice": None, "chosen": None, "watch": [], "blocked": {}})
    return ScopeResult(scope, data.month, ranked, choice, prev, ov, lost_override=lost, sprouts=scores.sprouts,
                       history=history)


def save(engine: Engine, res: ScopeResult, cfg: ProposalsConfig, ref: Reference, run_id: str,
         reports: dict[str, Any] | None, override: dict[str, Any] | None = None,
         now: dt.datetime | None = None, complete: bool = True) -> None:
    now = now or dt.datetime.now(dt.timezone.utc)
    chosen = res.choice["chosen"]
    score = None
    if chosen and not res.ranked.empty:
        score = float(res.ranked.loc[res.ranked["candidate"] == chosen, "score"].iloc[0])
    cands = candidate_records(res.ranked, int(cfg.scoring["stored_candidates"]))
    if chosen and chosen not in {c["candidate"] for c in cands}:
        cands += candidate_records(res.ranked[res.ranked["candidate"] == chosen], 1)
    watch = set(res.choice["watch"])
    for c in cands:
        c["blocked_by"] = res.choice["blocked"].get(c["candidate"])
        c["role"] = ("chosen" if c["candidate"] == chosen else "watch" if c["candidate"] in watch
                     else "held_back" if c["blocked_by"] else None)
    for c in candidate_records(res.sprouts, int(cfg.scoring["sprouts"])):
        c["role"] = "sprout"
        cands.append(c)
    ov = override or res.override or res.lost_override or {}
    status = "overridden" if (override or res.override) else "override_lost" if res.lost_override else "proposed"
    reports = dict(reports or {})
    if res.lost_override:
        reports["override"] = {"candidate": res.lost_override.get("candidate")}
    values = {"status": status, "model_choice": res.choice["model_choice"], "chosen": chosen,
              "title": label(chosen, ref, "zh") if chosen else None, "score": score, "candidates": cands,
              "weights": cfg.weights, "override_by": ov.get("by"), "override_reason": ov.get("reason"),
              "overridden_at": ov.get("at"), "complete": complete, "reports": reports or None, "run_id": run_id,
              "updated_at": now}
    p = proposals.c
    key = {"month": res.month.start_time.date(), "scope": res.scope.code}
    with engine.begin() as conn:
        done = conn.execute(update(proposals).where(p.month == key["month"], p.scope == key["scope"])
                            .values(**values)).rowcount
        if not done:
            conn.execute(proposals.insert().values(**key, **values, created_at=now))


def propose(engine: Engine, month: pd.Period, ref: Reference, cfg: ProposalsConfig, province_code: str,
            var_dir: Path, cities: Sequence[str] | None = None, override: str | None = None,
            override_by: str | None = None, override_reason: str | None = None,
            write_reports: bool = True, now: dt.datetime | None = None,
            province_only: bool = False) -> list[ScopeResult]:
    """Rank, choose, store and write reports for the province and each city (only ``cities``, or
    only the province, when asked). An ``override`` (a candidate id) needs exactly one scope, an
    author and a reason."""
    from proposals.report import write_reports as write

    now = now or dt.datetime.now(dt.timezone.utc)
    if province_only:
        scopes = [s for s in scopes_of(ref, province_code, include_province=True) if s.level == "province"]
    else:
        scopes = scopes_of(ref, province_code, cities, include_province=not cities)
    if override is not None:
        if len(scopes) != 1:
            raise ProposalError("an override names one scope: give --city CODE or --province with it")
        if override_by and len(override_by) > 64:
            raise ProposalError("--by: at most 64 characters")
        if not override_by or not override_reason:
            raise ProposalError("an override needs --by NAME and --reason TEXT (kept with the proposal)")
    end = panel.last_day(engine, province_code)
    if end is None:
        raise ProposalError("the warehouse has no daily counts for this province: run the daily DAG or "
                            "`hotline demo` first")
    if month.start_time.date() > end:
        raise ProposalError(f"--month {month}: the warehouse's data ends on {end}")
    run_id = new_run_id("propose")
    params = {"month": str(month), "scopes": [s.code for s in scopes]}
    with stage_run(engine, "propose", month.end_time.date(), params, run_id) as run:
        data = read_month(engine, month, ref, province_code, cfg, province_scope=any(s.level == "province"
                                                                                     for s in scopes))
        out = []
        for scope in scopes:
            res = rank_one(data, scope, cfg, ref, engine, override)
            ov = ({"by": override_by, "reason": override_reason, "at": now} if override is not None else None)
            if ov:
                res.override = ov
            complete = month.end_time.date() <= end
            reports = write(engine, res, data, cfg, ref, var_dir, complete=complete) if write_reports else None
            res.report_paths = reports
            save(engine, res, cfg, ref, run_id, reports, ov, now, complete)
            out.append(res)
        run.metrics = {"scopes": len(out), "chosen": {r.scope.code: r.choice["chosen"] for r in out}}
        return out


def latest(engine: Engine, scope: str, before: dt.date | None = None) -> dict[str, Any] | None:
    """The scope's newest proposal made from a complete month (evidence month before ``before``)."""
    p = proposals.c
    q = select(proposals).where(p.scope == scope, p.complete.is_(True))
    if before is not None:
        q = q.where(p.month < before)
    with engine.connect() as conn:
        r = conn.execute(q.order_by(p.month.desc()).limit(1)).mappings().first()
    return dict(r) if r else None


def stored_month(engine: Engine, month: pd.Period, scopes: Sequence[str] | None = None) -> list[dict[str, Any]]:
    p = proposals.c
    q = select(proposals).where(p.month == month.start_time.date())
    if scopes:
        q = q.where(p.scope.in_(list(scopes)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(p.scope)).mappings()]


def month_complete(engine: Engine, month: pd.Period) -> bool:
    """Whether the daily run for the month's last day has notified (the monthly DAG waits for it)."""
    r = pipeline_runs.c
    with engine.connect() as conn:
        return conn.execute(select(r.run_id).where(r.stage == "notify", r.logical_date == month.end_time.date(),
                                                   r.status == "success").limit(1)).scalar() is not None
