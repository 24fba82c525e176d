"""The real NYC Council complaints export through the `hotline` command, on both databases:
loaded with nothing lost, then checked by the data-quality suites."""
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from warehouse.db import connect
from warehouse.schema import daily_counts, tickets

pytestmark = pytest.mark.slow
NYC_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyc_council_complaints" / "nycomplaints.csv.gz"
HOTLINE = str(Path(sys.executable).parent / "hotline")


def _hotline(*args, db, var):
    env = {**os.environ, "HOTLINE_DB_URL": db, "HOTLINE_VAR_DIR": str(var)}
    out = subprocess.run([HOTLINE, *args], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nyc(request, tmp_path_factory):
    """The NYC file ingested once per database: (url, ingest summary, var dir)."""
    assert NYC_CSV.exists(), f"{NYC_CSV} missing: ../shared/data is part of the checkout's surroundings"
    var = tmp_path_factory.mktemp("nycvar")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('nyc') / 'nyc.db'}"
        admin = None
    else:
        server = request.getfixturevalue("pg_database_url")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        name = server.rsplit("/", 1)[1] + "_nyc"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.rsplit("/", 1)[0] + f"/{name}"
    lines = _hotline("ingest", "csv", str(NYC_CSV), "--mapping", "nyc_council", "--json", db=url, var=var)
    yield url, json.loads(lines[-1]), var
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


def test_nyc_export_loads_with_nothing_lost(nyc):
    url, summary, var = nyc
    assert summary["read"] == 341299
    assert summary["loaded"] + summary["quarantined"] == summary["read"]
    assert summary["quarantined"] > 0 and sum(summary["quarantine_reasons"].values()) == summary["quarantined"]

    q = json.loads(_hotline("quarantine", "--json", db=url, var=var)[-1])
    assert q["total"] == summary["quarantined"]
    assert {r["reason_code"] for r in q["reasons"]} == set(summary["quarantine_reasons"])
    assert all(r["examples"] and r["examples"][0]["source_row"] > 1 for r in q["reasons"])

    engine = connect(url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == summary["loaded"]
        no_borough = conn.execute(select(func.count()).select_from(tickets).where(
            tickets.c.district_code.is_(None))).scalar_one()
        city_total = conn.execute(select(func.sum(daily_counts.c.n_tickets)).where(
            daily_counts.c.region_level == "city", daily_counts.c.category_level == "all")).scalar_one()
        is_covid = tickets.c.category_l2 == "health.epidemic"
        covid_before = conn.execute(select(func.count()).select_from(tickets).where(
            is_covid, tickets.c.received_date < dt.date(2020, 3, 1))).scalar_one()
        covid_spring = conn.execute(select(func.count()).select_from(tickets).where(
            is_covid, tickets.c.received_date.between(dt.date(2020, 3, 1), dt.date(2020, 6, 30)))).scalar_one()
    engine.dispose()
    assert no_borough > 50_000  # 18% of rows have no borough and still count at city level
    assert city_total == summary["loaded"]
    assert covid_before <= 5 and covid_spring > 2000  # the category appears with the pandemic


def test_the_suites_report_missing_boroughs_and_the_open_backlog(nyc):
    url, _, var = nyc
    out = json.loads(_hotline("validate", "--date", "2022-06-15", "--json", db=url, var=var)[-1])
    failed = {f["check"]: f for f in out["failed_expectations"]}
    assert out["action"] == "warn" and out["quarantined"] == 0  # a published day is reported on, not changed
    assert failed["district_present"]["unexpected_count"] > 0.1 * failed["district_present"]["element_count"]
    assert failed["closure_backlog"]["unexpected_count"] > 0.05 * failed["closure_backlog"]["element_count"]
    assert all(Path(p).exists() for p in out["docs"])


def test_feed_health_flags_the_march_2020_collapse(nyc):
    url, _, var = nyc
    out = json.loads(_hotline("validate", "--date", "2020-03-25", "--json", db=url, var=var)[-1])
    city = [f for f in out["failed_expectations"] if f["check"] == "city_volume"]
    assert out["action"] == "halt" and city
    assert any("900100" in r for r in out["reasons"])


def test_detectors_flag_the_march_2020_collapse_and_covid_emerging_within_a_week(nyc, tmp_path):
    """Replayed day by day on the real file (US holiday calendar), at the default budget: the
    lockdown collapse from 16 March 2020 is flagged as a drop and the new COVID-19 category as an
    emerging issue, each within a week; each alert states a calibrated tail and the threshold the
    budget set, and is judged only on days before it."""
    url, _, var = nyc
    labels = tmp_path / "nyc_labels.csv"
    labels.write_text("type,start,end,region,category\n"
                      "drop,2020-03-16,2020-04-30,900100,*\n"
                      "emerging,2020-03-16,2020-04-30,900100,health.epidemic\n", encoding="utf-8")
    out = json.loads(_hotline("backtest", "--labels", str(labels), "--province", "900000", "--start", "2020-03-01",
                              "--end", "2020-04-15", "--json", db=url, var=var)[-1])
    (default,) = out["grid"]
    for kind in ("drop", "emerging"):
        assert default["by_kind"][kind]["detected"] == 1 and default["median_delay_days"][kind] <= 7, kind
    # Materiality by the tier's rule (NYC is a super-large city: 15 tickets a day at city level): the
    # collapse (-1,200 tickets over its first two weeks) is material and detected; COVID-19's first
    # two weeks (+87 tickets city-wide, about 6 a day) are detected but fall below the city's floor.
    assert default["material_events"] == 1 and default["material_detected"] == 1
    assert Path(out["report"]).exists()
