"""One settings object, resolved at the edge (CLI flags, environment, config/hotline.yaml) and
passed into library code, which never reads the environment itself.

Precedence: explicit argument > environment variable > config/hotline.yaml > built-in default.

| setting       | environment             | default                        |
|---------------|-------------------------|--------------------------------|
| db_url        | HOTLINE_DB_URL          | sqlite:///<var_dir>/hotline.db |
| var_dir       | HOTLINE_VAR_DIR         | <project>/var                  |
| config_dir    | HOTLINE_CONFIG_DIR      | <project>/config               |
| caller_salt   | HOTLINE_CALLER_SALT     | a demo salt (warns: set it in production) |
| lookback_days | HOTLINE_LOOKBACK_DAYS   | 7                              |
| lock_wait_seconds | HOTLINE_LOCK_WAIT_SECONDS | 900: how long a second run of the same day waits for the first |
| source.anchor | HOTLINE_DEMO_DAY        | none: the day the demo's planted events are dated from |
| load_demo     | HOTLINE_LOAD_DEMO       | unset: the generator may feed; false (production): refused |
| (the file)    | HOTLINE_SETTINGS        | <config_dir>/hotline.yaml      |
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hotline.core.config import DEFAULT_PROVINCE, HotlineFile, validate
from hotline.core.reference import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_SALT = "hotline-demo-salt-change-me"


@dataclass(frozen=True)
class Settings:
    db_url: str
    var_dir: Path
    config_dir: Path
    caller_salt: str
    lookback_days: int = 7
    lock_wait_seconds: float = 900.0
    source: dict[str, Any] = field(default_factory=dict)  # the daily DAG's source
    forecasting: dict[str, Any] = field(default_factory=dict)  # hotline.core.config.ForecastingFile
    # HOTLINE_LOAD_DEMO: None when unset (the embedded demo: the generator may be the source),
    # False in a production stack that has not asked for the demo (the generator is refused)
    load_demo: bool | None = None

    def with_db(self, url: str | None) -> "Settings":
        return replace(self, db_url=url) if url else self

    @property
    def province(self) -> str:
        """The province the pipeline serves: the daily source's (config/hotline.yaml)."""
        return str(self.source.get("province", DEFAULT_PROVINCE))


def load_settings(db_url: str | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    config_dir = Path(env.get("HOTLINE_CONFIG_DIR", PROJECT_ROOT / "config"))
    doc: dict[str, Any] = {}
    path = Path(env.get("HOTLINE_SETTINGS", config_dir / "hotline.yaml"))
    if path.exists():
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: a mapping of settings is expected")
        # every key checked against the model: `databse:` would otherwise leave the demo database in
        # place, silently (docs/CONFIG.md lists the keys)
        validate(HotlineFile, doc, path)
    var_dir = Path(env.get("HOTLINE_VAR_DIR", doc.get("var_dir") or PROJECT_ROOT / "var"))
    if not var_dir.is_absolute():
        var_dir = PROJECT_ROOT / var_dir
    url = db_url or env.get("HOTLINE_DB_URL") or doc.get("database") or f"sqlite:///{var_dir / 'hotline.db'}"
    salt = env.get("HOTLINE_CALLER_SALT") or doc.get("caller_salt")
    if not salt:
        warnings.warn("HOTLINE_CALLER_SALT is not set: caller keys use the demo salt", stacklevel=2)
        salt = DEMO_SALT
    return Settings(
        db_url=url,
        var_dir=var_dir,
        config_dir=config_dir,
        caller_salt=salt,
        lookback_days=int(env.get("HOTLINE_LOOKBACK_DAYS", doc.get("lookback_days", 7))),
        lock_wait_seconds=float(env.get("HOTLINE_LOCK_WAIT_SECONDS", doc.get("lock_wait_seconds", 900))),
        source={**dict(doc.get("source") or {}),
                **({"anchor": env["HOTLINE_DEMO_DAY"]} if env.get("HOTLINE_DEMO_DAY") else {})},
        forecasting=dict(doc.get("forecasting") or {}),
        load_demo=_flag(env.get("HOTLINE_LOAD_DEMO"), "HOTLINE_LOAD_DEMO"),
    )


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: true or false, got {value!r}")
