"""The monthly use cases (每月一题, 赛马, the province's brief), one per task of the monthly DAG;
`hotline propose` and `hotline ranking` run the same stages from the CLI."""
from __future__ import annotations

import logging

from hotline.app.runtime import Runtime

log = logging.getLogger("hotline.monthly")


def month_done(rt: Runtime, month: str) -> tuple[bool, str]:
    """Whether the daily run for the month's last day has notified; and the month, normalised."""
    from proposals.job import month_complete, parse_month

    m = parse_month(month)
    done = month_complete(rt.migrate().engine, m)
    log.info("wait_for_month: daily run for %s %s", m.end_time.date(), "has notified" if done else "not finished yet")
    return done, str(m)


def run_proposals(rt: Runtime, month: str, *, cities: list[str] | None = None, province_only: bool = False,
                  override: str | None = None, override_by: str | None = None,
                  override_reason: str | None = None) -> list:
    """Rank and choose the issue of the month for the province and each city (or the ``cities``
    given, or the province only), keeping or setting an analyst's override; stored and written.
    Returns each scope's result (proposals.job.ScopeResult)."""
    from proposals.config import ProposalsConfig
    from proposals.job import parse_month
    from proposals.job import propose as run

    return run(rt.engine, parse_month(month), rt.ref, ProposalsConfig.load(rt.settings.config_dir), rt.province,
               rt.settings.var_dir, cities=cities, override=override, override_by=override_by,
               override_reason=override_reason, province_only=province_only)


def propose(rt: Runtime, month: str) -> dict:
    """Every scope's issue of the month (the monthly DAG's task): a summary for the task's XCom."""
    from proposals.job import parse_month

    m = parse_month(month)
    results = run_proposals(rt, month)
    for r in results:
        log.info("propose: %s %s: %s -> %s", r.scope.code, m, r.choice["chosen"], (r.report_paths or {}).get("default"))
    return {"month": str(m), "chosen": {r.scope.code: r.choice["chosen"] for r in results}}


def deliver(rt: Runtime, month: str, scopes: list[str] | None = None) -> dict:
    """Each stored proposal of the month (of ``scopes``, default all) to its office's channels,
    once per month and issue."""
    from proposals.deliver import deliver_proposals
    from proposals.job import parse_month, stored_month

    out = deliver_proposals(rt.engine, stored_month(rt.engine, parse_month(month), scopes), rt.alerts_config, rt.ref,
                            rt.settings.var_dir, secrets=rt.secrets())
    log.info("deliver: %s", out)
    return out


def ranking(rt: Runtime, month: str) -> dict:
    """The horse race: cities within their tier, districts within their city; stored."""
    from proposals.job import parse_month
    from sla.race import run_ranking
    from sla.ranking import load_ranking_config

    m = parse_month(month)
    out = run_ranking(rt.engine, m, rt.ref, rt.sla_config, load_ranking_config(rt.settings.config_dir), rt.province)
    flagged = {lv: sorted(item["result"].loc[item["result"]["flagged"], "unit"]) for lv, item in out["levels"].items()}
    log.info("ranking: %s: %s tickets closed; flagged %s", m, out["tickets_closed"], flagged)
    return {"month": str(m), "flagged": flagged}


def horse_race(rt: Runtime, month, levels: tuple[str, ...] = ("city", "district"), rerank: bool = True) -> dict:
    """The month's ranking (stored; ``rerank=False`` reads the stored one), the hotspots, the zh/en
    report and the brief."""
    from proposals.job import parse_month
    from sla.monthly import horse_race as run

    s = rt.settings
    return run(rt.engine, parse_month(str(month)), rt.ref, s.config_dir, s.var_dir, rt.province, levels, rerank)


def send_brief(rt: Runtime, res: dict) -> dict:
    """The province's brief (with the report's link) to the province's office, once per month."""
    from sla.monthly import deliver_brief

    return deliver_brief(rt.engine, res, rt.ref, rt.alerts_config, rt.settings.var_dir, secrets=rt.secrets())


def brief(rt: Runtime, month: str) -> dict:
    """The province's monthly brief (hotspots, the stored ranking) written and sent (the DAG's task)."""
    res = horse_race(rt, month, rerank=False)
    sent = send_brief(rt, res)
    log.info("brief: %s sent %s", res["reports"]["zh"], sent)
    return {"report": res["reports"]["zh"], "delivery": sent}


def board(rt: Runtime) -> dict:
    """The warning board of the warehouse's latest day, with the new proposal and ranking."""
    from hotline.app import daily
    from proposals.panel import last_day

    return daily.board(rt, last_day(rt.engine, rt.province))
