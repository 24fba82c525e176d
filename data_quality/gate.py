"""The gate's steps as the DAG runs them, usable without Airflow:

    stage (ingest, publish=False) -> validate_staged -> publish_and_aggregate -> check_feed

A halt at validate leaves the batch staged (nothing published); a halt at check_feed flags the
day's regions so that later stages treat the day as missing. Each step records its verdict, an
HTML page under var/dq/<day>/, and a pipeline_runs row that says why.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from data_quality.docs import render
from data_quality.feed_health import SUITE as FEED_SUITE
from data_quality.feed_health import feed_health
from data_quality.tickets_batch import SUITE, validate_batch, validate_frame
from data_quality.verdict import Verdict, save
from hotline.core.reference import DEFAULT_TIMEZONE, Reference
from warehouse.aggregate import aggregate_in
from warehouse.load import publish_in
from warehouse.locks import DEFAULT_WAIT_SECONDS, WRITE_LOCK, day_lock, run_lock
from warehouse.runs import latest_run, new_run_id, stage_run
from warehouse.schema import pipeline_runs, quarantine, staged_tickets, tickets


class DataQualityHalt(RuntimeError):
    """The gate halted the run; the message says why."""


def _gated(engine: Engine, suite: str, day: dt.date, ingest_run_id: str, var_dir: Path,
           check: Callable[[], Verdict]) -> Verdict:
    """Run one suite's ``check`` as a recorded stage (``dq_<suite>``): started before the checks run
    (so `hotline runs` shows what they cost), finished with the verdict, its page and the reasons,
    or as failed if the check raised."""
    with stage_run(engine, f"dq_{suite}", day, {"ingest_run_id": ingest_run_id}, new_run_id(f"dq-{suite}")) as run:
        verdict = check()
        verdict.docs_path = render(verdict, Path(var_dir) / "dq" / verdict.day.isoformat())
        save(engine, verdict)
        run.status = "halted" if verdict.action == "halt" else "success"
        run.metrics = {"action": verdict.action, "quarantined": verdict.quarantined, "docs": str(verdict.docs_path)}
        run.message = "; ".join(verdict.reasons) or None
    return verdict


def ingest_counts(engine: Engine, run_id: str) -> tuple[int, int]:
    """(rows read, rows quarantined by the mapping) of an ingest run."""
    with engine.connect() as conn:
        metrics = conn.execute(select(pipeline_runs.c.metrics).where(pipeline_runs.c.run_id == run_id)).scalar_one()
        q = conn.execute(select(func.count()).select_from(quarantine).where(
            quarantine.c.run_id == run_id, quarantine.c.source != "data_quality")).scalar_one()
    return int((metrics or {}).get("read", 0)), int(q)


def validate_staged(engine: Engine, ref: Reference, var_dir: Path, run_id: str, day: dt.date,
                    lookback_days: int, tz: str = DEFAULT_TIMEZONE) -> Verdict:
    def check() -> Verdict:
        read, mapped_q = ingest_counts(engine, run_id)
        return validate_batch(engine, run_id, day, ref, lookback_days, read=read, mapping_quarantined=mapped_q, tz=tz)

    return _gated(engine, SUITE, day, run_id, var_dir, check)


def publish_and_aggregate(engine: Engine, run_id: str, day: dt.date,
                          wait_seconds: float = DEFAULT_WAIT_SECONDS) -> dict[str, Any]:
    """Merge the audited batch into tickets and recompute the days it touched, in one
    transaction under the day's lock and the warehouse's write lock: a second run of the same
    day waits (or stops with a message naming the holder after ``wait_seconds``), and a failure
    leaves the batch staged, so the retry recomputes what it must."""
    with day_lock(engine, day, wait_seconds), \
            stage_run(engine, "aggregate", day, {"ingest_run_id": run_id}, new_run_id("aggregate")) as run:
        run.metrics = {"days_aggregated": 0}  # what a failure records
        with run_lock(engine, WRITE_LOCK, wait_seconds), engine.begin() as conn:
            res = publish_in(conn, run_id)
            days = sorted(res.touched_dates)
            n = aggregate_in(conn, days)
        run.metrics = {"days_aggregated": n, "first": days[0].isoformat() if days else None,
                       "last": days[-1].isoformat() if days else None}
    return {"inserted": res.inserted, "updated": res.updated, "unchanged": res.unchanged, "days_aggregated": n}


def check_feed(engine: Engine, ref: Reference, var_dir: Path, run_id: str, day: dt.date,
               tz: str = DEFAULT_TIMEZONE) -> Verdict:
    return _gated(engine, FEED_SUITE, day, run_id, var_dir, lambda: feed_health(engine, day, ref, run_id, tz))


def halt_message(v: Verdict) -> str:
    return (f"data-quality gate halted the run ({v.suite}, {v.day}): " + "; ".join(v.reasons)
            + f". Page: {v.docs_path}")


def validate_day(engine: Engine, ref: Reference, var_dir: Path, day: dt.date, lookback_days: int,
                 run_id: str | None = None, tz: str = DEFAULT_TIMEZONE) -> list[Verdict]:
    """`hotline validate`: gate the day's staged batch for real, or report on a published day.

    A batch still staged (the DAG's ingest ran, validate did not) is validated with the policy
    applied. A day already published is checked in report mode: the same suite on the day's
    tickets, its closure backlog judged as of the last day loaded, nothing moved. Feed health
    follows unless the batch halted.
    """
    run_id = run_id or latest_run(engine, "ingest", day) or f"report-{day.isoformat()}"
    with engine.connect() as conn:
        staged = conn.execute(select(func.count()).select_from(staged_tickets).where(
            staged_tickets.c.ingest_run_id == run_id)).scalar_one()
    if staged:
        batch = validate_staged(engine, ref, var_dir, run_id, day, lookback_days, tz)
        if batch.action == "halt":
            return [batch]
    else:
        def report() -> Verdict:
            with engine.connect() as conn:
                rows = conn.execute(select(tickets).where(tickets.c.received_date == day)).mappings().all()
                frame = pd.DataFrame(rows)
                last_day = conn.execute(select(func.max(tickets.c.received_date))).scalar_one()
            for col in ("received_at", "closed_at", "deadline_at", "updated_at"):
                if col in frame.columns:
                    frame[col] = pd.to_datetime(frame[col], utc=True)
            outcomes = (validate_frame(frame, engine, ref, day, lookback_days, tz, as_of_day=last_day)[0]
                        if len(frame) else [])
            failed = [o for o in outcomes if not o.success]
            return Verdict(SUITE, run_id, day, outcomes, action="warn" if failed else "continue",
                           metrics={"rows": len(frame), "mode": "report"},
                           reasons=[f"{o.description}：{o.unexpected_count}/{o.element_count}" for o in failed])

        batch = _gated(engine, SUITE, day, run_id, var_dir, report)
    return [batch, check_feed(engine, ref, var_dir, run_id, day, tz)]
