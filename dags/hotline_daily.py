"""hotline_daily: each day's 12345 tickets into the warehouse, then daily counts at every level.

Wiring only: every task calls the library (ingestion, warehouse) and passes references (dates,
run ids), never DataFrames. Heavy imports happen inside the tasks so that parsing stays fast.
"""
from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

TZ = "Asia/Shanghai"

DOC = """
### 12345 daily pipeline

Runs after each day ends (00:00 Asia/Shanghai) for the day that just ended: the data interval
is that local day. Set the `day` param to run a given day by hand.

| task | what it does | when it fails |
|---|---|---|
| `ingest` | reads the configured source (config/hotline.yaml `source`) for the day plus the look-back window (late and updated tickets), maps to the canonical schema, masks PII, upserts tickets, quarantines bad rows | the source is unreachable or unreadable: the log names the file, line and column; fix the source or the mapping and clear the task. Bad *rows* never fail it: `hotline quarantine` lists them. |
| `aggregate` | recomputes `daily_counts` for every day the ingest touched, at all region and category levels | a database error: clear the task; it is idempotent |
"""


def _day(context) -> dt.date:
    """The local day this run covers: the `day` param if given, else the data interval's day."""
    given = (context.get("params") or {}).get("day")
    if given:
        return dt.date.fromisoformat(given)
    start = pendulum.instance(context["data_interval_start"]).in_timezone(TZ)
    return start.date()


@dag(
    dag_id="hotline_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    tags=["hotline", "daily"],
    default_args={"owner": "hotline", "retries": 2, "retry_delay": dt.timedelta(minutes=5),
                  "retry_exponential_backoff": True},
    params={"day": Param(None, type=["null", "string"], format="date",
                         description="Run for this local day (YYYY-MM-DD) instead of the data interval's.")},
    doc_md=DOC,
)
def hotline_daily():
    @task
    def ingest() -> dict:
        """Ingest the day (plus look-back); return a small summary with the touched days."""
        from hotline.settings import load_settings
        from ingestion.daily import ingest_day

        ctx = get_current_context()
        day = _day(ctx)
        summary = ingest_day(load_settings(), day, aggregate=False)
        print(f"ingest {day}: read {summary.read}, loaded {summary.loaded}, quarantined {summary.quarantined}")
        return {"day": day.isoformat(), "run_id": summary.run_id, "read": summary.read, "loaded": summary.loaded,
                "quarantined": summary.quarantined, "touched_dates": summary.touched_dates}

    @task
    def aggregate(ingested: dict) -> dict:
        """Recompute daily_counts for the days the ingest touched."""
        from hotline.settings import load_settings
        from warehouse.aggregate import aggregate_run
        from warehouse.db import connect

        days = [dt.date.fromisoformat(d) for d in ingested["touched_dates"]]
        n = aggregate_run(connect(load_settings().db_url), days, dt.date.fromisoformat(ingested["day"]))
        print(f"aggregated {n} days")
        return {"day": ingested["day"], "days_aggregated": n}

    aggregate(ingest())


hotline_daily()
