"""Acknowledgements and verdicts: a named person takes an alert (and says whether it was useful,
for tuning); alert ids by prefix; an alert's (or a silence's) history."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import Engine, select, update

from alerts.model import history_event, utc
from warehouse.schema import alert_events, alerts


def check_author(author: str) -> None:
    if len(author) > 64:
        raise ValueError(f"author: at most 64 characters, got {len(author)}")


def acknowledge(engine: Engine, fp_prefix: str, author: str, verdict: str | None = None, comment: str | None = None,
                now: dt.datetime | None = None) -> str:
    """Acknowledge an alert (by fingerprint or a unique prefix of it, as notices print it), with
    the office's verdict (useful / not_useful) kept for the analysts who tune detectors."""
    now = utc(now)
    if verdict not in (None, "useful", "not_useful"):
        raise ValueError(f"verdict: useful or not_useful, got {verdict!r}")
    check_author(author)
    fp = resolve_fingerprint(engine, fp_prefix)
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.fingerprint == fp).values(
            ack_by=author, ack_at=now, ack_verdict=verdict, ack_comment=comment, updated_at=now,
            status="acknowledged"))
        conn.execute(update(alerts).where(alerts.c.fingerprint == fp, alerts.c.state == "resolved").values(
            status="resolved"))
        history_event(conn, now, None, fp, "acknowledged", author, {"verdict": verdict, "comment": comment})
    return fp


def resolve_fingerprint(engine: Engine, prefix: str) -> str:
    prefix = prefix.strip().lower()
    if len(prefix) < 4 or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise ValueError(f"alert id {prefix!r}: give at least 4 hexadecimal characters of it")
    with engine.connect() as conn:
        found = conn.execute(select(alerts.c.fingerprint)
                             .where(alerts.c.fingerprint.like(f"{prefix}%"))).scalars().all()
    if not found:
        raise KeyError(f"no alert with id {prefix}")
    if len(found) > 1:
        raise KeyError(f"alert id {prefix} is ambiguous ({len(found)} alerts): give more characters")
    return found[0]


def history(engine: Engine, fp: str | None = None, silence_id: int | None = None) -> list[dict[str, Any]]:
    e = alert_events.c
    q = select(alert_events)
    if fp:
        q = q.where(e.fingerprint == fp)
    if silence_id is not None:
        q = q.where(e.silence_id == silence_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(e.id)).mappings()]
