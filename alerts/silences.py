"""Silences: matchers over alert labels, set by a named person with a reason until a time (or
until the alert resolves), ended early by a named person; every change in the alert history."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, insert, select, update

from alerts.acks import check_author
from alerts.config import parse_matchers
from alerts.model import history_event, utc
from warehouse.schema import alert_events, alerts, silences


def add_silence(engine: Engine, matchers: list[str], author: str, reason: str, ends_at: dt.datetime,
                starts_at: dt.datetime | None = None, end_on_resolve: bool = False,
                now: dt.datetime | None = None) -> int:
    """A silence over the alerts all of whose labels match; audited with its author and reason."""
    now = utc(now)
    parse_matchers(matchers, "silence")
    if not matchers:
        raise ValueError("a silence needs at least one matcher, e.g. region_code=\"440306\"")
    if not author.strip() or not reason.strip():
        raise ValueError("a silence needs an author and a reason")
    check_author(author)
    starts_at = starts_at or now
    if ends_at <= starts_at:
        raise ValueError(f"a silence must end after it starts ({starts_at:%Y-%m-%d %H:%M} .. {ends_at:%Y-%m-%d %H:%M})")
    with engine.begin() as conn:
        sid = conn.execute(insert(silences).values(
            matchers=list(matchers), starts_at=starts_at, ends_at=ends_at, end_on_resolve=end_on_resolve,
            created_by=author, reason=reason, created_at=now)).inserted_primary_key[0]
        history_event(conn, now, None, None, "silence_created", author,
               {"matchers": list(matchers), "starts_at": starts_at, "ends_at": ends_at, "reason": reason,
                "end_on_resolve": end_on_resolve}, silence_id=int(sid))
    return int(sid)


def expire_silence(engine: Engine, sid: int, author: str, reason: str, now: dt.datetime | None = None) -> None:
    now = utc(now)
    check_author(author)
    with engine.begin() as conn:
        row = conn.execute(select(silences).where(silences.c.id == sid)).mappings().first()
        if row is None:
            raise KeyError(f"no silence {sid}")
        if row["expired_at"] is not None:
            raise ValueError(f"silence {sid} already ended at {row['expired_at']:%Y-%m-%d %H:%M} "
                             f"({row['expire_reason']})")
        conn.execute(update(silences).where(silences.c.id == sid).values(
            expired_at=now, expired_by=author, expire_reason=reason))
        history_event(conn, now, None, None, "silence_expired", author, {"reason": reason}, silence_id=sid)


def active_silences(engine: Engine, now: dt.datetime) -> list[dict[str, Any]]:
    s = silences.c
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(silences).where(
            s.expired_at.is_(None), s.starts_at <= now, s.ends_at > now).order_by(s.id)).mappings()]


def end_resolved_silences(engine: Engine, day: dt.date, now: dt.datetime) -> list[int]:
    """Silences set to end with their alerts: ended once every alert they held back has resolved."""
    ended = []
    with engine.begin() as conn:
        for sil in conn.execute(select(silences).where(silences.c.expired_at.is_(None),
                                                       silences.c.end_on_resolve.is_(True))).mappings().all():
            fps = {r[0] for r in conn.execute(select(alert_events.c.fingerprint).where(
                alert_events.c.silence_id == sil["id"], alert_events.c.action == "silenced"))}
            if not fps:
                continue
            states = {r[0] for r in conn.execute(select(alerts.c.state).where(alerts.c.fingerprint.in_(fps)))}
            if states == {"resolved"}:
                conn.execute(update(silences).where(silences.c.id == sil["id"]).values(
                    expired_at=now, expired_by="pipeline", expire_reason="its alerts resolved"))
                history_event(conn, now, day, None, "silence_expired", "pipeline", {"reason": "its alerts resolved"},
                       silence_id=sil["id"])
                ended.append(sil["id"])
    return ended


def silences_list(engine: Engine, include_ended: bool = False, now: dt.datetime | None = None) -> list[dict]:
    now = utc(now)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(silences).order_by(silences.c.id.desc())).mappings()]
    for r in rows:
        r["state"] = ("ended" if r["expired_at"] or r["ends_at"] <= now else
                      "pending" if r["starts_at"] > now else "active")
    return rows if include_ended else [r for r in rows if r["state"] != "ended"]
