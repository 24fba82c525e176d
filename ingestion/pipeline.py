"""One ingest run: source -> canonical mapping -> upsert + quarantine -> (re-)aggregation.

Rows read = rows loaded + rows quarantined, always; the summary says so and the run log keeps it.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine

from ingestion.canonical import Batch, TicketMapper
from warehouse.aggregate import aggregate_days
from warehouse.load import UpsertResult, insert_quarantine, stage_batch, upsert_tickets
from warehouse.runs import new_run_id, set_watermark, stage_run

log = logging.getLogger(__name__)


class Source(Protocol):
    def batches(self): ...  # -> Iterator[Batch]


@dataclass
class IngestSummary:
    run_id: str
    source: str
    read: int = 0
    loaded: int = 0
    quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    days_aggregated: int = 0
    touched_dates: list[str] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if len(d["touched_dates"]) > 10:  # keep the summary short; the run log has the range
            d["touched_dates"] = [d["touched_dates"][0], "...", d["touched_dates"][-1]]
        return d


def ingest(engine: Engine, source: Source, mapper: TicketMapper, *, logical_date: dt.date | None = None,
           aggregate: bool = True, run_id: str | None = None, params: dict[str, Any] | None = None,
           publish: bool = True) -> IngestSummary:
    """Run one ingest; with ``aggregate`` the touched days' daily counts are recomputed.

    With ``publish=False`` the mapped rows wait in ``staged_tickets`` for the data-quality gate
    (write-audit-publish); ``warehouse.load.publish_run`` merges them later, and nothing is
    aggregated here.
    """
    run_id = run_id or new_run_id("ingest")
    t0 = dt.datetime.now(dt.timezone.utc)
    summary = IngestSummary(run_id=run_id, source=mapper.source)
    touched: set[dt.date] = set()
    reasons: collections.Counter[str] = collections.Counter()
    max_updated = None

    def load(batch: Batch, mapped) -> None:
        nonlocal touched, max_updated
        summary.notes.extend(n for n in mapped.notes if n not in summary.notes)
        if publish:
            res = upsert_tickets(engine, mapped.good, run_id)
        else:
            stage_batch(engine, mapped.good, run_id)
            res = UpsertResult(0, 0, 0, set())
        insert_quarantine(engine, mapped.bad, run_id, mapper.source)
        summary.read += len(batch.frame)
        summary.loaded += len(mapped.good)
        summary.quarantined += len(mapped.bad)
        summary.inserted += res.inserted
        summary.updated += res.updated
        summary.unchanged += res.unchanged
        reasons.update(mapped.bad["reason_code"].tolist())
        touched |= res.touched_dates
        if len(mapped.good):
            m = mapped.good["updated_at"].max()
            max_updated = m if max_updated is None or m > max_updated else max_updated
        log.info("batch %s rows from %s: %s loaded, %s quarantined", len(batch.frame), batch.source_file,
                 len(mapped.good), len(mapped.bad))

    with stage_run(engine, "ingest", logical_date, {"source": mapper.source, **(params or {})}, run_id) as run:
        run.failure_metrics = lambda: asdict(summary) | {"touched_dates": []}  # what was read before it failed
        for batch in source.batches():
            load(batch, mapper.map(batch))
        assert summary.read == summary.loaded + summary.quarantined, "rows lost between read and load"
        summary.touched_dates = [d.isoformat() for d in sorted(touched)]
        if aggregate and publish:
            summary.days_aggregated = aggregate_days(engine, touched)
        set_watermark(engine, mapper.source, logical_date,
                      max_updated.to_pydatetime() if max_updated is not None else None)
        summary.quarantine_reasons = dict(reasons.most_common())
        summary.seconds = round((dt.datetime.now(dt.timezone.utc) - t0).total_seconds(), 3)
        metrics = summary.as_dict()
        metrics["touched_dates"] = [metrics["touched_dates"][0], metrics["touched_dates"][-1]] if touched else []
        run.metrics = metrics
        return summary


PREVIEW_COLUMNS = ["ticket_id", "received_at", "district_code", "category_l2", "channel", "status", "content"]


@dataclass
class IngestPreview:
    """What an ingest would do, with nothing written: the counts, the reasons rows would be
    quarantined for, and the first mapped and quarantined rows (PII masked, as they would be
    stored)."""

    source: str
    read: int = 0
    would_load: int = 0
    would_quarantine: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    first_loaded: list[dict[str, Any]] = field(default_factory=list)
    first_quarantined: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview(source: Source, mapper: TicketMapper, rows: int = 5) -> IngestPreview:
    """Map every row the source gives, as :func:`ingest` would, and write nothing."""
    out = IngestPreview(source=mapper.source)
    reasons: collections.Counter[str] = collections.Counter()
    for batch in source.batches():
        mapped = mapper.map(batch)
        out.read += len(batch.frame)
        out.would_load += len(mapped.good)
        out.would_quarantine += len(mapped.bad)
        reasons.update(mapped.bad["reason_code"].tolist())
        out.notes.extend(n for n in mapped.notes if n not in out.notes)
        for frame, cols, kept in ((mapped.good, PREVIEW_COLUMNS, out.first_loaded),
                                  (mapped.bad, ["source_file", "source_row", "ticket_id", "field", "reason_code",
                                                "reason"], out.first_quarantined)):
            for r in frame.head(max(rows - len(kept), 0))[[c for c in cols if c in frame.columns]].to_dict("records"):
                kept.append({k: (None if v is None or (isinstance(v, float) and v != v) else
                                 v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()})
    assert out.read == out.would_load + out.would_quarantine, "rows lost between read and mapping"
    out.quarantine_reasons = dict(reasons.most_common())
    return out
