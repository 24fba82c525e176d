"""The warehouse: canonical tickets, quarantine, daily counts at every level, watermarks, run log.

SQLAlchemy 2.x Core with Alembic migrations; a SQLite file by default, PostgreSQL (or any
SQLAlchemy URL) in production. See docs/SCHEMA.md for the tables column by column.
"""
from warehouse.db import connect, migrate  # noqa: F401
