"""Domestic databases as ticket sources, as SQLAlchemy dialects (the optional extras of
pyproject.toml; `make test` installs them all for the SQL-compile tests):

- 达梦 DM: ``dm+dmPython://`` (dmPython + dmSQLAlchemy, the vendor's packages);
- 人大金仓 KingbaseES: ``kingbase+ksycopg2://`` (the vendor's ksycopg2, a psycopg2 built for
  Kingbase; the SQL is PostgreSQL's, so the dialect is SQLAlchemy's own PostgreSQL one);
- openGauss (and GaussDB's centralised edition): ``opengauss+psycopg2://`` (opengauss-sqlalchemy);
- OceanBase and TiDB (MySQL mode) need nothing more: ``mysql+pymysql://``.

:func:`register` makes them loadable by name; it is called before a source's engine is made.
"""
from __future__ import annotations

import importlib.util
import sys
import types

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2


class KingbaseDialect_ksycopg2(PGDialect_psycopg2):  # noqa: N801 - SQLAlchemy's naming
    """KingbaseES through ksycopg2: PostgreSQL's SQL, Kingbase's driver."""

    name = "kingbase"
    driver = "ksycopg2"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls):
        import ksycopg2

        return ksycopg2

    def _psycopg2_extensions(self):
        from ksycopg2 import extensions

        return extensions

    def _psycopg2_extras(self):
        from ksycopg2 import extras

        return extras


_done = False


def register() -> None:
    """Register the domestic dialects (idempotent). dmSQLAlchemy 2.0.17 (its newest) imports its
    asyncio adapter at import time, and that adapter imports names SQLAlchemy 2.1 removed: the
    adapter is replaced by an empty module, so that the synchronous dialect (the one a source
    uses) loads."""
    global _done
    if _done:
        return
    registry.register("kingbase", __name__, "KingbaseDialect_ksycopg2")
    registry.register("kingbase.ksycopg2", __name__, "KingbaseDialect_ksycopg2")
    if "dmSQLAlchemy.dmasync" not in sys.modules and importlib.util.find_spec("dmSQLAlchemy") is not None:
        stub = types.ModuleType("dmSQLAlchemy.dmasync")
        stub.dialect_async = None  # no async DM source: the pipeline reads synchronously
        sys.modules["dmSQLAlchemy.dmasync"] = stub
    _done = True
