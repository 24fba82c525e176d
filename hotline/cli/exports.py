"""Tables for the offices' meetings: export lights|alerts|ranking|watchlist, as .csv or .xlsx."""
from __future__ import annotations

from pathlib import Path

import click

from hotline.cli.base import _date, _day_or_last, _emit, _fail, _month, _runtime, db_option, json_option, main

OUT = click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
                   help="The file to write: .csv (UTF-8, opens in Excel) or .xlsx.")
LANG = click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
                    help="The headers' language.")
DAY = click.option("--date", "day", callback=_date, default=None, help="The day (default: the warehouse's last).")
MONTH = click.option("--month", required=True, callback=_month, help="The month (YYYY-MM).")


def _table(name: str, *options):
    """An export subcommand: its own options, then --out, --lang, --db and --json."""
    def wrap(fn):
        for opt in reversed((*options, OUT, LANG, db_option, json_option, click.pass_context)):
            fn = opt(fn)
        return export.command(name)(fn)
    return wrap


@main.group()
def export():
    """Write a table an office takes to its meeting: CSV or Excel, Chinese headers first, no
    ticket text and no caller, every cell inert (no spreadsheet formula)."""


def _write(table, out: Path, as_json: bool) -> None:
    from reports.exports import write

    try:
        write(table, out)
    except ValueError as exc:
        _fail(str(exc))
    _emit({"file": str(out), "sheet": table.name, "rows": len(table.rows), "headers": table.headers}, as_json,
          [f"{out}: {len(table.rows)} rows ({table.name})"])


@_table("lights", DAY, click.option("--region", required=True,
                                   help="A district's code (or a city's): its red and yellow tickets."))
def export_lights(ctx, day, region, out, lang, db_url, as_json):
    """A district's red and yellow tickets at the end of the day (红黄灯), by department."""
    from reports.exports import lights_table

    rt = _runtime(ctx, db_url)
    if rt.ref.regions.level_of(region) not in ("district", "city") or rt.ref.regions.province_of(region) != rt.province:
        _fail(f"{region} is not a city or district of {rt.ref.regions.name(rt.province)} ({rt.province})")
    day = _day_or_last(rt.engine, rt.settings, day)
    _write(lights_table(rt.engine, day, rt.ref, rt.sla_config, rt.province, region, lang), out, as_json)


@_table("alerts", DAY, click.option("--city", default=None, help="Only this city's alerts."))
def export_alerts(ctx, day, city, out, lang, db_url, as_json):
    """The alerts in play on the day, most severe first."""
    from reports.exports import alerts_table

    rt = _runtime(ctx, db_url)
    if city and city not in {c.code for c in rt.ref.regions.province(rt.province).cities}:
        _fail(f"{city} is not a city of {rt.ref.regions.name(rt.province)} ({rt.province})")
    day = _day_or_last(rt.engine, rt.settings, day)
    _write(alerts_table(rt.engine, day, rt.ref, rt.province, city, lang), out, as_json)


@_table("ranking", MONTH, click.option("--level", type=click.Choice(["city", "district"]), default="city",
                                      show_default=True))
def export_ranking(ctx, month, level, out, lang, db_url, as_json):
    """The month's horse race (赛马) at one level."""
    from reports.exports import ranking_table

    rt = _runtime(ctx, db_url)
    _write(ranking_table(rt.engine, month, rt.ref, rt.province, level, lang), out, as_json)


@_table("watchlist", MONTH)
def export_watchlist(ctx, month, out, lang, db_url, as_json):
    """Each scope's 每月一题, watch list and sprouts (苗头)."""
    from reports.exports import watchlist_table

    rt = _runtime(ctx, db_url)
    _write(watchlist_table(rt.engine, month, rt.ref, rt.province, lang), out, as_json)
