"""The alert lifecycle: alerts notify, list, show, ack, silence, unsilence, silences, outbox."""
from __future__ import annotations

import datetime as dt
import json

import click

from hotline.cli.base import _date, _emit, _fail, _warehouse, _working, db_option, json_option, main


def _alerts_ctx(ctx, db_url):
    from alerts.config import AlertsConfig
    from hotline.core.reference import load_reference

    s, engine = _warehouse(ctx, db_url)
    return s, engine, AlertsConfig.load(s.config_dir), load_reference(s.config_dir)


def _until(value: str) -> dt.datetime:
    """'72h', '3d', '30m' from now, or an ISO date/time (Asia/Shanghai when no zone is given)."""
    from alerts.config import parse_duration

    now = dt.datetime.now(dt.timezone.utc)
    try:
        return now + parse_duration(value, "--until")
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a duration (72h, 3d) or a date/time (2026-12-01 18:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


@main.group()
def alerts():
    """Alerts and notices: list, show, acknowledge, silence, the outbox, and the notify stage."""


@alerts.command("notify")
@click.option("--date", "day", callback=_date, required=True, help="The logical day whose anomalies to notify.")
@click.option("--show/--no-show", default=True, show_default=True, help="Print the notices queued.")
@db_option
@json_option
@click.pass_context
def alerts_notify(ctx, day, show, db_url, as_json):
    """Run the notify stage for a day (as the DAG's notify task does): alerts, silences,
    inhibition, routing, grouping, the outbox and its delivery."""
    import os

    from alerts.channels import Secrets
    from alerts.notify import notify_day, summary_lines

    s, engine, cfg, ref = _alerts_ctx(ctx, db_url)
    with _working(f"notify for {day} ..."):
        res = notify_day(engine, day, ref, cfg, s.var_dir, Secrets(os.environ))
    lines = summary_lines(res, show)
    _emit(res.as_dict() | {"notices": [
        {k: n[k] for k in ("id", "receiver", "receiver_name", "channel", "subject", "firing", "resolved")}
        for n in res.queued]}, as_json, lines)


@alerts.command("list")
@click.option("--state", type=click.Choice(["firing", "resolved", "all"]), default="firing", show_default=True)
@click.option("--date", "day", callback=_date, default=None, help="Only alerts in play on this day.")
@click.option("--limit", type=int, default=50, show_default=True)
@db_option
@json_option
@click.pass_context
def alerts_list(ctx, state, day, limit, db_url, as_json):
    """Alerts, newest first, with their status (firing, acknowledged, silenced, inhibited, resolved)."""
    from alerts.model import read_alerts
    from alerts.notify import as_mapping
    from alerts.render import place_name

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    df = read_alerts(engine, None if state == "all" else [state], day).head(limit)
    rows = [as_mapping(r) for r in df.to_dict("records")]
    lines = [f"{len(rows)} alert(s)"]
    for r in rows:
        lab = r["labels"]
        where = place_name(lab)
        lines.append(f"  {r['fingerprint'][:8]} [{r['severity']}] {r['status']:<12} {where} · {lab['category_name']} · "
                     f"{r['kind']} since {r['starts_on']} (last {r['last_seen']})"
                     + (f" · ack {r['ack_by']} {r['ack_verdict'] or ''}" if r["ack_by"] else ""))
    _emit({"alerts": rows}, as_json, lines)


@alerts.command("show")
@click.argument("alert_id")
@db_option
@json_option
@click.pass_context
def alerts_show(ctx, alert_id, db_url, as_json):
    """One alert: labels, numbers, explanation, and its whole history."""
    from alerts.acks import history, resolve_fingerprint
    from alerts.model import read_alerts
    from alerts.notify import as_mapping

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    try:
        fp = resolve_fingerprint(engine, alert_id)
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    a = as_mapping(read_alerts(engine, fingerprint=fp).iloc[0].to_dict())
    hist = [as_mapping(h) for h in history(engine, fp)]
    lines = [f"alert {fp} [{a['severity']}] {a['status']} ({a['state']}) since {a['starts_on']}, last {a['last_seen']}"
             + (f", resolved {a['ends_on']}" if a["ends_on"] else ""),
             f"  {a['labels']['region_name']} · {a['labels']['category_name']} · {a['kind']}: "
             f"observed {a['observed']:g},"
             f" expected {a['expected'] if a['expected'] is None else round(a['expected'], 1)}, score {a['score']:.7f}",
             f"  {a['explanation']}"]
    if a["ack_by"]:
        lines.append(f"  acknowledged by {a['ack_by']} at {a['ack_at']}: {a['ack_verdict'] or '-'} "
                     f"{a['ack_comment'] or ''}")
    lines.append("  history:")
    lines += [f"    {h['at'][:19]} {h['ds'] or '':<10} {h['action']:<16} {h['actor']:<10} "
              f"{json.dumps(h['detail'], ensure_ascii=False, default=str) if h['detail'] else ''}" for h in hist]
    _emit({"alert": a, "history": hist}, as_json, lines)


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--author", required=True, help="Who acknowledges (name or office).")
@click.option("--verdict", type=click.Choice(["useful", "not_useful"]), default=None,
              help="Was the alert worth acting on? Kept for the analysts who tune detectors.")
@click.option("--comment", default=None)
@db_option
@json_option
@click.pass_context
def alerts_ack(ctx, alert_id, author, verdict, comment, db_url, as_json):
    """Acknowledge an alert: no more repeat notices for it until it resolves and fires again."""
    from alerts.acks import acknowledge

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    try:
        fp = acknowledge(engine, alert_id, author, verdict, comment)
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    _emit({"fingerprint": fp, "author": author, "verdict": verdict}, as_json,
          [f"acknowledged {fp[:8]} by {author}" + (f" ({verdict})" if verdict else "")])


@alerts.command("silence")
@click.option("--match", "matchers", multiple=True, required=True,
              help='A matcher over alert labels, e.g. region_code="440306" or category_code=~"utilities.*"; '
                   "repeat: all must match.")
@click.option("--until", "until", required=True, help="72h, 3d, or a date/time (Asia/Shanghai unless a zone is given).")
@click.option("--author", required=True)
@click.option("--reason", required=True)
@click.option("--until-resolved", is_flag=True, help="Also end the silence once the alerts it holds back resolve.")
@db_option
@json_option
@click.pass_context
def alerts_silence(ctx, matchers, until, author, reason, until_resolved, db_url, as_json):
    """Hold back matching alerts' notices for a time; the author, reason and every alert held
    back are recorded."""
    from alerts.config import ConfigError
    from alerts.silences import add_silence

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    ends = _until(until)
    try:
        sid = add_silence(engine, list(matchers), author, reason, ends, end_on_resolve=until_resolved)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    local = ends.astimezone(dt.timezone(dt.timedelta(hours=8)))
    _emit({"silence": sid, "ends_at": ends.isoformat()}, as_json,
          [f"silence {sid} created by {author} until {local:%Y-%m-%d %H:%M} (UTC+8): {' '.join(matchers)}"])


@alerts.command("unsilence")
@click.argument("silence_id", type=int)
@click.option("--author", required=True)
@click.option("--reason", default="ended by hand", show_default=True)
@db_option
@json_option
@click.pass_context
def alerts_unsilence(ctx, silence_id, author, reason, db_url, as_json):
    """End a silence now (audited)."""
    from alerts.silences import expire_silence

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    try:
        expire_silence(engine, silence_id, author, reason)
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    _emit({"silence": silence_id, "ended_by": author}, as_json, [f"silence {silence_id} ended by {author}"])


@alerts.command("silences")
@click.option("--all", "include_ended", is_flag=True, help="Include ended silences.")
@db_option
@json_option
@click.pass_context
def alerts_silences(ctx, include_ended, db_url, as_json):
    """Silences with their author, reason and end, and the alerts each held back (the audit)."""
    from alerts.acks import history
    from alerts.notify import as_mapping
    from alerts.silences import silences_list

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    rows = []
    lines = []
    for s in silences_list(engine, include_ended):
        held = sorted({h["fingerprint"][:8] for h in history(engine, silence_id=s["id"]) if h["action"] == "silenced"})
        rows.append(as_mapping({**s, "held_back": held}))
        lines.append(f"  #{s['id']} {s['state']:<7} {' '.join(s['matchers'])} by {s['created_by']} until "
                     f"{s['ends_at']:%Y-%m-%d %H:%M} UTC: {s['reason']}"
                     + (f"; held back {', '.join(held)}" if held else "")
                     + (f"; ended by {s['expired_by']}: {s['expire_reason']}" if s["expired_at"] else ""))
    _emit({"silences": rows}, as_json, [f"{len(rows)} silence(s)"] + lines)


@alerts.command("outbox")
@click.option("--status", type=click.Choice(["pending", "sending", "delivered", "failed"]), default=None)
@click.option("--date", "day", callback=_date, default=None)
@click.option("--retry", "retry_id", type=int, default=None, help="Requeue this failed notice for the next delivery.")
@click.option("--deliver", is_flag=True, help="Deliver what is due now.")
@db_option
@json_option
@click.pass_context
def alerts_outbox(ctx, status, day, retry_id, deliver, db_url, as_json):
    """Notices: pending, failed and delivered, with attempts and the last error."""
    import os

    from alerts.channels import Secrets
    from alerts.notify import as_mapping
    from alerts.outbox import deliver_due, outbox, requeue

    s, engine, cfg, _ = _alerts_ctx(ctx, db_url)
    lines = []
    if retry_id is not None:
        try:
            requeue(engine, retry_id, os.environ.get("USER", "operator"))
        except (KeyError, ValueError) as exc:
            _fail(str(exc).strip("'\""))
        lines.append(f"notice {retry_id} requeued")
    if deliver:
        res = deliver_due(engine, cfg, Secrets(os.environ), s.var_dir)
        lines.append(f"delivery: {res}")
    rows = [as_mapping(r) for r in outbox(engine, status, day)]
    counts = {k: sum(1 for r in rows if r["status"] == k) for k in ("pending", "sending", "delivered", "failed")}
    lines.append(f"{len(rows)} notice(s): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for r in rows:
        lines.append(f"  #{r['id']} {r['ds']} {r['status']:<9} {r['channel']:<14} {r['receiver_name']}: {r['subject']}"
                     f" (attempts {r['attempts']}"
                     + (f", last error: {r['last_error']}" if r["last_error"] else "") + ")")
    _emit({"notices": rows, "counts": counts}, as_json, lines)
