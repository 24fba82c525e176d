"""The ``hotline`` command line. Every command has --help; summarising commands print a JSON
object on stdout with --json (the words then go to stderr)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from hotline.settings import Settings, load_settings


def _date(_ctx, _param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _emit(payload: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    """Words for people on stdout; with --json, stdout is the one JSON document and the words go
    to stderr (so that `hotline ... --json | jq` works)."""
    for line in lines:
        click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj


def _month(_ctx, _param, value: str | None):
    """--month as a monthly Period (strict YYYY-MM, proposals.job.parse_month)."""
    if value is None:
        return None
    from proposals.job import ProposalError, parse_month

    try:
        return parse_month(value)
    except ProposalError as exc:
        raise click.BadParameter(str(exc)) from None


def _city(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """--city: a city of the configured province (or several, for a repeatable option); an unknown
    code is a usage error (exit 2) naming the known ones, not an empty answer."""
    if value is None or value == ():
        return value
    from hotline.reference import load_reference

    s: Settings = ctx.find_root().obj
    prov = load_reference(s.config_dir).regions.province(s.province)
    known = {c.code: c.zh for c in prov.cities}
    for code in (value if isinstance(value, tuple) else (value,)):
        if code not in known:
            raise click.BadParameter(f"{code} is not a city of {prov.zh} ({prov.code}); its cities: "
                                     + ", ".join(f"{k} {v}" for k, v in sorted(known.items())), ctx, param)
    return value


def _province(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--province: a province configured under config/regions/; else a usage error (exit 2)."""
    if value is None:
        return value
    from hotline.reference import load_reference

    regions = load_reference(ctx.find_root().obj.config_dir).regions
    if regions.level_of(value) != "province":
        known = ", ".join(f"{p.code} {p.zh}" for p in regions.provinces)
        raise click.BadParameter(f"{value} is not a configured province (config/regions/); known: {known}", ctx, param)
    return value


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _warehouse(ctx: click.Context, db_url: str | None):
    """The settings (with --db applied) and the migrated warehouse engine."""
    from warehouse.db import connect, migrate

    s = _settings(ctx).with_db(db_url)
    engine = connect(s.db_url)
    migrate(engine)
    return s, engine


def _day_or_last(engine, s: Settings, day):
    """The given day, else the warehouse's last day; an empty warehouse is an error."""
    from proposals.panel import last_day

    day = day or last_day(engine, s.province)
    if day is None:
        _fail("the warehouse is empty: run `hotline demo` or the daily DAG first")
    return day


db_option = click.option("--db", "db_url", default=None, help="Warehouse URL (default: HOTLINE_DB_URL or var/hotline.db).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout (the words go to stderr).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hotline-early-warning", prog_name="hotline")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """12345 hotline early-warning pipeline."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from hotline.reference import ConfigError

    try:
        ctx.obj = load_settings()
    except ConfigError as exc:
        _fail(str(exc))


@main.command()
@db_option
@json_option
@click.pass_context
def init(ctx, db_url, as_json):
    """Create or upgrade the warehouse schema (Alembic migrations)."""

    s, engine = _warehouse(ctx, db_url)
    url = engine.url.render_as_string(hide_password=True)
    _emit({"db": url, "migrated": True}, as_json, [f"warehouse ready: {url}"])


@main.command()
@click.option("--province", default="440000", show_default=True, callback=_province,
              help="Province code (config/regions/).")
@click.option("--start", callback=_date, required=True, help="First day (YYYY-MM-DD).")
@click.option("--end", callback=_date, required=True, help="Last day (YYYY-MM-DD).")
@click.option("--scale", type=float, default=0.01, show_default=True, help="Share of the published volumes.")
@click.option("--seed", type=int, default=12345, show_default=True)
@click.option("--no-anomalies", is_flag=True, help="Do not inject labelled anomalies.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="CSV export to write (.csv or .csv.gz).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="Where to write the anomaly labels CSV.")
@click.option("--encoding", default="utf-8", show_default=True, help="utf-8, or gb18030 for a GBK-style export.")
@json_option
@click.pass_context
def generate(ctx, province, start, end, scale, seed, no_anomalies, out, labels, encoding, as_json):
    """Write a realistic 12345 ticket export (and its anomaly labels) for a province."""
    import gzip

    from generator.province import ProvinceGenerator, write_labels

    s = _settings(ctx)
    gen = ProvinceGenerator(province, seed=seed, scale=scale, anomalies=not no_anomalies, config_dir=s.config_dir)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if out_path.suffix == ".gz" else open
    n = 0
    with opener(out_path, "wt", encoding=encoding, newline="") as fh:
        for i, frame in enumerate(gen.tickets(start, end)):
            frame.to_csv(fh, index=False, header=i == 0)
            n += len(frame)
    payload = {"province": province, "start": start, "end": end, "tickets": n, "out": str(out_path)}
    lines = [f"wrote {n} tickets to {out_path}"]
    if labels:
        lab = gen.labels(start, end)
        write_labels(lab, labels)
        payload.update(labels=str(labels), events=len(lab))
        lines.append(f"wrote {len(lab)} labelled anomalies to {labels}")
    _emit(payload, as_json, lines)


@main.group()
def ingest():
    """Load tickets from a source into the warehouse (idempotent; bad rows quarantined)."""


def _run_ingest(ctx, source, mapping_name, db_url, as_json, aggregate, logical_date=None, now=None,
                emit=True) -> tuple[dict[str, Any], list[str]]:
    from hotline.reference import ConfigError, load_mapping, load_reference
    from ingestion.canonical import SourceFormatError, TicketMapper
    from ingestion.pipeline import ingest as run
    from warehouse.db import connect, migrate

    s = _settings(ctx).with_db(db_url)
    try:
        mapping = load_mapping(mapping_name, s.config_dir) if isinstance(mapping_name, str) else mapping_name
        engine = connect(s.db_url)
        migrate(engine)
        mapper = TicketMapper(mapping, load_reference(s.config_dir), s.caller_salt, now=now)
        summary = run(engine, source, mapper, logical_date=logical_date, aggregate=aggregate)
    except (SourceFormatError, ConfigError) as exc:
        _fail(str(exc))
    d = summary.as_dict()
    lines = [f"read {summary.read}, loaded {summary.loaded} (new {summary.inserted}, updated {summary.updated}, "
             f"unchanged {summary.unchanged}), quarantined {summary.quarantined}; "
             f"{summary.days_aggregated} days aggregated in {summary.seconds:.1f} s"]
    lines += [f"  quarantined for {k}: {v}" for k, v in summary.quarantine_reasons.items()]
    lines += [f"  note: {n}" for n in summary.notes]
    if getattr(source, "detected_encoding", None):
        d["encoding"] = source.detected_encoding
    if emit:
        _emit(d, as_json, lines)
    return d, lines


@ingest.command("csv")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--mapping", "mapping_name", required=True, help="Mapping name in config/mappings/ or a YAML path.")
@click.option("--encoding", default=None, help="File encoding; default: the mapping's, else auto (UTF-8, then GB18030).")
@click.option("--no-aggregate", is_flag=True, help="Skip re-aggregating the touched days.")
@db_option
@json_option
@click.pass_context
def ingest_csv(ctx, path, mapping_name, encoding, no_aggregate, db_url, as_json):
    """Ingest a CSV export (plain or gzip) through a mapping."""
    from hotline.reference import ConfigError, load_mapping
    from ingestion.sources import CsvSource

    try:
        mapping = load_mapping(mapping_name, _settings(ctx).config_dir)
    except ConfigError as exc:
        _fail(str(exc))
    enc = encoding or mapping.get("encoding", "auto")
    if enc.lower().replace("-", "") == "utf8" and encoding is None:
        enc = "auto"  # a mapping's default still accepts a GBK export; --encoding forces one
    _run_ingest(ctx, CsvSource(path, encoding=enc), mapping, db_url, as_json, not no_aggregate)


@ingest.command("sql")
@click.option("--url", required=True, help="SQLAlchemy URL of the source database.")
@click.option("--table", required=True, help="Source table.")
@click.option("--mapping", "mapping_name", required=True)
@click.option("--since", callback=_date, default=None, help="Read rows changed on or after this day.")
@click.option("--until", callback=_date, default=None, help="... and before this day.")
@click.option("--no-aggregate", is_flag=True)
@db_option
@json_option
@click.pass_context
def ingest_sql(ctx, url, table, mapping_name, since, until, no_aggregate, db_url, as_json):
    """Ingest a ticket table from any SQLAlchemy-reachable database, by its change stamp."""
    import zoneinfo

    from hotline.reference import load_mapping
    from ingestion.sources import SqlSource

    mapping = load_mapping(mapping_name, _settings(ctx).config_dir)
    z = zoneinfo.ZoneInfo(mapping.get("timezone", "Asia/Shanghai"))
    f = mapping["fields"]
    stamp = (f.get("updated_at") or f["received_at"]).get("column")
    src = SqlSource(url, table, stamp,
                    since=dt.datetime.combine(since, dt.time(), z) if since else None,
                    until=dt.datetime.combine(until, dt.time(), z) if until else None)
    _run_ingest(ctx, src, mapping, db_url, as_json, not no_aggregate)


@ingest.command("generator")
@click.option("--date", "day", callback=_date, default=None, help="Daily mode: this day plus the look-back window.")
@click.option("--start", callback=_date, default=None, help="Range mode: first day.")
@click.option("--end", callback=_date, default=None, help="Range mode: last day.")
@click.option("--province", default=None, callback=_province, help="Province code (config/regions/).")
@click.option("--seed", type=int, default=None)
@click.option("--scale", type=float, default=None)
@click.option("--no-aggregate", is_flag=True)
@db_option
@json_option
@click.pass_context
def ingest_generator(ctx, day, start, end, province, seed, scale, no_aggregate, db_url, as_json):
    """Ingest generated tickets: a range of days, or one day as the daily DAG sees it."""
    from hotline.reference import load_mapping
    from ingestion.daily import make_generator, source_for_day
    from ingestion.sources import GeneratorSource

    s = _settings(ctx)
    spec = {**s.source, "kind": "generator"}
    spec.update({k: v for k, v in {"province": province, "seed": seed, "scale": scale}.items() if v is not None})
    if day:
        src, mapping = source_for_day(s, day, spec)
    elif start and end:
        src, mapping = GeneratorSource(make_generator(spec, s), start, end), load_mapping("generator", s.config_dir)
    else:
        raise click.UsageError("give --date, or --start and --end")
    _run_ingest(ctx, src, mapping, db_url, as_json, not no_aggregate, logical_date=day)


@main.command()
@click.option("--date", "day", callback=_date, default=None, help="One day.")
@click.option("--start", callback=_date, default=None)
@click.option("--end", callback=_date, default=None)
@db_option
@json_option
@click.pass_context
def aggregate(ctx, day, start, end, db_url, as_json):
    """Recompute daily_counts for a day or a range (all levels of both hierarchies)."""
    from warehouse.aggregate import aggregate_days

    s, engine = _warehouse(ctx, db_url)
    if day:
        days = [day]
    elif start and end:
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    else:
        raise click.UsageError("give --date, or --start and --end")
    n = aggregate_days(engine, days)
    _emit({"days_aggregated": n, "start": days[0], "end": days[-1]}, as_json, [f"{n} days aggregated"])


@main.command()
@click.option("--run", "run_id", default=None, help="One ingest run (default: all runs).")
@click.option("--samples", type=int, default=3, show_default=True, help="Example rows per reason.")
@db_option
@json_option
@click.pass_context
def quarantine(ctx, run_id, samples, db_url, as_json):
    """List quarantined rows by reason, with example rows (PII masked)."""
    from warehouse.quarantine import quarantine_report

    s, engine = _warehouse(ctx, db_url)
    rep = quarantine_report(engine, run_id=run_id, samples=samples)
    lines = [f"{rep['total']} quarantined rows"]
    for r in rep["reasons"]:
        lines.append(f"  {r['reason_code']:<24} {r['rows']:>8}  field {r['field']}")
        for ex in r["examples"]:
            lines.append(f"      {ex['source_file']}:{ex['source_row']}  {ex['reason']}")
    _emit(rep, as_json, lines)


@main.command()
@click.option("--date", "day", callback=_date, required=True, help="The logical day (YYYY-MM-DD).")
@click.option("--run", "run_id", default=None, help="An ingest run (default: the latest for the day).")
@db_option
@json_option
@click.pass_context
def validate(ctx, day, run_id, db_url, as_json):
    """Run the data-quality suites for a day: the tickets batch, then feed health.

    A batch still staged by the daily DAG is gated for real (failing rows quarantined); a day
    already published is checked in report mode. Prints success, failed expectations, quarantined
    rows and the action (continue, warn or halt), and writes the HTML pages under var/dq/."""
    from data_quality.gate import validate_day
    from data_quality.verdict import combine
    from hotline.reference import load_reference

    s, engine = _warehouse(ctx, db_url)
    verdicts = validate_day(engine, load_reference(s.config_dir), s.var_dir, day, s.lookback_days, run_id)
    out = combine(verdicts)
    lines = [f"{v.suite}: {v.action} ({len(v.failed)} failed expectations, {v.quarantined} quarantined) {v.docs_path}"
             for v in verdicts] + [f"  {r}" for r in out["reasons"]]
    _emit(out, as_json, lines)


@main.command("forecast-backtest")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV with ds,y (one series) or series_id,ds,y (many).")
@click.option("--level", default=None, help="From the warehouse instead: REGION:CATEGORY, e.g. city:l1, district:all.")
@click.option("--city", default=None, help="With --level: only this city's series.")
@click.option("--end", callback=_date, default=None, help="Use history up to this day only.")
@click.option("--horizon", type=int, default=14, show_default=True)
@click.option("--folds", type=int, default=4, show_default=True)
@click.option("--step", type=int, default=None, help="Days between evaluation origins (default: the horizon; "
                                                     "an odd step mixes the weekdays each horizon lands on).")
@click.option("--calendar", type=click.Choice(["CN", "US", "none"]), default=None,
              help="Holiday calendar (default: the province's, CN for a CSV).")
@click.option("--models", default="fast,seasonal_naive,ets,prophet,auto", show_default=True,
              help="Comma-separated: fast, seasonal_naive, ets, prophet, auto.")
@db_option
@json_option
@click.pass_context
def forecast_backtest(ctx, csv_path, level, city, end, horizon, folds, step, calendar, models, db_url, as_json):
    """Rolling-origin backtest of each model as production runs it (calibrated intervals included):
    MASE, sMAPE, 80%/95% interval coverage over the horizon, at h = 1 and at the last horizon,
    seconds."""
    import pandas as pd

    from forecasting.evaluate import evaluate

    if csv_path:
        from forecasting.series_csv import SeriesCsvError, read_series_csv

        try:
            history = read_series_csv(csv_path)
        except SeriesCsvError as exc:
            _fail(str(exc))
        calendar = calendar or "CN"
    elif level:
        from hotline.reference import load_reference
        from warehouse.aggregate import read_series
        from warehouse.db import connect, migrate

        s = _settings(ctx).with_db(db_url)
        engine = connect(s.db_url)
        migrate(engine)
        rlevel, _, clevel = level.partition(":")
        history = read_series(engine, rlevel, clevel or "all", city_code=city)
        if history.empty:
            _fail(f"no series at level {level} in {engine.url.render_as_string(hide_password=True)}")
        if calendar is None:
            prov = str(history["province_code"].iat[0]) if "province_code" in history.columns else "440000"
            try:
                calendar = load_reference(s.config_dir).regions.province(prov).calendar
            except Exception:  # noqa: BLE001 - a province outside config: the Chinese calendar
                calendar = "CN"
    else:
        raise click.UsageError("give --csv PATH or --level REGION:CATEGORY")
    if end:
        history = history[pd.to_datetime(history["ds"]) <= pd.Timestamp(end)]
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    with click.progressbar(length=len(names) * folds, label="backtest", file=sys.stderr,
                           item_show_func=lambda m: m or "") as bar:
        report = evaluate(history, horizon, folds, names, progress=lambda msg: bar.update(1, msg),
                          calendar=calendar, step=step)
    lines = [report.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    _emit({"horizon": horizon, "folds": folds, "step": step or horizon, "calendar": calendar,
           "series": int(history["series_id"].nunique()),
           "models": report.to_dict("records")}, as_json, lines)


@main.command()
@click.option("--end", callback=_date, default=None, help="Last day of history (default: yesterday, Asia/Shanghai).")
@click.option("--days", type=int, default=760, show_default=True, help="Days of history before --end.")
@click.option("--scale", type=float, default=None, help="Share of published volumes (default: config/hotline.yaml).")
@click.option("--seed", type=int, default=None, help="Generator seed (default: config/hotline.yaml).")
@click.option("--detect-days", type=int, default=7, show_default=True,
              help="Run the daily detection over the last N days of history, as if the DAG had run them.")
@click.option("--counts-only", is_flag=True,
              help="Write the daily counts straight from the generator, without tickets (province-scale "
                   "volumes for detector backtests; only ticket counts are filled).")
@click.option("--ticket-days", type=int, default=None,
              help="Build tickets for the last N days only; the days before get their daily ticket counts "
                   "straight from the generator (as --counts-only). Default: tickets for every day.")
@db_option
@json_option
@click.pass_context
def demo(ctx, end, days, scale, seed, detect_days, counts_only, ticket_days, db_url, as_json):
    """Build the demo warehouse: the generated province's history up to the day before --end,
    plus its anomaly labels in var/labels.csv. The daily DAG then runs for --end."""
    from generator.province import write_labels
    from ingestion.daily import make_generator
    from ingestion.sources import GeneratorSource

    s = _settings(ctx).with_db(db_url)
    if end is None:
        end = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) - dt.timedelta(days=1)).date()
    spec = dict(s.source)
    spec.update({k: v for k, v in (("scale", scale), ("seed", seed)) if v is not None})
    gen = make_generator(spec, s)
    start = end - dt.timedelta(days=days)
    last = end - dt.timedelta(days=1)
    labels = write_labels(gen.labels(start, end), s.var_dir / "labels.csv")
    say = lambda line: click.echo(line, err=as_json)  # noqa: E731 - words to stderr under --json
    say(f"demo: generating {gen.province.zh} ({gen.province.code}) {start} .. {last}, scale {gen.scale}"
        f", seed {gen.seed}")
    payload: dict[str, Any] = {"province": gen.province.code, "start": str(start), "end": str(last),
                               "scale": gen.scale, "seed": gen.seed, "labels": str(labels)}
    if counts_only:
        from warehouse.aggregate import load_counts
        from warehouse.db import connect, migrate

        engine = connect(s.db_url)
        migrate(engine)
        t0 = time.perf_counter()
        rows = load_counts(engine, *gen.counts(start, last))
        payload["daily_count_rows"] = rows
        say(f"daily_counts: {rows} rows for {start} .. {last} in {time.perf_counter() - t0:.1f} s (counts only)")
    else:
        first_ticket_day = start
        if ticket_days is not None and 0 < ticket_days < days:
            from warehouse.aggregate import load_counts
            from warehouse.db import connect, migrate

            first_ticket_day = end - dt.timedelta(days=ticket_days)
            engine = connect(s.db_url)
            migrate(engine)
            t0 = time.perf_counter()
            rows = load_counts(engine, *gen.counts(start, first_ticket_day - dt.timedelta(days=1)))
            payload["daily_count_rows"] = rows
            say(f"daily_counts: {rows} rows for {start} .. {first_ticket_day - dt.timedelta(days=1)} in "
                f"{time.perf_counter() - t0:.1f} s (ticket counts only); tickets from {first_ticket_day}")
        payload["ingest"], lines = _run_ingest(ctx, GeneratorSource(gen, first_ticket_day, last), "generator", db_url,
                                               as_json, True, emit=False)
        for line in lines:
            say(line)
    say(f"labels: {labels}")
    if detect_days > 0:
        from detectors.backtest import replay_into_warehouse
        from hotline.reference import load_reference
        from warehouse.db import connect

        t0 = time.perf_counter()
        first = last - dt.timedelta(days=detect_days - 1)
        n = replay_into_warehouse(connect(s.db_url), first, last, s.config_dir, load_reference(s.config_dir),
                                  gen.province.code)
        payload["detection"] = {"first": str(first), "last": str(last), "anomalies": n}
        say(f"detection replayed for {first} .. {last}: {n} anomalies stored in {time.perf_counter() - t0:.0f} s")
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))


def _anomaly_line(a: dict, ref, with_day: bool = False) -> str:
    from hotline.rarity import frequency, p_of

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
    lines.append(f"anomalies on {day}: {len(an)} (红 red {sev['red']}, 橙 orange {sev['orange']}, 黄 yellow {sev['yellow']})")
    from hotline.reference import load_reference

    ref = load_reference(_settings(ctx).config_dir)
    lines += [_anomaly_line(a, ref) for a in an[:10]]
    recent = rep["recent_anomalies"]
    if recent:
        rsev = {s: sum(1 for a in recent if a["severity"] == s) for s in ("red", "orange", "yellow")}
        lines.append(f"anomalies in the 7 days before: {len(recent)} (红 red {rsev['red']}, 橙 orange {rsev['orange']}, "
                     f"黄 yellow {rsev['yellow']}); the most severe:")
        from hotline.severity import worst_first

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

    from detectors.backtest import LabelsError, best, parse_sweep, public, read_labels, report, run_backtest
    from hotline.reference import ConfigError, load_reference
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
    province = province or str((s.source or {}).get("province", "440000"))
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
    path = report(report_path or s.var_dir / "backtest" / f"backtest_{start}_{end}.html", res, shown,
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

    from detectors.calibrate import level_mask, replay, scope_panels, summarise, tiers_of
    from detectors.job import PANEL_DAYS
    from detectors.panel import Panel
    from detectors.profiles import DetectionConfig
    from hotline.reference import ConfigError, load_reference
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
        province = province or str((s.source or {}).get("province", "440000"))
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
             "PIT histogram (1 = flat): " + " ".join(f"{x * summary['pit']['bins']:.2f}" for x in summary["pit"]["shares"]),
             "coverage: " + ", ".join(f"{c}% -> {'-' if v is None else f'{v:.1%}'}" for c, v in summary["coverage"].items()),
             f"{'threshold':<28} {'claimed':>10} {'observed':>9} {'ratio':>7}"]
    for lv in ex["levels"]:
        lines.append(f"{'p <= ' + format(lv['claimed'], 'g'):<28} {lv['expected']:>10.1f} {lv['hits']:>9} "
                     f"{'-' if lv['ratio'] is None else format(lv['ratio'], '.2f'):>7}")
    for sv in ex["severity"]:
        lines.append(f"{sv['severity'] + ' (p <= ' + sv['threshold'] + ')':<28} {sv['expected']:>10.1f} {sv['hits']:>9} "
                     f"{'-' if sv['ratio'] is None else format(sv['ratio'], '.2f'):>7}")
    for d, g in summary["by_detector"].items():
        lines.append(f"  {d}: " + ", ".join(f"{lv['claimed']:g} {'-' if lv['ratio'] is None else format(lv['ratio'], '.2f')}x"
                                            for lv in g["levels"]))
    lines.append(f"report: {path}")
    summary["report"] = str(path)
    _emit(summary, as_json, lines)


@main.command("score-csv")
@click.argument("input_path", type=click.Path(dir_okay=False))
@click.argument("output_path", type=click.Path(dir_okay=False))
@click.option("--detector", default="robust", show_default=True, help="robust (spikes and drops) or cusum (level shifts).")
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



# ---------------------------------------------------------------------------- alerts
def _alerts_ctx(ctx, db_url):
    from alerts.config import AlertsConfig
    from hotline.reference import load_reference

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
    res = notify_day(engine, day, ref, cfg, s.var_dir, Secrets(os.environ))
    lines = summary_lines(res, show)
    _emit({k: v for k, v in res.items() if k != "queued"} | {"notices": [
        {k: n[k] for k in ("id", "receiver", "receiver_name", "channel", "subject", "firing", "resolved")}
        for n in res["queued"]]}, as_json, lines)


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
    from alerts.model import read_alerts
    from alerts.notify import as_mapping, history, resolve_fingerprint

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    try:
        fp = resolve_fingerprint(engine, alert_id)
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    a = as_mapping(read_alerts(engine, fingerprint=fp).iloc[0].to_dict())
    hist = [as_mapping(h) for h in history(engine, fp)]
    lines = [f"alert {fp} [{a['severity']}] {a['status']} ({a['state']}) since {a['starts_on']}, last {a['last_seen']}"
             + (f", resolved {a['ends_on']}" if a["ends_on"] else ""),
             f"  {a['labels']['region_name']} · {a['labels']['category_name']} · {a['kind']}: observed {a['observed']:g},"
             f" expected {a['expected'] if a['expected'] is None else round(a['expected'], 1)}, score {a['score']:.7f}",
             f"  {a['explanation']}"]
    if a["ack_by"]:
        lines.append(f"  acknowledged by {a['ack_by']} at {a['ack_at']}: {a['ack_verdict'] or '-'} {a['ack_comment'] or ''}")
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
    from alerts.notify import acknowledge

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
    from alerts.notify import add_silence

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
    from alerts.notify import expire_silence

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
    from alerts.notify import as_mapping, history, silences_list

    _, engine, _, _ = _alerts_ctx(ctx, db_url)
    rows = []
    lines = []
    for s in silences_list(engine, include_ended):
        held = sorted({h["fingerprint"][:8] for h in history(engine, silence_id=s["id"]) if h["action"] == "silenced"})
        rows.append(as_mapping({**s, "held_back": held}))
        lines.append(f"  #{s['id']} {s['state']:<7} {' '.join(s['matchers'])} by {s['created_by']} until "
                     f"{s['ends_at']:%Y-%m-%d %H:%M} UTC: {s['reason']}" + (f"; held back {', '.join(held)}" if held else "")
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
    from alerts.notify import as_mapping, deliver_due, outbox, requeue

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
                     f" (attempts {r['attempts']}" + (f", last error: {r['last_error']}" if r["last_error"] else "") + ")")
    _emit({"notices": rows, "counts": counts}, as_json, lines)


@main.command()
@click.option("--month", required=True, help="The evidence month (YYYY-MM): the proposal is for the month after.")
@click.option("--city", "cities", multiple=True, callback=_city,
              help="Only this city (repeatable); default: the province and every city.")
@click.option("--province", "province_only", is_flag=True, help="Only the province's proposal.")
@click.option("--choose", "override", default=None,
              help="Analyst override: the candidate id to choose instead (needs one --city, --by and --reason).")
@click.option("--by", "override_by", default=None, help="Who overrides (kept with the proposal).")
@click.option("--reason", "override_reason", default=None, help="Why (kept with the proposal).")
@click.option("--top", type=int, default=None, help="Candidates to print per scope (default: 10 for one city, 3 otherwise).")
@click.option("--deliver", is_flag=True, help="Queue and deliver each scope's proposal to its office (config/alerts.yaml).")
@click.option("--explain", is_flag=True, help="Print each principle's contribution to every candidate's score, "
                                              "and the chosen issue's evidence, principle by principle.")
@db_option
@json_option
@click.pass_context
def propose(ctx, month, cities, province_only, override, override_by, override_reason, top, deliver, explain, db_url,
            as_json):
    """每月一题: rank the month's candidate issues by the four principles (high frequency,
    continuity, hard problems, balance) and the outlook, choose one per city and for the province,
    store them and write the proposal (HTML and Markdown, zh and en) with its 苗头 watch list."""
    import math

    from hotline.reference import load_reference
    from proposals.config import COMPONENTS, PRINCIPLES, ProposalsConfig, ProposalsConfigError
    from proposals.job import ProposalError, parse_month
    from proposals.job import propose as run
    from proposals.report import PRINCIPLE_NAMES, evidence_lines, label

    def num(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), 3)

    s, engine = _warehouse(ctx, db_url)
    ref = load_reference(s.config_dir)
    try:
        cfg = ProposalsConfig.load(s.config_dir)
        results = run(engine, parse_month(month), ref, cfg, s.province, s.var_dir, cities=list(cities) or None,
                      override=override, override_by=override_by, override_reason=override_reason,
                      province_only=province_only)
    except (ProposalError, ProposalsConfigError) as exc:
        _fail(str(exc))
    top = top if top is not None else (10 if len(results) == 1 else 3)
    lines, payload = [], []
    for r in results:
        chosen = r.choice["chosen"]
        name = ref.regions.name(r.scope.code)
        how = "analyst override" if r.override else "model; an earlier override is gone" if r.lost_override else "model"
        lines.append(f"{name} ({r.scope.code}) {r.month}: " + (f"{label(chosen, ref, 'zh')} [{chosen}] ({how})"
                                                                  if chosen else "no candidate"))
        recs = []
        P = PRINCIPLE_NAMES["zh"]
        for i, row in enumerate(r.ranked.head(max(top, 0)).to_dict("records"), 1):
            comps = {c: num(row[f"c_{c}"]) for c in COMPONENTS}
            contrib = {p: num(row[f"contrib_{p}"]) for p in PRINCIPLES}
            recs.append({"rank": i, "candidate": row["candidate"], "name": label(row["candidate"], ref, "zh"),
                         "score": round(float(row["score"]), 4), "tickets": int(row["tickets"]), "components": comps,
                         "principles": contrib, "balance_penalty": num(row["balance_penalty"]),
                         "blocked_by": r.choice["blocked"].get(row["candidate"])})
            flag = f" (held back: chosen {recs[-1]['blocked_by']})" if recs[-1]["blocked_by"] else ""
            head = f"  {i:>2}. {row['score']:.3f} {recs[-1]['name']} [{row['candidate']}] {int(row['tickets'])} tickets"
            if explain:
                parts = [f"{P[p]}({p}) {'—' if v is None else f'{v:+.3f}'}" for p, v in contrib.items()]
                pen = recs[-1]["balance_penalty"] or 0.0
                lines.append(f"{head}{flag}")
                lines.append(f"      = {' '.join(parts)} {P['balance']}(balance) {-pen:+.3f}")
            else:
                shown = " ".join(f"{c}={'—' if v is None else f'{v:.2f}'}" for c, v in comps.items())
                lines.append(f"{head}: {shown}{flag}")
        if explain and chosen and not r.ranked.empty:
            row = r.ranked.set_index("candidate", drop=False).loc[chosen].to_dict()
            lines.append(f"  {label(chosen, ref, 'zh')}：")
            lines += [f"    {x}" for x in evidence_lines(row, name, ref, "zh", r.month)]
        sprouts = [{"candidate": x["candidate"], "name": label(x["candidate"], ref, "zh"), "kind": x["sprout_kind"],
                    "tickets": int(x["tickets"]), "growth_ratio": num(x["growth_ratio"]),
                    "outlook_ratio": num(x["outlook_ratio"])} for x in r.sprouts.to_dict("records")] \
            if not r.sprouts.empty else []
        if sprouts:
            lines.append("  苗头 sprouts: " + "; ".join(f"{x['name']} ({x['kind']}, {x['tickets']})" for x in sprouts))
        rep = (r.report_paths or {}).get("default", {})
        if rep:
            lines.append(f"  proposal: {rep.get('html')} | {rep.get('md')}")
        payload.append({"scope": r.scope.code, "name": name, "month": str(r.month), "chosen": chosen,
                        "model_choice": r.choice["model_choice"], "override": r.override is not None,
                        "watch": r.choice["watch"], "candidates": recs, "sprouts": sprouts, "reports": r.report_paths})
    if deliver:
        from alerts.config import AlertsConfig
        from proposals.deliver import deliver_proposals

        from proposals.job import stored_month

        res = deliver_proposals(engine, stored_month(engine, parse_month(month), [r.scope.code for r in results]),
                                AlertsConfig.load(s.config_dir), ref, s.var_dir)
        lines.append(f"delivery: {res}")
    _emit({"month": month, "scopes": payload}, as_json, lines)


@main.command()
@click.option("--date", "day", callback=_date, default=None, help="The day to show (default: the warehouse's last day).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder to write (default: var/site).")
@db_option
@json_option
@click.pass_context
def board(ctx, day, out, db_url, as_json):
    """Build the warning board: a static site (index.html and a page per city) that opens from disk."""
    from hotline.reference import load_reference
    from proposals.board import build_board

    s, engine = _warehouse(ctx, db_url)
    day = _day_or_last(engine, s, day)
    out_dir = Path(out) if out else s.var_dir / "site"
    index = build_board(engine, day, load_reference(s.config_dir), s.province, out_dir, s.var_dir)
    _emit({"day": str(day), "index": str(index.resolve())}, as_json, [f"board for {day}: {index.resolve()}"])


@main.command()
@click.option("--date", "day", callback=_date, default=None, help="The day (default: the warehouse's last day).")
@click.option("--city", default=None, callback=_city, help="Only this city.")
@click.option("--top", type=int, default=10, show_default=True, help="Districts, departments and escalations to print.")
@click.option("--send", is_flag=True, help="Send each district its list of yellow and red tickets (the alerts outbox).")
@db_option
@json_option
@click.pass_context
def lights(ctx, day, city, top, send, db_url, as_json):
    """Red/yellow overdue lights (红黄灯): record the day's light changes and escalations, and print
    the open tickets' lights at the day's end by level, district and department."""
    from hotline.reference import load_reference
    from sla.job import lights_day
    from sla.lights import SlaConfig

    s, engine = _warehouse(ctx, db_url)
    day = _day_or_last(engine, s, day)
    ref = load_reference(s.config_dir)
    outbox = None
    if send:
        from alerts.config import AlertsConfig
        outbox = (AlertsConfig.load(s.config_dir), s.var_dir)
    res = lights_day(engine, day, ref, SlaConfig.load(s.config_dir), s.province, city, outbox,
                     lookback_days=s.lookback_days)
    esc = res["escalations"]
    lines = [f"lights at the end of {day}: 红 red {res['red']}, 黄 yellow {res['yellow']} of {res['open']} open tickets; "
             f"{len(esc)} escalation(s) today; {res['events_recorded']} light change(s) recorded",
             "  by level: " + (", ".join(f"{k} {v}" for k, v in sorted(res["by_level"].items())) or "-")]
    lines += [f"  {d['name']} ({d['region']}): 红 {d['red']} 黄 {d['yellow']}" for d in res["by_district"][:top]]
    lines += [f"  {d['department']}: 红 {d['red']} 黄 {d['yellow']}" for d in res["by_department"][:top]]
    lines += [f"  escalated {e['ticket_id']} -> {e['to']} at {e['at']} ({ref.regions.name(e['region'])})"
              for e in esc[:top]]
    if send:
        li = res.get("lists") or {}
        lines.append(f"  lists (红黄灯日报) for {li.get('offices', 0)} office(s): queued {li.get('queued', 0)}, "
                     f"delivered {li.get('delivered', 0)}")
    _emit(res, as_json, lines)


@main.command()
@click.option("--month", required=True, callback=_month, help="The month (YYYY-MM).")
@click.option("--city", default=None, callback=_city, help="Only this city's places.")
@click.option("--top", type=int, default=10, show_default=True, help="Places and categories to print.")
@db_option
@json_option
@click.pass_context
def repeats(ctx, month, city, top, db_url, as_json):
    """Repeat complaints (同人同事): the same caller about the same category in the same place
    within config/sla.yaml repeat_window_days; rates per district and category stored and printed."""
    from hotline.reference import load_reference
    from sla.lights import SlaConfig
    from sla.repeats import month_rates, read_rates

    s, engine = _warehouse(ctx, db_url)
    m = month
    ref = load_reference(s.config_dir)
    cfg = SlaConfig.load(s.config_dir)
    res = month_rates(engine, m, s.province, cfg)
    df = read_rates(engine, m, city)
    lines = [f"repeat complaints in {m}: {res['repeats']} of {res['tickets']} tickets "
             f"(window {cfg.repeat_window_days} days, same caller, category and place)"]
    rows = []
    if not df.empty:
        places = df[df["category_code"] == "*"].sort_values(["rate", "n_repeat"], ascending=False)
        cats = df[(df["category_code"] != "*") & (df["n_repeat"] >= 2)].sort_values(["rate", "n_repeat"], ascending=False)
        lines.append("  places:")
        lines += [f"    {ref.regions.name(r.region_code)} ({r.region_code}): {r.n_repeat}/{r.n_with_caller} = {r.rate:.1%}"
                  for r in places.head(top).itertuples()]
        lines.append("  place x category (2 repeats or more):")
        lines += [f"    {ref.regions.name(r.region_code)} · {ref.taxonomy.name(r.category_code)}: "
                  f"{r.n_repeat}/{r.n_with_caller} = {r.rate:.1%}" for r in cats.head(top).itertuples()]
        rows = df.drop(columns=["run_id"]).to_dict("records")
    _emit({**res, "rates": rows}, as_json, lines)



@main.command()
@click.option("--month", default=None, callback=_month,
              help="The month (YYYY-MM; default: the last full month in the warehouse).")
@click.option("--level", type=click.Choice(["city", "district", "both"]), default="both", show_default=True,
              help="Rank the cities within their size tier, the districts within their city, or both.")
@click.option("--city", default=None, callback=_city, help="Print only this city's districts (and its tier).")
@click.option("--deliver", is_flag=True, help="Send the province's brief through the alerts outbox.")
@db_option
@json_option
@click.pass_context
def ranking(ctx, month, level, city, deliver, db_url, as_json):
    """The horse race (赛马): rank the cities within their size tier and the districts within their
    city on six category-mix adjusted handling metrics, with last month's ranks, the bottom flagged;
    the province's hotspots and brief; the zh/en report under var/reports/ranking/<month>/."""
    import pandas as pd

    from hotline.reference import load_reference
    from sla.monthly import deliver_brief, horse_race
    from sla.report import movement

    s, engine = _warehouse(ctx, db_url)
    if month is not None:
        m = month
    else:
        last = pd.Timestamp(_day_or_last(engine, s, None))
        m = last.to_period("M") - (0 if last.is_month_end else 1)  # the last full month
    ref = load_reference(s.config_dir)
    levels = ("city", "district") if level == "both" else (level,)
    res = horse_race(engine, m, ref, s.config_dir, s.var_dir, s.province, levels)
    if deliver:
        from alerts.config import AlertsConfig
        res["delivery"] = deliver_brief(engine, res, ref, AlertsConfig.load(s.config_dir), s.var_dir)
    if city:
        tier = ref.regions.province(s.province).city(city).tier
        for lv, doc in res["levels"].items():
            doc["groups"] = [g for g in doc["groups"] if g["group"] == (tier if lv == "city" else city)]
    lines = [f"horse race {m} ({res['tickets_closed']:,} tickets closed; category-mix adjusted, "
             "composite 50 = the province's level for the mix):"]
    for lv, doc in res["levels"].items():
        if lv == "district" and level == "both" and not city:  # the console gets one line per city
            lines.append("  districts (ranked within their city; 末位 = bottom, follow-up):")
            for g in doc["groups"]:
                first = next((u for u in g["units"] if u["rank"] == 1), None)
                bottom = [u for u in g["units"] if u["flagged"]]
                lines.append(f"    {g['name']}: {g['ranked']} ranked; first {first['name'] if first else '-'}; "
                             f"末位 {', '.join(u['name'] for u in bottom) or '-'}")
            continue
        for g in doc["groups"]:
            lines.append(f"  {g['name']}:")
            for u in g["units"]:
                mv = "" if u["movement"] is None else f" ({movement(u['movement'])} vs last month)"
                flag = "  <- 末位 follow-up" if u["flagged"] else ""
                lines.append(f"    {u['rank'] if u['rank'] is not None else '-':>2} {u['name']} "
                             f"{u['composite'] if u['composite'] is not None else 'not ranked'}{mv}{flag}")
    lines += ["  brief:"] + [f"    {x}" for x in res["brief"]]
    lines.append(f"  report: {Path(res['reports']['zh']).resolve()}")
    if deliver:
        lines.append(f"  brief queued {res['delivery'].get('queued', 0)}, delivered {res['delivery'].get('delivered', 0)}")
    _emit(res, as_json, lines)


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
                       + ("" if v["status"] == "success" else f" {v['status'].upper()}") for k, v in r["stages"].items())
        t = r["tickets"]
        lines.append(f"  {r['day']} {r['status']}: wall {r['wall_seconds']}s; read {t['read']}, loaded {t['loaded']}, "
                     f"quarantined {t['quarantined']}; {r['series_forecast']} series forecast, {r['anomalies']} anomalies, "
                     f"{r['notices']} notices, {r['lists']} overdue lists; 红 {r['red']} 黄 {r['yellow']}")
        lines.append(f"    {st}")
        lines += [f"    {f['status']}: {f['stage']} {f['scope'] or ''} {f['message']}" for f in r["failures"]]
    _emit({"runs": res}, as_json, lines)

if __name__ == "__main__":
    main()
