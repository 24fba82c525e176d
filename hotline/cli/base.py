"""The root command group and what every command shares: argument callbacks, the one-document
--json output, clean exits with code 2, the warehouse connection."""
from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from hotline.core.settings import Settings, load_settings


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
    from hotline.core.reference import load_reference

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
    from hotline.core.reference import load_reference

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


@contextmanager
def _working(label: str) -> Iterator[None]:
    """A spinner with ``label`` on stderr while a slow step runs: on a terminal only, so nothing
    reaches a pipe, a log or --json's stdout."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(label):
        yield


def _runtime(ctx: click.Context, db_url: str | None):
    """The app's Runtime for this command (settings with --db applied)."""
    from hotline.app.runtime import Runtime

    return Runtime(_settings(ctx).with_db(db_url)).migrate()


def _day_or_last(engine, s: Settings, day):
    """The given day, else the warehouse's last day; an empty warehouse is an error."""
    from proposals.panel import last_day

    day = day or last_day(engine, s.province)
    if day is None:
        _fail("the warehouse is empty: run `hotline demo` or the daily DAG first")
    return day


db_option = click.option("--db", "db_url", default=None,
                         help="Warehouse URL (default: HOTLINE_DB_URL or var/hotline.db).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout (the words go to stderr).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hotline-early-warning", prog_name="hotline")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """12345 hotline early-warning pipeline."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from hotline.core.reference import ConfigError

    try:
        ctx.obj = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
