"""Engines and migrations."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def connect(url: str) -> Engine:
    """An engine for a warehouse URL; a SQLite file's folder is created when missing."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            # WAL lets Airflow tasks read while another writes; the timeout rides out short locks.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()
    return engine


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the warehouse schema to ``revision`` (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def schema_revision(engine: Engine) -> tuple[str | None, str]:
    """(the warehouse's migration, the latest the code has); the first is None on an empty database."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def seconds_between(engine: Engine, later, earlier):
    """A SQL expression: seconds from ``earlier`` to ``later`` (two timestamp columns), on SQLite
    (julianday, good to the millisecond) and PostgreSQL (epoch of the interval)."""
    from sqlalchemy import func

    if engine.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86_400.0
    return func.extract("epoch", later - earlier)


def read_frame(conn, query, columns: list[str] | None = None):
    """A query's rows as a DataFrame, built column by column (pandas' own constructor probes each
    SQLAlchemy Row object and is ~5x slower on a million rows)."""
    import pandas as pd

    res = conn.execute(query)
    cols = list(columns or res.keys())
    rows = res.all()
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame({c: list(v) for c, v in zip(cols, zip(*rows))})


def epoch_seconds(engine: Engine, column):
    """A SQL expression: a timestamp column as float seconds since 1970 (UTC). Reading a million
    timestamps this way skips a million datetime objects; SQLite's julianday is good to ~1 ms."""
    from sqlalchemy import Float, cast, func

    if engine.dialect.name == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86_400.0
    return cast(func.extract("epoch", column), Float)

