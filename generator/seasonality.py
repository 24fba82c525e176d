"""Named yearly profiles that shape each category's expected volume through the year.

Each profile maps a calendar frame (hotline.core.calendar.calendar_frame) to a multiplier per day,
1.0 meaning "an ordinary day". Profiles are named in config/generator.yaml. The shapes follow the
published patterns in shared REALISM.md: the heating season's first-day peak in the north,
typhoons and the 龙舟水 rains in the south, wage arrears before Spring Festival, school enrolment
in July and August.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Place:
    """What a profile needs to know about the city."""

    climate: str  # "north" or "south"
    coastal: bool
    heating_season: tuple[str, str] | None  # ("11-15", "03-15")


def _bump(doy: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = np.abs(doy - centre)
    d = np.minimum(d, 365.25 - d)  # circular: late December is close to early January
    return np.exp(-0.5 * (d / width) ** 2)


def _heating(cal: pd.DataFrame, place: Place) -> np.ndarray:
    if place.climate != "north" or place.heating_season is None:
        return np.ones(len(cal))
    ds = cal["ds"]
    start_md, end_md = place.heating_season
    out = np.full(len(cal), 0.1)
    for year in sorted(set(ds.dt.year) | {ds.dt.year.min() - 1}):
        start = pd.Timestamp(f"{year}-{start_md}")
        end = pd.Timestamp(f"{year + 1}-{end_md}")
        days_in = (ds - start).dt.days.to_numpy()
        in_season = (ds >= start) & (ds <= end)
        # The first day is the year's call peak (Liaocheng 2018: 55% of all calls about heating),
        # decaying over the first week as complaints are fixed.
        out = np.where(in_season, 1.0 + 19.0 * np.exp(-days_in / 2.5), out)
        test_run = (days_in >= -8) & (days_in < 0)  # test firing from about 7 November
        out = np.where(test_run, 0.6, out)
    return out


def profile(name: str, cal: pd.DataFrame, place: Place) -> np.ndarray:
    """The multiplier of profile ``name`` for each day of ``cal``."""
    doy = cal["ds"].dt.dayofyear.to_numpy().astype(float)
    dfs = cal["days_from_spring_festival"].to_numpy()
    south = place.climate == "south"
    if name == "summer":
        return 1 + 0.5 * _bump(doy, 200, 45)
    if name == "summer_peak":
        return 1 + (1.4 if south else 1.0) * _bump(doy, 205, 30)
    if name == "typhoon":
        amp = (2.0 if place.coastal else 0.8) if south else (0.5 if place.coastal else 0.2)
        return 1 + amp * _bump(doy, 230, 35)
    if name == "rainy":
        if south:  # 龙舟水 (late May - June), then the typhoon rains
            return 1 + 1.0 * _bump(doy, 160, 20) + 0.8 * _bump(doy, 240, 25)
        return 1 + 1.5 * _bump(doy, 205, 18)  # northern 七下八上 main flood season
    if name == "winter":
        return 1 + (0.2 if south else 0.6) * _bump(doy, 15, 40)
    if name == "heating":
        return _heating(cal, place)
    if name == "construction":
        quiet = np.where((dfs >= -10) & (dfs <= 20), 0.4, 1.0)  # sites close over Spring Festival
        return quiet * (1 + 0.3 * _bump(doy, 150, 60) + 0.3 * _bump(doy, 280, 40))
    if name == "pre_spring_festival":
        # Construction wages fall due at year end: +21% y/y in Qingdao's year-end count; complaints
        # build over the six weeks before the festival and stop over the holiday.
        before = np.where((dfs >= -60) & (dfs <= 0), 2.2 * np.exp(-(((dfs + 14) / 16.0) ** 2)), 0.0)
        after = np.where((dfs > 0) & (dfs <= 10), -0.5, 0.0)
        return 1 + before + after
    if name == "enrolment":
        return 1 + 3.0 * _bump(doy, 201, 22) + 1.0 * _bump(doy, 140, 15)
    if name == "graduation":
        return 1 + 0.6 * _bump(doy, 182, 20)
    if name in ("school_term", "school_holidays"):
        summer = (doy >= 191) & (doy <= 243)
        winter = (dfs >= -20) & (dfs <= 20)
        off = summer | winter
        return np.where(off, 0.3, 1.0) if name == "school_term" else np.where(off, 2.0, 1.0)
    if name == "holiday_travel":
        names = cal["holiday_name"].fillna("")
        golden = names.str.contains("National|Labou?r|Spring|国庆|劳动|春节", regex=True).to_numpy()
        return np.where(golden, 2.5, 1.0) * (1 + 0.3 * _bump(doy, 210, 25))
    if name == "shopping_festival":  # Double 11 and 618 after-sales complaints
        return 1 + 1.5 * _bump(doy, 320, 6) + 0.8 * _bump(doy, 173, 5)
    if name == "tax_season":  # individual income tax annual reconciliation, March - June
        return 1 + 1.5 * _bump(doy, 100, 35)
    if name == "insurance_payment":  # urban-rural residents' medical insurance, autumn payment window
        return 1 + 1.2 * _bump(doy, 300, 40)
    raise ValueError(f"unknown season profile {name!r} (config/generator.yaml)")
