"""The production topology (docker-compose.yml) proven without Docker: Airflow's scheduler,
dag-processor, triggerer, api-server and Celery workers as native processes, with a PostgreSQL
metadata database, Redis as the broker and the warehouse in PostgreSQL, all this machine's real
servers. The daily DAG is triggered through the REST API; a worker is killed in the middle of a
run and another started; the run must still succeed, with no duplicate rows or notices. Nothing
may be left running afterwards.

Needs PostgreSQL (HOTLINE_TEST_PG_URL) and Redis (HOTLINE_TEST_REDIS_URL, default
redis://127.0.0.1:6379/11; that database index is flushed). A server that is down fails the test.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import PG_SERVER_URL
from tests.native_stack import NativeStack

REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
TZ = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai (no DST)
DAG = "hotline_daily"

pytestmark = pytest.mark.slow


def _city_names() -> dict[str, str]:
    from hotline.core.reference import load_reference

    return {c.code: c.zh for c in load_reference().regions.province("370000").cities}


CITY_NAMES = _city_names()


def _settings(path: Path) -> None:
    path.write_text(yaml.safe_dump({
        "lookback_days": 3, "caller_salt": "it-salt",
        "operations": {"retries": 2, "retry_delay_seconds": 2, "max_retry_delay_seconds": 10,
                       "model_pool": "hotline_models", "daily_deadline": "06:00"},
        "source": {"kind": "generator", "mapping": "generator", "province": "370000", "seed": 9, "scale": 0.004,
                   "planted_events": [{"kind": "spike", "days_before": 0, "days": 1, "region": "370200",
                                       "category": "utilities.water_supply", "magnitude": 25.0}]},
    }, allow_unicode=True), encoding="utf-8")


def _trigger(stack: NativeStack, run_id: str, day: dt.date, logical: dt.datetime | None = None) -> dict:
    """A manual run for ``day``; its logical date (from which the deadline counts: 06:00 the next
    morning, 30 h after it) is the day's start unless given."""
    logical = (logical or dt.datetime.combine(day, dt.time(0), TZ)).astimezone(dt.timezone.utc)
    return stack.request("POST", f"/api/v2/dags/{DAG}/dagRuns", {
        "dag_run_id": run_id, "logical_date": logical.isoformat().replace("+00:00", "Z"), "conf": {"day": str(day)}})


def _run_state(stack: NativeStack, run_id: str) -> str:
    return stack.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}")["state"]


def _task_instances(stack: NativeStack, run_id: str) -> list[dict]:
    return stack.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances?limit=500")["task_instances"]


def _wait_success(stack: NativeStack, run_id: str, timeout: float) -> None:
    def done():
        state = _run_state(stack, run_id)
        if state == "failed":
            bad = [(t["task_id"], t["map_index"], t["state"]) for t in _task_instances(stack, run_id)
                   if t["state"] not in ("success", "skipped")]
            raise AssertionError(f"run {run_id} failed: {bad}\n{stack.tail('scheduler')}")
        return state == "success"

    stack.wait_for(done, timeout, f"run {run_id} to succeed", every=3)


def _operator_notices(engine) -> list[tuple]:
    from sqlalchemy import select

    from warehouse.schema import notifications

    with engine.connect() as conn:
        return conn.execute(select(notifications.c.receiver, notifications.c.group_key, notifications.c.subject,
                                   notifications.c.status)
                            .where(notifications.c.receiver.like("operators:%"))).all()


def _duplicates(engine) -> dict[str, int]:
    """Rows a task that ran twice could have written twice: each count must be 0."""
    from sqlalchemy import text

    queries = {
        "tickets": "SELECT COUNT(*) - COUNT(DISTINCT ticket_id) FROM tickets",
        "alert events": "SELECT COUNT(*) FROM (SELECT fingerprint, ds, action FROM alert_events "
                        "WHERE fingerprint IS NOT NULL GROUP BY fingerprint, ds, action HAVING COUNT(*) > 1) d",
        "notices": "SELECT COUNT(*) FROM (SELECT receiver, channel, group_key, ds, subject, body FROM notifications "
                   "GROUP BY receiver, channel, group_key, ds, subject, body HAVING COUNT(*) > 1) d",
        "anomalies": "SELECT COUNT(*) - COUNT(DISTINCT ds || series_id || detector) FROM anomalies",
    }
    with engine.connect() as conn:
        return {name: conn.execute(text(q)).scalar_one() for name, q in queries.items()}


def test_the_daily_dag_on_celery_workers_survives_a_killed_worker_and_leaves_nothing_running(tmp_path):
    from sqlalchemy import func, select

    from warehouse.db import connect
    from warehouse.schema import daily_counts, forecasts, notifications, tickets

    day1 = dt.datetime.now(TZ).date() - dt.timedelta(days=2)  # day 2 is yesterday: today is not over
    day2 = day1 + dt.timedelta(days=1)
    settings = tmp_path / "hotline.yaml"
    _settings(settings)
    var = tmp_path / "var"
    stack = NativeStack(tmp_path / "stack", PG_SERVER_URL, REDIS_URL,
                        hotline_env={"HOTLINE_SETTINGS": str(settings), "HOTLINE_VAR_DIR": str(var),
                                     "HOTLINE_DEMO_DAY": str(day2)})
    left = None
    try:
        stack.prepare()
        stack.run(["hotline", "demo", "--end", str(day1), "--days", "60", "--detect-days", "0"], timeout=900)
        stack.start_services(workers=0)
        wh = connect(stack.warehouse_url)
        stack.wait_for(lambda: stack.request("GET", "/api/v2/dags?dag_id_pattern=hotline_daily")["total_entries"],
                       180, "the dag-processor to parse the daily DAG", every=2)
        stack.request("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})

        # 1. no worker yet: the run cannot finish, and the deadline tells the operators (the run's
        # logical date is set so that its deadline, 06:00 the next morning, falls 30 s from now)
        deadline = dt.datetime.now(TZ) + dt.timedelta(seconds=30)
        logical = deadline - dt.timedelta(days=1, hours=6)
        assert _trigger(stack, "it-day1", day1, logical)["state"] == "queued"
        stack.wait_for(lambda: any(g == "ops:hotline_daily" for _, g, _, _ in _operator_notices(wh)), 180,
                       "the deadline alert", every=2)
        [(receiver, _, subject, _)] = _operator_notices(wh)
        assert receiver == "operators:370000" and "未在" in subject and str(day1) in subject

        # 2. a worker comes up: the run goes through
        stack.start_worker("worker-1")
        _wait_success(stack, "it-day1", 900)
        with wh.connect() as conn:
            assert conn.execute(select(func.count()).select_from(tickets)
                                .where(tickets.c.received_date == day1)).scalar_one() > 0
            assert conn.execute(select(func.count()).select_from(forecasts)
                                .where(forecasts.c.origin == day1)).scalar_one() > 0
            assert conn.execute(select(func.count()).select_from(daily_counts)
                                .where(daily_counts.c.ds == day1)).scalar_one() > 0

        # 3. the worker dies (SIGKILL to it and its task processes) while forecasts are running
        _trigger(stack, "it-day2", day2)
        def forecasts_running():
            tis = _task_instances(stack, "it-day2")
            bad = [(t["task_id"], t["state"]) for t in tis if t["state"] in ("failed", "upstream_failed")]
            assert not bad, bad
            return [(t["task_id"], t["map_index"]) for t in tis
                    if t["state"] == "running" and t["task_id"] == "forecast"]

        stack.wait_for(forecasts_running, 600, "a forecast task to run", every=0.5)
        stack.kill("worker-1")
        running = forecasts_running()  # still "running" for Airflow: lost with the worker, mid-run
        assert running, "the forecasts finished before the worker was killed"
        stack.start_worker("worker-2")
        _wait_success(stack, "it-day2", 900)
        tis = {(t["task_id"], t["map_index"]): t for t in _task_instances(stack, "it-day2")}
        for key in running:
            assert tis[key]["state"] == "success" and tis[key]["try_number"] >= 2, tis[key]
        # the city's code and name label the mapped task (what operators see in the grid)
        assert all(t["rendered_map_index"].split(" ", 1)[0] in CITY_NAMES for k, t in tis.items() if k[0] == "forecast")
        assert {t["rendered_map_index"] for k, t in tis.items() if k[0] == "forecast"} == {
            f"{code} {name}" for code, name in CITY_NAMES.items()}

        # no duplicate rows or notices; each delivered notice written once to the file channel
        assert _duplicates(wh) == {"tickets": 0, "alert events": 0, "notices": 0, "anomalies": 0}
        with wh.connect() as conn:
            sent = conn.execute(select(notifications.c.ds, func.count()).where(notifications.c.status == "delivered")
                                .where(notifications.c.channel_type == "file")
                                .group_by(notifications.c.ds)).all()
            assert conn.execute(select(func.count()).select_from(tickets)
                                .where(tickets.c.received_date == day2)).scalar_one() > 0
            shenzhen = conn.execute(select(func.count()).select_from(notifications)
                                    .where(notifications.c.receiver == "city:370200")
                                    .where(notifications.c.ds == day2)).scalar_one()
        assert shenzhen >= 1  # the planted spike on day 2 was detected and sent
        for ds, n in sent:
            lines = (var / "notices" / f"{ds}.jsonl").read_text(encoding="utf-8").splitlines()
            assert len(lines) == n, (ds, len(lines), n)
            assert len({json.loads(x)["dedup_key"] for x in lines}) == n
    finally:
        left = stack.stop()
    assert left == [], f"processes left running: {left}"
    assert stack.teardown_errors == [] and stack.databases_left() == []
