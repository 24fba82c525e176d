"""A short account of the warehouse and of one day's runs (the `make run` summary)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, func, select

from warehouse.schema import anomalies, daily_counts, dq_verdicts, forecasts, pipeline_runs, quarantine, tickets


def warehouse_summary(engine: Engine, day: dt.date) -> dict[str, Any]:
    with engine.connect() as conn:
        n_tickets = conn.execute(select(func.count()).select_from(tickets)).scalar_one()
        n_quar = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
        days, first, last, rows = conn.execute(
            select(func.count(func.distinct(daily_counts.c.ds)), func.min(daily_counts.c.ds),
                   func.max(daily_counts.c.ds), func.count()).select_from(daily_counts)).one()
        day_tickets, day_cities = conn.execute(
            select(func.count(), func.count(func.distinct(tickets.c.city_code)))
            .where(tickets.c.received_date == day)).one()
        run = conn.execute(
            select(pipeline_runs).where(pipeline_runs.c.stage == "ingest", pipeline_runs.c.logical_date == day)
            .order_by(pipeline_runs.c.started_at.desc()).limit(1)).mappings().first()
        runs_for_day = conn.execute(
            select(func.count()).select_from(pipeline_runs).where(pipeline_runs.c.logical_date == day)).scalar_one()
        dq = conn.execute(select(dq_verdicts).where(dq_verdicts.c.logical_date == day)
                          .order_by(dq_verdicts.c.created_at)).mappings().all()
        fc = conn.execute(select(forecasts.c.model, func.count(func.distinct(forecasts.c.series_id)),
                                 func.max(forecasts.c.ds)).where(forecasts.c.origin == day)
                          .group_by(forecasts.c.model)).all()
        an = conn.execute(select(anomalies).where(anomalies.c.ds == day)
                          .order_by(func.coalesce(anomalies.c.surprise, 0).desc(), anomalies.c.score.desc(),
                                    anomalies.c.series_id)).mappings().all()
        recent = conn.execute(select(anomalies).where(anomalies.c.ds >= day - dt.timedelta(days=7),
                                                      anomalies.c.ds < day)
                              .order_by(func.coalesce(anomalies.c.surprise, 0).desc(), anomalies.c.score.desc(),
                                        anomalies.c.ds.desc(), anomalies.c.series_id)
                              ).mappings().all()
    m = (run or {}).get("metrics") or {}
    latest = {v["suite"]: v for v in dq}  # the newest verdict per suite
    return {
        "tickets": n_tickets, "quarantined": n_quar, "days_aggregated": days, "daily_count_rows": rows,
        "first_day": first, "last_day": last,
        "day": {"date": day, "tickets": day_tickets, "cities": day_cities, "ingest_runs": runs_for_day,
                "last_run": run["run_id"] if run else None, "status": run["status"] if run else None,
                "read": m.get("read", 0), "loaded": m.get("loaded", 0), "quarantined": m.get("quarantined", 0),
                "days_aggregated": m.get("days_aggregated", 0)},
        "forecasts": {"series": sum(r[1] for r in fc), "models": {r[0]: r[1] for r in fc},
                      "until": max((r[2] for r in fc), default=None)},
        "anomalies": [dict(a) for a in an],
        "recent_anomalies": [dict(a) for a in recent],
        "data_quality": {suite: {"action": v["action"], "success": v["success"], "quarantined": v["quarantined"],
                                 "failed": len(v["failed"] or []), "reasons": (v["metrics"] or {}).get("reasons", []),
                                 "docs": v["docs_path"]} for suite, v in latest.items()},
    }
