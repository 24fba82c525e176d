"""hotline_monthly: the issue of the month (每月一题), the horse race (赛马) and the province's
brief, after the month's last daily run.

Wiring only: each task calls its use case in hotline.app.monthly with the Runtime (`hotline
propose` and `hotline ranking` run the same stages from the CLI); the tasks log through `logging`.
"""
from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from hotline.app.operations import load_operations
from hotline.app.runtime import Runtime
from hotline.callbacks import on_task_failure

OPS = load_operations()
TZ = OPS.timezone  # the configured province's, from its region file

# The DAG's page in the Airflow UI (what each task does, what to do when it fails).
DOC = (Path(__file__).with_name("hotline_monthly.md")).read_text(encoding="utf-8")


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
    default_args=OPS.default_args(on_task_failure),
    params={"month": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}$",
                           description="Propose for this evidence month (YYYY-MM) instead of the data interval's.")},
    doc_md=DOC,
)
def hotline_monthly():
    from hotline.app import monthly as app

    @task.sensor(poke_interval=600, timeout=12 * 3600, mode="reschedule")
    def wait_for_month() -> PokeReturnValue:
        done, month = app.month_done(Runtime.from_env(), _month(get_current_context()))
        return PokeReturnValue(is_done=done, xcom_value={"month": month})

    @task
    def propose(waited: dict) -> dict:
        return app.propose(Runtime.from_env(), waited["month"])

    @task
    def deliver(proposed: dict) -> dict:
        return app.deliver(Runtime.from_env(), proposed["month"])

    @task
    def ranking(waited: dict) -> dict:
        return app.ranking(Runtime.from_env(), waited["month"])

    @task
    def brief(ranked: dict, delivered: dict) -> dict:
        return app.brief(Runtime.from_env(), ranked["month"])

    @task
    def board(briefed: dict) -> dict:
        return app.board(Runtime.from_env())

    waited = wait_for_month()
    board(brief(ranking(waited), deliver(propose(waited))))


hotline_monthly()
