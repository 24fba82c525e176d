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
    done = month_complete(rt.engine, m)
    log.info("wait_for_month: daily run for %s %s", m.end_time.date(), "has notified" if done else "not finished yet")
    return done, str(m)


def propose(rt: Runtime, month: str) -> dict:
    """Rank and choose each city's and the province's issue of the month; store and write them."""
    from proposals.config import ProposalsConfig
    from proposals.job import parse_month
    from proposals.job import propose as run

    m = parse_month(month)
    results = run(rt.engine, m, rt.ref, ProposalsConfig.load(rt.settings.config_dir), rt.province, rt.settings.var_dir)
    for r in results:
        log.info("propose: %s %s: %s -> %s", r.scope.code, m, r.choice["chosen"], (r.report_paths or {}).get("default"))
    return {"month": str(m), "chosen": {r.scope.code: r.choice["chosen"] for r in results}}


def deliver(rt: Runtime, month: str) -> dict:
    """Each stored proposal of the month to its office's channels, once per month and issue."""
    from proposals.deliver import deliver_proposals
    from proposals.job import parse_month, stored_month

    out = deliver_proposals(rt.engine, stored_month(rt.engine, parse_month(month)), rt.alerts_config, rt.ref,
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


def brief(rt: Runtime, month: str) -> dict:
    """The province's monthly brief (hotspots, the ranking) written and sent to the province."""
    from proposals.job import parse_month
    from sla.monthly import deliver_brief, horse_race

    s = rt.settings
    res = horse_race(rt.engine, parse_month(month), rt.ref, s.config_dir, s.var_dir, rt.province, rerank=False)
    sent = deliver_brief(rt.engine, res, rt.ref, rt.alerts_config, s.var_dir, secrets=rt.secrets())
    log.info("brief: %s sent %s", res["reports"]["zh"], sent)
    return {"report": res["reports"]["zh"], "delivery": sent}


def board(rt: Runtime) -> dict:
    """The warning board of the warehouse's latest day, with the new proposal and ranking."""
    from hotline.app import daily
    from proposals.panel import last_day

    return daily.board(rt, last_day(rt.engine, rt.province))
