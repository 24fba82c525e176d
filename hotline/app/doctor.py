"""`hotline doctor`: what would make tomorrow's run wrong or its warnings unreadable, found before
the run. Each check says what it found and what to do; none changes anything.

- config: every configuration file against its model (a typo is named with its file and key);
- secrets: each alert channel's connection or environment variable is there (names only, never
  a value);
- warehouse: reachable, and at the latest migration;
- calendar: the holidays and 调休 of the coming days are known (the State Council announces next
  year's each November; the installed packages may not have them yet);
- report links: ``report_base_url`` is set, so a notice links to a page its reader can open;
- fonts: a CJK font is installed, so the pages and charts render Chinese.
"""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotline.app.runtime import Runtime
from hotline.core.reference import ConfigError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DoctorReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def _loaders(rt: Runtime) -> list[tuple[str, Any]]:
    """(file, a function that loads and validates it) for every configuration file."""
    from alerts.config import AlertsConfig
    from data_quality.policy import load_policy
    from detectors.profiles import DetectionConfig
    from hotline.core.config import read_sla, validate_calendar_overrides
    from hotline.core.reference import load_mapping, load_reference, read_yaml
    from proposals.config import ProposalsConfig

    d = Path(rt.settings.config_dir)
    out: list[tuple[str, Any]] = [
        ("regions, taxonomy, deadlines", lambda: load_reference(d)),
        ("alerts.yaml", lambda: AlertsConfig.load(d)),
        ("detection.yaml", lambda: DetectionConfig.load(d)),
        ("proposals.yaml", lambda: ProposalsConfig.load(d)),
        ("sla.yaml", lambda: read_sla(d)),
        ("data_quality.yaml", lambda: load_policy(d)),
    ]
    overrides = d / "calendar_overrides.yaml"
    if overrides.exists():
        out.append(("calendar_overrides.yaml", lambda: validate_calendar_overrides(read_yaml(overrides), overrides)))
    names = {p.stem for p in (d / "mappings").glob("*.yaml")}
    configured = str(rt.settings.source.get("mapping", "generator"))
    for name in sorted(names | {configured}):
        out.append((f"mapping {name}", lambda name=name: load_mapping(name, d)))
    return out


def check_config(rt: Runtime) -> Check:
    problems, n = [], 0
    for what, load in _loaders(rt):
        n += 1
        try:
            load()
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        return Check("config", False, f"{len(problems)} of {n} configuration files have mistakes", problems)
    return Check("config", True, f"{n} configuration files read and valid (hotline.yaml too: it was read first)")


def _channel_needs(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """What a channel needs from outside its file: ("connection", id) or ("env", NAME)."""
    needs = []
    if spec.get("conn_id"):
        needs.append(("connection", str(spec["conn_id"])))
    for key in ("url_env", "secret_env", "password_env"):
        if spec.get(key):
            needs.append(("env", str(spec[key])))
    return needs


def check_secrets(rt: Runtime) -> Check:
    from alerts.channels import DeliveryError

    cfg = rt.alerts_config
    secrets = rt.secrets()
    used = {c for chans in [*cfg.offices.values(), *cfg.office_defaults.values()] for c in chans}
    missing, n = [], 0
    for name in sorted(used):
        for kind, ref in _channel_needs(cfg.channels[name]):
            n += 1
            if kind == "env" and not rt.env.get(ref):
                missing.append(f"channel {name}: environment variable {ref} is not set")
            elif kind == "connection":
                try:
                    secrets.connection(ref)
                except DeliveryError:
                    missing.append(f"channel {name}: connection {ref} not found (set AIRFLOW_CONN_{ref.upper()} "
                                   f"or add it in Airflow)")
    if missing:
        return Check("secrets", False, f"{len(missing)} of {n} channel secrets missing: those offices get nothing",
                     missing)
    kinds = sorted({cfg.channels[c]["type"] for c in used})
    return Check("secrets", True, f"{len(used)} channel{'s' if len(used) != 1 else ''} in use ({', '.join(kinds)}): "
                                  + (f"all {n} secrets present" if n else "none needs a secret"))


def check_warehouse(rt: Runtime) -> Check:
    from sqlalchemy.engine import make_url

    from warehouse.db import schema_revision

    db = make_url(rt.settings.db_url)
    url = db.render_as_string(hide_password=True)
    if db.get_backend_name() == "sqlite" and db.database and not Path(db.database).exists():
        return Check("warehouse", False, f"{url}: no warehouse file yet", ["run `hotline init` or `make run`"])
    try:
        current, head = schema_revision(rt.engine)
    except Exception as exc:  # noqa: BLE001 - any driver's failure to connect is the finding
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("warehouse", False, f"{url}: not reachable", [first.replace(rt.settings.db_url, url)])
    if current != head:
        return Check("warehouse", False, f"{url}: schema at {current or 'nothing'}, the code needs {head}",
                     ["run `hotline init` (or the next daily run's ingest migrates it)"])
    return Check("warehouse", True, f"{url}: reachable, schema at the latest migration ({head})")


def check_calendar(rt: Runtime, today: dt.date, days: int = 60) -> Check:
    """Every year the coming ``days`` touch has its 调休 known: from chinese-calendar (through
    2026), config/calendar_overrides.yaml, or the holidays package where it names the swaps. The
    package alone computes a later year's holidays without their make-up working days."""
    from hotline.core.calendar import year_calendar

    end = today + dt.timedelta(days=days)
    unknown, known = [], []
    for year in range(today.year, end.year + 1):
        cal = year_calendar(year, str(rt.settings.config_dir))
        if cal.source == "holidays" and not cal.makeup_workdays:
            unknown.append(f"{year}: holidays computed without their 调休 (make-up working days); add the State "
                           f"Council's announcement for {year} to config/calendar_overrides.yaml")
        else:
            known.append(f"{year} ({cal.source})")
    if unknown:
        return Check("calendar", False, f"调休 not known for {today} to {end}: forecasts, feed-health bands and "
                                        f"deadlines would treat make-up working days as weekends", unknown)
    return Check("calendar", True, f"holidays and 调休 known for {today} to {end}: {', '.join(known)}")


def check_report_links(rt: Runtime) -> Check:
    base = rt.alerts_config.report_base_url
    if not base:
        return Check("report_links", False, "report_base_url is not set in config/alerts.yaml: notices link to files "
                                            "on this server's disk, which no recipient can open")
    from hotline.app.accounts import web_secret
    from hotline.core.links import LINK_DAYS, MIN_SECRET

    key = web_secret(rt.env, rt.settings.var_dir)
    if not key:
        return Check("report_links", False, f"notices link to {base}, but the site's secret (HOTLINE_WEB_SECRET) "
                                            "is not set: links are not signed and ask every reader to sign in")
    if len(key) < MIN_SECRET:
        return Check("report_links", False, f"HOTLINE_WEB_SECRET is shorter than {MIN_SECRET} characters: "
                                            "links and forms would be signed with a guessable key")
    return Check("report_links", True, f"notices link to {base} with signed links (valid {LINK_DAYS} days)")


def check_fonts() -> Check:
    if shutil.which("fc-list") is None:
        return Check("fonts", False, "fontconfig (fc-list) is not installed: no CJK font can be found for the pages "
                                     "and charts", ["install fonts-noto-cjk (make browser)"])
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=60).stdout
    families = sorted({f.split(",")[0].strip() for f in out.splitlines() if f.strip()})
    if not families:
        return Check("fonts", False, "no font with Chinese glyphs is installed: pages and charts would show boxes",
                     ["install fonts-noto-cjk (make browser)"])
    return Check("fonts", True, f"{len(families)} CJK font families, e.g. {families[0]}")


def doctor(rt: Runtime, today: dt.date) -> DoctorReport:
    """All checks; a check that cannot even load its config reports that instead of crashing."""
    checks = [check_config(rt)]
    for name, run in (("secrets", lambda: check_secrets(rt)), ("warehouse", lambda: check_warehouse(rt)),
                      ("calendar", lambda: check_calendar(rt, today)), ("report_links", lambda: check_report_links(rt)),
                      ("fonts", check_fonts)):
        try:
            checks.append(run())
        except ConfigError as exc:
            checks.append(Check(name, False, "not checked: its configuration does not load", [str(exc)]))
    return DoctorReport(checks)
