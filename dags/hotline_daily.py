"""hotline_daily: each day's 12345 tickets into the warehouse, then daily counts at every level.

Wiring only: every task calls the library (ingestion, warehouse) and passes references (dates,
run ids), never DataFrames. Heavy imports happen inside the tasks so that parsing stays fast.
"""
from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from hotline.app.operations import load_operations, run_day
from hotline.callbacks import on_daily_deadline_missed, on_task_failure

TZ = "Asia/Shanghai"
OPS = load_operations()

DOC = """
### 12345 daily pipeline

Runs after each day ends (00:00 Asia/Shanghai) for the day that just ended: the data interval
is that local day. Set the `day` param to run a given day by hand. The batch goes through a
data-quality gate before anything downstream sees it (write, audit, publish).

**Operators.** Each city is a mapped task named by its code and name (`forecast [440300 深圳市]`):
clear one to rerun that city alone. Tasks retry with exponential back-off (config/hotline.yaml
`operations`); `forecast` and `detect` run in the `hotline_models` pool. The operators'
channel (config/alerts.yaml, `operators`) is told when a task fails for good, when the
data-quality gate halts the run, and when the day's run is not done by `operations.daily_deadline`
(06:00 Asia/Shanghai the next morning). Backfill: `airflow backfill create --dag-id hotline_daily
--from-date A --to-date B --reprocess-behavior completed`; every task is idempotent.
`hotline runs --last 7` shows each day's stages, volumes and failures.

| task | what it does | when it fails |
|---|---|---|
| `ingest` | reads the configured source (config/hotline.yaml `source`) for the day plus the look-back window (late and updated tickets), maps to the canonical schema, masks PII, quarantines bad rows, and *stages* the batch | the source is unreachable or unreadable: the log names the file, line and column; fix the source or the mapping and clear the task. Bad *rows* never fail it: `hotline quarantine` lists them. |
| `validate` | the tickets-batch suite (Great Expectations) on the staged batch: failing rows are quarantined; too many, or garbled text, **halts** the run | halted: the log and `var/dq/<day>/` say why; the batch stays staged, nothing is published. Fix the feed, then rerun the day. |
| `publish` | merges the batch into `tickets` and recomputes `daily_counts` for every day it touched | a database error: clear the task; it is idempotent |
| `feed_health` | volumes per city, district and channel against the same weekday in recent weeks, silent regions or channels, unmapped categories, days loaded twice, late arrivals, the hour-of-day profile | halted: the day's regions are flagged (`dq_day_flags`) so later stages treat the day as missing; the log and the page say why |
| `forecast_scopes` | lists the cities to forecast | a config error: fix config/regions |
| `forecast` (mapped, one per city) | reads the city's series from `daily_counts`, forecasts the next 30 days (model chosen per series by backtest), makes districts and categories add up to the city, stores them in `forecasts` keyed by the origin day | a model error falls back to the fast model inside the task; a database error: clear that city's task alone |
| `forecast_province` | the province's forecast as the sum of its cities' | clear it after the city tasks succeed |
| `detect` (mapped, one per city, then the province) | the day's counts at every level (city and district x all/l1/l2; the province's with its cities as drill-down) against the history before them, with the city's tier profile (config/detection.yaml): spikes and drops where the forecaster and a robust seasonal decomposition agree, level shifts, emerging issues, categories spreading across districts; explanations name the districts and sub-categories that drove them; cool-down from the stored anomalies; stored in `anomalies` with the run | a database error: clear that scope's task; reruns replace the day's anomalies of the scope |
| `notify` | the day's anomalies become alerts (one per series and kind; fired, updated, resolved); silences and inhibition hold some back (recorded on the alert); the routing tree (config/alerts.yaml) sends each to its office, grouped; notices are queued in the outbox and delivered by email / DingTalk / WeCom / Feishu / webhook / file, with retries | a channel that is down does not fail the task: its notices stay pending and the next run delivers them (`hotline alerts outbox --status pending`); a config error fails it: fix config/alerts.yaml and clear the task, nothing is sent twice |
| `lights` | red/yellow overdue lights (config/sla.yaml): every light change of the day with its exact time (yellow, red with escalation to the city, further escalation after 24 h red, closed on time or late) into `light_events`; counts of the open tickets' lights by level, district and department; each district office gets its list of yellow and red tickets by department through the outbox (红黄灯日报, once a day) | a database error: clear the task; a rerun records and sends nothing twice |
| `board` | rebuilds the warning board under var/site/ (index.html and a page per city): the day's open alerts by severity and region with a chart each, the next 30 days' forecast, the latest 每月一题 proposal and watch list, links to the data-quality pages | a database or disk error: clear the task; it only reads the warehouse |
"""


def _day(context) -> dt.date:
    """The local day this run covers: the `day` param if given, else the data interval's day."""
    return run_day((context.get("params") or {}).get("day"), context["data_interval_start"], TZ)


@dag(
    dag_id="hotline_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    tags=["hotline", "daily"],
    default_args=OPS.default_args(on_task_failure),
    # the day's run should be done by operations.daily_deadline (Asia/Shanghai) the next morning;
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
    @task
    def ingest() -> dict:
        """Stage the day's batch (plus look-back); return a small summary."""
        from hotline.app.ingest import ingest_day
        from hotline.callbacks import report_abandoned_runs
        from hotline.core.settings import load_settings

        day = _day(get_current_context())
        summary = ingest_day(load_settings(), day, aggregate=False, publish=False)
        print(f"ingest {day}: read {summary.read}, staged {summary.loaded}, quarantined {summary.quarantined}")
        if n := report_abandoned_runs():  # runs a killed process left "running" (the operators are told once)
            print(f"{n} abandoned run(s) in the last 7 days reported to the operators (hotline runs)")
        return {"day": day.isoformat(), "run_id": summary.run_id, "read": summary.read, "loaded": summary.loaded,
                "quarantined": summary.quarantined}

    @task
    def validate(ingested: dict) -> dict:
        """The tickets-batch suite on the staged batch; halts the run on a broken feed."""
        from airflow.sdk.exceptions import AirflowFailException

        from data_quality.gate import halt_message, validate_staged
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        day = dt.date.fromisoformat(ingested["day"])
        v = validate_staged(connect(s.db_url), load_reference(s.config_dir), s.var_dir, ingested["run_id"], day,
                            s.lookback_days)
        print(f"data quality (tickets batch) {day}: {v.action}, {len(v.failed)} failed expectations, "
              f"{v.quarantined} rows quarantined; page {v.docs_path}")
        if v.action == "halt":
            raise AirflowFailException(halt_message(v))
        return {**ingested, "dq_batch": v.action, "dq_quarantined": v.quarantined, "dq_docs": str(v.docs_path)}

    @task
    def publish(validated: dict) -> dict:
        """Merge the audited batch into tickets and re-aggregate the days it touched."""
        from data_quality.gate import publish_and_aggregate
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        res = publish_and_aggregate(connect(s.db_url), validated["run_id"], dt.date.fromisoformat(validated["day"]),
                                    s.lock_wait_seconds)
        print(f"published: new {res['inserted']}, updated {res['updated']}; aggregated {res['days_aggregated']} days")
        return {**validated, **res}

    @task
    def feed_health(published: dict) -> dict:
        """Feed health against history; halts before forecasting on an implausible feed."""
        from airflow.sdk.exceptions import AirflowFailException

        from data_quality.gate import check_feed, halt_message
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        day = dt.date.fromisoformat(published["day"])
        v = check_feed(connect(s.db_url), load_reference(s.config_dir), s.var_dir, published["run_id"], day)
        print(f"data quality (feed health) {day}: {v.action}, {len(v.failed)} failed expectations; page {v.docs_path}")
        for r in v.reasons:
            print(f"  {r}")
        if v.action == "halt":
            raise AirflowFailException(halt_message(v))
        return {"day": published["day"], "dq_feed": v.action, "dq_docs": str(v.docs_path)}

    @task
    def forecast_scopes(checked: dict) -> list[dict]:
        """Every city of the configured province: one mapped task each."""
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings

        s = load_settings()
        province = load_reference(s.config_dir).regions.province(s.province)
        return [{"day": checked["day"], "scope": c.code, "name": c.zh, "calendar": province.calendar}
                for c in province.cities]

    @task(map_index_template="{{ task.op_kwargs['item']['scope'] }} {{ task.op_kwargs['item'].get('name', '') }}",
          pool=OPS.model_pool)
    def forecast(item: dict) -> dict:
        """Forecast one city's series from the day just loaded, made coherent within the city."""
        from forecasting.job import ForecastSettings, forecast_scope
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        res = forecast_scope(connect(s.db_url), dt.date.fromisoformat(item["day"]), item["scope"],
                             ForecastSettings.from_dict(s.forecasting), calendar=item.get("calendar", "CN"))
        print(f"forecast {item['scope']}: {res['series']} series, models {res['models']}")
        return {"day": item["day"], "name": item.get("name", ""), **res}

    @task
    def forecast_province(cities: list[dict]) -> dict:
        """The province's forecast as the sum of its cities' (bottom-up, coherent by construction)."""
        from forecasting.job import province_from_cities
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        cities = list(cities)
        day = dt.date.fromisoformat(cities[0]["day"])
        res = province_from_cities(connect(s.db_url), day, s.province)
        print(f"forecast province: {res['series']} series (sum of {len(cities)} cities)")
        return res

    @task
    def detect_scopes(province_forecast: dict, cities: list[dict]) -> list[dict]:
        """The same cities again, and the province, for detection once the forecasts are in."""
        from hotline.core.settings import load_settings

        province = load_settings().province
        items = [{"day": c["day"], "scope": c["scope"], "name": c.get("name", "")} for c in cities]
        return items + [{"day": cities[0]["day"], "scope": province, "name": "全省 province"}] if items else items

    @task(map_index_template="{{ task.op_kwargs['item']['scope'] }} {{ task.op_kwargs['item'].get('name', '') }}",
          pool=OPS.model_pool)
    def detect(item: dict) -> dict:
        """Spikes, drops, level shifts, emerging issues and spreading problems in one city's day
        (or the province's), with the city's tier profile and the districts that drove them."""
        from detectors.job import detect_scope
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        res = detect_scope(connect(s.db_url), dt.date.fromisoformat(item["day"]), item["scope"], s.config_dir)
        print(f"detect {item['scope']}: {res['anomalies']} anomalies {res['by_severity']}")
        return {"day": item["day"], **res}

    @task
    def notify(detected: list[dict]) -> dict:
        """The day's anomalies to alerts; silences and inhibition; routing to the offices,
        grouped; notices queued in the outbox and delivered (retries and the outbox carry what
        fails to the next run; a rerun sends nothing twice)."""
        import os

        from alerts.channels import Secrets
        from alerts.config import AlertsConfig
        from alerts.notify import notify_day, summary_lines
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from warehouse.db import connect

        s = load_settings()
        day = dt.date.fromisoformat(list(detected)[0]["day"]) if detected else _day(get_current_context())
        res = notify_day(connect(s.db_url), day, load_reference(s.config_dir), AlertsConfig.load(s.config_dir),
                         s.var_dir, Secrets(os.environ))
        for line in summary_lines(res):
            print(f"notify: {line}")
        return {k: v for k, v in res.items() if k != "queued"}

    @task
    def lights(published: dict) -> dict:
        """Red/yellow overdue lights: the day's light changes and escalations recorded (light_events),
        the open tickets' lights at the day's end counted by level, district and department."""
        from alerts.config import AlertsConfig
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.panel import last_day
        from sla.job import lights_day
        from sla.lights import SlaConfig
        from warehouse.db import connect

        s = load_settings()
        day = _day(get_current_context())
        engine = connect(s.db_url)
        # the districts' lists go out for the latest day only: a backfill of an older day records
        # its light changes but sends no stale list
        latest = last_day(engine, s.province)
        outbox = (AlertsConfig.load(s.config_dir), s.var_dir) if latest is None or day >= latest else None
        res = lights_day(engine, day, load_reference(s.config_dir), SlaConfig.load(s.config_dir), s.province,
                         outbox=outbox, lookback_days=s.lookback_days)
        lists = res.get("lists") or {}
        print(f"lights: 红 red {res['red']}, 黄 yellow {res['yellow']} of {res['open']} open tickets at the end of {day}; "
              f"{len(res['escalations'])} escalation(s); {res['events_recorded']} light change(s) recorded; "
              f"lists for {lists.get('offices', 0)} office(s), {lists.get('queued', 0)} queued")
        return {k: res[k] for k in ("day", "red", "yellow", "open", "events_recorded")}

    @task
    def board(notified: dict) -> dict:
        """The warning board (var/site/): the day's alerts with charts, the next 30 days, the
        latest issue-of-the-month proposal, data-quality pages; static files, no server."""
        from hotline.core.reference import load_reference
        from hotline.core.settings import load_settings
        from proposals.panel import last_day
        from reports.board import build_board
        from warehouse.db import connect

        s = load_settings()
        day = _day(get_current_context())
        engine = connect(s.db_url)
        latest = last_day(engine, s.province)
        # a rerun or backfill of an older day must not replace the live board with an old one
        out = s.var_dir / "site" if latest is None or day >= latest else s.var_dir / "site" / "days" / str(day)
        index = build_board(engine, day, load_reference(s.config_dir), s.province, out, s.var_dir)
        print(f"board: {index.resolve()}")
        return {"day": str(day), "index": str(index.resolve())}

    published = publish(validate(ingest()))
    lights(published)
    scopes = forecast_scopes(feed_health(published))
    city_forecasts = forecast.expand(item=scopes)
    board(notify(detect.expand(item=detect_scopes(forecast_province(city_forecasts), scopes))))


hotline_daily()
