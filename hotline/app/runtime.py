"""The Runtime: what a use case needs, built once from the settings (config/hotline.yaml and the
HOTLINE_* environment): the warehouse engine, the reference data, the province's time zone and
the stage configs, each loaded on first use. The DAG tasks and the CLI make one and pass it in;
nothing below the app layer reads the environment or loads settings itself."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

from hotline.core.reference import Reference, load_reference
from hotline.core.settings import Settings, load_settings


@dataclass
class Runtime:
    settings: Settings
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)

    @classmethod
    def from_env(cls, db_url: str | None = None) -> "Runtime":
        return cls(load_settings(db_url))

    @functools.cached_property
    def engine(self):
        """The warehouse (the stage that writes first, ingest, brings its schema up to date; a
        use case that may run on an empty warehouse calls :meth:`migrate`)."""
        from warehouse.db import connect

        return connect(self.settings.db_url)

    def migrate(self) -> "Runtime":
        """Bring the warehouse's schema up to date (Alembic; nothing to do when it is)."""
        from warehouse.db import migrate

        migrate(self.engine)
        return self

    @functools.cached_property
    def ref(self) -> Reference:
        return load_reference(self.settings.config_dir)

    @property
    def province(self) -> str:
        return self.settings.province

    @functools.cached_property
    def tz(self) -> str:
        """The configured province's time zone (its region file's ``timezone``)."""
        return self.ref.regions.province(self.settings.province).timezone

    @functools.cached_property
    def alerts_config(self) -> Any:
        from alerts.config import AlertsConfig

        return AlertsConfig.load(self.settings.config_dir)

    @functools.cached_property
    def sla_config(self) -> Any:
        from hotline.core.sla import SlaConfig

        return SlaConfig.load(self.settings.config_dir)

    def secrets(self) -> Any:
        """Channel secrets from this runtime's environment (passed into delivery, never read there)."""
        from alerts.channels import LINK_SECRET_ENV, Secrets
        from hotline.app.accounts import web_secret
        from hotline.core.links import MIN_SECRET

        env = dict(self.env)
        key = web_secret(env, self.settings.var_dir)  # the served site's: signs the alert links in notices
        env.pop(LINK_SECRET_ENV, None)
        if key and len(key) >= MIN_SECRET:  # a short one signs nothing (unsigned links; hotline doctor says so)
            env[LINK_SECRET_ENV] = key
        return Secrets(env)
