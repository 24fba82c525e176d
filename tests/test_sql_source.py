"""Reading a real hotline system's ticket table in PostgreSQL through a column mapping."""
import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select, text

from ingestion.canonical import SourceFormatError
from ingestion.pipeline import ingest
from ingestion.sources import SqlSource
from warehouse.schema import tickets

pytestmark = pytest.mark.postgres
TZ = "Asia/Shanghai"


@pytest.fixture
def source_table(pg_database_url, small_generator):
    """A ticket system's export table (Chinese column names) in a real PostgreSQL database."""
    src = create_engine(pg_database_url)
    with src.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ticket_export"))

    def load(as_of):
        frame = pd.concat(small_generator.tickets(dt.date(2024, 6, 1), dt.date(2024, 6, 3),
                                                  as_of=pd.Timestamp(as_of, tz=TZ)))
        with src.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS ticket_export"))
        frame.to_sql("ticket_export", src, index=False)
        return frame

    yield load
    with src.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ticket_export"))
    src.dispose()


def test_sql_source_reads_by_change_stamp_and_picks_up_updates(pg_engine, pg_database_url, source_table,
                                                               mapper_factory):
    first = source_table("2024-06-04")
    since = pd.Timestamp("2024-05-25", tz=TZ).to_pydatetime()
    until = pd.Timestamp("2024-06-04", tz=TZ).to_pydatetime()
    r1 = ingest(pg_engine, SqlSource(pg_database_url, "ticket_export", "更新时间", since, until), mapper_factory())
    assert r1.read == len(first) == r1.loaded and r1.quarantined == 0
    # two weeks later the system has closed more of them, and a few late tickets have arrived
    later = source_table("2024-06-18")
    late = set(later["工单编号"]) - set(first["工单编号"])
    was_open = set(first.loc[first["办结时间"].isna(), "工单编号"])
    closed_since = was_open & set(later.loc[later["办结时间"].notna(), "工单编号"])
    assert closed_since and late
    r2 = ingest(pg_engine, SqlSource(pg_database_url, "ticket_export", "更新时间",
                                     pd.Timestamp("2024-06-04", tz=TZ).to_pydatetime(),
                                     pd.Timestamp("2024-06-18", tz=TZ).to_pydatetime()), mapper_factory())
    assert r2.inserted == len(late) and r2.updated == len(closed_since)
    with pg_engine.connect() as conn:
        n, closed = conn.execute(select(func.count(), func.count(tickets.c.closed_at))).one()
    assert n == len(later) and closed == later["办结时间"].notna().sum()


def test_missing_change_stamp_column_is_a_clear_error(pg_database_url, source_table):
    source_table("2024-06-04")
    with pytest.raises(SourceFormatError, match="change-stamp column 'modified_at' missing"):
        list(SqlSource(pg_database_url, "ticket_export", "modified_at").batches())


def test_a_dry_run_of_a_sql_source_shows_the_mapped_rows_and_writes_nothing(pg_database_url, source_table,
                                                                             tmp_path):
    import json

    from click.testing import CliRunner

    from hotline.cli import main

    frame = source_table("2024-06-04")
    with create_engine(pg_database_url).begin() as conn:  # one row whose category no mapping knows
        conn.execute(text("UPDATE ticket_export SET \"问题分类\" = '不存在-的分类' WHERE \"工单编号\" = :t"),
                     {"t": str(frame["工单编号"].iloc[0])})
    db = tmp_path / "w.db"
    res = CliRunner().invoke(main, ["ingest", "sql", "--url", pg_database_url, "--table", "ticket_export",
                                    "--mapping", "generator", "--dry-run", "--db", f"sqlite:///{db}", "--json"],
                             env={"HOTLINE_CALLER_SALT": "t"})
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["dry_run"] and out["read"] == len(frame) == out["would_load"] + out["would_quarantine"]
    assert len(out["first_loaded"]) == 5 and out["first_loaded"][0]["ticket_id"]
    assert not db.exists()  # no warehouse was even created


def test_a_table_stamped_in_local_time_without_a_zone_is_windowed_by_local_days(pg_database_url, small_generator):
    """Most ticket systems keep DATETIME in Beijing time with no zone. An aware bound compared with
    such a column is cast in the server session's zone (UTC here): 8 hours off. The window is
    cut in the source's own zone instead."""
    frame = pd.concat(small_generator.tickets(dt.date(2024, 6, 1), dt.date(2024, 6, 3),
                                              as_of=pd.Timestamp("2024-06-04", tz=TZ)))
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.DatetimeTZDtype):
            frame[c] = frame[c].dt.tz_localize(None)
    src = create_engine(pg_database_url)
    frame.to_sql("naive_export", src, index=False, if_exists="replace")
    z = dt.timezone(dt.timedelta(hours=8))
    since, until = dt.datetime(2024, 6, 2, tzinfo=z), dt.datetime(2024, 6, 3, tzinfo=z)
    want = frame[(frame["更新时间"] >= pd.Timestamp("2024-06-02")) & (frame["更新时间"] < pd.Timestamp("2024-06-03"))]
    got = pd.concat(b.frame for b in SqlSource(pg_database_url, "naive_export", "更新时间", since=since, until=until,
                                               tz=TZ).batches())
    assert len(want) > 50 and sorted(got["工单编号"]) == sorted(want["工单编号"])
    with src.begin() as conn:
        conn.execute(text("DROP TABLE naive_export"))
    src.dispose()
