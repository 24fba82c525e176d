"""The daily use cases, one per stage of the daily DAG, each called by its task and by the CLI.

Each takes the Runtime and small references (the day, a run id, a scope) and returns a small
dict; the DAG passes those between tasks. The policies that belong to the pipeline, not to a
task body, live here: the red/yellow lists go out for the latest day only, and the board of an
older day (a rerun, a backfill) goes beside the live board instead of replacing it.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from hotline.app.runtime import Runtime

log = logging.getLogger("hotline.daily")


class DataQualityHalted(RuntimeError):
    """The data-quality gate halted the run; the message says why and where the page is."""


def _is_latest(rt: Runtime, day: dt.date) -> bool:
    """Whether ``day`` is the warehouse's latest day (or the warehouse is empty)."""
    from proposals.panel import last_day

    latest = last_day(rt.engine, rt.province)
    return latest is None or day >= latest


def ingest(rt: Runtime, day: dt.date) -> dict:
    """Stage the day's batch (plus look-back) from the configured source; report abandoned runs."""
    from hotline.app.ingest import ingest_day
    from hotline.app.notices import report_abandoned_runs

    summary = ingest_day(rt.settings, day, aggregate=False, publish=False, secrets=rt.secrets())
    log.info("ingest %s: read %s, staged %s, quarantined %s", day, summary.read, summary.loaded, summary.quarantined)
    if n := report_abandoned_runs(rt=rt):  # runs a killed process left "running" (the operators are told once)
        log.warning("%s abandoned run(s) in the last 7 days reported to the operators (hotline runs)", n)
    return {"day": day.isoformat(), "run_id": summary.run_id, "read": summary.read, "loaded": summary.loaded,
            "quarantined": summary.quarantined}


def validate(rt: Runtime, ingested: dict) -> dict:
    """The tickets-batch suite on the staged batch. Raises DataQualityHalted on a broken feed."""
    from data_quality.gate import halt_message, validate_staged

    s, day = rt.settings, dt.date.fromisoformat(ingested["day"])
    v = validate_staged(rt.engine, rt.ref, s.var_dir, ingested["run_id"], day, s.lookback_days, rt.tz)
    log.info("data quality (tickets batch) %s: %s, %s failed expectations, %s rows quarantined; page %s",
             day, v.action, len(v.failed), v.quarantined, v.docs_path)
    if v.action == "halt":
        raise DataQualityHalted(halt_message(v))
    return {**ingested, "dq_batch": v.action, "dq_quarantined": v.quarantined, "dq_docs": str(v.docs_path)}


def publish(rt: Runtime, validated: dict) -> dict:
    """Merge the audited batch into tickets and re-aggregate the days it touched."""
    from data_quality.gate import publish_and_aggregate

    res = publish_and_aggregate(rt.engine, validated["run_id"], dt.date.fromisoformat(validated["day"]),
                                rt.settings.lock_wait_seconds)
    log.info("published: new %s, updated %s; aggregated %s days", res["inserted"], res["updated"],
             res["days_aggregated"])
    return {**validated, **res}


def feed_health(rt: Runtime, published: dict) -> dict:
    """Feed health against history. Raises DataQualityHalted on an implausible feed."""
    from data_quality.gate import check_feed, halt_message

    day = dt.date.fromisoformat(published["day"])
    v = check_feed(rt.engine, rt.ref, rt.settings.var_dir, published["run_id"], day, rt.tz)
    log.info("data quality (feed health) %s: %s, %s failed expectations; page %s", day, v.action, len(v.failed),
             v.docs_path)
    for r in v.reasons:
        log.info("  %s", r)
    if v.action == "halt":
        raise DataQualityHalted(halt_message(v))
    return {"day": published["day"], "dq_feed": v.action, "dq_docs": str(v.docs_path)}


def city_scopes(rt: Runtime, day: str) -> list[dict]:
    """Every city of the configured province, one item each (a mapped task per city)."""
    province = rt.ref.regions.province(rt.province)
    return [{"day": day, "scope": c.code, "name": c.zh, "calendar": province.calendar} for c in province.cities]


def forecast_city(rt: Runtime, item: dict) -> dict:
    """Forecast one city's series from the day just loaded, made coherent within the city."""
    from forecasting.job import ForecastSettings, forecast_scope

    res = forecast_scope(rt.engine, dt.date.fromisoformat(item["day"]), item["scope"],
                         ForecastSettings.model_validate(rt.settings.forecasting), calendar=item.get("calendar", "CN"))
    log.info("forecast %s: %s series, models %s", item["scope"], res.series, res.models)
    return {"day": item["day"], "name": item.get("name", ""), **res.as_dict()}


def forecast_province(rt: Runtime, cities: list[dict]) -> dict:
    """The province's forecast as the sum of its cities' (bottom-up, coherent by construction)."""
    from forecasting.job import province_from_cities

    cities = list(cities)
    res = province_from_cities(rt.engine, dt.date.fromisoformat(cities[0]["day"]), rt.province)
    log.info("forecast province: %s series (sum of %s cities)", res.series, len(cities))
    return res.as_dict()


def detect_scopes(rt: Runtime, cities: list[dict]) -> list[dict]:
    """The cities again, then the province, for detection once the forecasts are in."""
    items = [{"day": c["day"], "scope": c["scope"], "name": c.get("name", "")} for c in cities]
    return items + [{"day": items[0]["day"], "scope": rt.province, "name": "全省 province"}] if items else items


def detect(rt: Runtime, item: dict) -> dict:
    """Spikes, drops, level shifts, emerging issues and spreading problems in one scope's day."""
    from detectors.job import detect_scope

    res = detect_scope(rt.engine, dt.date.fromisoformat(item["day"]), item["scope"], rt.settings.config_dir)
    log.info("detect %s: %s anomalies %s", item["scope"], res.anomalies, res.by_severity)
    return {"day": item["day"], **res.as_dict()}


def notify(rt: Runtime, day: dt.date) -> dict:
    """The day's anomalies to alerts, routed and delivered (the outbox carries what fails)."""
    from alerts.notify import notify_day, summary_lines

    res = notify_day(rt.engine, day, rt.ref, rt.alerts_config, rt.settings.var_dir, rt.secrets())
    for line in summary_lines(res):
        log.info("notify: %s", line)
    return res.as_dict()


def lights(rt: Runtime, day: dt.date, city: str | None = None, send: bool = True) -> dict:
    """Red/yellow overdue lights: the day's light changes and escalations recorded, the open
    tickets' lights at the day's end counted. With ``send``, each district office gets its list,
    for the latest day only: a backfill of an older day records its changes but sends no stale
    list (``lists_held`` then says so)."""
    from sla.job import lights_day

    latest = _is_latest(rt, day)
    outbox = (rt.alerts_config, rt.settings.var_dir, rt.secrets()) if send and latest else None
    res = lights_day(rt.engine, day, rt.ref, rt.sla_config, rt.province, city, outbox,
                     lookback_days=rt.settings.lookback_days)
    if send and not latest:
        res["lists_held"] = f"{day} is not the warehouse's latest day: no list sent"
    lists = res.get("lists") or {}
    log.info("lights: 红 red %s, 黄 yellow %s of %s open tickets at the end of %s; %s escalation(s); "
             "%s light change(s) recorded; lists for %s office(s), %s queued", res["red"], res["yellow"], res["open"],
             day, len(res["escalations"]), res["events_recorded"], lists.get("offices", 0), lists.get("queued", 0))
    return res


def board_dir(rt: Runtime, day: dt.date) -> Path:
    """Where the board of ``day`` goes: var/site for the latest day, else var/site/days/<day>, so
    that a rerun or backfill of an older day does not replace the live board."""
    site = rt.settings.var_dir / "site"
    return site if _is_latest(rt, day) else site / "days" / str(day)


def board(rt: Runtime, day: dt.date, out: Path | None = None) -> dict:
    """The warning board: the day's alerts with charts, the next 30 days, the latest proposal."""
    from reports.board import build_board

    index = build_board(rt.engine, day, rt.ref, rt.province, out or board_dir(rt, day), rt.settings.var_dir)
    log.info("board: %s", index.resolve())
    return {"day": str(day), "index": str(index.resolve())}


def run_day(rt: Runtime, day: dt.date) -> dict[str, Any]:
    """The whole daily path for one day, in the DAG's order, in one process (what `hotline daily`
    and the tests run; the DAG runs the same functions as separate tasks)."""
    published = publish(rt, validate(rt, ingest(rt, day)))
    lit = lights(rt, day)
    scopes = city_scopes(rt, feed_health(rt, published)["day"])
    cities = [forecast_city(rt, it) for it in scopes]
    forecast_province(rt, cities)
    detected = [detect(rt, it) for it in detect_scopes(rt, cities)]
    notified = notify(rt, day)
    shown = board(rt, day)
    return {"day": str(day), "published": published, "lights": {k: lit[k] for k in ("red", "yellow", "open")},
            "detected": detected, "notified": notified, "board": shown}
