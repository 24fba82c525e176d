"""hotline_monthly: the issue of the month (每月一题), the horse race (赛马) and the province's
brief, after the month's last daily run.

Wiring only: the proposals and sla stages do the work (`hotline propose` and `hotline ranking`
run the same from the CLI).
"""
from __future__ import annotations

import pendulum
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from hotline.app.operations import load_operations
from hotline.callbacks import on_task_failure

TZ = "Asia/Shanghai"

DOC = """
### 12345 issue of the month (每月一题), horse race (赛马) and monthly brief

Runs at 06:00 on the 1st (Asia/Shanghai) for the month that just ended (the data interval), or
for the `month` param (YYYY-MM) when triggered by hand.

| task | what it does | when it fails |
|---|---|---|
| `wait_for_month` | waits until the daily run for the month's last day has notified (pipeline_runs), so the proposal sees the whole month; pokes every 10 minutes for up to 12 hours, freeing its worker slot between pokes | it times out when the last daily run failed: fix and clear that run, then clear this task |
| `propose` | ranks every city's and the province's candidate issues (volume, growth, persistence, spread, repeat / unresolved / unsatisfied / overdue rates, anomalies, the next 1-3 months' outlook), chooses one each (an issue chosen in the last 6 months only again if it worsened; an analyst's override is kept), stores them in `proposals` and writes the proposals to var/reports/proposals/<month>/ | a database error: clear the task; a rerun replaces the month's proposals and keeps overrides |
| `deliver` | hands each proposal to the alerts outbox for its city's 12345 centre and the province's office (config/alerts.yaml channels), once per month and issue | a channel that is down leaves its notice pending for the next delivery |
| `ranking` | ranks the cities within their size tier and the districts within their city on on-time completion, handling time, overdue, repeat complaints, satisfaction and resolution, adjusted for each one's category mix; stores `rankings` (with last month's ranks) and the month's `repeat_rates` | a database error: clear the task; a rerun replaces the month's ranking |
| `brief` | finds the hotspots (categories rising across cities, where they moved, cross-city issues), writes the report var/reports/ranking/<month>/province-<code>.zh.html (English beside it) and sends the province's brief, with the province's proposal, to `province:<code>` | a channel that is down leaves the brief pending; clear the task to rewrite the report |
| `board` | rebuilds the warning board (var/site/) with the new proposal and ranking | clear it |
"""


def _month(context) -> str:
    given = (context.get("params") or {}).get("month")
    if given:
        return str(given)
    start = pendulum.instance(context["data_interval_start"]).in_timezone(TZ)
    return f"{start.year:04d}-{start.month:02d}"


@dag(
    dag_id="hotline_monthly",
    schedule=CronDataIntervalTimetable("0 6 1 * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    tags=["hotline", "monthly"],
    default_args=load_operations().default_args(on_task_failure),
    params={"month": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}$",
                           description="Propose for this evidence month (YYYY-MM) instead of the data interval's.")},
    doc_md=DOC,
)
def hotline_monthly():
    @task.sensor(poke_interval=600, timeout=12 * 3600, mode="reschedule")
    def wait_for_month() -> PokeReturnValue:
        from hotline.core.settings import load_settings
        from proposals.job import month_complete, parse_month
        from warehouse.db import connect, migrate

        month = parse_month(_month(get_current_context()))
        s = load_settings()
        engine = connect(s.db_url)
        migrate(engine)
        done = month_complete(engine, month)
        print(f"wait_for_month: daily run for {month.end_time.date()} " + ("has notified" if done else "not finished yet"))
        return PokeReturnValue(is_done=done, xcom_value={"month": str(month)})

    @task
    def propose(waited: dict) -> dict:
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.config import ProposalsConfig
        from proposals.job import parse_month
        from proposals.job import propose as run
        from warehouse.db import connect

        s = load_settings()
        month = parse_month(waited["month"])
        results = run(connect(s.db_url), month, load_reference(s.config_dir), ProposalsConfig.load(s.config_dir),
                      s.province, s.var_dir)
        chosen = {r.scope.code: r.choice["chosen"] for r in results}
        for r in results:
            print(f"propose: {r.scope.code} {month}: {r.choice['chosen']} -> {(r.report_paths or {}).get('default')}")
        return {"month": str(month), "chosen": chosen}

    @task
    def deliver(proposed: dict) -> dict:
        from alerts.config import AlertsConfig
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.deliver import deliver_proposals
        from proposals.job import parse_month, stored_month
        from warehouse.db import connect

        s = load_settings()
        engine = connect(s.db_url)
        out = deliver_proposals(engine, stored_month(engine, parse_month(proposed["month"])),
                                AlertsConfig.load(s.config_dir), load_reference(s.config_dir), s.var_dir)
        print(f"deliver: {out}")
        return out

    @task
    def ranking(waited: dict) -> dict:
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.job import parse_month
        from sla.lights import SlaConfig
        from sla.race import run_ranking
        from sla.ranking import load_ranking_config
        from warehouse.db import connect

        s = load_settings()
        month = parse_month(waited["month"])
        out = run_ranking(connect(s.db_url), month, load_reference(s.config_dir), SlaConfig.load(s.config_dir),
                          load_ranking_config(s.config_dir), s.province)
        flagged = {lv: sorted(item["result"].loc[item["result"]["flagged"], "unit"]) for lv, item in out["levels"].items()}
        print(f"ranking: {month}: {out['tickets_closed']} tickets closed; flagged {flagged}")
        return {"month": str(month), "flagged": flagged}

    @task
    def brief(ranked: dict, delivered: dict) -> dict:
        from alerts.config import AlertsConfig
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.job import parse_month
        from sla.monthly import deliver_brief, horse_race
        from warehouse.db import connect

        s = load_settings()
        engine = connect(s.db_url)
        ref = load_reference(s.config_dir)
        res = horse_race(engine, parse_month(ranked["month"]), ref, s.config_dir, s.var_dir, s.province, rerank=False)
        sent = deliver_brief(engine, res, ref, AlertsConfig.load(s.config_dir), s.var_dir)
        print(f"brief: {res['reports']['zh']} sent {sent}")
        return {"report": res["reports"]["zh"], "delivery": sent}

    @task
    def board(briefed: dict) -> dict:
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.panel import last_day
        from reports.board import build_board
        from warehouse.db import connect

        s = load_settings()
        engine = connect(s.db_url)
        province = s.province
        day = last_day(engine, province)
        index = build_board(engine, day, load_reference(s.config_dir), province, s.var_dir / "site")
        print(f"board: {index.resolve()}")
        return {"index": str(index.resolve())}

    waited = wait_for_month()
    board(brief(ranking(waited), deliver(propose(waited))))


hotline_monthly()
