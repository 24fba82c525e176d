"""A ticket system on MariaDB (OceanBase and TiDB speak the same protocol), read through an Airflow
connection: no password in config/hotline.yaml. Runs against the machine's real MariaDB server
(HOTLINE_TEST_MYSQL_URL, default mysql+pymysql://root@127.0.0.1:3306); an unreachable server
fails these tests, it never skips them."""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, func, select, text

from alerts.channels import Secrets
from hotline.app.ingest import SourceNotConfigured, ingest_day
from hotline.core.settings import load_settings
from warehouse.schema import tickets

MYSQL_SERVER_URL = os.environ.get("HOTLINE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
DAY = dt.date(2024, 6, 3)


@pytest.fixture(scope="module")
def source_db():
    """A fresh database on the MariaDB server holding a ticket system's export table: Chinese
    column names, DATETIME columns in Beijing time without a zone, as such systems keep them.
    Yields (the database's name, the rows as loaded); dropped afterwards."""
    from generator.province import ProvinceGenerator

    name = f"hotline_src_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MYSQL_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as exc:  # noqa: BLE001 - any driver error: the server is not there
        pytest.fail(f"MariaDB at {MYSQL_SERVER_URL} is not reachable (start it: service mariadb start): {exc}")
    gen = ProvinceGenerator("440000", seed=11, scale=0.002)
    as_of = pd.Timestamp("2024-06-04", tz="Asia/Shanghai")
    frame = pd.concat(gen.tickets(DAY - dt.timedelta(days=2), DAY, as_of=as_of))
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.DatetimeTZDtype):
            frame[c] = frame[c].dt.tz_localize(None)  # local wall time, as the system stores it
    src = create_engine(f"{MYSQL_SERVER_URL}/{name}?charset=utf8mb4")
    frame.to_sql("ticket_export", src, index=False)
    src.dispose()
    yield name, frame
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


def _settings(tmp_path, table: str = "ticket_export"):
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump({"lookback_days": 3, "source": {"kind": "sql", "table": table,
                                                                   "mapping": "generator"}}), encoding="utf-8")
    return load_settings(env={"HOTLINE_SETTINGS": str(path), "HOTLINE_CALLER_SALT": "t",
                              "HOTLINE_DB_URL": f"sqlite:///{tmp_path / 'w.db'}",
                              "HOTLINE_VAR_DIR": str(tmp_path / "var"), "HOTLINE_LOAD_DEMO": "false"})


def _conn_env(name: str) -> dict[str, str]:
    host = MYSQL_SERVER_URL.split("://", 1)[1]
    return {"AIRFLOW_CONN_HOTLINE_SOURCE": f"mysql://{host}/{name}?charset=utf8mb4"}


def test_the_daily_ingest_reads_mariadb_through_the_connection_by_local_time_and_twice_adds_nothing(source_db,
                                                                                                    tmp_path):
    name, frame = source_db
    settings = _settings(tmp_path)
    secrets = Secrets(_conn_env(name))
    first = ingest_day(settings, DAY, secrets=secrets)
    # the window is Beijing's days, read off DATETIME columns without a zone: a ticket changed at
    # 23:30 on the day is in it (a bound cast in the server's UTC session would cut 8 hours)
    in_window = frame[frame["更新时间"] < pd.Timestamp(DAY + dt.timedelta(days=1))]
    late_evening = in_window[in_window["更新时间"].dt.hour >= 16]
    assert len(late_evening) > 0 and first.read == len(in_window) == first.loaded + first.quarantined
    assert first.inserted == first.loaded > 100
    again = ingest_day(settings, DAY, secrets=secrets)
    assert (again.read, again.inserted, again.updated, again.unchanged) == (first.read, 0, 0, first.loaded)
    wh = create_engine(settings.db_url)
    with wh.connect() as conn:
        n = conn.execute(select(func.count()).select_from(tickets)).scalar_one()
        ids = conn.execute(select(func.count(func.distinct(tickets.c.ticket_id)))).scalar_one()
    assert n == ids == first.loaded

    # the system closes three open tickets late in the evening: the next run updates them, adds none
    src = create_engine(f"{MYSQL_SERVER_URL}/{name}")
    open_ids = frame.loc[frame["工单状态"] != "已办结", "工单编号"].head(3).tolist()
    with src.begin() as conn:
        for tid in open_ids:
            conn.execute(text("UPDATE ticket_export SET `工单状态` = '已办结', `办结时间` = '2024-06-03 23:40:00', "
                              "`更新时间` = '2024-06-03 23:40:00' WHERE `工单编号` = :t"), {"t": tid})
    src.dispose()
    third = ingest_day(settings, DAY, secrets=secrets)
    assert (third.inserted, third.updated) == (0, 3)
    with wh.connect() as conn:
        closed = conn.execute(select(tickets.c.status).where(tickets.c.ticket_id.in_(open_ids))).scalars().all()
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == first.loaded
    assert closed == ["closed"] * 3
    wh.dispose()


def test_a_missing_connection_stops_the_ingest_naming_it(source_db, tmp_path):
    with pytest.raises(SourceNotConfigured, match="connection hotline_source is not set.*AIRFLOW_CONN_HOTLINE_SOURCE"):
        ingest_day(_settings(tmp_path), DAY, secrets=Secrets({}))


def test_a_dry_run_through_the_connection_keeps_the_password_off_the_command_line(source_db, tmp_path):
    from click.testing import CliRunner

    from hotline.cli import main

    name, frame = source_db
    res = CliRunner().invoke(main, ["ingest", "sql", "--conn-id", "hotline_source", "--table", "ticket_export",
                                    "--mapping", "generator", "--dry-run", "--json"],
                             env={**_conn_env(name), "HOTLINE_CALLER_SALT": "t",
                                  "HOTLINE_DB_URL": f"sqlite:///{tmp_path / 'w.db'}"})
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["read"] == len(frame) and out["would_quarantine"] == 0 and not (tmp_path / "w.db").exists()
