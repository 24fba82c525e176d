"""The gate's steps as the DAG runs them, usable without Airflow:

    stage (ingest, publish=False) -> validate_staged -> publish_and_aggregate -> check_feed

A halt at validate leaves the batch staged (nothing published); a halt at check_feed flags the
day's regions so that later stages treat the day as missing. Each step records its verdict, an
HTML page under var/dq/<day>/, and a pipeline_runs row that says why.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from data_quality.docs import render
from data_quality.feed_health import feed_health
from data_quality.tickets_batch import validate_batch
from data_quality.verdict import Verdict, save
from hotline.reference import Reference
from warehouse.aggregate import aggregate_run
from warehouse.load import publish_run
from warehouse.runs import finish_run, new_run_id, start_run
from warehouse.schema import pipeline_runs, quarantine


class DataQualityHalt(RuntimeError):
    """The gate halted the run; the message says why."""


def _record(engine: Engine, verdict: Verdict, var_dir: Path) -> Verdict:
    verdict.docs_path = render(verdict, Path(var_dir) / "dq" / verdict.day.isoformat())
    save(engine, verdict)
    rid = new_run_id(f"dq-{verdict.suite}")
    start_run(engine, rid, f"dq_{verdict.suite}", verdict.day, {"ingest_run_id": verdict.run_id})
    finish_run(engine, rid, "halted" if verdict.action == "halt" else "success",
               {"action": verdict.action, "quarantined": verdict.quarantined, "docs": str(verdict.docs_path)},
               "; ".join(verdict.reasons) or None)
    return verdict


def ingest_counts(engine: Engine, run_id: str) -> tuple[int, int]:
    """(rows read, rows quarantined by the mapping) of an ingest run."""
    with engine.connect() as conn:
        metrics = conn.execute(select(pipeline_runs.c.metrics).where(pipeline_runs.c.run_id == run_id)).scalar_one()
        q = conn.execute(select(func.count()).select_from(quarantine).where(
            quarantine.c.run_id == run_id, quarantine.c.source != "data_quality")).scalar_one()
    return int((metrics or {}).get("read", 0)), int(q)


def validate_staged(engine: Engine, ref: Reference, var_dir: Path, run_id: str, day: dt.date,
                    lookback_days: int, tz: str = "Asia/Shanghai") -> Verdict:
    read, mapped_q = ingest_counts(engine, run_id)
    v = validate_batch(engine, run_id, day, ref, lookback_days, read=read, mapping_quarantined=mapped_q, tz=tz)
    return _record(engine, v, var_dir)


def publish_and_aggregate(engine: Engine, run_id: str, day: dt.date) -> dict[str, Any]:
    res = publish_run(engine, run_id)
    n = aggregate_run(engine, res.touched_dates, day)
    return {"inserted": res.inserted, "updated": res.updated, "unchanged": res.unchanged, "days_aggregated": n}


def check_feed(engine: Engine, ref: Reference, var_dir: Path, run_id: str, day: dt.date,
               tz: str = "Asia/Shanghai") -> Verdict:
    return _record(engine, feed_health(engine, day, ref, run_id, tz), var_dir)


def halt_message(v: Verdict) -> str:
    return (f"data-quality gate halted the run ({v.suite}, {v.day}): " + "; ".join(v.reasons)
            + f". Page: {v.docs_path}")
