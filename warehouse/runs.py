"""The pipeline run log and ingest watermarks."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Engine, insert, select, update

from warehouse.schema import ingest_watermarks, pipeline_runs


def new_run_id(stage: str) -> str:
    return f"{stage}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def start_run(engine: Engine, run_id: str, stage: str, logical_date: dt.date | None, params: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(pipeline_runs).values(
            run_id=run_id, stage=stage, logical_date=logical_date, started_at=dt.datetime.now(dt.timezone.utc),
            status="running", params=params))


def finish_run(engine: Engine, run_id: str, status: str, metrics: dict[str, Any] | None = None,
               message: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(pipeline_runs).where(pipeline_runs.c.run_id == run_id).values(
            finished_at=dt.datetime.now(dt.timezone.utc), status=status, metrics=metrics, message=message))


def set_watermark(engine: Engine, source: str, logical_date: dt.date | None, max_updated_at: dt.datetime | None) -> None:
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
