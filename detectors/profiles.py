"""Detection profiles (config/detection.yaml): per city size tier, overridden per city, per
category and per city and category; resolved into one array per setting over a panel's series."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detectors.count_detectors import DETECTORS, PanelDetector
from detectors.panel import Panel
from hotline.reference import ConfigError, load_regions

PROFILE_KEYS = {"sensitivity", "thresholds", "min_expected", "min_change", "min_shift", "cooldown_days", "detectors"}


@dataclass
class ProfileArrays:
    """Each series' setting: threshold per detector, min_expected, cooldown_days, enabled detectors."""

    threshold: dict[str, np.ndarray]
    enabled: dict[str, np.ndarray]
    min_expected: np.ndarray
    min_change: np.ndarray
    min_shift: np.ndarray
    cooldown: np.ndarray

    @property
    def detectors(self) -> list[str]:
        return [d for d, on in self.enabled.items() if on.any()]


class DetectionConfig:
    def __init__(self, doc: dict[str, Any], tiers: dict[str, str] | None = None, source: str = "detection.yaml"):
        self.doc = doc
        self.tiers = tiers or {}  # city code -> tier
        self.source = source
        for name in doc.get("detectors", {}):
            if name not in DETECTORS:
                raise ConfigError(f"{source}: detectors.{name}: unknown detector (known: {sorted(DETECTORS)})")
        for where, prof in self._profiles():
            bad = set(prof) - PROFILE_KEYS - {"categories"}
            if bad:
                raise ConfigError(f"{source}: {where}: unknown key(s) {sorted(bad)} (known: {sorted(PROFILE_KEYS)})")
            if "sensitivity" in prof and prof["sensitivity"] not in doc["sensitivity"]:
                raise ConfigError(f"{source}: {where}.sensitivity: {prof['sensitivity']!r} is not one of "
                                  f"{sorted(doc['sensitivity'])}")
            for d in prof.get("detectors", []):
                if d not in DETECTORS:
                    raise ConfigError(f"{source}: {where}.detectors: unknown detector {d!r}")

    @classmethod
    def load(cls, config_dir: str | Path, overrides: dict[str, Any] | None = None) -> "DetectionConfig":
        path = Path(config_dir) / "detection.yaml"
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
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
        """A copy with settings forced everywhere: ``min_expected`` (a profile key, over every
        profile), ``thresholds.level_shift`` (one detector's alert score) or ``level_shift.window``
        (a detector parameter)."""
        doc = copy.deepcopy(self.doc)
        forced = {}
        for key, value in overrides.items():
            if key.startswith("thresholds."):
                det = key.split(".", 1)[1]
                if det not in DETECTORS:
                    raise ConfigError(f"{key}: unknown detector {det!r} (known: {sorted(DETECTORS)})")
                forced.setdefault("thresholds", {})[det] = float(value)
            elif "." in key:
                det, param = key.split(".", 1)
                if det not in DETECTORS:
                    raise ConfigError(f"{key}: unknown detector {det!r} (known: {sorted(DETECTORS)})")
                if param not in vars(DETECTORS[det]()):
                    raise ConfigError(f"{key}: {det} has no parameter {param!r} (it has {sorted(vars(DETECTORS[det]()))})")
                doc.setdefault("detectors", {}).setdefault(det, {})[param] = value
            elif key in PROFILE_KEYS:
                if key == "sensitivity" and value not in doc["sensitivity"]:
                    raise ConfigError(f"sensitivity={value}: not one of {sorted(doc['sensitivity'])}")
                if key in ("min_expected", "min_change", "min_shift", "cooldown_days") and \
                        not isinstance(value, (int, float)):
                    raise ConfigError(f"{key}={value}: expected a number")
                if key in ("detectors", "thresholds"):
                    raise ConfigError(f"{key}: not sweepable as a whole; use thresholds.<detector>")
                forced[key] = value
            else:
                raise ConfigError(f"{key}: not a profile key ({sorted(PROFILE_KEYS)}) or detector.param")
        doc["forced"] = forced
        return DetectionConfig(doc, self.tiers, self.source)

    def detector(self, name: str) -> PanelDetector:
        params = dict(self.doc.get("detectors", {}).get(name) or {})
        if name == "consensus":
            params["members"] = tuple(params.get("members", ("spike_drop", "robust_seasonal")))
            params["member_params"] = {m: dict(self.doc.get("detectors", {}).get(m) or {}) for m in params["members"]}
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
            prof = {**d["tiers"][self._tier(city)], **base}
        else:
            prof = dict(d["tiers"][self._tier(city)])
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
        thr = {d: np.ones(n) for d in DETECTORS}
        on = {d: np.zeros(n, bool) for d in DETECTORS}
        min_exp, change, shift, cool = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, int)
        cache: dict[tuple[str, str], dict] = {}
        for i, (city, cat) in enumerate(zip(k["city_code"], k["category_code"])):
            key = (city, cat)
            if key not in cache:
                cache[key] = self.profile(city, cat, name)
            p = cache[key]
            levels = self.doc["sensitivity"][p.get("sensitivity", "normal")]
            for d in p.get("detectors", []):
                on[d][i] = True
            own = p.get("thresholds") or {}
            for d in DETECTORS:
                thr[d][i] = own.get(d, levels.get(d, 0.999))
            min_exp[i] = p.get("min_expected", 1.0)
            change[i] = p.get("min_change", 0.0)
            shift[i] = p.get("min_shift", 0.0)
            cool[i] = p.get("cooldown_days", 3)
        return ProfileArrays(thr, on, min_exp, change, shift, cool)
