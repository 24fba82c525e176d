"""The outbox: notices are rows before they are requests. ``enqueue`` and ``queue_reports`` add
them under a dedup key (a rerun adds nothing); ``deliver_due`` claims and sends what is due, with
retries, back-off and a circuit breaker per channel; ``requeue`` gives a failed one another go."""
from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alerts.channels import DeliveryError, OutcomeUnknown, Secrets, Unreachable, redact, send
from alerts.config import AlertsConfig
from alerts.model import history_event, jsonable, utc
from alerts.render import LIMITS, channel_payload, compose, office_name
from alerts.routing import Group, dedup_key
from hotline.core.links import link_expiry, signed_alert_path
from hotline.core.reference import Reference
from warehouse.schema import notifications

STALE_SENDING = dt.timedelta(minutes=15)  # a row left 'sending' by a crashed run is retried after this


def report_link(cfg: AlertsConfig, var_dir: Path, rel: str) -> str:
    """A page under var/reports/ as an office opens it: under ``report_base_url`` when the reports
    are served (config/alerts.yaml), else the file on this machine."""
    if cfg.report_base_url:
        return f"{cfg.report_base_url.rstrip('/')}/{rel}"
    return (Path(var_dir) / "reports" / rel).resolve().as_uri()


def alert_link(cfg: AlertsConfig, var_dir: Path, day: dt.date, fp: str, secret: str | None = None) -> str:
    """An alert's page: on the served site (``report_base_url``) a signed link that opens it for
    ``LINK_DAYS`` without a sign-in when the site's secret is given, else its page behind the
    sign-in; with no site, the offline page on this machine."""
    if cfg.report_base_url:
        base = cfg.report_base_url.rstrip("/")
        return f"{base}/{signed_alert_path(secret, fp, link_expiry(day))}" if secret else f"{base}/alerts/{fp}"
    return report_link(cfg, var_dir, f"alerts/{day}/{fp}.html")


def enqueue(engine: Engine, day: dt.date, due: list[tuple[Group, list[dict], list[dict]]], cfg: AlertsConfig,
            ref: Reference, var_dir: Path, now: dt.datetime, run_id: str | None = None,
            link_secret: str | None = None) -> list[dict[str, Any]]:
    """Render and queue each due notice on each of its office's channels; returns the rows queued
    (a notice already in the outbox under its dedup key is skipped)."""
    queued = []
    with engine.begin() as conn:
        existing = set(conn.execute(select(notifications.c.dedup_key).where(notifications.c.ds == day)).scalars())
        for g, firing, resolved in due:
            links = {a["fingerprint"]: alert_link(cfg, var_dir, day, a["fingerprint"], link_secret)
                     for a in [*firing, *resolved]}
            chans = cfg.channels_of(g.receiver)
            if not chans:
                history_event(conn, now, day, None, "unrouted", "pipeline",
                       {"receiver": g.receiver, "group": g.key, "alerts": [a["fingerprint"] for a in firing],
                        "why": "the office has no channel: add it under offices in config/alerts.yaml"})
                continue
            for ch in chans:
                spec = cfg.channels[ch]
                lang = str(spec.get("language", cfg.language))
                f_ids, r_ids = [a["fingerprint"] for a in firing], [a["fingerprint"] for a in resolved]
                key = dedup_key(str(day), g.receiver, ch, g.key,
                                [f"{a['fingerprint']}:{a['severity']}" for a in firing], r_ids)
                if key in existing:
                    continue
                rname = office_name(g.receiver, ref, cfg, lang)
                msg = compose(rname, day, firing, resolved, lang, links, LIMITS.get(spec["type"]))
                meta = {"firing": bool(firing), "receiver": g.receiver, "receiver_name": rname, "group_key": g.key,
                        "group_labels": g.group_labels, "ds": day, "dedup_key": key, "alerts": [*firing, *resolved],
                        "links": links}
                row = {"dedup_key": key, "ds": day, "receiver": g.receiver, "receiver_name": rname, "channel": ch,
                       "channel_type": spec["type"], "group_key": g.key, "firing": f_ids, "resolved": r_ids,
                       "severities": {a["fingerprint"]: a["severity"] for a in firing},
                       "lang": lang, "subject": msg.subject, "body": msg.markdown,
                       "payload": jsonable(channel_payload(spec["type"], msg, meta)), "status": "pending",
                       "attempts": 0, "next_attempt_at": now, "created_at": now, "run_id": run_id}
                existing.add(key)
                row["id"] = _insert_notice(conn, row)
                if row["id"] is not None:
                    queued.append(row)
    return queued


def _insert_notice(conn, row: Mapping[str, Any]) -> int | None:
    """Queue one outbox row unless its dedup key is there already, queued by another run maybe
    this very moment (INSERT ... ON CONFLICT (dedup_key) DO NOTHING, on PostgreSQL and SQLite):
    the row's id, or None."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(notifications).values(**row).on_conflict_do_nothing(index_elements=["dedup_key"])
    return conn.execute(stmt.returning(notifications.c.id)).scalar()


def queue_reports(engine: Engine, items: Iterable[Mapping[str, Any]], cfg: AlertsConfig, ref: Reference,
                  var_dir: Path, now: dt.datetime | None = None, secrets: Secrets | None = None) -> dict[str, Any]:
    """Queue reports that are not alerts (a proposal, a district's overdue list, the province's
    brief) on each office's channels and deliver what is due. Each item: ``receiver`` (an office
    id), ``ds``, ``group`` (what it is), ``keys`` (what makes it new: the same keys on the same day
    are queued once) and ``build(lang, receiver_name) -> Message``. An office without a channel
    gets nothing (``offices_without_channel`` counts them)."""

    now = utc(now)
    items = list(items)
    ids = []
    todo = [(it, ch, dedup_key(str(it["ds"]), it["receiver"], ch, it["group"], list(it["keys"]), []))
            for it in items for ch in cfg.channels_of(it["receiver"])]
    n = notifications.c
    with engine.begin() as conn:
        existing = set()
        keys = [k for *_x, k in todo]
        for i in range(0, len(keys), 500):
            existing |= set(conn.execute(select(n.dedup_key).where(n.dedup_key.in_(keys[i:i + 500]))).scalars())
        for it, ch, key in todo:
            if key in existing:
                continue
            receiver, day, group = it["receiver"], it["ds"], it["group"]
            spec = cfg.channels[ch]
            lang = str(spec.get("language", cfg.language))
            rname = office_name(receiver, ref, cfg, lang)
            msg = it["build"](lang, rname)
            meta = {"firing": True, "receiver": receiver, "receiver_name": rname, "group_key": group,
                    "group_labels": dict(it.get("labels") or {}), "ds": day, "dedup_key": key, "alerts": []}
            row = {"dedup_key": key, "ds": day, "receiver": receiver, "receiver_name": rname, "channel": ch,
                   "channel_type": spec["type"], "group_key": group, "firing": [], "resolved": [],
                   "severities": {}, "lang": lang, "subject": msg.subject, "body": msg.markdown,
                   "payload": jsonable(channel_payload(spec["type"], msg, meta)), "status": "pending",
                   "attempts": 0, "next_attempt_at": now, "created_at": now, "run_id": it.get("run_id")}
            existing.add(key)
            nid = _insert_notice(conn, row)
            if nid is not None:
                ids.append(nid)
    out: dict[str, Any] = {"queued": len(ids),
                           "offices_without_channel": sum(1 for it in items if not cfg.channels_of(it["receiver"]))}
    if ids:
        # secrets come from the caller (the app's Runtime, the CLI's environment); none given: none used
        out.update(deliver_due(engine, cfg, secrets or Secrets({}), Path(var_dir), now, ids=ids))
    return out


def deliver_due(engine: Engine, cfg: AlertsConfig, secrets: Secrets, var_dir: Path, now: dt.datetime | None = None,
                sleep: Callable[[float], None] = time.sleep, ids: Iterable[int] | None = None) -> dict[str, int]:
    """Deliver every outbox row that is due. Each row is claimed first (pending -> sending), so
    two runs never send the same row. Within a run a row is tried up to ``attempts_per_run``
    times with exponential backoff, but once only when it timed out (the receiver may have it:
    the next run sends it again, under the same dedup key); after ``circuit_breaker_after``
    timeouts or connection failures in a row on one channel, that channel's other rows are not
    tried this run ("circuit open: ..."). A row not delivered waits ``retry_after`` (doubling)
    and is marked failed after ``give_up_after_attempts``. ``retrying`` counts the rows left
    for a later run, those behind an open circuit included."""
    now = utc(now)
    n = notifications.c
    d = cfg.delivery
    with engine.begin() as conn:  # a crashed run's claims go back to the queue
        conn.execute(update(notifications).where(n.status == "sending", n.next_attempt_at < now - STALE_SENDING)
                     .values(status="pending"))
    # the longest waiting first: notices left behind an open circuit go before those just tried
    q = select(notifications).where(n.status == "pending", n.next_attempt_at <= now).order_by(n.next_attempt_at, n.id)
    if ids is not None:
        q = q.where(n.id.in_(list(ids)))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    out = {"delivered": 0, "retrying": 0, "failed": 0}
    down: dict[str, int] = {}  # channel -> timeouts and connection failures in a row, this run
    opened: dict[str, str] = {}  # channel -> the error that opened its circuit
    for row in rows:
        ch = row["channel"]
        if ch in opened:  # not tried: stays queued, due on the next run
            with engine.begin() as conn:
                conn.execute(update(notifications).where(n.id == row["id"], n.status == "pending").values(
                    last_error=f"circuit open: {opened[ch]}"))
            out["retrying"] += 1
            continue
        with engine.begin() as conn:
            claimed = conn.execute(update(notifications).where(
                n.id == row["id"], n.status == "pending", n.next_attempt_at <= now,
                n.attempts == row["attempts"]).values(status="sending", next_attempt_at=now)).rowcount
        if not claimed:
            continue
        spec = cfg.channels.get(ch)
        timeout = float((spec or {}).get("timeout_seconds", d.timeout_seconds))
        attempts, error, receipt = row["attempts"], None, None
        for k in range(d.attempts_per_run):
            attempts += 1
            try:
                if spec is None:
                    raise DeliveryError(f"channel {ch!r} is no longer configured")
                receipt = redact(send(spec, ch, row, secrets, var_dir, timeout))
                error, down[ch] = None, 0
                break
            except DeliveryError as exc:
                error = redact(exc)
                down[ch] = down.get(ch, 0) + 1 if isinstance(exc, (Unreachable, OutcomeUnknown)) else 0
                if down[ch] >= d.circuit_breaker_after:
                    opened[ch] = f"{down[ch]} timeouts or connection failures in a row on {ch}; last: {error}"
                if isinstance(exc, OutcomeUnknown) or ch in opened:
                    break
            except Exception as exc:  # noqa: BLE001 - a bad URL, a full disk: this row waits, the others go on
                error = redact(f"{type(exc).__name__}: {exc}")
            if k + 1 < d.attempts_per_run:
                sleep(min(d.backoff_seconds * 2 ** k, d.max_backoff_seconds))
        with engine.begin() as conn:
            if error is None:
                conn.execute(update(notifications).where(n.id == row["id"]).values(
                    status="delivered", attempts=attempts, delivered_at=now, last_error=None))
                history_event(conn, now, row["ds"], None, "delivered", "pipeline",
                       {"notification": row["id"], "channel": ch, "receipt": receipt})
                out["delivered"] += 1
            else:
                give_up = attempts >= d.give_up_after_attempts
                runs = math.ceil(attempts / max(d.attempts_per_run, 1))  # a run with a timeout counts as one
                wait = min(d.retry_after * 2 ** max(runs - 1, 0), dt.timedelta(days=1))
                conn.execute(update(notifications).where(n.id == row["id"]).values(
                    status="failed" if give_up else "pending", attempts=attempts, last_error=error,
                    next_attempt_at=now + wait))
                history_event(conn, now, row["ds"], None, "delivery_failed", "pipeline",
                       {"notification": row["id"], "channel": ch, "error": error, "attempts": attempts,
                        "gave_up": give_up})
                if ch in opened:  # this row opened the circuit (the channel's later rows are not tried)
                    history_event(conn, now, row["ds"], None, "circuit_open", "pipeline",
                           {"channel": ch, "error": opened[ch]})
                out["failed" if give_up else "retrying"] += 1
    return out


def requeue(engine: Engine, nid: int, author: str, now: dt.datetime | None = None) -> None:
    """Put a failed (or waiting) outbox row back to be sent on the next delivery."""
    now = utc(now)
    with engine.begin() as conn:
        row = conn.execute(select(notifications).where(notifications.c.id == nid)).mappings().first()
        if row is None:
            raise KeyError(f"no notice {nid} in the outbox")
        if row["status"] == "delivered":
            raise ValueError(f"notice {nid} was delivered at {row['delivered_at']:%Y-%m-%d %H:%M}: not sent again")
        conn.execute(update(notifications).where(notifications.c.id == nid).values(
            status="pending", next_attempt_at=now, attempts=0))
        history_event(conn, now, row["ds"], None, "requeued", author, {"notification": nid})


def outbox(engine: Engine, status: str | None = None, day: dt.date | None = None, limit: int = 200) -> list[dict]:
    n = notifications.c
    q = select(n.id, n.ds, n.receiver, n.receiver_name, n.channel, n.channel_type, n.status, n.attempts,
               n.next_attempt_at, n.last_error, n.delivered_at, n.subject, n.firing, n.resolved, n.dedup_key)
    if status:
        q = q.where(n.status == status)
    if day:
        q = q.where(n.ds == day)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(n.id.desc()).limit(limit)).mappings()]
    for r in rows:  # rows stored before errors were redacted in full print safe too
        r["last_error"] = redact(r["last_error"]) if r["last_error"] else r["last_error"]
    return rows
