"""Detection profiles (config/detection.yaml): per city size tier, overridden per city, per
category and per city and category; resolved into one array per setting over a panel's series.

The analyst's control is the **alert budget**: how many alerts an office may receive in a month on
ordinary variation. The thresholds follow from it (detectors.engine): an office whose series and
detectors make ``n`` one-sided tests a day gets ``alpha = budget / (30.44 * n)`` per test, so that
on calibrated tail probabilities the budget holds (shared out by the square root of each series'
volume: detectors.engine). Materiality sits beside it: a statistically certain +3 tickets is no
warning for a city, so every alert also needs ``min_excess`` tickets over (or under) the
expectation and a change of ``min_change`` (a day) or ``min_shift`` (a window).

Settings that differ by the office's level (``budget``, ``min_excess``) take a number (every
level) or a mapping ``{district: .., city: .., province: ..}``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.count_detectors import DETECTORS, PanelDetector
from detectors.panel import Panel
from hotline.core.reference import ConfigError, load_regions, read_yaml

LEVELS = ("district", "city", "province")
BY_LEVEL = {"budget", "min_excess"}
NUMBERS = {"min_expected", "min_change", "min_shift", "cooldown_days"}
PROFILE_KEYS = BY_LEVEL | NUMBERS | {"detectors"}
TOP_KEYS = {"detectors", "tiers", "profiles", "cities", "categories"}
DEFAULTS = {"budget": 1.0, "min_expected": 1.0, "min_excess": 0.0, "min_change": 0.0, "min_shift": 0.0,
            "cooldown_days": 3}


@dataclass
class ProfileArrays:
    """Each series' settings: enabled detectors, the budget of its office (alerts a month), volume
    floor, materiality, cool-down."""

    enabled: dict[str, np.ndarray]
    budget: np.ndarray
    min_expected: np.ndarray
    min_excess: np.ndarray
    min_change: np.ndarray
    min_shift: np.ndarray
    cooldown: np.ndarray

    @property
    def detectors(self) -> list[str]:
        return [d for d, on in self.enabled.items() if on.any()]


def _level_value(value: Any, level: str, where: str) -> float:
    if isinstance(value, dict):
        if level not in value:
            raise ConfigError(f"{where}: no value for level {level!r} (give {', '.join(LEVELS)})")
        return float(value[level])
    return float(value)


class DetectionConfig:
    def __init__(self, doc: dict[str, Any], tiers: dict[str, str] | None = None, source: str = "detection.yaml"):
        self.doc = doc
        self.tiers = tiers or {}  # city code -> tier
        self.source = source
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}: a mapping with detectors, tiers, profiles, cities and categories is expected")
        unknown = sorted(set(doc) - TOP_KEYS - {"forced"})
        if unknown:  # a typo (`categorie:`) would leave every category at its tier's settings
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP_KEYS))})")
        for name in doc.get("detectors") or {}:
            if name not in DETECTORS:
                raise ConfigError(f"{source}: detectors.{name}: unknown detector (known: {sorted(DETECTORS)})")
        if not doc.get("tiers"):
            raise ConfigError(f"{source}: tiers: at least one tier profile is needed")
        for where, prof in self._profiles():
            self._check(where, prof)

    def _check(self, where: str, prof: dict[str, Any]) -> None:
        src = self.source
        bad = set(prof) - PROFILE_KEYS - {"categories"}
        if bad:
            raise ConfigError(f"{src}: {where}: unknown key(s) {sorted(bad)} (known: {sorted(PROFILE_KEYS)})")
        for key in BY_LEVEL & set(prof):
            value = prof[key]
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for level, v in items:
                name = f"{where}.{key}" + (f".{level}" if level else "")
                if level is not None and level not in LEVELS:
                    raise ConfigError(f"{src}: {name}: unknown level (known: {', '.join(LEVELS)})")
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{src}: {name}: expected a number, got {v!r}")
                if key == "budget" and v <= 0:
                    raise ConfigError(f"{src}: {name}: an alert budget must be above zero (alerts per office and "
                                      f"month), got {v!r}; to silence an office use a silence, to stop a detector "
                                      f"leave it out of `detectors`")
                if v < 0:
                    raise ConfigError(f"{src}: {name}: must not be negative, got {v!r}")
        for key in NUMBERS & set(prof):
            v = prof[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"{src}: {where}.{key}: expected a number >= 0, got {v!r}")
        if "detectors" in prof:
            if not isinstance(prof["detectors"], list):
                raise ConfigError(f"{src}: {where}.detectors: expected a list of detector names")
            for d in prof["detectors"]:
                if d not in DETECTORS:
                    raise ConfigError(f"{src}: {where}.detectors: unknown detector {d!r} (known: {sorted(DETECTORS)})")

    @classmethod
    def load(cls, config_dir: str | Path, overrides: dict[str, Any] | None = None) -> "DetectionConfig":
        path = Path(config_dir) / "detection.yaml"
        doc = read_yaml(path)
        tiers = {c.code: c.tier for p in load_regions(Path(config_dir)).provinces for c in p.cities}
        cfg = cls(doc, tiers, str(path))
        return cfg.with_overrides(overrides) if overrides else cfg

    def _profiles(self):
        d = self.doc
        for group in ("tiers", "profiles", "categories"):
            for name, prof in (d.get(group) or {}).items():
                yield f"{group}.{name}", prof or {}
        for code, prof in (d.get("cities") or {}).items():
            yield f"cities.{code}", prof or {}
            for cat, cp in ((prof or {}).get("categories") or {}).items():
                yield f"cities.{code}.categories.{cat}", cp or {}

    def with_overrides(self, overrides: dict[str, Any]) -> "DetectionConfig":
        """A copy with settings forced everywhere: a profile key (``budget``, ``min_excess``...,
        a number for every level) or a detector parameter (``level_shift.window``)."""
        doc = copy.deepcopy(self.doc)
        forced = {}
        for key, value in overrides.items():
            if "." in key:
                det, param = key.split(".", 1)
                if det not in DETECTORS:
                    raise ConfigError(f"{key}: unknown detector {det!r} (known: {sorted(DETECTORS)})")
                if param not in vars(DETECTORS[det]()):
                    raise ConfigError(f"{key}: {det} has no parameter {param!r} "
                                      f"(it has {sorted(vars(DETECTORS[det]()))})")
                doc.setdefault("detectors", {}).setdefault(det, {})[param] = value
            elif key in PROFILE_KEYS:
                if key == "detectors":
                    raise ConfigError(f"{key}: not sweepable as a whole")
                forced[key] = value
            else:
                raise ConfigError(f"{key}: not a profile key ({sorted(PROFILE_KEYS)}) or detector.param")
        self._check("override", forced)
        doc["forced"] = forced
        return DetectionConfig(doc, self.tiers, self.source)

    def detector(self, name: str) -> PanelDetector:
        params = dict((self.doc.get("detectors") or {}).get(name) or {})
        try:
            return DETECTORS[name](**params)
        except TypeError as exc:
            raise ConfigError(f"{self.source}: detectors.{name}: {exc}") from None

    def profile(self, city: str, category: str = "*", name: str | None = None) -> dict[str, Any]:
        """The settings for one city (and category), or the named profile or tier for every city."""
        d = self.doc
        if name:
            base = (d.get("profiles") or {}).get(name) or (d.get("tiers") or {}).get(name)
            if base is None:
                raise ConfigError(f"{self.source}: no profile or tier named {name!r} (profiles: "
                                  f"{sorted(d.get('profiles') or {})}, tiers: {sorted(d['tiers'])})")
            prof = {**DEFAULTS, **d["tiers"][self._tier(city)], **base}
        else:
            prof = {**DEFAULTS, **d["tiers"][self._tier(city)]}
            city_prof = (d.get("cities") or {}).get(city) or {}
            prof.update({k: v for k, v in city_prof.items() if k != "categories"})
            cats = d.get("categories") or {}
            city_cats = city_prof.get("categories") or {}
            for code in dict.fromkeys((category.split(".", 1)[0], category)):
                prof.update(cats.get(code) or {})
                prof.update(city_cats.get(code) or {})
        prof.update(d.get("forced") or {})
        return prof

    def _tier(self, city: str) -> str:
        return self.tiers.get(city, "medium" if "medium" in self.doc["tiers"] else next(iter(self.doc["tiers"])))

    def arrays(self, panel: Panel, name: str | None = None) -> ProfileArrays:
        k = panel.keys
        n = len(k)
        on = {d: np.zeros(n, bool) for d in DETECTORS}
        vals = {key: np.zeros(n) for key in ("budget", "min_expected", "min_excess", "min_change", "min_shift",
                                             "cooldown")}
        cache: dict[tuple[str, str, str], dict] = {}
        levels = np.where(k["region_level"].isin(LEVELS), k["region_level"], "district")
        for i, (city, cat, level) in enumerate(zip(k["city_code"], k["category_code"], levels)):
            key = (city, cat, level)
            if key not in cache:
                p = self.profile(city, cat, name)
                where = f"{self.source}: profile of {city or 'the province'}"
                cache[key] = {"detectors": p.get("detectors", []),
                              **{f: _level_value(p[f], level, f"{where}.{f}") for f in BY_LEVEL},
                              **{f: float(p[f]) for f in NUMBERS if f != "cooldown_days"},
                              "cooldown": int(p["cooldown_days"])}
            c = cache[key]
            for d in c["detectors"]:
                on[d][i] = True
            for f in vals:
                vals[f][i] = c[f]
        return ProfileArrays(on, vals["budget"], vals["min_expected"], vals["min_excess"], vals["min_change"],
                             vals["min_shift"], vals["cooldown"].astype(int))
