"""The configuration files as pydantic models: a typo or a value of the wrong kind is an error
naming the file and the key (``extra="forbid"``), never a setting silently left at its default.

docs/CONFIG.md is generated from these models (``python -m hotline.core.config > docs/CONFIG.md``;
a test keeps it current). The loaders (``hotline.core.settings.load_settings``,
``hotline.core.sla.SlaConfig.load``) validate a file's document with :func:`validate` first.
"""
from __future__ import annotations

import copy
import datetime as dt
import functools
import types
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from hotline.core.reference import ConfigError

# The demo's province (Guangdong) when config/hotline.yaml names none.
DEFAULT_PROVINCE = "440000"

# A code or a name: YAML reads an unquoted 440000 as a number; it means the same string.
Code = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]


# A day: YAML reads an unquoted 2026-11-25 as a date; it means the ISO string.
Day = Annotated[str, BeforeValidator(lambda v: v.isoformat() if isinstance(v, dt.date) else v)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceFile(Strict):
    """``source:`` in config/hotline.yaml: where the daily DAG reads each day's tickets."""

    kind: Literal["generator", "sql", "csv"] = Field("generator", description="generator (the demo), sql or csv")
    mapping: str = Field("generator", description="the mapping in config/mappings/ from the source's columns")
    province: Code = Field(DEFAULT_PROVINCE, description="the province the pipeline serves (GB/T 2260 code)")
    seed: int = Field(12345, description="generator: the random seed")
    scale: float = Field(0.01, gt=0, description="generator: the share of the province's real volume")
    anomalies: bool = Field(True, description="generator: inject its yearly anomaly plan")
    planted_events: list[dict[str, Any]] = Field(
        default_factory=list, description="generator: the demo's own events, dated back from `anchor`")
    anchor: Day | None = Field(None, description="generator: the day planted events are dated from "
                                                 "(HOTLINE_DEMO_DAY)")
    conn_id: str | None = Field(None, description="sql: the Airflow connection of the ticket database "
                                                  "(AIRFLOW_CONN_<ID> or Airflow's store); hotline_source when "
                                                  "no url is given")
    url: str | None = Field(None, description="sql: the ticket database's SQLAlchemy URL, without a password "
                                              "(a password belongs in the connection)")
    table: str | None = Field(None, description="sql: the ticket table")
    schema_name: str | None = Field(None, alias="schema", description="sql: the table's schema")
    path: str | None = Field(None, description="csv: the day's export, `{date}` replaced by the day")
    encoding: str = Field("auto", description="csv: the file's encoding (auto detects UTF-8, GB18030)")


    @field_validator("url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        """This file is read by every service and baked into images: a database password here
        would travel with it."""
        if url and urllib.parse.urlsplit(url).password:
            raise ValueError("a password in a settings file; put the database in an Airflow connection "
                             "(source.conn_id, default hotline_source: AIRFLOW_CONN_HOTLINE_SOURCE or Airflow's "
                             "store) and leave url out")
        return url


class ForecastingFile(Strict):
    """``forecasting:`` in config/hotline.yaml: the daily forecast."""

    horizon: int = Field(30, ge=1, description="days forecast past the day")
    history_days: int = Field(420, ge=28, description="days of history read (a year and more lets the yearly "
                                                      "pattern in)")
    model: str = Field("auto", description="auto (chosen per series by backtest) or one model's name")
    candidates: tuple[str, ...] = Field(("fast", "fast_local", "fast_trend", "seasonal_naive"),
                                        description="the models auto may choose from")


class OperationsFile(Strict):
    """``operations:`` in config/hotline.yaml: how the DAGs run (hotline.app.operations checks
    ``daily_deadline``, with a hint for an unquoted YAML time)."""

    owner: str = Field("hotline", description="every task's owner")
    retries: int = Field(2, ge=0, strict=True, description="retries per task after the first try")
    retry_delay_seconds: float = Field(300, ge=0, description="the first retry's delay; it doubles")
    max_retry_delay_seconds: float = Field(3600, ge=0, description="the longest delay between retries")
    model_pool: str = Field("hotline_models", description="the pool of the forecast and detect tasks")
    daily_deadline: Any = Field("06:00", description="HH:MM (the province's time) by which the daily run of a "
                                                     "day should be done the next morning; off: none")


class HotlineFile(Strict):
    """config/hotline.yaml (or the file HOTLINE_SETTINGS names): the deployment's settings.
    Environment variables override them (hotline.core.settings)."""

    database: str | None = Field(None, description="the warehouse's SQLAlchemy URL (HOTLINE_DB_URL); default a "
                                                   "SQLite file under var/")
    var_dir: str | None = Field(None, description="where runs write (HOTLINE_VAR_DIR); default <project>/var")
    caller_salt: str | None = Field(None, description="the salt of caller keys (HOTLINE_CALLER_SALT)")
    lookback_days: int = Field(7, ge=0, description="days each daily run re-reads for late and updated tickets")
    lock_wait_seconds: float = Field(900, ge=0, description="how long a second run of the same day waits")
    source: SourceFile = Field(default_factory=SourceFile, description="the daily source")
    forecasting: ForecastingFile = Field(default_factory=ForecastingFile, description="the daily forecast")
    operations: OperationsFile = Field(default_factory=OperationsFile, description="how the DAGs run")


class RankingSection(Strict):
    """``ranking:`` in config/sla.yaml: the horse race (赛马); sla.ranking.RankingConfig."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"on_time": 0.2, "handling_hours": 0.1, "overdue": 0.15, "repeat": 0.15,
                                 "satisfaction": 0.2, "resolution": 0.2},
        description="each metric's weight in the composite (on_time, handling_hours, overdue, repeat, "
                    "satisfaction, resolution)")
    min_closed: int = Field(30, ge=1, description="fewer closed tickets in the month: listed, not ranked")
    min_metric_n: int = Field(20, ge=1, description="fewer tickets behind one metric: that metric unscored")
    significance_z: float = Field(2.58, gt=0, description="funnel limit for significantly worse than the mix "
                                                          "predicts")
    bottom: int = Field(1, ge=0, description="units flagged at the bottom of each group of two or more")


class TrendsSection(Strict):
    """``trends:`` in config/sla.yaml: hotspots rising across cities; sla.trends.TrendConfig."""

    min_count: int = Field(30, ge=0, description="a rise needs at least this many tickets in the month")
    ratio: float = Field(1.3, gt=0, description="and this many times the previous month's rate")
    z: float = Field(3.0, ge=0, description="and this far beyond counting noise")
    cross_city_min: int = Field(3, ge=1, description="cities rising together: a cross-city issue")


class SlaFile(Strict):
    """config/sla.yaml: the red/yellow lights, escalation, the repeat window, the horse race and
    the hotspots."""

    yellow_share: float = Field(0.2, gt=0, lt=1, description="yellow while less than this share of the "
                                                             "handling time remains")
    levels: tuple[str, ...] = Field(("district", "city", "province"), min_length=2,
                                    description="the escalation levels, lowest first")
    escalate_again_hours: float = Field(24.0, gt=0, description="a red ticket goes up one more level after this")
    urgent_class: str = Field("urgent", description="the deadline class (deadlines.yaml) of urgent tickets")
    repeat_window_days: int = Field(30, ge=1, description="a repeat is the same caller and problem within this")
    ranking: RankingSection = Field(default_factory=RankingSection, description="the horse race")
    trends: TrendsSection = Field(default_factory=TrendsSection, description="the hotspots")


Action = Literal["continue", "warn", "halt"]
Share = Annotated[float, Field(ge=0, le=1)]


class ShareLimits(Strict):
    """A share of the batch with the action each limit takes: above ``warn``, a warning; above
    ``halt``, the batch stops (either may be left out)."""

    warn: Share | None = Field(None, description="above this share: warn")
    halt: Share | None = Field(None, description="above this share: halt")


class VolumeBand(Strict):
    """A day's count against the same weekday of recent weeks: outside ``low`` to ``high`` times
    the expected count (widened to the Poisson tail where counts are small) takes ``action``."""

    low: float = Field(ge=0, description="the lowest ratio of the expected count")
    high: float = Field(gt=0, description="the highest ratio of the expected count")
    action: Action = Field(description="continue, warn or halt")
    min_expected: float = Field(ge=0, description="series expecting fewer tickets a day are not checked")
    tail: float = Field(0.001, gt=0, lt=0.5, description="the Poisson tail the band is widened to")


class SilentActions(Strict):
    """A region or channel that normally reports and sent nothing."""

    city: Action = Field("halt", description="a silent city")
    district: Action = Field("warn", description="a silent district")
    channel: Action = Field("warn", description="a silent channel")


class HourProfile(Strict):
    """The day's tickets by hour against recent weeks (total variation distance)."""

    max_distance: float = Field(gt=0, le=1, description="above this distance the action is taken")
    action: Action = Field(description="continue, warn or halt")
    min_tickets: int = Field(ge=0, description="fewer tickets on the day: not checked")


class TicketsBatchPolicy(Strict):
    """``tickets_batch:``: the whole batch's rejected and garbled rows."""

    failed_share: ShareLimits = Field(description="rows rejected by the mapping or the suite")
    mojibake_share: ShareLimits = Field(description="text garbled by a wrong encoding")


class FeedHealthPolicy(Strict):
    """``feed_health:``: the day's volumes by city, district and channel, and the feed's shape."""

    history_weeks: int = Field(ge=1, description="the band is learned from the same weekday in these weeks")
    city_volume: VolumeBand = Field(description="a city's count")
    district_volume: VolumeBand = Field(description="a district's count")
    channel_volume: VolumeBand = Field(description="a channel's count")
    silent: SilentActions = Field(default_factory=SilentActions, description="regions and channels that sent "
                                                                                "nothing")
    unmapped_share: ShareLimits = Field(description="tickets whose category the mapping does not know")
    duplicate_share: ShareLimits = Field(description="the same ticket again under another id")
    late_share: ShareLimits = Field(description="new tickets of earlier days among the run's new tickets")
    hour_profile: HourProfile | None = Field(None, description="the day's hours against recent weeks")


class DataQualitySection(Strict):
    """The policy of one scope: the defaults, or a tier's or a city's (merged onto the defaults)."""

    tickets_batch: TicketsBatchPolicy = Field(description="the batch checks")
    feed_health: FeedHealthPolicy = Field(description="the feed-health checks")


class DataQualityFile(Strict):
    """config/data_quality.yaml: the data-quality policy. A tier (``tiers.<tier>``) overrides the
    defaults and a city (``cities.<code>``) its tier; each override, merged onto the defaults, is
    checked as a whole."""

    defaults: DataQualitySection = Field(description="every city's policy unless its tier or itself says "
                                                     "otherwise")
    tiers: dict[str, dict[str, Any] | None] = Field(default_factory=dict, description="overrides by city size "
                                                                                     "tier")
    cities: dict[Code, dict[str, Any] | None] = Field(default_factory=dict, description="overrides by city code")


def merge(base: dict, over: dict | None) -> dict:
    """``over`` laid on ``base``, mapping by mapping (a copy; neither is changed)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def validate_data_quality(doc: Any, path: str | Path) -> DataQualityFile:
    """config/data_quality.yaml: the file, then each tier's and city's override merged onto the
    defaults (``config/data_quality.yaml: tiers.small: feed_health.city_volume.lo: unknown key``)."""
    model = validate(DataQualityFile, doc, path)
    defaults = (doc or {})["defaults"]
    for group in ("tiers", "cities"):
        for name, over in ((doc or {}).get(group) or {}).items():
            validate(DataQualitySection, merge(defaults, over), f"{path}: {group}.{name}")
    return model


class YearOverride(Strict):
    """One year's arrangement as the State Council announced it."""

    holidays: dict[dt.date, str] = Field(default_factory=dict, description="each day off: its holiday's name")
    makeup_workdays: list[dt.date] = Field(default_factory=list, description="the 调休 weekend days worked")


class CalendarOverridesFile(Strict):
    """config/calendar_overrides.yaml: holidays and 调休 announced after the installed calendar
    packages were released (each November for the next year). A year given here replaces the
    packages' calendar of that year."""

    years: dict[int, YearOverride] = Field(default_factory=dict, description="by year: holidays and "
                                                                               "makeup_workdays")


def validate_calendar_overrides(doc: Any, path: str | Path) -> CalendarOverridesFile:
    """config/calendar_overrides.yaml, with each day inside the year it is listed under (a
    2026-02-14 under 2027 is a typo that would move no day at all)."""
    model = validate(CalendarOverridesFile, doc, path)
    for year, ov in model.years.items():
        for key, days in (("holidays", list(ov.holidays)), ("makeup_workdays", ov.makeup_workdays)):
            wrong = [d.isoformat() for d in days if d.year != year]
            if wrong:
                raise ConfigError(f"{path}: years.{year}.{key}: {', '.join(wrong)} not in {year}")
    return model


MAPPED_FIELDS = ("ticket_id", "received_at", "caller_phone", "channel", "request_type", "province_code", "city_code",
                 "district_code", "street_code", "category", "content", "department", "urgency", "deadline_at",
                 "closed_at", "status", "is_repeat", "satisfaction", "resolved", "updated_at")


class FieldSpec(Strict):
    """Where one canonical field comes from (ingestion/canonical.py): a source ``column`` (with a
    value ``map``, a timestamp ``format``, ``optional``), a constant ``value``, the ``greatest`` of
    other timestamps, ``closed_if`` a timestamp is set, or ``from_taxonomy``; ``category`` adds
    ``detail_column`` / ``detail_map``, ``names: taxonomy``, ``codes`` and ``unmapped``."""

    column: Code | None = Field(None, description="the source column")
    map: dict[Any, Any] | None = Field(None, description="source value: canonical value")
    format: str | None = Field(None, description="a timestamp's strptime format (default ISO 8601)")
    optional: bool = Field(False, description="empty values allowed")
    value: Any = Field(None, description="the same value for every row")
    greatest: list[str] | None = Field(None, description="the latest of these timestamp fields")
    closed_if: str | None = Field(None, description="status closed when this timestamp field is set")
    otherwise: str | None = Field(None, description="the status otherwise")
    from_taxonomy: bool = Field(False, description="deadline_at from the category's deadline class")
    detail_column: Code | None = Field(None, description="category: the detail column (\"type / detail\")")
    detail_map: dict[str, str] | None = Field(None, description="category: \"type / detail\": code")
    names: Literal["taxonomy"] | None = Field(None, description="category: values are the taxonomy's "
                                                                "\"一级-二级\" names")
    codes: bool = Field(False, description="category: values are canonical codes")
    unmapped: Literal["keep", "quarantine"] = Field("quarantine", description="category: an unmapped value "
                                                                              "loads as other.unmapped (keep) or "
                                                                              "is quarantined")


class MappingFile(Strict):
    """config/mappings/<name>.yaml (or a mapping given by path): how a source's columns become the
    canonical ticket (docs/DATA.md)."""

    source: str | None = Field(None, description="the source's name, kept with each ticket (default: the "
                                                 "file's name)")
    name: str | None = Field(None, description="the mapping's name (default: the file's name)")
    format: Literal["csv", "sql", "generator"] | None = Field(None, description="the kind of source it reads")
    encoding: str | None = Field(None, description="a CSV export's encoding (auto detects UTF-8, GB18030)")
    timezone: str | None = Field(None, description="the zone of local timestamps (default the region's)")
    fields: dict[Literal[MAPPED_FIELDS], FieldSpec] = Field(description="canonical field: where it comes from")


def validate_mapping(doc: Any, path: str | Path) -> MappingFile:
    """A mapping file, with its time zone known to this machine and the fields every ticket needs."""
    import zoneinfo

    model = validate(MappingFile, doc, path)
    if model.timezone is not None:
        try:
            zoneinfo.ZoneInfo(model.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{path}: timezone: unknown time zone {model.timezone!r} (e.g. Asia/Shanghai)") from None
    missing = [f for f in ("ticket_id", "received_at", "category") if f not in model.fields]
    if missing:
        raise ConfigError(f"{path}: fields: {', '.join(missing)} missing (every ticket needs them)")
    return model


FILES: dict[str, type[Strict]] = {"config/hotline.yaml": HotlineFile, "config/sla.yaml": SlaFile,
                                  "config/data_quality.yaml": DataQualityFile,
                                  "config/calendar_overrides.yaml": CalendarOverridesFile,
                                  "config/mappings/<name>.yaml": MappingFile}


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(the file)"


def validate(model: type[Strict], doc: Any, path: str | Path) -> Strict:
    """``doc`` (a YAML document) as ``model``; every problem in one ConfigError naming the file and
    each key (``config/hotline.yaml: source.kind: ...``)."""
    try:
        return model.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            if e["loc"] and e["loc"][-1] == "[key]":  # a mapping's key that is not one of its known keys
                problems.append(f"{_where(e['loc'][:-1])}: unknown key; {e['msg']}")
            elif e["type"] == "extra_forbidden":
                known = ", ".join(sorted(_fields_at(model, e["loc"][:-1])))
                problems.append(f"{_where(e['loc'])}: unknown key (known: {known})")
            elif e["type"] == "value_error":  # our own checks; the value may be a secret: not echoed
                problems.append(f"{_where(e['loc'])}: {e['msg']}")
            else:
                problems.append(f"{_where(e['loc'])}: {e['msg']} (got {e.get('input')!r})")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None


def read_sla(config_dir: str | Path) -> SlaFile:
    """config/sla.yaml, validated: read once for the lights, the ranking and the trends (again
    only when the file changes)."""
    path = Path(config_dir) / "sla.yaml"
    st = path.stat()
    return _read_sla(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _read_sla(path: str, _mtime_ns: int, _size: int) -> SlaFile:
    import yaml

    return validate(SlaFile, yaml.safe_load(Path(path).read_text(encoding="utf-8")), path)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the model accepts at ``loc`` (for the unknown-key message); a mapping's own keys
    (``fields.<name>``) are stepped over."""
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        sub = _model_of(getattr(field, "annotation", None))
        if sub is None:
            return []
        if get_origin(field.annotation) is dict:
            if not parts:
                return []
            parts.pop(0)
        model = sub
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_of(ann: Any) -> type[BaseModel] | None:
    """The model a field holds (``Section`` or ``Section | None``), else None."""
    for a in (ann, *get_args(ann)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _type(ann: Any) -> str:
    """A field's type as the reference shows it (``str or none``, ``one of a, b``)."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is Annotated:
        return _type(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type(a) for a in args)
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(ann, "__name__", str(ann))


def reference() -> str:
    """docs/CONFIG.md: every key of every modelled file, with its type, default and meaning."""
    out = ["# Configuration reference", "",
           "Generated from the models in hotline/core/config.py (`python -m hotline.core.config > docs/CONFIG.md`);",
           "a key not listed here is an error naming the file and the key.", ""]

    seen: dict[type[BaseModel], str] = {}

    def section(file: str, where: str, model: type[BaseModel]) -> None:
        seen[model] = where
        title = f"{file} `{where}:`" if where else file
        out.extend([f"## {title}", "", " ".join((model.__doc__ or "").split()), "",
                    "| key | type | default | meaning |", "|---|---|---|---|"])
        nested = []
        for name, f in model.model_fields.items():
            key = f.alias or name
            sub = _model_of(f.annotation)
            if sub is not None:
                at = (f"{where}.{key}" if where else key) + (".<key>" if get_origin(f.annotation) is dict else "")
                if sub in seen:
                    out.append(f"| `{key}` | section | | {f.description} (the keys of `{seen[sub]}`) |")
                else:
                    nested.append((at, sub))
                    seen[sub] = at
                    out.append(f"| `{key}` | section | | {f.description} (`{at}:` below) |")
                continue
            tname = _type(f.annotation)
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            shown = "required" if f.is_required() else "" if default is None else \
                f"`{list(default) if isinstance(default, tuple) else default}`"
            out.append(f"| `{key}` | {tname} | {shown} | {f.description or ''} |")
        out.append("")
        for at, m in nested:
            section(file, at, m)

    for path, model in FILES.items():
        section(path, "", model)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
