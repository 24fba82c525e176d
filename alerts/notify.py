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

The steps are STAGES, each ``(run, what the step before returned) -> what the next one takes``
and testable alone; silences (alerts.silences), acknowledgements (alerts.acks) and the outbox
with delivery (alerts.outbox, alerts.channels) have their own modules.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, bindparam, insert, or_, select, update

from alerts.channels import LINK_SECRET_ENV, Secrets
from alerts.config import AlertsConfig, parse_matchers
from alerts.model import event_row, recorded_on, sync_alerts, utc
from alerts.outbox import deliver_due, enqueue
from alerts.routing import Group, group_alerts, inhibited, silenced
from alerts.silences import active_silences, end_resolved_silences
from hotline.core.reference import Reference
from hotline.core.severity import SEVERITY_RANK
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import alert_events, alerts, notifications


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


@dataclass
class NotifyRun:
    """What every stage of one notify run shares; the stages add their counts to ``metrics``."""

    engine: Engine
    day: dt.date
    ref: Reference
    cfg: AlertsConfig
    var_dir: Path
    secrets: Secrets
    now: dt.datetime
    run_id: str
    sleep: Callable[[float], None] = time.sleep
    pages: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)


def sync_stage(run: NotifyRun, _: Any) -> None:
    """1. Fire, update and resolve alerts from the day's anomalies; end silences that were set
    "until resolved" on alerts that have resolved."""
    run.metrics.update(sync_alerts(run.engine, run.day, run.ref, run.cfg, run.now))
    run.metrics["silences_ended"] = end_resolved_silences(run.engine, run.day, run.now)


def evaluate_stage(run: NotifyRun, _: Any) -> list[dict[str, Any]]:
    """2. Each open alert's status today: firing, acknowledged, silenced, inhibited or resolved."""
    rows = evaluate(run.engine, run.day, run.cfg, run.now)
    for r in rows:
        r["labels"] = dict(r["labels"])
    run.metrics["status"] = {s: sum(1 for r in rows if r["status"] == s) for s in
                             ("firing", "acknowledged", "silenced", "inhibited", "resolved")}
    return rows


def group_stage(run: NotifyRun, rows: list[dict[str, Any]]) -> list[Group]:
    """3. The alerts to tell of (firing or resolved), routed to their offices and grouped."""
    groups = group_alerts([r for r in rows if r["status"] in ("firing", "resolved")], run.cfg)
    run.metrics["groups"] = len(groups)
    return groups


def due_stage(run: NotifyRun, groups: list[Group]) -> list[tuple[Group, list[dict], list[dict]]]:
    """4. The groups Alertmanager's timers say are due today, with their firing and resolved alerts."""
    return due_groups(run.engine, run.day, groups)


def pages_stage(run: NotifyRun, due: list[tuple[Group, list[dict], list[dict]]]) -> list:
    """5. A page per alert told of (the links in the notices point at them)."""
    if run.pages:
        from alerts.pages import write_alert_pages

        write_alert_pages(run.engine, run.day, [a for _, f, r in due for a in [*f, *r]], run.var_dir, run.cfg)
    return due


def enqueue_stage(run: NotifyRun, due: list[tuple[Group, list[dict], list[dict]]]) -> list:
    """6. One notice per due group and channel into the outbox (a rerun adds nothing)."""
    queued = enqueue(run.engine, run.day, due, run.cfg, run.ref, run.var_dir, run.now, run.run_id,
                     link_secret=run.secrets.env.get(LINK_SECRET_ENV))
    run.metrics["notices"] = len(queued)
    return queued


def deliver_stage(run: NotifyRun, queued: list) -> list:
    """7. Deliver what is due in the outbox: today's notices and any left from earlier runs."""
    delivered = deliver_due(run.engine, run.cfg, run.secrets, run.var_dir, now=run.now, sleep=run.sleep)
    run.metrics.update({f"delivery_{k}": v for k, v in delivered.items()})
    return queued


# The notify stage, in order: each step takes the run and what the step before it returned.
STAGES: tuple[Callable[[NotifyRun, Any], Any], ...] = (
    sync_stage, evaluate_stage, group_stage, due_stage, pages_stage, enqueue_stage, deliver_stage)


@dataclass(frozen=True)
class NotifyResult:
    """What one notify run did: the alerts' changes, their status today, the groups and notices,
    the outbox's delivery (``delivered``, ``retrying``, ``failed``, ...) and the notices queued."""

    run_id: str
    fired: int
    updated: int
    reopened: int
    resolved: int
    silences_ended: int
    status: dict[str, int]
    groups: int
    notices: int
    delivery: dict[str, int]
    queued: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_metrics(cls, run_id: str, m: dict[str, Any], queued: list[dict[str, Any]]) -> "NotifyResult":
        return cls(run_id, m.get("fired", 0), m.get("updated", 0), m.get("reopened", 0), m.get("resolved", 0),
                   m.get("silences_ended", 0), dict(m.get("status") or {}), m.get("groups", 0), m.get("notices", 0),
                   {k.removeprefix("delivery_"): v for k, v in m.items() if k.startswith("delivery_")}, list(queued))

    def as_dict(self) -> dict[str, Any]:
        """The counts as the run log, the DAG's XCom and `alerts notify --json` carry them (the
        notices queued are left out: their bodies are the channel's business)."""
        return {"fired": self.fired, "updated": self.updated, "reopened": self.reopened, "resolved": self.resolved,
                "silences_ended": self.silences_ended, "status": dict(self.status), "groups": self.groups,
                "notices": self.notices, **{f"delivery_{k}": v for k, v in self.delivery.items()},
                "run_id": self.run_id}


def notify_day(engine: Engine, day: dt.date, ref: Reference, cfg: AlertsConfig, var_dir: Path,
               secrets: Secrets, now: dt.datetime | None = None, sleep: Callable[[float], None] = time.sleep,
               pages: bool = True) -> NotifyResult:
    """The whole stage for one logical day (see the module docstring): STAGES in order, in one
    recorded run. Returns its counts and the notices queued today, for the DAG's log and the CLI."""
    run_id = new_run_id("notify")
    with stage_run(engine, "notify", day, {}, run_id) as rec:
        run = NotifyRun(engine, day, ref, cfg, var_dir, secrets, utc(now), run_id, sleep, pages)
        out: Any = None
        for stage in STAGES:
            out = stage(run, out)
        rec.metrics = dict(run.metrics)
        return NotifyResult.from_metrics(run_id, run.metrics, out)


def as_mapping(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON can carry it: dates as ISO text, missing numbers (NaN) as null."""
    def conv(v: Any) -> Any:
        if isinstance(v, (dt.date, dt.datetime)):
            return v.isoformat()
        if isinstance(v, float) and math.isnan(v):
            return None
        return v
    return {k: conv(v) for k, v in row.items()}


def summary_lines(res: NotifyResult, show: bool = True) -> list[str]:
    """What the notify stage did, for the CLI and the DAG's log."""
    st, d = res.status, res.delivery
    lines = [f"alerts: fired {res.fired}, updated {res.updated}, resolved {res.resolved}; in play: "
             f"firing {st['firing']}, inhibited {st['inhibited']}, silenced {st['silenced']}, "
             f"acknowledged {st['acknowledged']}, resolved today {st['resolved']}",
             f"notices queued: {res.notices} ({res.groups} groups); delivery: delivered "
             f"{d['delivered']}, retrying {d['retrying']}, failed {d['failed']}"]
    if show:
        for n in res.queued:
            lines.append(f"--- notice #{n['id']} to {n['receiver_name']} ({n['receiver']}) via {n['channel']}")
            lines += [f"    {x}" for x in n["body"].splitlines()]
    return lines
