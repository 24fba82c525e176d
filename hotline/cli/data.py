"""Set-up and data in: init, generate, ingest (csv, sql, generator), aggregate, quarantine, validate, demo."""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import click

from hotline.cli.base import (
    _date,
    _emit,
    _fail,
    _province,
    _settings,
    _warehouse,
    _working,
    db_option,
    json_option,
    main,
)
from hotline.core.config import DEFAULT_PROVINCE
from hotline.core.reference import DEFAULT_TIMEZONE


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
@click.option("--province", default=DEFAULT_PROVINCE, show_default=True, callback=_province,
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


def _preview(ctx, source, mapping, as_json, rows: int = 5) -> None:
    """--dry-run: what the ingest would load and quarantine, with nothing written."""
    from hotline.core.reference import ConfigError, load_reference
    from ingestion.canonical import SourceFormatError, TicketMapper
    from ingestion.pipeline import preview

    s = _settings(ctx)
    try:
        mapper = TicketMapper(mapping, load_reference(s.config_dir), s.caller_salt)
        with _working(f"reading ({mapper.source}) ..."):
            p = preview(source, mapper, rows)
    except (SourceFormatError, ConfigError) as exc:
        _fail(str(exc))
    lines = [f"dry run, nothing written: read {p.read}, would load {p.would_load}, "
             f"would quarantine {p.would_quarantine}"]
    lines += [f"  would quarantine for {k}: {v}" for k, v in p.quarantine_reasons.items()]
    lines += [f"  note: {n}" for n in p.notes]
    if p.first_loaded:
        lines.append(f"first {len(p.first_loaded)} rows as they would load:")
        lines += ["  " + " | ".join(str(v) for v in r.values()) for r in p.first_loaded]
    if p.first_quarantined:
        lines.append(f"first {len(p.first_quarantined)} rows that would be quarantined:")
        lines += [f"  {r.get('source_file') or ''} row {r.get('source_row')}: {r.get('field')}: {r.get('reason')}"
                  for r in p.first_quarantined]
    _emit({"dry_run": True, **p.as_dict()}, as_json, lines)


def _run_ingest(ctx, source, mapping_name, db_url, as_json, aggregate, logical_date=None, now=None,
                emit=True) -> tuple[dict[str, Any], list[str]]:
    from hotline.core.reference import ConfigError, load_mapping, load_reference
    from ingestion.canonical import SourceFormatError, TicketMapper
    from ingestion.pipeline import ingest as run
    from warehouse.db import connect, migrate

    s = _settings(ctx).with_db(db_url)
    try:
        mapping = load_mapping(mapping_name, s.config_dir) if isinstance(mapping_name, str) else mapping_name
        engine = connect(s.db_url)
        migrate(engine)
        mapper = TicketMapper(mapping, load_reference(s.config_dir), s.caller_salt, now=now)
        with _working(f"ingesting ({mapper.source}) ..."):
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
@click.option("--encoding", default=None,
              help="File encoding; default: the mapping's, else auto (UTF-8, then GB18030).")
@click.option("--no-aggregate", is_flag=True, help="Skip re-aggregating the touched days.")
@click.option("--dry-run", is_flag=True, help="Write nothing: show what would load and what would be quarantined.")
@db_option
@json_option
@click.pass_context
def ingest_csv(ctx, path, mapping_name, encoding, no_aggregate, dry_run, db_url, as_json):
    """Ingest a CSV export (plain or gzip) through a mapping."""
    from hotline.core.reference import ConfigError, load_mapping
    from ingestion.sources import CsvSource

    try:
        mapping = load_mapping(mapping_name, _settings(ctx).config_dir)
    except ConfigError as exc:
        _fail(str(exc))
    enc = encoding or mapping.get("encoding", "auto")
    if enc.lower().replace("-", "") == "utf8" and encoding is None:
        enc = "auto"  # a mapping's default still accepts a GBK export; --encoding forces one
    if dry_run:
        return _preview(ctx, CsvSource(path, encoding=enc), mapping, as_json)
    _run_ingest(ctx, CsvSource(path, encoding=enc), mapping, db_url, as_json, not no_aggregate)


@ingest.command("sql")
@click.option("--url", default=None, help="SQLAlchemy URL of the source database (or --conn-id).")
@click.option("--conn-id", default=None,
              help="An Airflow connection (AIRFLOW_CONN_<ID>) holding the source database; keeps the password "
                   "off the command line.")
@click.option("--table", required=True, help="Source table.")
@click.option("--mapping", "mapping_name", required=True)
@click.option("--since", callback=_date, default=None, help="Read rows changed on or after this day.")
@click.option("--until", callback=_date, default=None, help="... and before this day.")
@click.option("--no-aggregate", is_flag=True)
@click.option("--dry-run", is_flag=True, help="Write nothing: show what would load and what would be quarantined.")
@db_option
@json_option
@click.pass_context
def ingest_sql(ctx, url, conn_id, table, mapping_name, since, until, no_aggregate, dry_run, db_url, as_json):
    """Ingest a ticket table from any SQLAlchemy-reachable database, by its change stamp."""
    import zoneinfo

    from hotline.core.reference import ConfigError, load_mapping
    from ingestion.sources import SqlSource

    try:
        mapping = load_mapping(mapping_name, _settings(ctx).config_dir)
    except ConfigError as exc:
        _fail(str(exc))
    if (url is None) == (conn_id is None):
        raise click.UsageError("give --url or --conn-id (one of them)")
    if conn_id:
        from hotline.app.ingest import SourceNotConfigured, source_url
        from hotline.app.runtime import Runtime

        try:
            url = source_url({"conn_id": conn_id}, Runtime(_settings(ctx)).secrets())
        except SourceNotConfigured as exc:
            _fail(str(exc))
    tz = mapping.get("timezone", DEFAULT_TIMEZONE)
    z = zoneinfo.ZoneInfo(tz)
    f = mapping["fields"]
    stamp = (f.get("updated_at") or f["received_at"]).get("column")
    src = SqlSource(url, table, stamp,
                    since=dt.datetime.combine(since, dt.time(), z) if since else None,
                    until=dt.datetime.combine(until, dt.time(), z) if until else None, tz=tz)
    if dry_run:
        return _preview(ctx, src, mapping, as_json)
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
    from hotline.app.ingest import make_generator, source_for_day
    from hotline.core.reference import load_mapping
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
    with _working(f"aggregating {len(days)} day(s) ..."):
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
    from hotline.core.reference import load_reference

    s, engine = _warehouse(ctx, db_url)
    ref = load_reference(s.config_dir)
    with _working(f"data-quality suites for {day} ..."):
        verdicts = validate_day(engine, ref, s.var_dir, day, s.lookback_days, run_id,
                                ref.regions.province(s.province).timezone)
    out = combine(verdicts)
    lines = [f"{v.suite}: {v.action} ({len(v.failed)} failed expectations, {v.quarantined} quarantined) {v.docs_path}"
             for v in verdicts] + [f"  {r}" for r in out["reasons"]]
    _emit(out, as_json, lines)


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
    from hotline.app.ingest import make_generator
    from ingestion.sources import GeneratorSource

    s = _settings(ctx).with_db(db_url)
    if end is None:  # yesterday in the province's time zone
        import zoneinfo

        from hotline.core.reference import load_reference

        tz = zoneinfo.ZoneInfo(load_reference(s.config_dir).regions.province(s.province).timezone)
        end = (dt.datetime.now(tz) - dt.timedelta(days=1)).date()
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
        with _working("generating and loading daily counts ..."):
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
            with _working("generating and loading daily counts ..."):
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
        from hotline.core.reference import load_reference
        from warehouse.db import connect

        t0 = time.perf_counter()
        first = last - dt.timedelta(days=detect_days - 1)
        with _working(f"replaying detection for {first} .. {last} ..."):
            n = replay_into_warehouse(connect(s.db_url), first, last, s.config_dir, load_reference(s.config_dir),
                                      gen.province.code)
        payload["detection"] = {"first": str(first), "last": str(last), "anomalies": n}
        say(f"detection replayed for {first} .. {last}: {n} anomalies stored in {time.perf_counter() - t0:.0f} s")
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
