"""Forecast accuracy: forecast-backtest."""
from __future__ import annotations

import sys

import click

from hotline.cli.base import _date, _emit, _fail, _settings, db_option, json_option, main


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
        from hotline.core.reference import load_reference
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
            prov = str(history["province_code"].iat[0]) if "province_code" in history.columns else s.province
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
