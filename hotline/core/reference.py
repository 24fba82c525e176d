"""Reference data read from config files: regions, taxonomy, tiers, deadlines, source mappings.

Everything here is data, loaded from ``config/`` (or another directory named by the settings);
nothing about a province or a category is hard-coded in the library.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
# A region file without `timezone:` is in China's; everything else reads the province's own.
DEFAULT_TIMEZONE = "Asia/Shanghai"

REGION_LEVELS = ("province", "city", "district")
CATEGORY_LEVELS = ("all", "l1", "l2")
ALL_CATEGORIES = "*"


class ConfigError(ValueError):
    """A config file is missing or malformed; the message names the file and the key."""


def read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ValueError as exc:  # a date that is no date (2027-02-30), read by YAML itself
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


@dataclass(frozen=True)
class District:
    code: str
    zh: str
    en: str
    city_code: str
    province_code: str
    population: float


@dataclass(frozen=True)
class City:
    code: str
    zh: str
    en: str
    province_code: str
    tier: str
    population: float
    coastal: bool
    districts: tuple[District, ...]


@dataclass(frozen=True)
class Province:
    code: str
    zh: str
    en: str
    timezone: str
    climate: str
    cities: tuple[City, ...]
    heating_season: tuple[str, str] | None = None
    sample: bool = False
    calendar: str = "CN"  # holiday calendar: CN (with 调休), or a `holidays` country code

    def city(self, code: str) -> City:
        for c in self.cities:
            if c.code == code:
                return c
        raise KeyError(f"city {code} is not in province {self.code}")


@dataclass(frozen=True)
class Regions:
    """All configured provinces, with lookups by code."""

    provinces: tuple[Province, ...]
    by_code: dict[str, Any] = field(repr=False, default_factory=dict)

    def province(self, code: str) -> Province:
        p = self.by_code.get(code)
        if not isinstance(p, Province):
            raise KeyError(f"province {code} is not configured (config/regions/)")
        return p

    def level_of(self, code: str) -> str | None:
        obj = self.by_code.get(code)
        if isinstance(obj, Province):
            return "province"
        if isinstance(obj, City):
            return "city"
        if isinstance(obj, District):
            return "district"
        return None

    def name(self, code: str, lang: str = "zh") -> str:
        obj = self.by_code.get(code)
        return getattr(obj, lang, code) if obj is not None else code

    def city_codes(self) -> set[str]:
        return {c.code for p in self.provinces for c in p.cities}

    def district_codes(self) -> set[str]:
        return {d.code for p in self.provinces for c in p.cities for d in c.districts}

    def district_parent(self) -> dict[str, str]:
        return {d.code: d.city_code for p in self.provinces for c in p.cities for d in c.districts}

    def city_parent(self) -> dict[str, str]:
        return {c.code: c.province_code for p in self.provinces for c in p.cities}

    @functools.cached_property
    def _parents(self) -> dict[str, str]:
        return {**self.city_parent(), **self.district_parent()}

    def parent_of(self, code: str) -> str:
        """The region one level up (a district's city, a city's province); "" for a province or a
        code the reference data does not know."""
        return self._parents.get(str(code), "")

    def province_of(self, code: str) -> str:
        """The province a region code belongs to (itself for a province); "" when unknown."""
        code = str(code)
        if any(p.code == code for p in self.provinces):
            return code
        up = self.parent_of(code)
        return up if not up or any(p.code == up for p in self.provinces) else self.parent_of(up)


def load_regions(config_dir: Path = DEFAULT_CONFIG_DIR) -> Regions:
    """Read every ``config/regions/*.yaml`` into a :class:`Regions` tree."""
    provinces = []
    by_code: dict[str, Any] = {}
    files = sorted((Path(config_dir) / "regions").glob("*.yaml"))
    if not files:
        raise ConfigError(f"{Path(config_dir) / 'regions'}: no region files")
    for path in files:
        doc = read_yaml(path)
        try:
            pcode = str(doc["code"])
            cities = []
            for c in doc["cities"]:
                ccode = str(c["code"])
                districts = tuple(
                    District(str(d["code"]), d["zh"], d["en"], ccode, pcode, float(d.get("population", 1)))
                    for d in c["districts"]
                )
                city = City(ccode, c["zh"], c["en"], pcode, c["tier"], float(c["population"]),
                            bool(c.get("coastal", False)), districts)
                cities.append(city)
            hs = doc.get("heating_season")
            prov = Province(pcode, doc["zh"], doc["en"], doc.get("timezone", DEFAULT_TIMEZONE),
                            doc.get("climate", "south"), tuple(cities),
                            (hs["start"], hs["end"]) if hs else None, bool(doc.get("sample", False)),
                            str(doc.get("calendar", "CN")))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: missing or malformed key {exc}") from None
        provinces.append(prov)
        for obj in [prov, *prov.cities, *(d for c in prov.cities for d in c.districts)]:
            if obj.code in by_code:
                raise ConfigError(f"{path}: region code {obj.code} is defined twice")
            if not (len(obj.code) == 6 and obj.code.isdigit()):
                raise ConfigError(f"{path}: region code {obj.code!r} is not 6 digits")
            by_code[obj.code] = obj
    return Regions(tuple(provinces), by_code)


@dataclass(frozen=True)
class Category:
    code: str          # "utilities" or "utilities.heating"
    level: str         # "l1" or "l2"
    zh: str
    en: str
    parent: str | None
    department: str
    deadline: str | None


@dataclass(frozen=True)
class Taxonomy:
    categories: dict[str, Category]

    def l1_codes(self) -> list[str]:
        return [c.code for c in self.categories.values() if c.level == "l1"]

    def l2_codes(self) -> list[str]:
        return [c.code for c in self.categories.values() if c.level == "l2"]

    def name(self, code: str, lang: str = "zh") -> str:
        c = self.categories.get(code)
        return getattr(c, lang) if c else code

    def parent(self, code: str) -> str:
        return self.categories[code].parent or code

    def by_local_name(self) -> dict[str, str]:
        """Chinese "一级-二级" names (the usual export form) to level-2 codes."""
        out = {}
        for c in self.categories.values():
            if c.level == "l2":
                out[f"{self.categories[c.parent].zh}-{c.zh}"] = c.code
        return out


UNMAPPED = "other.unmapped"


def load_taxonomy(config_dir: Path = DEFAULT_CONFIG_DIR) -> Taxonomy:
    path = Path(config_dir) / "taxonomy.yaml"
    doc = read_yaml(path)
    cats: dict[str, Category] = {}
    try:
        for top in doc["categories"]:
            code = top["code"]
            cats[code] = Category(code, "l1", top["zh"], top["en"], None, top["department"], None)
            for ch in top["children"]:
                c2 = f"{code}.{ch['code']}"
                if c2 in cats:
                    raise ConfigError(f"{path}: category {c2} defined twice")
                cats[c2] = Category(c2, "l2", ch["zh"], ch["en"], code,
                                    ch.get("department", top["department"]), ch.get("deadline", "general"))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: missing or malformed key {exc}") from None
    if UNMAPPED not in cats:
        raise ConfigError(f"{path}: the taxonomy must define {UNMAPPED}")
    return Taxonomy(cats)


def load_tiers(config_dir: Path = DEFAULT_CONFIG_DIR) -> dict[str, Any]:
    return read_yaml(Path(config_dir) / "tiers.yaml")


def tier_profile(city: City, config_dir: Path = DEFAULT_CONFIG_DIR) -> dict[str, Any]:
    """The tier profile of a city with that city's overrides applied (shallow per key)."""
    doc = load_tiers(config_dir)
    prof = dict(doc["tiers"][city.tier])
    prof.update((doc.get("overrides") or {}).get(city.code, {}) or {})
    return prof


def load_deadlines(config_dir: Path = DEFAULT_CONFIG_DIR) -> dict[str, dict[str, Any]]:
    return read_yaml(Path(config_dir) / "deadlines.yaml")["classes"]


def load_mapping(name_or_path: str, config_dir: Path = DEFAULT_CONFIG_DIR) -> dict[str, Any]:
    """A source mapping by name (``config/mappings/<name>.yaml``) or by path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = Path(config_dir) / "mappings" / f"{name_or_path}.yaml"
        if not p.exists():
            known = sorted(x.stem for x in (Path(config_dir) / "mappings").glob("*.yaml"))
            raise ConfigError(f"mapping {name_or_path!r} not found; known mappings: {', '.join(known)}")
    doc = read_yaml(p)
    from hotline.core.config import validate_mapping  # config imports this module

    validate_mapping(doc, p)
    doc.setdefault("name", p.stem)
    doc["_path"] = str(p)
    return doc


@dataclass(frozen=True)
class Reference:
    """Everything a stage needs from config, loaded once."""

    config_dir: Path
    regions: Regions
    taxonomy: Taxonomy
    deadlines: dict[str, dict[str, Any]]


@functools.lru_cache(maxsize=8)
def load_reference(config_dir: str | Path = DEFAULT_CONFIG_DIR) -> Reference:
    cd = Path(config_dir)
    return Reference(cd, load_regions(cd), load_taxonomy(cd), load_deadlines(cd))
