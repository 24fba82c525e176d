"""hotline_daily: each day's 12345 tickets into the warehouse, then daily counts at every level.

Wiring only: every task calls its use case in hotline.app.daily with the Runtime and passes
references (dates, run ids), never DataFrames; the tasks log through `logging`. Heavy imports
happen inside the tasks so that parsing stays fast.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pendulum
from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from hotline.app.operations import load_operations, run_day
from hotline.app.runtime import Runtime
from hotline.callbacks import on_daily_deadline_missed, on_task_failure

OPS = load_operations()
TZ = OPS.timezone  # the configured province's, from its region file

# The DAG's page in the Airflow UI (what each task does, what to do when it fails).
DOC = (Path(__file__).with_name("hotline_daily.md")).read_text(encoding="utf-8")


def _day(context) -> dt.date:
    """The local day this run covers: the `day` param if given, else the data interval's day."""
    return run_day((context.get("params") or {}).get("day"), context["data_interval_start"], TZ)


def _gate(step, *args):
    """Run a step that can find the feed unusable: a data-quality halt or no configured source
    fails the task with no retry (the feed or the configuration must be fixed)."""
    from airflow.sdk.exceptions import AirflowFailException

    from hotline.app.daily import DataQualityHalted
    from hotline.app.ingest import SourceNotConfigured

    try:
        return step(*args)
    except (DataQualityHalted, SourceNotConfigured) as exc:
        raise AirflowFailException(str(exc)) from None


@dag(
    dag_id="hotline_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    tags=["hotline", "daily"],
    default_args=OPS.default_args(on_task_failure),
    # the day's run should be done by operations.daily_deadline (local time) the next morning;
    # if not, the triggerer tells the operators (hotline.callbacks.on_daily_deadline_missed)
    deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
                           interval=OPS.deadline_after_logical_date,
                           callback=AsyncCallback(on_daily_deadline_missed),
                           name="daily_run_deadline") if OPS.daily_deadline else None,
    params={"day": Param(None, type=["null", "string"], format="date",
                         description="Run for this local day (YYYY-MM-DD) instead of the data interval's.")},
    doc_md=DOC,
)
def hotline_daily():
    from hotline.app import daily as app

    @task
    def ingest() -> dict:
        """Stage the day's batch (plus look-back); return a small summary."""
        return _gate(app.ingest, Runtime.from_env(), _day(get_current_context()))

    @task
    def validate(ingested: dict) -> dict:
        """The tickets-batch suite on the staged batch; halts the run on a broken feed."""
        return _gate(app.validate, Runtime.from_env(), ingested)

    @task
    def publish(validated: dict) -> dict:
        """Merge the audited batch into tickets and re-aggregate the days it touched."""
        return app.publish(Runtime.from_env(), validated)

    @task
    def feed_health(published: dict) -> dict:
        """Feed health against history; halts before forecasting on an implausible feed."""
        return _gate(app.feed_health, Runtime.from_env(), published)

    @task
    def forecast_scopes(checked: dict) -> list[dict]:
        """Every city of the configured province: one mapped task each."""
        return app.city_scopes(Runtime.from_env(), checked["day"])

    @task(map_index_template="{{ task.op_kwargs['item']['scope'] }} {{ task.op_kwargs['item'].get('name', '') }}",
          pool=OPS.model_pool)
    def forecast(item: dict) -> dict:
        """Forecast one city's series from the day just loaded, made coherent within the city."""
        return app.forecast_city(Runtime.from_env(), item)

    @task
    def forecast_province(cities: list[dict]) -> dict:
        """The province's forecast as the sum of its cities' (bottom-up, coherent by construction)."""
        return app.forecast_province(Runtime.from_env(), cities)

    @task
    def detect_scopes(province_forecast: dict, cities: list[dict]) -> list[dict]:
        """The same cities again, and the province, for detection once the forecasts are in."""
        return app.detect_scopes(Runtime.from_env(), cities)

    @task(map_index_template="{{ task.op_kwargs['item']['scope'] }} {{ task.op_kwargs['item'].get('name', '') }}",
          pool=OPS.model_pool)
    def detect(item: dict) -> dict:
        """Spikes, drops, level shifts, emerging issues and spreading problems in one city's day
        (or the province's), with the city's tier profile and the districts that drove them."""
        return app.detect(Runtime.from_env(), item)

    @task
    def notify(detected: list[dict]) -> dict:
        """The day's anomalies to alerts; silences and inhibition; routing to the offices,
        grouped; notices queued in the outbox and delivered (retries and the outbox carry what
        fails to the next run; a rerun sends nothing twice)."""
        day = dt.date.fromisoformat(list(detected)[0]["day"]) if detected else _day(get_current_context())
        return app.notify(Runtime.from_env(), day)

    @task
    def lights(published: dict) -> dict:
        """Red/yellow overdue lights: the day's light changes and escalations recorded (light_events),
        the open tickets' lights at the day's end counted by level, district and department; the
        districts' lists go out for the latest day only."""
        res = app.lights(Runtime.from_env(), _day(get_current_context()))
        return {k: res[k] for k in ("day", "red", "yellow", "open", "events_recorded")}

    @task
    def board(notified: dict) -> dict:
        """The warning board (var/site/): the day's alerts with charts, the next 30 days, the
        latest issue-of-the-month proposal, data-quality pages; static files, no server. An older
        day's board goes to var/site/days/<day>, beside the live one."""
        return app.board(Runtime.from_env(), _day(get_current_context()))

    published = publish(validate(ingest()))
    lights(published)
    scopes = forecast_scopes(feed_health(published))
    city_forecasts = forecast.expand(item=scopes)
    board(notify(detect.expand(item=detect_scopes(forecast_province(city_forecasts), scopes))))


hotline_daily()
