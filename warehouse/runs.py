"""The pipeline run log and ingest watermarks."""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from warehouse.schema import ingest_watermarks, pipeline_runs

log = logging.getLogger(__name__)


def new_run_id(stage: str) -> str:
    return f"{stage}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


# A run on another host cannot be checked for a live process: left "running" this long, it is abandoned.
STALE_AFTER = dt.timedelta(hours=24)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


def start_run(engine: Engine, run_id: str, stage: str, logical_date: dt.date | None,
              params: dict[str, Any]) -> list[dict[str, Any]]:
    """Record a run as started (with this host and process id). Runs of the same stage left
    "running" by a process that is gone (killed, or the machine restarted) are marked
    "abandoned" first; they are returned and logged, and the daily DAG reports them to the
    operators (:func:`abandoned_runs`)."""
    now = dt.datetime.now(dt.timezone.utc)
    host = socket.gethostname()[:128]
    p = pipeline_runs.c
    with engine.begin() as conn:
        running = [dict(r) for r in conn.execute(select(p.run_id, p.logical_date, p.started_at, p.host, p.pid).where(
            p.stage == stage, p.status == "running")).mappings()]
        gone = [r for r in running
                if (r["host"] == host and r["pid"] is not None and r["pid"] != os.getpid() and not _alive(r["pid"]))
                or ((r["host"] != host or r["pid"] is None) and now - r["started_at"] > STALE_AFTER)]
        for r in gone:
            why = (f"abandoned: process {r['pid']} on {r['host']} is gone (killed, or the machine restarted); "
                   f"found by run {run_id}" if r["host"] == host else
                   f"abandoned: still 'running' after {STALE_AFTER} (process {r['pid']} on {r['host']}); "
                   f"found by run {run_id}")
            conn.execute(update(pipeline_runs).where(p.run_id == r["run_id"], p.status == "running").values(
                status="abandoned", finished_at=now, message=why))
            r["message"] = why
            log.warning("%s %s (%s): %s", stage, r["run_id"], r["logical_date"], why)
        conn.execute(insert(pipeline_runs).values(
            run_id=run_id, stage=stage, logical_date=logical_date, started_at=now, status="running", params=params,
            host=host, pid=os.getpid()))
    return gone


def abandoned_runs(engine: Engine, since: dt.datetime) -> list[dict[str, Any]]:
    """Runs marked abandoned since ``since`` (for the operators' notice), oldest first."""
    p = pipeline_runs.c
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(p.run_id, p.stage, p.logical_date, p.started_at, p.finished_at, p.message).where(
                p.status == "abandoned", p.finished_at >= since).order_by(p.finished_at)).mappings()]


def finish_run(engine: Engine, run_id: str, status: str, metrics: dict[str, Any] | None = None,
               message: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(pipeline_runs).where(pipeline_runs.c.run_id == run_id).values(
            finished_at=dt.datetime.now(dt.timezone.utc), status=status, metrics=metrics, message=message))


@dataclass
class StageRun:
    """The run a :func:`stage_run` block records: set ``metrics`` (and ``status``, ``message``
    when not a plain success) before the block ends."""
    id: str
    stage: str
    status: str = "success"
    metrics: dict[str, Any] | None = None
    message: str | None = None
    # what a failed run records, read when it fails (e.g. the rows read so far); else ``metrics``
    failure_metrics: Callable[[], dict[str, Any]] | None = None


@contextmanager
def stage_run(engine: Engine, stage: str, logical_date: dt.date | None, params: dict[str, Any],
              run_id: str | None = None) -> Iterator[StageRun]:
    """A stage's run bookkeeping in one place: recorded as started before the block runs,
    finished with the block's status and metrics when it ends (a ``return`` inside included), or
    as failed with the exception's type and message when it raises (the exception goes on)."""
    run = StageRun(run_id or new_run_id(stage), stage)
    start_run(engine, run.id, stage, logical_date, params)
    try:
        yield run
    except Exception as exc:
        metrics = run.failure_metrics() if run.failure_metrics else run.metrics
        finish_run(engine, run.id, "failed", metrics, f"{type(exc).__name__}: {exc}")
        raise
    finish_run(engine, run.id, run.status, run.metrics, run.message)


def set_watermark(engine: Engine, source: str, logical_date: dt.date | None,
                  max_updated_at: dt.datetime | None) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as conn:
        row = conn.execute(select(ingest_watermarks).where(ingest_watermarks.c.source == source)).mappings().first()
        if row is None:
            conn.execute(insert(ingest_watermarks).values(source=source, last_logical_date=logical_date,
                                                          max_updated_at=max_updated_at, updated_at=now))
            return
        # a backfill of an older date never moves the watermark back
        ld = max(filter(None, [row["last_logical_date"], logical_date]), default=None)
        mu = max(filter(None, [row["max_updated_at"], max_updated_at]), default=None)
        conn.execute(update(ingest_watermarks).where(ingest_watermarks.c.source == source).values(
            last_logical_date=ld, max_updated_at=mu, updated_at=now))


def latest_run(engine: Engine, stage: str, logical_date: dt.date) -> str | None:
    """The newest run of a stage for a logical day."""
    with engine.connect() as conn:
        return conn.execute(select(pipeline_runs.c.run_id).where(
            pipeline_runs.c.stage == stage, pipeline_runs.c.logical_date == logical_date)
            .order_by(pipeline_runs.c.started_at.desc()).limit(1)).scalar_one_or_none()


# The daily DAG's stages, in order; a stage run per city carries it in params["scope"].
DAILY_STAGES = ("ingest", "dq_tickets_batch", "aggregate", "lights", "dq_feed_health", "forecast", "detect", "notify")


def _seconds(r: dict[str, Any]) -> float | None:
    if r["finished_at"] is None:
        return None
    return round((r["finished_at"] - r["started_at"]).total_seconds(), 3)


def daily_runs(engine: Engine, last: int = 7, city: str | None = None) -> list[dict[str, Any]]:
    """The last ``last`` days the daily pipeline ran, newest first: per day its status (failed if
    the latest run of any stage and scope failed, running if one has not finished), wall time,
    each stage's runs, status and seconds (the latest run per scope), tickets read / loaded /
    quarantined, series forecast, anomalies, alert notices, the districts' overdue lists queued and
    the lights, and the failures with their
    message. ``city``: forecast and detection of that city only (the other stages are the
    province's)."""
    p = pipeline_runs.c
    with engine.connect() as conn:
        days = [d for (d,) in conn.execute(
            select(p.logical_date).where(p.stage.in_(DAILY_STAGES), p.logical_date.is_not(None))
            .group_by(p.logical_date).order_by(p.logical_date.desc()).limit(last))]
        rows = [dict(r) for r in conn.execute(select(pipeline_runs).where(
            p.stage.in_(DAILY_STAGES), p.logical_date.in_(days)).order_by(p.started_at)).mappings()] if days else []
    out = []
    for day in days:
        mine = [r for r in rows if r["logical_date"] == day]
        if city:
            mine = [r for r in mine if (r["params"] or {}).get("scope", city) == city]
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        attempts: dict[str, int] = {}
        for r in mine:  # in start order: the last one per stage and scope wins
            latest[(r["stage"], str((r["params"] or {}).get("scope", "")))] = r
            attempts[r["stage"]] = attempts.get(r["stage"], 0) + 1
        stages = {}
        for st in DAILY_STAGES:
            runs = [r for (s, _), r in latest.items() if s == st]
            if not runs:
                continue
            secs = [_seconds(r) for r in runs]
            status = ("failed" if any(r["status"] == "failed" for r in runs) else
                      "abandoned" if any(r["status"] == "abandoned" for r in runs) else
                      "running" if any(r["status"] == "running" for r in runs) else "success")
            stages[st] = {"status": status, "scopes": len(runs), "runs": attempts[st],
                          "seconds": round(sum(x for x in secs if x is not None), 3)}

        def metric(stage: str, key: str) -> int:
            return int(sum(((r["metrics"] or {}).get(key) or 0) for (s, _), r in latest.items() if s == stage))

        statuses = {v["status"] for v in stages.values()}
        started = min((r["started_at"] for r in latest.values()), default=None)
        finished = max((r["finished_at"] for r in latest.values() if r["finished_at"]), default=None)
        out.append({
            "day": str(day), "status": "failed" if "failed" in statuses else "abandoned" if "abandoned" in statuses
            else "running" if "running" in statuses else "success",
            "started_at": started.isoformat() if started else None,
            "wall_seconds": round((finished - started).total_seconds(), 1) if started and finished else None,
            "stages": stages,
            "tickets": {k: metric("ingest", k) for k in ("read", "loaded", "quarantined")},
            "series_forecast": metric("forecast", "series"), "anomalies": metric("detect", "anomalies"),
            "notices": metric("notify", "notices"), "lists": metric("lights", "lists_queued"),
            "red": metric("lights", "red"), "yellow": metric("lights", "yellow"),
            # the latest run's failure per stage and scope, and every run a killed process abandoned
            "failures": [{"stage": r["stage"], "scope": (r["params"] or {}).get("scope"), "status": r["status"],
                          "message": r["message"]}
                         for r in mine if (r["status"] == "failed" and latest.get(
                             (r["stage"], str((r["params"] or {}).get("scope", "")))) is r)
                         or r["status"] == "abandoned"]})
    return out
