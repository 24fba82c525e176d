"""The notify stage: the day's anomalies to alerts, alerts to notices, notices to the offices.

1. ``sync_alerts``: fire, update and resolve alerts from the day's anomalies (alerts.model).
2. Silences and inhibition decide what is held back; the reason is stored on the alert and in
   its history (who silenced it and why, which alert inhibited it).
3. The routing tree sends each alert to its office(s); alerts are grouped per office and
   ``group_by`` labels; Alertmanager's timers decide whether the group is due today: a new group
   after ``group_wait``, new alerts in a notified group after ``group_interval``, the same alerts
   again after ``repeat_interval``.
4. Each due notice is rendered per channel and queued in the outbox under a dedup key (day,
   office, channel, group and the alerts it carries): running a day twice, or two runs at once,
   queue nothing new (INSERT ... ON CONFLICT (dedup_key) DO NOTHING).
5. The outbox is delivered: every due row, today's and any left from earlier runs, with retries
   and exponential backoff; a timeout is not retried in the same run (the receiver may have the
   notice), and a channel that keeps timing out or refusing connections is skipped for the rest
   of the run (a circuit breaker). What still fails waits for the next run
   (``delivery.retry_after``), and after ``give_up_after_attempts`` it is marked failed for an
   operator to see and requeue. Errors and receipts are stored redacted (no URL secrets).
"""
from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alerts.channels import DeliveryError, OutcomeUnknown, Secrets, Unreachable, redact, send
from alerts.config import AlertsConfig, parse_matchers
from alerts.model import _event, _jsonable, event_row, recorded_on, sync_alerts, utc
from alerts.render import LIMITS, channel_payload, compose, office_name
from alerts.routing import Group, dedup_key, group_alerts, inhibited, silenced
from hotline.core.reference import Reference
from hotline.core.severity import SEVERITY_RANK
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import alert_events, alerts, notifications, silences

STALE_SENDING = dt.timedelta(minutes=15)  # a row left 'sending' by a crashed run is retried after this


# ---------------------------------------------------------------------------- silences
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
    _check_author(author)
    starts_at = starts_at or now
    if ends_at <= starts_at:
        raise ValueError(f"a silence must end after it starts ({starts_at:%Y-%m-%d %H:%M} .. {ends_at:%Y-%m-%d %H:%M})")
    with engine.begin() as conn:
        sid = conn.execute(insert(silences).values(
            matchers=list(matchers), starts_at=starts_at, ends_at=ends_at, end_on_resolve=end_on_resolve,
            created_by=author, reason=reason, created_at=now)).inserted_primary_key[0]
        _event(conn, now, None, None, "silence_created", author,
               {"matchers": list(matchers), "starts_at": starts_at, "ends_at": ends_at, "reason": reason,
                "end_on_resolve": end_on_resolve}, silence_id=int(sid))
    return int(sid)


def expire_silence(engine: Engine, sid: int, author: str, reason: str, now: dt.datetime | None = None) -> None:
    now = utc(now)
    _check_author(author)
    with engine.begin() as conn:
        row = conn.execute(select(silences).where(silences.c.id == sid)).mappings().first()
        if row is None:
            raise KeyError(f"no silence {sid}")
        if row["expired_at"] is not None:
            raise ValueError(f"silence {sid} already ended at {row['expired_at']:%Y-%m-%d %H:%M} "
                             f"({row['expire_reason']})")
        conn.execute(update(silences).where(silences.c.id == sid).values(
            expired_at=now, expired_by=author, expire_reason=reason))
        _event(conn, now, None, None, "silence_expired", author, {"reason": reason}, silence_id=sid)


def active_silences(engine: Engine, now: dt.datetime) -> list[dict[str, Any]]:
    s = silences.c
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(silences).where(
            s.expired_at.is_(None), s.starts_at <= now, s.ends_at > now).order_by(s.id)).mappings()]


def _end_resolved_silences(engine: Engine, day: dt.date, now: dt.datetime) -> list[int]:
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
                _event(conn, now, day, None, "silence_expired", "pipeline", {"reason": "its alerts resolved"},
                       silence_id=sil["id"])
                ended.append(sil["id"])
    return ended


# ---------------------------------------------------------------------------- acknowledgements
def acknowledge(engine: Engine, fp_prefix: str, author: str, verdict: str | None = None, comment: str | None = None,
                now: dt.datetime | None = None) -> str:
    """Acknowledge an alert (by fingerprint or a unique prefix of it, as notices print it), with
    the office's verdict (useful / not_useful) kept for the analysts who tune detectors."""
    now = utc(now)
    if verdict not in (None, "useful", "not_useful"):
        raise ValueError(f"verdict: useful or not_useful, got {verdict!r}")
    _check_author(author)
    fp = resolve_fingerprint(engine, fp_prefix)
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.fingerprint == fp).values(
            ack_by=author, ack_at=now, ack_verdict=verdict, ack_comment=comment, updated_at=now,
            status="acknowledged"))
        conn.execute(update(alerts).where(alerts.c.fingerprint == fp, alerts.c.state == "resolved").values(
            status="resolved"))
        _event(conn, now, None, fp, "acknowledged", author, {"verdict": verdict, "comment": comment})
    return fp


def _check_author(author: str) -> None:
    if len(author) > 64:
        raise ValueError(f"author: at most 64 characters, got {len(author)}")


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


# ---------------------------------------------------------------------------- the stage
def evaluate(engine: Engine, day: dt.date, cfg: AlertsConfig, now: dt.datetime) -> list[dict[str, Any]]:
    """The alerts in play for ``day`` (firing, or resolved that day) with silences and inhibition
    applied and stored; returns them with their ``status``."""
    a = alerts.c
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(alerts).where(a.starts_on <= day, or_(
            a.state == "firing", and_(a.state == "resolved", a.ends_on == day)))).mappings()]
        logged = recorded_on(conn, day)
    sils = active_silences(engine, now)
    sil = silenced(rows, [(s["id"], parse_matchers(s["matchers"], f"silence {s['id']}")) for s in sils])
    inh = inhibited(rows, cfg.inhibit_rules)
    changed, events = [], []
    for r in rows:
        fp = r["fingerprint"]
        if r["state"] == "resolved":
            status = "resolved"
        elif fp in sil:
            status = "silenced"
        elif fp in inh:
            status = "inhibited"
        elif r["ack_at"] is not None:
            status = "acknowledged"
        else:
            status = "firing"
        changes = {"status": status, "silenced_by": sil.get(fp), "inhibited_by": inh.get(fp)}
        if any(r[k] != v for k, v in changes.items()):
            changed.append({"b_fp": fp, "b_status": status, "b_sil": sil.get(fp), "b_inh": inh.get(fp)})
        r.update(changes)
        if status == "silenced" and (fp, "silenced") not in logged:
            s = next(x for x in sils if x["id"] == sil[fp])
            events.append(event_row(now, day, fp, "silenced", s["created_by"],
                                    {"reason": s["reason"], "until": s["ends_at"], "matchers": s["matchers"]},
                                    silence_id=s["id"]))
        if status == "inhibited" and (fp, "inhibited") not in logged:
            events.append(event_row(now, day, fp, "inhibited", "pipeline", {"by": inh[fp]}))
    with engine.begin() as conn:
        if changed:
            conn.execute(update(alerts).where(a.fingerprint == bindparam("b_fp")).values(
                status=bindparam("b_status"), silenced_by=bindparam("b_sil"), inhibited_by=bindparam("b_inh"),
                updated_at=now), changed)
        if events:
            conn.execute(insert(alert_events), events)
    return rows


def due_groups(engine: Engine, day: dt.date, groups: Iterable[Group]) -> list[tuple[Group, list[dict], list[dict]]]:
    """The groups whose notice is due on ``day`` (Alertmanager's timers, in logical days), with
    the firing and resolved alerts the notice carries.

    New alerts, and alerts whose severity rose since the group's last notice, are news (after
    ``group_wait`` for a new group, ``group_interval`` after the last notice); the same alerts
    again wait ``repeat_interval``. A resolved alert is news only to a group that was told it was
    firing. A notice already queued today for the same alerts is not due again (a rerun of the
    day), and a group notified on a later day is left alone (a rerun of an older day)."""
    n = notifications.c
    out = []
    with engine.connect() as conn:
        for g in groups:
            sent = conn.execute(select(n.ds, n.firing, n.resolved, n.severities).where(
                n.receiver == g.receiver, n.group_key == g.key).order_by(n.ds.desc())).all()
            if any(s.ds > day for s in sent):
                continue
            told = {f for s in sent for f in s.firing}
            firing = g.firing
            resolved = [a for a in g.resolved if a["fingerprint"] in told] if g.route.send_resolved else []
            if not firing and not resolved:
                continue
            f_ids, r_ids = {x["fingerprint"] for x in firing}, {x["fingerprint"] for x in resolved}
            sev = {x["fingerprint"]: x["severity"] for x in firing}
            today = [s for s in sent if s.ds == day]
            if today:
                known = {f: v for s in today for f, v in (s.severities or {}).items()}
                if (f_ids <= set(known) and r_ids <= {f for s in today for f in s.resolved}
                        and all(SEVERITY_RANK[sev[f]] <= SEVERITY_RANK.get(known[f], 0) for f in f_ids)):
                    continue
            before = [s for s in sent if s.ds < day]
            if not before:
                first = min((x["starts_on"] for x in firing), default=day)
                ok = dt.timedelta(days=(day - first).days) >= g.route.group_wait
            else:
                last_ds = before[0].ds
                elapsed = dt.timedelta(days=(day - last_ds).days)
                prev = {f: v for s in before if s.ds == last_ds for f, v in (s.severities or {}).items()}
                rose = any(f not in prev or SEVERITY_RANK[sev[f]] > SEVERITY_RANK.get(prev[f], 0) for f in f_ids)
                ok = elapsed >= (g.route.group_interval if rose or resolved else g.route.repeat_interval)
            if ok:
                out.append((g, firing, resolved))
    return out


def report_link(cfg: AlertsConfig, var_dir: Path, rel: str) -> str:
    """A page under var/reports/ as an office opens it: under ``report_base_url`` when the reports
    are served (config/alerts.yaml), else the file on this machine."""
    if cfg.report_base_url:
        return f"{cfg.report_base_url.rstrip('/')}/{rel}"
    return (Path(var_dir) / "reports" / rel).resolve().as_uri()


def alert_link(cfg: AlertsConfig, var_dir: Path, day: dt.date, fp: str) -> str:
    return report_link(cfg, var_dir, f"alerts/{day}/{fp}.html")


def enqueue(engine: Engine, day: dt.date, due: list[tuple[Group, list[dict], list[dict]]], cfg: AlertsConfig,
            ref: Reference, var_dir: Path, now: dt.datetime, run_id: str | None = None) -> list[dict[str, Any]]:
    """Render and queue each due notice on each of its office's channels; returns the rows queued
    (a notice already in the outbox under its dedup key is skipped)."""
    queued = []
    with engine.begin() as conn:
        existing = set(conn.execute(select(notifications.c.dedup_key).where(notifications.c.ds == day)).scalars())
        for g, firing, resolved in due:
            links = {a["fingerprint"]: alert_link(cfg, var_dir, day, a["fingerprint"]) for a in [*firing, *resolved]}
            chans = cfg.channels_of(g.receiver)
            if not chans:
                _event(conn, now, day, None, "unrouted", "pipeline",
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
                       "payload": _jsonable(channel_payload(spec["type"], msg, meta)), "status": "pending",
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
                   "payload": _jsonable(channel_payload(spec["type"], msg, meta)), "status": "pending",
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
                _event(conn, now, row["ds"], None, "delivered", "pipeline",
                       {"notification": row["id"], "channel": ch, "receipt": receipt})
                out["delivered"] += 1
            else:
                give_up = attempts >= d.give_up_after_attempts
                runs = math.ceil(attempts / max(d.attempts_per_run, 1))  # a run with a timeout counts as one
                wait = min(d.retry_after * 2 ** max(runs - 1, 0), dt.timedelta(days=1))
                conn.execute(update(notifications).where(n.id == row["id"]).values(
                    status="failed" if give_up else "pending", attempts=attempts, last_error=error,
                    next_attempt_at=now + wait))
                _event(conn, now, row["ds"], None, "delivery_failed", "pipeline",
                       {"notification": row["id"], "channel": ch, "error": error, "attempts": attempts,
                        "gave_up": give_up})
                if ch in opened:  # this row opened the circuit (the channel's later rows are not tried)
                    _event(conn, now, row["ds"], None, "circuit_open", "pipeline",
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
        _event(conn, now, row["ds"], None, "requeued", author, {"notification": nid})


def notify_day(engine: Engine, day: dt.date, ref: Reference, cfg: AlertsConfig, var_dir: Path,
               secrets: Secrets, now: dt.datetime | None = None, sleep: Callable[[float], None] = time.sleep,
               pages: bool = True) -> dict[str, Any]:
    """The whole stage for one logical day (see the module docstring). Returns counts and the
    notices queued today, for the DAG's log and the CLI."""
    now = utc(now)
    run_id = new_run_id("notify")
    with stage_run(engine, "notify", day, {}, run_id) as run:
        synced = sync_alerts(engine, day, ref, cfg, now)
        ended = _end_resolved_silences(engine, day, now)
        rows = evaluate(engine, day, cfg, now)
        for r in rows:
            r["labels"] = dict(r["labels"])
        notifiable = [r for r in rows if r["status"] in ("firing", "resolved")]
        groups = group_alerts(notifiable, cfg)
        due = due_groups(engine, day, groups)
        if pages:
            from alerts.pages import write_alert_pages

            write_alert_pages(engine, day, [a for _, f, r in due for a in [*f, *r]], var_dir, cfg)
        queued = enqueue(engine, day, due, cfg, ref, var_dir, now, run_id)
        delivered = deliver_due(engine, cfg, secrets, var_dir, now=now, sleep=sleep)
        status = {s: sum(1 for r in rows if r["status"] == s) for s in
                  ("firing", "acknowledged", "silenced", "inhibited", "resolved")}
        metrics = {**synced, "status": status, "groups": len(groups), "notices": len(queued),
                   "silences_ended": ended, **{f"delivery_{k}": v for k, v in delivered.items()}}
        run.metrics = metrics
        return {**metrics, "queued": queued, "run_id": run_id}


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


def history(engine: Engine, fp: str | None = None, silence_id: int | None = None) -> list[dict[str, Any]]:
    e = alert_events.c
    q = select(alert_events)
    if fp:
        q = q.where(e.fingerprint == fp)
    if silence_id is not None:
        q = q.where(e.silence_id == silence_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(e.id)).mappings()]


def silences_list(engine: Engine, include_ended: bool = False, now: dt.datetime | None = None) -> list[dict]:
    now = utc(now)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(silences).order_by(silences.c.id.desc())).mappings()]
    for r in rows:
        r["state"] = ("ended" if r["expired_at"] or r["ends_at"] <= now else
                      "pending" if r["starts_at"] > now else "active")
    return rows if include_ended else [r for r in rows if r["state"] != "ended"]


def as_mapping(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON can carry it: dates as ISO text, missing numbers (NaN) as null."""
    def conv(v: Any) -> Any:
        if isinstance(v, (dt.date, dt.datetime)):
            return v.isoformat()
        if isinstance(v, float) and math.isnan(v):
            return None
        return v
    return {k: conv(v) for k, v in row.items()}


def summary_lines(res: dict[str, Any], show: bool = True) -> list[str]:
    """What the notify stage did, for the CLI and the DAG's log."""
    st = res["status"]
    lines = [f"alerts: fired {res['fired']}, updated {res['updated']}, resolved {res['resolved']}; in play: "
             f"firing {st['firing']}, inhibited {st['inhibited']}, silenced {st['silenced']}, "
             f"acknowledged {st['acknowledged']}, resolved today {st['resolved']}",
             f"notices queued: {res['notices']} ({res['groups']} groups); delivery: delivered "
             f"{res['delivery_delivered']}, retrying {res['delivery_retrying']}, failed {res['delivery_failed']}"]
    if show:
        for n in res["queued"]:
            lines.append(f"--- notice #{n['id']} to {n['receiver_name']} ({n['receiver']}) via {n['channel']}")
            lines += [f"    {x}" for x in n["body"].splitlines()]
    return lines
