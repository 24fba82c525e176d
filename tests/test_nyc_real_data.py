"""The real NYC Council complaints export through the `hotline` command, on both databases."""
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from warehouse.schema import daily_counts, tickets

pytestmark = pytest.mark.slow
NYC_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyc_council_complaints" / "nycomplaints.csv.gz"
HOTLINE = str(Path(sys.executable).parent / "hotline")


def _hotline(*args, db):
    env = {**os.environ, "HOTLINE_DB_URL": db}
    out = subprocess.run([HOTLINE, *args], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_nyc_export_loads_with_nothing_lost(engine):
    assert NYC_CSV.exists(), f"{NYC_CSV} missing: ../shared/data is part of the checkout's surroundings"
    db = engine.url.render_as_string(hide_password=False)
    lines = _hotline("ingest", "csv", str(NYC_CSV), "--mapping", "nyc_council", "--json", db=db)
    summary = json.loads(lines[-1])
    assert summary["read"] == 341299
    assert summary["loaded"] + summary["quarantined"] == summary["read"]
    assert summary["quarantined"] > 0 and sum(summary["quarantine_reasons"].values()) == summary["quarantined"]

    q = json.loads(_hotline("quarantine", "--json", db=db)[-1])
    assert q["total"] == summary["quarantined"]
    assert {r["reason_code"] for r in q["reasons"]} == set(summary["quarantine_reasons"])
    assert all(r["examples"] and r["examples"][0]["source_row"] > 1 for r in q["reasons"])

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
    assert no_borough > 50_000  # 18% of rows have no borough and still count at city level
    assert city_total == summary["loaded"]
    assert covid_before <= 5 and covid_spring > 2000  # the category appears with the pandemic
