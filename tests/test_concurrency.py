"""Two runs of the same day at once (issue 20), as real processes against one warehouse.

The tester ran two `airflow dags test hotline_daily D` against one PostgreSQL warehouse: one
publish failed with a UniqueViolation on daily_counts_pkey, and its retry recomputed nothing
because the merge had already committed. Here two processes publish the same day together,
each its own staged batch, started at the same instant.
"""
import datetime as dt
import subprocess
import sys

import pandas as pd
import pytest
from sqlalchemy import func, literal, select

from ingestion.pipeline import ingest
from ingestion.sources import GeneratorSource
from warehouse.aggregate import aggregate_days
from warehouse.locks import RunLocked, day_lock
from warehouse.schema import daily_counts, pipeline_runs, staged_tickets, tickets

DAY = dt.date(2024, 5, 8)


def _procs(code: str, n: int, go) -> list[subprocess.Popen]:
    """``n`` processes that each wait for the file ``go`` and then run ``code``."""
    wait = f"import time, pathlib\nwhile not pathlib.Path({str(go)!r}).exists(): time.sleep(0.005)\n"
    return [subprocess.Popen([sys.executable, "-c", wait + code.format(i=i)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(n)]


def _counts(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(select(daily_counts.c.ds, daily_counts.c.region_level, daily_counts.c.region_code,
                                   daily_counts.c.category_level, daily_counts.c.category_code,
                                   daily_counts.c.n_tickets)).all()
    return pd.DataFrame(rows, columns=["ds", "rl", "rc", "cl", "cc", "n"]).sort_values(
        ["ds", "rl", "rc", "cl", "cc"]).reset_index(drop=True)


def test_two_runs_publishing_the_same_day_at_once_both_succeed_and_count_once(engine, tmp_path, small_generator,
                                                                             mapper_factory):
    url = engine.url.render_as_string(hide_password=False)
    # each run staged the day and its look-back (the tester's DAG runs; four, so that their
    # aggregations overlap every time: two often did, four always did before the fix)
    ingest(engine, GeneratorSource(small_generator, DAY - dt.timedelta(days=30), DAY), mapper_factory(),
           logical_date=DAY, run_id="ingest-a", publish=False)
    cols = [c.name for c in staged_tickets.columns if c.name != "ingest_run_id"]
    with engine.begin() as conn:
        for run_id in ("ingest-b", "ingest-c", "ingest-d"):
            conn.execute(staged_tickets.insert().from_select(
                cols + ["ingest_run_id"], select(*[staged_tickets.c[c] for c in cols], literal(run_id)).where(
                    staged_tickets.c.ingest_run_id == "ingest-a")))
    go = tmp_path / "go"
    procs = _procs("from data_quality.gate import publish_and_aggregate\nfrom warehouse.db import connect\n"
                   f"import datetime\nprint(publish_and_aggregate(connect({url!r}), 'ingest-' + 'abcd'[{{i}}], "
                   f"datetime.date({DAY.year}, {DAY.month}, {DAY.day})))\n", 4, go)
    go.touch()
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], results
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(staged_tickets)).scalar_one() == 0
        n_tickets = conn.execute(select(func.count()).select_from(tickets)).scalar_one()
        statuses = conn.execute(select(pipeline_runs.c.status)
                                .where(pipeline_runs.c.stage == "aggregate")).scalars().all()
    assert statuses == ["success"] * 4
    got = _counts(engine)
    assert not got.duplicated(["ds", "rl", "rc", "cl", "cc"]).any()
    assert got.query("rl == 'province' and cl == 'all'")["n"].sum() == n_tickets
    aggregate_days(engine, set(got["ds"]))  # what one run alone computes from the tickets
    pd.testing.assert_frame_equal(got, _counts(engine))


def test_a_second_run_of_a_day_waits_then_stops_naming_who_holds_the_day(engine, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    go = tmp_path / "go"
    holder = _procs("import datetime, time\nfrom warehouse.db import connect\nfrom warehouse.locks import day_lock\n"
                    f"with day_lock(connect({url!r}), datetime.date(2024, 5, 8)):\n"
                    "    print('holding', flush=True)\n    time.sleep(120)\n", 1, go)[0]
    go.touch()
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunLocked, match=r"another run holds the lock 'day:2024-05-08' "
                                            r"\((PostgreSQL session )?pid \d+"
                                            r".*waited 0.5 s"):
            with day_lock(engine, DAY, wait_seconds=0.5):
                pass
        with day_lock(engine, DAY + dt.timedelta(days=1), wait_seconds=0):  # another day is free
            pass
    finally:
        holder.kill(), holder.wait()
    with day_lock(engine, DAY, wait_seconds=5):  # a killed holder's lock goes with its process
        pass
