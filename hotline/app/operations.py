"""How the DAGs run: retries, back-off, the pool for model-heavy tasks and the daily deadline, from
the ``operations:`` section of config/hotline.yaml (the file HOTLINE_SETTINGS names, else
<HOTLINE_CONFIG_DIR>/hotline.yaml).

Read when a DAG file is parsed, so this module imports nothing heavy (yaml and the config models).

    operations:
      owner: hotline
      retries: 2                  # per task, after the first try
      retry_delay_seconds: 300    # first retry after 5 min, then doubling ...
      max_retry_delay_seconds: 3600   # ... up to 1 h
      model_pool: hotline_models  # forecast and detect tasks run in this pool (config/airflow_pools.json)
      daily_deadline: "06:00"     # the daily run of a day should be done by this time (Asia/Shanghai) the
                                  # next morning; off: no deadline
HOTLINE_DAILY_DEADLINE overrides ``daily_deadline`` (``off`` turns it off). The demo (``make run``)
and the dag.test() tests turn it off: they have no scheduler to watch a deadline, and in Airflow
3.3.2 ``dag.test()`` of a DAG with a DeadlineAlert fails when the run succeeds (the in-memory
serialized DAG hands the encoded alert to ``DeadlineAlertModel.get_by_id`` instead of its id).
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotline.core.config import HotlineFile, validate
from hotline.core.reference import DEFAULT_TIMEZONE, ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TZ = DEFAULT_TIMEZONE


@dataclass(frozen=True)
class Operations:
    owner: str = "hotline"
    retries: int = 2
    retry_delay: dt.timedelta = dt.timedelta(minutes=5)
    max_retry_delay: dt.timedelta = dt.timedelta(hours=1)
    timezone: str = TZ
    model_pool: str = "hotline_models"
    daily_deadline: dt.time | None = dt.time(6, 0)

    def default_args(self, on_failure_callback) -> dict[str, Any]:
        """Every task's owner, retries with exponential back-off and the operators' failure callback."""
        return {"owner": self.owner, "retries": self.retries, "retry_delay": self.retry_delay,
                "retry_exponential_backoff": True, "max_retry_delay": self.max_retry_delay,
                "on_failure_callback": on_failure_callback}

    @property
    def deadline_after_logical_date(self) -> dt.timedelta:
        """The daily run's logical date is the start of its local day (00:00 Asia/Shanghai); the
        deadline is the configured time on the morning after that day."""
        t = self.daily_deadline
        if t is None:
            raise ValueError("operations.daily_deadline is off")
        return dt.timedelta(days=1, hours=t.hour, minutes=t.minute, seconds=t.second)


def _path(env: dict[str, str]) -> Path:
    config_dir = Path(env.get("HOTLINE_CONFIG_DIR", PROJECT_ROOT / "config"))
    return Path(env.get("HOTLINE_SETTINGS", config_dir / "hotline.yaml"))


def province_timezone(doc: dict[str, Any], env: dict[str, str]) -> str:
    """The configured province's time zone, from its region file (config/regions/<code>_*.yaml):
    the DAGs' schedules and run days are in it. Read with yaml alone, as the DAG files parse."""
    from hotline.core.config import DEFAULT_PROVINCE

    province = str((doc.get("source") or {}).get("province", DEFAULT_PROVINCE))
    config_dir = Path(env.get("HOTLINE_CONFIG_DIR", PROJECT_ROOT / "config"))
    for f in sorted((config_dir / "regions").glob("*.yaml")):
        region = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        if str(region.get("code")) == province:
            return str(region.get("timezone") or TZ)
    return TZ


def load_operations(env: dict[str, str] | None = None) -> Operations:
    """The ``operations:`` section; missing keys keep their defaults; a bad value raises an error
    naming the file and the key."""
    env = dict(os.environ if env is None else env)
    path = _path(env)
    doc = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}
    ops = validate(HotlineFile, doc, path).operations  # keys, kinds and ranges (docs/CONFIG.md)
    where = "HOTLINE_DAILY_DEADLINE" if "HOTLINE_DAILY_DEADLINE" in env else f"{path}: operations.daily_deadline"
    raw_deadline = env.get("HOTLINE_DAILY_DEADLINE", ops.daily_deadline)
    deadline = str(raw_deadline)
    off = raw_deadline is None or deadline.strip().lower() in ("off", "none", "null", "false", "")
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?", deadline)
    if not m and not off:
        hint = " (quote it: YAML reads an unquoted 6:00 as the number 360)" if isinstance(raw_deadline, int) else ""
        raise ConfigError(f"{where}: expected HH:MM (the province's local time) or off, got {deadline!r}{hint}")
    return Operations(owner=ops.owner, retries=ops.retries, timezone=province_timezone(doc, env),
                      retry_delay=dt.timedelta(seconds=ops.retry_delay_seconds),
                      max_retry_delay=dt.timedelta(seconds=ops.max_retry_delay_seconds),
                      model_pool=ops.model_pool,
                      daily_deadline=None if off else dt.time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)))


def run_day(day_param: Any, interval_start: Any, tz: str = TZ) -> dt.date | None:
    """The local day a daily run covers: its ``day`` param when given, else the local date of its
    data interval's start (a datetime or an ISO string; a manual run's logical date is when it was
    triggered, its data interval the day before). None when neither is known."""
    if day_param:
        return dt.date.fromisoformat(str(day_param))
    if interval_start is None:
        return None
    import pendulum

    when = pendulum.parse(interval_start) if isinstance(interval_start, str) else pendulum.instance(interval_start)
    return when.in_timezone(tz).date()
