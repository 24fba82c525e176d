"""Detection: summary, backtest, calibrate, score-csv."""
from __future__ import annotations

import datetime as dt
import math
import sys
import time
from pathlib import Path

import click

from hotline.cli.base import _date, _emit, _fail, _province, _settings, _warehouse, db_option, json_option, main


def _anomaly_line(a: dict, ref, with_day: bool = False) -> str:
    from hotline.core.rarity import frequency, p_of

    cat = "全部类别" if a["category_code"] == "*" else ref.taxonomy.name(a["category_code"])
    when = f"{a['ds']} " if with_day else ""
    p = p_of(a.get("surprise"), a.get("score"))
    how = frequency(p, a.get("history_days"))
    return (f"  {when}[{a['severity']}] {ref.regions.name(a['region_code'])} · {cat} · {a['kind']} "
            f"({a['detector']}, {how}, surprise {-math.log10(max(p, 1e-300)):.1f}): {a['explanation']}")


@main.command()
@click.option("--date", "day", callback=_date, required=True, help="The logical day to summarise.")
@db_option
@json_option
@click.pass_context
def summary(ctx, day, db_url, as_json):
    """What the warehouse holds and what the runs for a day did."""
    from warehouse.summary import warehouse_summary

    s, engine = _warehouse(ctx, db_url)
    rep = warehouse_summary(engine, day)
    lines = [
        f"warehouse: {rep['tickets']} tickets, {rep['quarantined']} quarantined, "
        f"{rep['days_aggregated']} days aggregated ({rep['first_day']} .. {rep['last_day']}), "
        f"{rep['daily_count_rows']} daily_counts rows",
        f"day {day}: {rep['day']['tickets']} tickets in {rep['day']['cities']} cities; "
        f"last ingest run {rep['day']['last_run'] or '-'}: read {rep['day']['read']}, loaded {rep['day']['loaded']}, "
        f"quarantined {rep['day']['quarantined']}",
    ]
    for suite, v in rep["data_quality"].items():
        lines.append(f"data quality {suite}: {v['action']} ({v['failed']} failed expectations, "
                     f"{v['quarantined']} quarantined) {v['docs']}")
        lines += [f"    {r}" for r in v["reasons"][:5]]
    if not rep["data_quality"]:
        lines.append("data quality: no verdict recorded for this day")
    an = rep["anomalies"]
    sev = {s: sum(1 for a in an if a["severity"] == s) for s in ("red", "orange", "yellow")}
    lines.append(f"anomalies on {day}: {len(an)} (红 red {sev['red']}, 橙 orange {sev['orange']}, "
                 f"黄 yellow {sev['yellow']})")
    from hotline.core.reference import load_reference

    ref = load_reference(_settings(ctx).config_dir)
    lines += [_anomaly_line(a, ref) for a in an[:10]]
    recent = rep["recent_anomalies"]
    if recent:
        rsev = {s: sum(1 for a in recent if a["severity"] == s) for s in ("red", "orange", "yellow")}
        lines.append(f"anomalies in the 7 days before: {len(recent)} (红 red {rsev['red']}, "
                     f"橙 orange {rsev['orange']}, 黄 yellow {rsev['yellow']}); the most severe:")
        from hotline.core.severity import worst_first

        worst = sorted(recent, key=lambda a: (worst_first(a["severity"]), -(a.get("surprise") or 0), -a["score"]))
        lines += [_anomaly_line(a, ref, with_day=True) for a in worst[:5]]
    f = rep["forecasts"]
    lines.append(f"forecasts from {day}: {f['series']} series to {f['until']}, by model {f['models']}"
                 if f["series"] else f"forecasts from {day}: none")
    _emit(rep, as_json, lines)


@main.command()
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), required=True,
              help="Labels CSV: type, start, end, region, category (the generator's var/labels.csv or your own).")
@click.option("--start", callback=_date, default=None, help="First day replayed (default: a year before --end).")
@click.option("--end", callback=_date, default=None, help="Last day replayed (default: the warehouse's last day).")
@click.option("--profile", default=None, help="A tier or named profile of config/detection.yaml for every city "
                                               "(default: each city its own tier's).")
@click.option("--sweep", multiple=True, metavar="PARAM=V1,V2,...",
              help="Replay over a grid: a profile key (budget, min_excess, min_expected, min_change, min_shift, "
                   "material_p, cooldown_days; a number for every office level) or <detector>.<param>; repeat "
                   "for a product. budget=0.25,0.5,1,2 gives the trade-off of alerts against events found.")
@click.option("--max-false", "max_false", type=float, default=1.0, show_default=True,
              help="With --sweep: the best setting is the highest F1 with at most this many false alerts per "
                   "district office and month.")
@click.option("--province", default=None, callback=_province, help="Province code (default: the configured source's).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="HTML report path (default: var/backtest/backtest_<start>_<end>.html).")
@db_option
@json_option
@click.pass_context
def backtest(ctx, labels_path, start, end, profile, sweep, max_false, province, report_path, db_url, as_json):
    """Replay history day by day as the daily DAG would have judged it, and score the warnings
    against labelled events: the budget achieved (alerts per office and month at each level),
    events found (all, and those material by their tier's rule), precision, recall, F1, detection
    delay; an HTML report with a chart per event."""
    from sqlalchemy import func, select

    from detectors.backtest import (
        LabelsError,
        best,
        parse_sweep,
        public,
        read_labels,
        run_backtest,
    )
    from hotline.core.reference import ConfigError, load_reference
    from reports.backtest import backtest_report
    from warehouse.db import connect, migrate
    from warehouse.schema import daily_counts

    s = _settings(ctx).with_db(db_url)
    ref = load_reference(s.config_dir)
    try:
        labels = read_labels(labels_path, ref)
        grid = parse_sweep(list(sweep))
    except (LabelsError, ConfigError) as exc:
        _fail(str(exc))
    engine = connect(s.db_url)
    migrate(engine)
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(daily_counts.c.ds), func.max(daily_counts.c.ds))).one()
    if last is None:
        _fail(f"the warehouse {s.db_url} holds no daily counts: run `hotline demo` or ingest first")
    end = end or last
    start = start or max(first, end - dt.timedelta(days=364))
    if start > end:
        _fail(f"--start {start} is after --end {end}")
    if start < first or end > last:
        _fail(f"the warehouse holds {first} .. {last}: replay a period inside it (--start {start}, --end {end})")
    labels = labels[(labels["end"] >= start) & (labels["start"] <= end)].reset_index(drop=True)
    province = province or s.province
    if ref.regions.level_of(province) != "province":
        _fail(f"--province {province}: not a configured province (config/regions/)")
    t0 = time.perf_counter()
    days = (end - start).days + 1
    with click.progressbar(length=days * (len(ref.regions.province(province).cities) + 1), label="backtest",
                           file=sys.stderr) as bar:
        try:
            res = run_backtest(engine, labels, start, end, s.config_dir, ref, province, profile, grid,
                               progress=bar.update)
        except ConfigError as exc:
            _fail(str(exc))
    seconds = time.perf_counter() - t0
    chosen = best(res["grid"], max_false) if len(res["grid"]) > 1 else res["grid"][0]
    shown = chosen or min(res["grid"], key=lambda g: g["false_alerts_per_district_month"])
    path = backtest_report(report_path or s.var_dir / "backtest" / f"backtest_{start}_{end}.html", res, shown,
                  res["labels"], ref)
    off = res["offices"]
    lines = [f"backtest {start} .. {end}, profile {res['profile']}, offices: {off['district']} districts, "
             f"{off['city']} cities, 1 province; {len(labels)} labelled events, {seconds:.0f} s",
             "alerts per office and month (false ones in brackets), district / city / province:"]
    header = (f"{'setting':<28} {'alerts':>6} {'false':>6} {'prec':>6} {'recall':>6} {'material':>9} {'F1':>6}  "
              f"{'per office-month':<34} delay by kind")
    lines.append(header)
    for g in res["grid"]:
        delays = ", ".join(f"{k} {v:g}" if v is not None else f"{k} -" for k, v in g["median_delay_days"].items())
        per = g["alerts_per_office_month"]
        fa = g["false_alerts_per_office_month"]
        budget = " / ".join(f"{per[lv]:.2f} ({fa[lv]:.2f})" for lv in ("district", "city", "province"))
        mat = (f"{g['material_detected']}/{g['material_events']}" if g.get("material_events") is not None else "-")
        lines.append(f"{g['setting'][:28]:<28} {g['alerts']:>6} {g['false_alerts']:>6} {g['precision']:>6.3f} "
                     f"{g['recall']:>6.3f} {mat:>9} {g['f1']:>6.3f}  {budget:<34} {delays}")
    if len(res["grid"]) > 1:
        lines.append(f"best by F1 within {max_false:g} false alerts per district office and month: "
                     f"{chosen['setting'] if chosen else 'none within it'}")
    lines.append(f"report: {path}")
    _emit({"start": str(start), "end": str(end), "profile": res["profile"], "seconds": round(seconds, 1),
           "districts": res["districts"], "offices": off, "events": len(labels),
           "grid": [public(g) for g in res["grid"]], "best": chosen["setting"] if chosen else None,
           "report": str(path)}, as_json, lines)


@main.command()
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="A panel CSV: ds,y (one series) or series_id,ds,y (many), daily counts.")
@click.option("--level", default=None, help="From the warehouse instead: REGION:CATEGORY (district:l2, city:l1, "
                                            "province:all) or 'all' for every series.")
@click.option("--start", callback=_date, default=None, help="First day judged (default: a year before --end; "
                                                           "with --csv, 26 weeks after the first day).")
@click.option("--end", callback=_date, default=None, help="Last day judged (default: the last day of the data).")
@click.option("--province", default=None, callback=_province,
              help="With --level: the province (default: the configured source's).")
@click.option("--calendar", type=click.Choice(["CN", "US", "none"]), default="CN", show_default=True,
              help="With --csv: the holiday calendar of the series (CN includes 调休).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="HTML report path (default: var/calibration/calibration_<start>_<end>.html).")
@db_option
@json_option
@click.pass_context
def calibrate(ctx, csv_path, level, start, end, province, calendar, report_path, db_url, as_json):
    """How often the days the detectors call rare really come: replay each day as the daily job
    judges it and compare claimed with observed (PIT histogram, coverage at 50/80/95/99%,
    exceedance at 1e-2/1e-3/1e-4 and at each severity threshold, by detector, volume band and
    tier); an offline HTML page with the charts."""
    import numpy as np
    import pandas as pd

    from detectors.calibrate import (
        level_mask,
        replay,
        scope_panels,
        summarise,
        tiers_of,
    )
    from detectors.job import PANEL_DAYS
    from detectors.panel import Panel
    from detectors.profiles import DetectionConfig
    from hotline.core.reference import ConfigError, load_reference
    from reports.calibration import write_calibration_report

    if bool(csv_path) == bool(level):
        raise click.UsageError("give one of --csv PATH or --level REGION:CATEGORY")
    s = _settings(ctx).with_db(db_url)
    try:
        cfg = DetectionConfig.load(s.config_dir)
    except ConfigError as exc:
        _fail(str(exc))
    if csv_path:
        from forecasting.series_csv import SeriesCsvError, read_series_csv

        try:
            frame = read_series_csv(csv_path)
        except SeriesCsvError as exc:
            _fail(str(exc))
        panel = Panel.from_long(frame, country=calendar)
        panel.keys["region_level"], panel.keys["region_code"] = "district", "csv"  # one office holds them all
        first, last = panel.days[0].date(), panel.days[-1].date()
        end = end or last
        start = start or min(first + dt.timedelta(days=7 * 26 + 14), end)
        if start < first or end > last or start > end:
            _fail(f"{csv_path} holds {first} .. {last}: judge days inside it (--start {start}, --end {end})")
        days = pd.date_range(start, end)
        source = str(csv_path)
        with click.progressbar(length=len(days), label="calibrate", file=sys.stderr) as bar:
            rec = replay(panel, days, cfg, np.ones(len(panel), bool), np.full(len(panel), "-"), progress=bar.update)
    else:
        from sqlalchemy import func, select

        from warehouse.schema import daily_counts

        s, engine = _warehouse(ctx, db_url)
        ref = load_reference(s.config_dir)
        province = province or s.province
        if ref.regions.level_of(province) != "province":
            _fail(f"--province {province}: not a configured province (config/regions/)")
        rl, _, cl = level.partition(":")
        if level != "all" and (rl not in ("district", "city", "province") or cl not in ("", "all", "l1", "l2")):
            _fail(f"--level {level!r}: expected REGION:CATEGORY, e.g. district:l2, city:l1, province:all, or all")
        with engine.connect() as conn:
            first, last = conn.execute(select(func.min(daily_counts.c.ds), func.max(daily_counts.c.ds))).one()
        if last is None:
            _fail("the warehouse holds no daily counts: run `hotline demo` or ingest first")
        end = end or last
        start = start or max(first, end - dt.timedelta(days=364))
        if start < first or end > last or start > end:
            _fail(f"the warehouse holds {first} .. {last}: judge days inside it (--start {start}, --end {end})")
        days = pd.date_range(start, end)
        tier_of = {c.code: c.tier for c in ref.regions.province(province).cities}
        source = f"{engine.url.render_as_string(hide_password=True)} {level}"
        rec = None
        scopes = len(ref.regions.province(province).cities) + 1
        with click.progressbar(length=len(days) * scopes, label="calibrate", file=sys.stderr) as bar:
            for _code, scope_level, panel in scope_panels(engine, start, end, ref, province, PANEL_DAYS):
                own = ((panel.keys["region_level"] == scope_level).to_numpy() if scope_level == "province"
                       else np.ones(len(panel), bool))  # a province scope alerts on its own series only
                keep = level_mask(panel, level) & own
                if keep.any():
                    rec = replay(panel, days, cfg, keep, tiers_of(panel, tier_of), own, rec, progress=bar.update)
        if rec is None:
            _fail(f"no series at level {level} in the warehouse")
    summary = summarise(rec)
    summary["period"] = f"{start} .. {end}"
    path = write_calibration_report(report_path or s.var_dir / "calibration" / f"calibration_{start}_{end}.html",
                                    summary, source)
    ex = summary["exceedance"]
    lines = [f"calibration of {source}, {start} .. {end}: {summary['series']} series, {summary['days']} days, "
             f"{ex['tests']:,} one-sided tests"
             + (f"; {summary['short_series']} short series (fewer than 4 weeks of their own residuals: judged "
                f"on their volume band's pooled calibration)" if summary["short_series"] else ""),
             "PIT histogram (1 = flat): " + " ".join(f"{x * summary['pit']['bins']:.2f}"
                                                     for x in summary["pit"]["shares"]),
             "coverage: " + ", ".join(f"{c}% -> {'-' if v is None else f'{v:.1%}'}"
                                      for c, v in summary["coverage"].items()),
             f"{'threshold':<28} {'claimed':>10} {'observed':>9} {'ratio':>7}"]
    for lv in ex["levels"]:
        lines.append(f"{'p <= ' + format(lv['claimed'], 'g'):<28} {lv['expected']:>10.1f} {lv['hits']:>9} "
                     f"{'-' if lv['ratio'] is None else format(lv['ratio'], '.2f'):>7}")
    for sv in ex["severity"]:
        lines.append(f"{sv['severity'] + ' (p <= ' + sv['threshold'] + ')':<28} "
                     f"{sv['expected']:>10.1f} {sv['hits']:>9} "
                     f"{'-' if sv['ratio'] is None else format(sv['ratio'], '.2f'):>7}")
    for d, g in summary["by_detector"].items():
        lines.append(f"  {d}: " + ", ".join(f"{lv['claimed']:g} "
                                            f"{'-' if lv['ratio'] is None else format(lv['ratio'], '.2f')}x"
                                            for lv in g["levels"]))
    lines.append(f"report: {path}")
    summary["report"] = str(path)
    _emit(summary, as_json, lines)


@main.command("score-csv")
@click.argument("input_path", type=click.Path(dir_okay=False))
@click.argument("output_path", type=click.Path(dir_okay=False))
@click.option("--detector", default="robust", show_default=True,
              help="robust (spikes and drops) or cusum (level shifts).")
@click.option("--policy", type=click.Choice(["grid", "steps"]), default="grid", show_default=True,
              help="grid: rows on the dominant step's grid, rows sharing a step combined; steps: every row one step.")
@click.option("--combine", type=click.Choice(["mean", "sum", "max", "last"]), default="mean", show_default=True,
              help="How rows sharing a step (duplicate stamps, clock changes) are combined under --policy grid.")
@click.option("--strict", is_flag=True, help="Refuse out-of-order rows, duplicate stamps and off-grid rows.")
@click.option("--calendar", default="none", show_default=True,
              help="Daily series: CN (holidays and 调休), US or another country code, or none.")
@json_option
def score_csv_cmd(input_path, output_path, detector, policy, combine, strict, calendar, as_json):
    """Score any single series of timestamp,value rows (daily, hourly, 5-minute...): writes
    timestamp,value,anomaly_score,expected,p_value,surprise, each step scored only from the steps
    before and including it; p_value is calibrated on the series' own earlier residuals."""
    from detectors.online import ONLINE_DETECTORS, ScoreCsvError, score_csv

    if detector not in ONLINE_DETECTORS:
        _fail(f"--detector {detector!r}: choose one of {', '.join(ONLINE_DETECTORS)}")
    if not Path(input_path).is_file():
        _fail(f"{input_path}: no such file")
    t0 = time.perf_counter()
    try:
        res = score_csv(input_path, output_path, detector, strict=strict, policy=policy, combine=combine,
                        calendar=calendar)
    except ScoreCsvError as exc:
        _fail(str(exc))
    res["seconds"] = round(time.perf_counter() - t0, 3)
    merged = res.get("merged_rows") or 0
    _emit(res, as_json, [f"scored {res['rows']} rows as {res['steps']} steps ({res['frequency']}, period "
                         f"{res['period']}, {detector}, policy {res['policy']}) in {res['seconds']} s: max score "
                         f"{res['max_score']} (surprise {res['max_surprise']:.2f}) -> {res['path']}"
                         + (" (input was out of order: sorted)" if res.get("sorted") else "")
                         + (f"; {merged} rows combined into their step ({res['combine']})" if merged else "")
                         + (f"; {res['off_grid_rows']} rows snapped to the grid" if res.get("off_grid_rows") else "")
                         + (f"; {res['gaps']} missing steps" if res.get("gaps") else "")])
