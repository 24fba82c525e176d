"""Series ids, made and read in one place: ``"<region level>:<region code>|<category level>:<category code>"``,
e.g. ``"district:440306|l2:utilities.water_supply"`` or ``"city:440300|all:*"`` (docs/SCHEMA.md).

Scalar (:func:`series_id`, :func:`parse`) and column-wise (:func:`series_ids`) forms give the same
strings; ``parse(series_id(*k)) == k`` for every key."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

KEY_COLUMNS = ("region_level", "region_code", "category_level", "category_code")


class SeriesKey(NamedTuple):
    region_level: str   # province, city, district
    region_code: str    # GB/T 2260 code
    category_level: str  # all, l1, l2
    category_code: str  # "*" for all categories

    @property
    def id(self) -> str:
        return series_id(*self)

    @property
    def region(self) -> str:
        """``"<region level>:<region code>"``."""
        return f"{self.region_level}:{self.region_code}"

    @property
    def category(self) -> str:
        """``"<category level>:<category code>"``: what series of one category share across regions."""
        return f"{self.category_level}:{self.category_code}"


def series_id(region_level: str, region_code: str, category_level: str, category_code: str) -> str:
    return f"{region_level}:{region_code}|{category_level}:{category_code}"


def parse(sid: str) -> SeriesKey:
    """The key of a series id; a string that is not one raises ValueError naming it."""
    region, sep, cat = str(sid).partition("|")
    rl, s1, rc = region.partition(":")
    cl, s2, cc = cat.partition(":")
    if not (sep and s1 and s2 and rl and rc and cl and cc):
        raise ValueError(f"{sid!r} is not a series id (region_level:code|category_level:code)")
    return SeriesKey(rl, rc, cl, cc)


def category_part(sid: str) -> str:
    """``"l2:utilities.water_supply"`` of a series id (``""`` when it has none)."""
    return str(sid).partition("|")[2]


def series_ids(frame: pd.DataFrame, columns: tuple[str, str, str, str] = KEY_COLUMNS) -> pd.Series:
    """The series id of every row, from its four key columns (named ``columns``), vectorised."""
    rl, rc, cl, cc = (frame[c].astype(str) for c in columns)
    return rl + ":" + rc + "|" + cl + ":" + cc
