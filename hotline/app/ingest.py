"""The daily ingest as the DAG and the CLI run it: the configured source, the logical day plus a
look-back window for late and updated tickets."""
from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

from hotline.core.reference import DEFAULT_TIMEZONE, ConfigError, load_mapping, load_reference
from hotline.core.settings import Settings
from ingestion.canonical import TicketMapper
from ingestion.pipeline import IngestSummary, ingest
from ingestion.sources import CsvSource, GeneratorSource, SqlSource
from warehouse.db import connect, migrate
from warehouse.locks import day_lock


def day_window(day: dt.date, lookback_days: int, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """[start of (day - lookback), end of day) in the province's time zone."""
    z = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.combine(day - dt.timedelta(days=lookback_days), dt.time(), z)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), z)
    return start, end


def make_generator(spec: dict[str, Any], settings: Settings):
    from generator.province import ProvinceGenerator, planted_events

    planted: tuple = ()
    if spec.get("planted_events") and spec.get("anchor"):  # the demo's events, on the day it runs for
        planted = planted_events(list(spec["planted_events"]), dt.date.fromisoformat(str(spec["anchor"])),
                                 load_reference(settings.config_dir))
    return ProvinceGenerator(province_code=str(spec.get("province", settings.province)),
                             seed=int(spec.get("seed", 12345)),
                             scale=float(spec.get("scale", 0.01)), anomalies=bool(spec.get("anomalies", True)),
                             config_dir=settings.config_dir, planted=planted)


class SourceNotConfigured(ConfigError):
    """The production stack has no real ticket source and has not asked for the demo's synthetic
    tickets: the daily run stops at ingest and the operators are told (no retry helps)."""


def check_source(settings: Settings, spec: dict[str, Any]) -> None:
    """The generator feeds a stack only where the demo is wanted: never in a production stack
    (HOTLINE_LOAD_DEMO=false), where synthetic tickets would reach real offices as warnings."""
    if spec.get("kind", "generator") == "generator" and settings.load_demo is False:
        raise SourceNotConfigured(
            "未配置工单数据源：今日工单未导入，预警暂停。 No ticket source is configured: the source in "
            "config/hotline.yaml is the demo generator, and HOTLINE_LOAD_DEMO is false, so no synthetic "
            "tickets are loaded. Set `source:` to kind sql or csv (docs/DATA.md), or HOTLINE_LOAD_DEMO=true "
            "for the demo.")


# Airflow connection types -> SQLAlchemy drivers. OceanBase and TiDB speak MySQL's protocol.
DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql", "oceanbase": "mysql+pymysql", "tidb": "mysql+pymysql", "sqlite": "sqlite",
           # the domestic databases (ingestion/dialects.py; pip install '.[dameng]', '.[kingbase]', '.[opengauss]')
           "dm": "dm+dmPython", "dameng": "dm+dmPython", "kingbase": "kingbase+ksycopg2",
           "opengauss": "opengauss+psycopg2", "gaussdb": "opengauss+psycopg2"}


def connection_url(conn: Any, conn_id: str) -> str:
    """A SQLAlchemy URL from an Airflow connection (``extra.driver`` names another driver)."""
    from sqlalchemy.engine import URL

    extra = dict(conn.extra or {})
    driver = extra.pop("driver", None) or DRIVERS.get(conn.conn_type)
    if driver is None:
        raise SourceNotConfigured(f"connection {conn_id}: type {conn.conn_type!r} is not a database this pipeline "
                                  f"reads ({', '.join(sorted(DRIVERS))}, or extra.driver)")
    if driver.startswith("sqlite"):
        return f"{driver}:///{conn.schema or conn.host}"
    return URL.create(driver, username=conn.login, password=conn.password, host=conn.host or None, port=conn.port,
                      database=conn.schema or None, query={k: str(v) for k, v in extra.items()}
                      ).render_as_string(hide_password=False)


def source_url(spec: dict[str, Any], secrets: Any) -> str:
    """The ticket database of a sql source: ``url`` (no password), else the Airflow connection
    ``conn_id`` (default hotline_source)."""
    if spec.get("url"):
        return str(spec["url"])
    from alerts.channels import DeliveryError, Secrets

    conn_id = str(spec.get("conn_id") or "hotline_source")
    try:
        conn = (secrets or Secrets({})).connection(conn_id)
    except DeliveryError as exc:
        raise SourceNotConfigured(f"未找到工单数据库连接：{conn_id}。 The ticket database's connection {conn_id} is "
                                  f"not set: {exc}") from None
    return connection_url(conn, conn_id)


def source_for_day(settings: Settings, day: dt.date, spec: dict[str, Any] | None = None, secrets: Any = None):
    """The configured source (settings.source) limited to ``day`` and its look-back window."""
    spec = dict(spec or settings.source or {"kind": "generator"})
    mapping = load_mapping(spec.get("mapping", "generator"), settings.config_dir)
    tz = mapping.get("timezone", DEFAULT_TIMEZONE)
    start, end = day_window(day, settings.lookback_days, tz)
    kind = spec.get("kind", "generator")
    if kind == "generator":
        gen = make_generator(spec, settings)
        src = GeneratorSource(gen, day - dt.timedelta(days=settings.lookback_days), day, as_of=end, updated_since=start)
    elif kind == "sql":
        stamp = (mapping["fields"].get("updated_at") or mapping["fields"]["received_at"]).get("column")
        src = SqlSource(source_url(spec, secrets), spec["table"], stamp, since=start, until=end,
                        schema=spec.get("schema"), tz=tz)
    elif kind == "csv":
        src = CsvSource(Path(str(spec["path"]).format(date=day)), encoding=spec.get("encoding", "auto"))
    else:
        raise ValueError(f"config/hotline.yaml: unknown source kind {kind!r} (generator, sql, csv)")
    return src, mapping


def ingest_day(settings: Settings, day: dt.date, *, aggregate: bool = True, run_id: str | None = None,
               now: dt.datetime | None = None, publish: bool = True, secrets: Any = None) -> IngestSummary:
    """Ingest the logical ``day`` (plus look-back) from the configured source into the warehouse."""
    check_source(settings, dict(settings.source or {"kind": "generator"}))
    engine = connect(settings.db_url)
    migrate(engine)
    src, mapping = source_for_day(settings, day, secrets=secrets)
    mapper = TicketMapper(mapping, load_reference(settings.config_dir), settings.caller_salt, now=now)
    # a second run of the same day waits for this one (or stops with a message naming the holder)
    with day_lock(engine, day, settings.lock_wait_seconds):
        return ingest(engine, src, mapper, logical_date=day, aggregate=aggregate, run_id=run_id, publish=publish,
                      params={"day": day.isoformat(), "lookback_days": settings.lookback_days,
                              "kind": (settings.source or {}).get("kind", "generator")})
