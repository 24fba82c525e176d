"""A suite's verdict: what failed, what it means for the run, and where the page is."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert

from data_quality.gx import ExpectationOutcome
from data_quality.policy import worst
from warehouse.schema import dq_verdicts


@dataclass
class Verdict:
    suite: str
    run_id: str
    day: dt.date
    outcomes: list[ExpectationOutcome]
    action: str = "continue"
    quarantined: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # why the action, in words
    docs_path: Path | None = None

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def as_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "run_id": self.run_id, "date": self.day.isoformat(), "success": self.success,
                "action": self.action, "quarantined": self.quarantined, "reasons": self.reasons,
                "failed_expectations": [o.as_dict() for o in self.failed], "metrics": self.metrics,
                "docs": str(self.docs_path) if self.docs_path else None}


def combine(verdicts: list[Verdict]) -> dict[str, Any]:
    """The `hotline validate` summary of several suites."""
    return {
        "success": all(v.success for v in verdicts),
        "failed_expectations": [dict(o.as_dict(), suite=v.suite) for v in verdicts for o in v.failed],
        "quarantined": sum(v.quarantined for v in verdicts),
        "action": worst([v.action for v in verdicts]),
        "reasons": [r for v in verdicts for r in v.reasons],
        "docs": [str(v.docs_path) for v in verdicts if v.docs_path],
    }


def json_safe(x: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, decimals floats, dates ISO strings."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, Decimal):
        x = float(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (dt.date, dt.datetime)):
        return x.isoformat()
    if hasattr(x, "item"):
        return json_safe(x.item())
    return x


def save(engine: Engine, v: Verdict) -> None:
    """Store (or replace, on a rerun) the verdict of a run and suite."""
    d = json_safe(v.as_dict())
    with engine.begin() as conn:
        conn.execute(delete(dq_verdicts).where(dq_verdicts.c.run_id == v.run_id, dq_verdicts.c.suite == v.suite))
        conn.execute(insert(dq_verdicts).values(
            run_id=v.run_id, suite=v.suite, logical_date=v.day, success=v.success, action=v.action,
            quarantined=v.quarantined, failed=d["failed_expectations"], metrics={**d["metrics"], "reasons": v.reasons},
            docs_path=d["docs"], created_at=dt.datetime.now(dt.timezone.utc)))
