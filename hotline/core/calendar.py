"""The Chinese working calendar: public holidays, 调休 make-up workdays, Spring Festival.

Sources, in order of authority:
1. ``config/calendar_overrides.yaml``: an operator adds a newly announced year (the State
   Council announces each year's holidays and 调休 in November) without waiting for a package.
2. ``chinese_calendar`` (official arrangements, 2004-2026 in version 1.11).
3. ``holidays`` (computes lunar holidays of any year; names each announced swap "Day off
   (substituted from MM/DD/YYYY)", from which the make-up workday is read). For a year with no
   announced 调休 it gives the holidays only, and weekends stay rest days.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hotline.core.config import validate_calendar_overrides
from hotline.core.reference import DEFAULT_CONFIG_DIR, read_yaml

_SUBSTITUTED = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")


@dataclass(frozen=True)
class YearCalendar:
    year: int
    holidays: dict[dt.date, str]       # statutory rest days, with a name
    makeup_workdays: frozenset[dt.date]  # weekend days worked (调休)
    spring_festival: dt.date           # lunar new year's day
    source: str


def _spring_festival(year: int) -> dt.date:
    import holidays as hol

    for d, name in sorted(hol.China(years=year, language="en_US").items()):
        if "Spring Festival" in name:
            return d
    raise ValueError(f"no Spring Festival found for {year}")


def _from_chinese_calendar(year: int) -> YearCalendar | None:
    import chinese_calendar as cc

    try:
        cc.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return None
    hols: dict[dt.date, str] = {}
    makeup = set()
    d = dt.date(year, 1, 1)
    while d.year == year:
        on_holiday, name = cc.get_holiday_detail(d)
        if on_holiday and name is not None:
            hols[d] = str(name)
        elif not on_holiday and d.weekday() >= 5:
            makeup.add(d)
        d += dt.timedelta(days=1)
    return YearCalendar(year, hols, frozenset(makeup), _spring_festival(year), "chinese_calendar")


def _from_holidays_package(year: int) -> YearCalendar:
    import holidays as hol

    hols: dict[dt.date, str] = {}
    makeup = set()
    for d, name in hol.China(years=year, language="en_US").items():
        hols[d] = name
        m = _SUBSTITUTED.search(name)
        if m:
            makeup.add(dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2))))
    return YearCalendar(year, hols, frozenset(makeup), _spring_festival(year), "holidays")


def _overrides(config_dir: Path) -> dict[int, dict]:
    path = Path(config_dir) / "calendar_overrides.yaml"
    if not path.exists():
        return {}
    return dict(validate_calendar_overrides(read_yaml(path), path).years)


@functools.lru_cache(maxsize=64)
def year_calendar(year: int, config_dir: str = str(DEFAULT_CONFIG_DIR)) -> YearCalendar:
    ov = _overrides(Path(config_dir)).get(year)
    if ov is not None and (ov.holidays or ov.makeup_workdays):
        return YearCalendar(year, dict(ov.holidays), frozenset(ov.makeup_workdays), _spring_festival(year), "config")
    return _from_chinese_calendar(year) or _from_holidays_package(year)


def is_workday(day: dt.date, config_dir: str = str(DEFAULT_CONFIG_DIR)) -> bool:
    """A working day: a weekday that is not a holiday, or a 调休 make-up weekend day."""
    yc = year_calendar(day.year, config_dir)
    if day in yc.holidays:
        return False
    if day in yc.makeup_workdays:
        return True
    return day.weekday() < 5


def calendar_frame(start: dt.date, end: dt.date, config_dir: str = str(DEFAULT_CONFIG_DIR),
                   country: str = "CN") -> pd.DataFrame:
    """One row per day in [start, end] with the calendar facts models and generators need.

    Columns: ds (datetime64), weekday (0=Mon), is_holiday, holiday_name, is_makeup_workday,
    is_workday, days_from_spring_festival (signed, to the nearest lunar new year's day),
    calendar_source.

    ``country`` is the region's holiday calendar: CN (official holidays and 调休), any country
    code of the ``holidays`` package (the NYC sample data: US), without make-up days or a
    Spring Festival (days_from_spring_festival is then 999), or ``none``: weekdays only, no
    holidays (a series from anywhere, judged on its own weekly rhythm).
    """
    if country.lower() == "none":
        return _foreign_frame(start, end, None)
    if country != "CN":
        return _foreign_frame(start, end, country)
    days = pd.date_range(start, end, freq="D")
    years = range(start.year - 1, end.year + 2)
    cals = {y: year_calendar(y, config_dir) for y in years}
    py_days = [d.date() for d in days]
    hol_name = [cals[d.year].holidays.get(d, "") for d in py_days]
    is_hol = np.array([n != "" for n in hol_name])
    makeup = np.array([d in cals[d.year].makeup_workdays for d in py_days])
    weekday = days.weekday.to_numpy()
    sf = np.array([np.datetime64(cals[y].spring_festival) for y in years])
    dnum = days.to_numpy().astype("datetime64[D]")
    diffs = (dnum[:, None] - sf[None, :]).astype(int)
    nearest = diffs[np.arange(len(days)), np.abs(diffs).argmin(axis=1)]
    return pd.DataFrame({
        "ds": days,
        "weekday": weekday,
        "is_holiday": is_hol,
        "holiday_name": hol_name,
        "is_makeup_workday": makeup,
        "is_workday": (~is_hol) & ((weekday < 5) | makeup),
        "days_from_spring_festival": nearest,
        "calendar_source": [cals[d.year].source for d in py_days],
    })


def add_working_days(start: dt.datetime, n: int, config_dir: str = str(DEFAULT_CONFIG_DIR)) -> dt.datetime:
    """The moment ``n`` working days after ``start`` (same time of day), skipping rest days."""
    d = start
    left = n
    while left > 0:
        d += dt.timedelta(days=1)
        if is_workday(d.date(), config_dir):
            left -= 1
    return d


def deadlines_for(received_local: pd.DatetimeIndex | pd.Series, classes, deadline_classes: dict,
                  config_dir: str = str(DEFAULT_CONFIG_DIR)) -> pd.DatetimeIndex:
    """Vectorised handling deadlines (办理时限) for tickets received at local times.

    ``classes`` names each ticket's deadline class (config/deadlines.yaml): a class with ``hours``
    runs on the clock; one with ``working_days`` ends at the same time of day that many working
    days later, on the Chinese calendar with 调休.
    """
    rec = pd.DatetimeIndex(received_local)
    if len(rec) == 0:
        return rec
    classes = np.asarray(classes, dtype=object)
    hours = np.array([float(deadline_classes[c].get("hours", 0)) for c in classes])
    wdays = np.array([int(deadline_classes[c].get("working_days", 0)) for c in classes])
    days = rec.tz_localize(None).normalize() if rec.tz is not None else rec.normalize()
    first, last = days.min().date(), days.max().date() + dt.timedelta(days=int(wdays.max()) * 3 + 40)
    cal = calendar_frame(first, last, config_dir)
    cw = np.cumsum(cal["is_workday"].to_numpy().astype(int))
    pos = (days - pd.Timestamp(first)).days.to_numpy()
    target = np.searchsorted(cw, cw[pos] + wdays, side="left")
    offset_h = np.where(wdays > 0, (target - pos) * 24.0, hours)
    return rec + pd.to_timedelta(offset_h, unit="h")


def _foreign_frame(start: dt.date, end: dt.date, country: str | None) -> pd.DataFrame:
    import holidays

    days = pd.date_range(start, end, freq="D")
    if country is None:
        hol = {}
    else:
        try:
            hol = holidays.country_holidays(country, years=range(start.year, end.year + 1))
        except NotImplementedError:
            raise ValueError(f"calendar {country!r}: not a country the holidays package knows (or CN, none)") from None
    names = [hol.get(d.date(), "") or "" for d in days]
    is_hol = np.array([n != "" for n in names])
    weekday = days.weekday.to_numpy()
    return pd.DataFrame({"ds": days, "weekday": weekday, "is_holiday": is_hol, "holiday_name": names,
                         "is_makeup_workday": np.zeros(len(days), bool), "is_workday": (~is_hol) & (weekday < 5),
                         "days_from_spring_festival": np.full(len(days), 999),
                         "calendar_source": f"holidays:{country}" if country else "none"})
