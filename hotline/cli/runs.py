"""Watching the runs: runs."""
from __future__ import annotations

import click

from hotline.cli.base import _city, _emit, _fail, _warehouse, db_option, json_option, main


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
