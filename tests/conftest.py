"""Shared fixtures. Warehouse tests run on SQLite and on the real PostgreSQL server.

PostgreSQL: HOTLINE_TEST_PG_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432/test) names
a server; the tests create their own database on it and drop it afterwards. An unreachable server
fails the PostgreSQL tests; it never skips them.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
NYC_CSV = SHARED_DATA / "nyc_council_complaints" / "nycomplaints.csv.gz"

# Airflow reads its home at import: give the test session a fresh one before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="hotline-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

PG_SERVER_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_admin():
    from sqlalchemy import create_engine

    return create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database_url():
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    name = f"hotline_test_{uuid.uuid4().hex[:8]}"
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_SERVER_URL} is not reachable; start it "
                    f"(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): {exc}")
    url = PG_SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                          f"AND pid <> pg_backend_pid()"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _clean(engine) -> None:
    from sqlalchemy import text

    from warehouse.schema import metadata

    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A migrated, empty warehouse on each dialect."""
    from warehouse.db import connect, migrate

    if request.param == "sqlite":
        eng = connect(f"sqlite:///{tmp_path / 'warehouse.db'}")
    else:
        eng = connect(request.getfixturevalue("pg_database_url"))
    migrate(eng)
    _clean(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_database_url):
    from warehouse.db import connect, migrate

    eng = connect(pg_database_url)
    migrate(eng)
    _clean(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def ref():
    from hotline.core.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def small_generator():
    """A small province (0.2% of published volumes): fast, still every tier and category."""
    from generator.province import ProvinceGenerator

    return ProvinceGenerator("440000", seed=7, scale=0.002)


@pytest.fixture
def mapper_factory(ref):
    from hotline.core.reference import load_mapping
    from ingestion.canonical import TicketMapper

    def make(name="generator", now=None, **overrides):
        m = load_mapping(name)
        m.update(overrides)
        return TicketMapper(m, ref, "test-salt", now=now or dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))

    return make


@pytest.fixture(scope="session")
def airflow_db():
    """`airflow db migrate` once in the session's fresh AIRFLOW_HOME (SQLite, no services)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env={**os.environ})
    return Path(os.environ["AIRFLOW_HOME"])


# The modules that take minutes (docs/BENCHMARKS.md), longest first. pytest-xdist hands whole
# modules to its workers in collection order: started first, they run side by side while the
# short modules fill in around them, instead of one of them starting last and running alone.
LONGEST_FIRST = ("test_dags.py", "test_topology.py", "test_nyc_real_data.py", "test_issue_principles.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
