"""A ticket system on MariaDB (OceanBase and TiDB speak the same protocol), read through an Airflow
connection: no password in config/hotline.yaml. Runs against the machine's real MariaDB server
(and, for the kill test, a PostgreSQL warehouse on the real server)
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
from tests.conftest import _clean, pg_database_url  # noqa: F401
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


def test_an_ingest_killed_in_the_middle_leaves_nothing_half_written_and_the_rerun_loads_it_once(
        source_db, tmp_path, pg_database_url):  # noqa: F811
    """`hotline ingest sql` from MariaDB into a PostgreSQL warehouse, killed (SIGKILL) while its
    write waits on a lock the test holds: none of its rows land, its run is marked abandoned by
    the next run, and the rerun loads every ticket once."""
    import signal
    import subprocess
    import sys
    import time

    from warehouse.db import connect, migrate
    from warehouse.schema import pipeline_runs

    name, frame = source_db
    wh = connect(pg_database_url)
    migrate(wh)
    _clean(wh)  # the session's database, as other modules left it
    env = {**os.environ, **_conn_env(name), "HOTLINE_CALLER_SALT": "t", "HOTLINE_DB_URL": pg_database_url,
           "HOTLINE_VAR_DIR": str(tmp_path / "var")}
    argv = [sys.executable, "-m", "hotline.cli", "ingest", "sql", "--conn-id", "hotline_source", "--table",
            "ticket_export", "--mapping", "generator", "--no-aggregate"]
    holder = wh.connect()
    lock = holder.begin()
    holder.execute(text("LOCK TABLE tickets IN EXCLUSIVE MODE"))  # reads go on; the ingest's write waits
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:  # the ingest has read and mapped its batch and now waits to write it
            with wh.connect() as watch:  # a new transaction each time: pg_stat_activity is a per-transaction snapshot
                waiting = watch.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar_one()
            if waiting:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the ingest never reached its write"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        lock.rollback()
        holder.close()
    time.sleep(1)  # the killed client's backend ends its transaction without committing
    with wh.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 0
        [killed] = conn.execute(select(pipeline_runs.c.run_id, pipeline_runs.c.status).where(
            pipeline_runs.c.stage == "ingest")).all()
    assert killed.status == "running"  # as the killed process left it
    rerun = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    assert out["read"] == len(frame) == out["loaded"] + out["quarantined"] and out["inserted"] == out["loaded"]
    with wh.connect() as conn:
        n = conn.execute(select(func.count()).select_from(tickets)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(tickets.c.ticket_id)))).scalar_one()
        status = conn.execute(select(pipeline_runs.c.status).where(
            pipeline_runs.c.run_id == killed.run_id)).scalar_one()
    assert n == distinct == out["loaded"]
    assert status == "abandoned"  # the next run of the stage found its process gone
    _clean(wh)
    wh.dispose()
