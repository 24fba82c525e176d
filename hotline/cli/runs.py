"""Watching the runs and the installation: runs, doctor."""
from __future__ import annotations

import click

from hotline.cli.base import _city, _date, _emit, _fail, _settings, _warehouse, db_option, json_option, main
from hotline.core.reference import DEFAULT_TIMEZONE


@main.command()
@click.option("--city", default=None, callback=_city, help="Forecast and detection of this city only.")
@click.option("--last", type=int, default=7, show_default=True, help="How many of the latest days.")
@db_option
@json_option
@click.pass_context
def runs(ctx, city, last, db_url, as_json):
    """How the daily pipeline's runs went, newest first: status, wall time, each stage's seconds
    and runs, tickets read / loaded / quarantined, series forecast, anomalies, notices, lights and
    the failures with their message (from pipeline_runs)."""
    from warehouse.runs import daily_runs

    if last < 1:
        _fail("--last must be at least 1")
    s, engine = _warehouse(ctx, db_url)
    res = daily_runs(engine, last, city)
    lines = [f"daily runs{' of ' + city if city else ''} (last {last}): {len(res)}"]
    for r in res:
        st = ", ".join(f"{k} {v['seconds']:.1f}s" + (f" x{v['runs']}" if v["runs"] > v["scopes"] else "")
                       + ("" if v["status"] == "success" else f" {v['status'].upper()}")
                       for k, v in r["stages"].items())
        t = r["tickets"]
        lines.append(f"  {r['day']} {r['status']}: wall {r['wall_seconds']}s; read {t['read']}, loaded {t['loaded']}, "
                     f"quarantined {t['quarantined']}; {r['series_forecast']} series forecast, "
                     f"{r['anomalies']} anomalies, "
                     f"{r['notices']} notices, {r['lists']} overdue lists; 红 {r['red']} 黄 {r['yellow']}")
        lines.append(f"    {st}")
        lines += [f"    {f['status']}: {f['stage']} {f['scope'] or ''} {f['message']}" for f in r["failures"]]
    _emit({"runs": res}, as_json, lines)


@main.command()
@click.option("--today", callback=_date, default=None,
              help="The day to check from (default: today in the province's time zone).")
@db_option
@json_option
@click.pass_context
def doctor(ctx, today, db_url, as_json):
    """Check the installation before the next run: the configuration files, each alert channel's
    secret, the warehouse's migration, the holidays and 调休 of the next 60 days, report_base_url
    and the CJK fonts. Exits 1 when a check finds a problem."""
    import datetime as dt
    import zoneinfo

    from hotline.app.doctor import doctor as run_doctor
    from hotline.app.runtime import Runtime

    rt = Runtime(_settings(ctx).with_db(db_url))
    if today is None:
        try:
            tz = rt.tz
        except Exception:  # noqa: BLE001 - the config check below says why the region does not load
            tz = DEFAULT_TIMEZONE
        today = dt.datetime.now(zoneinfo.ZoneInfo(tz)).date()
    report = run_doctor(rt, today)
    lines = []
    for c in report.checks:
        lines.append(f"{'ok     ' if c.ok else 'PROBLEM'} {c.name}: {c.summary}")
        lines += [f"        - {d}" for d in c.details]
    problems = sum(not c.ok for c in report.checks)
    lines.append("all checks passed" if report.ok else f"{problems} of {len(report.checks)} checks found a problem")
    _emit({"today": str(today), **report.as_dict()}, as_json, lines)
    if not report.ok:
        ctx.exit(1)
