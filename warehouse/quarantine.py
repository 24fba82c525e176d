"""Reading the quarantine: counts by reason and example rows, for operators and analysts."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from warehouse.schema import quarantine


def quarantine_report(engine: Engine, run_id: str | None = None, samples: int = 3) -> dict[str, Any]:
    """``{"total": N, "reasons": [{"reason_code", "field", "rows", "examples": [...]}, ...]}``."""
    from hotline.core.tickets import mask_reason

    q = quarantine.c
    where = [q.run_id == run_id] if run_id else []
    with engine.connect() as conn:
        groups = conn.execute(
            select(q.reason_code, q.field, func.count().label("rows")).where(*where)
            .group_by(q.reason_code, q.field).order_by(func.count().desc())).mappings().all()
        reasons = []
        for g in groups:
            ex = conn.execute(
                select(q.source_file, q.source_row, q.ticket_id, q.reason, q.raw).where(
                    *where, q.reason_code == g["reason_code"], q.field == g["field"])
                .order_by(q.id).limit(samples)).mappings().all()
            # masked again on the way out: rows quarantined before reasons were masked at ingest
            reasons.append({**dict(g), "examples": [{**dict(e), "reason": mask_reason(e["reason"], e["ticket_id"])}
                                                    for e in ex]})
    return {"run_id": run_id, "total": sum(r["rows"] for r in reasons), "reasons": reasons}
