"""The domestic ticket databases (达梦 DM, 人大金仓 KingbaseES, openGauss) as SQL sources: an Airflow
connection of their type gives the right SQLAlchemy URL, the engine loads the vendor's driver, and
the one statement a source sends (its change-stamp window) compiles in each dialect, Chinese
column names quoted. No server of theirs runs here: the statements are compiled, not executed
(MariaDB and PostgreSQL sources are run for real in test_mariadb_source.py and test_sql_source.py)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, create_engine

from alerts.channels import Connection
from hotline.app.ingest import connection_url
from ingestion.dialects import register
from ingestion.sources import window_query

SINCE, UNTIL = dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 2)
CASES = {  # connection type: (driver in the URL, the dialect's name, the DBAPI module it loads)
    "dm": ("dm+dmPython", "dm", "dmPython"),
    "dameng": ("dm+dmPython", "dm", "dmPython"),
    "kingbase": ("kingbase+ksycopg2", "kingbase", "ksycopg2"),
    "opengauss": ("opengauss+psycopg2", "opengauss", "psycopg2"),
    "gaussdb": ("opengauss+psycopg2", "opengauss", "psycopg2"),
    "oceanbase": ("mysql+pymysql", "mysql", "pymysql"),
    "tidb": ("mysql+pymysql", "mysql", "pymysql"),
}


def _table():
    return Table("工单导出", MetaData(), Column("工单编号", String(32)), Column("受理时间", DateTime),
                 Column("诉求内容", Text), Column("更新时间", DateTime), schema="hotline")


@pytest.mark.parametrize("conn_type", sorted(CASES))
def test_a_connection_of_each_type_gives_an_engine_with_the_vendors_driver(conn_type):
    register()
    driver, dialect, dbapi = CASES[conn_type]
    conn = Connection(conn_type, "ticket-db.internal", 5236, "reader", "pa:ss@word", "HOTLINE", {})
    url = connection_url(conn, "hotline_source")
    assert url.startswith(f"{driver}://reader:pa%3Ass%40word@ticket-db.internal:5236/HOTLINE")
    engine = create_engine(url)  # loads the dialect and its driver; connects to nothing
    assert engine.dialect.name == dialect and engine.dialect.dbapi.__name__ == dbapi
    assert "pa:ss@word" not in repr(engine.url)  # the password is not printed with the URL


@pytest.mark.parametrize("dialect,quote", [("dm", '"'), ("kingbase", '"'), ("opengauss", '"'), ("mysql", "`"),
                                           ("postgresql", '"')])
def test_the_change_stamp_window_compiles_in_each_dialect(dialect, quote):
    from sqlalchemy.dialects import registry

    register()
    d = registry.load(dialect)()
    t = _table()
    sql = str(window_query(t, t.c["更新时间"], SINCE, UNTIL).compile(dialect=d, compile_kwargs={"literal_binds": True}))
    q = quote
    stamp = f"hotline.{q}工单导出{q}.{q}更新时间{q}"
    assert f"FROM hotline.{q}工单导出{q}" in sql
    assert f"{stamp} >= '2026-12-01 00:00:00" in sql and f"{stamp} < '2026-12-02 00:00:00" in sql
    assert sql.rstrip().endswith(f"ORDER BY {stamp}")
    for col in ("工单编号", "受理时间", "诉求内容"):
        assert f"{q}{col}{q}" in sql
    assert "LIMIT" not in sql.upper() and "TOP " not in sql.upper()  # the whole window, streamed
    open_ended = str(window_query(t, t.c["更新时间"], SINCE, None).compile(dialect=d))
    assert "<" not in open_ended.split("WHERE", 1)[1]


def test_an_unknown_connection_type_names_the_known_ones():
    from hotline.app.ingest import SourceNotConfigured

    with pytest.raises(SourceNotConfigured, match="dameng.*kingbase.*opengauss"):
        connection_url(Connection("informix", "h", 1, "u", "p", "d", {}), "hotline_source")
