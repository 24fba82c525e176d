"""The data-quality policy: per check, thresholds and the action a failure takes, per city tier."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ORDER = {"continue": 0, "warn": 1, "halt": 2}


def worst(actions) -> str:
    """The most severe action of several (continue < warn < halt)."""
    return max(actions, key=lambda a: ORDER[a], default="continue")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_policy(config_dir: Path) -> dict[str, Any]:
    with open(Path(config_dir) / "data_quality.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def policy_for(policy: dict[str, Any], tier: str | None = None, city_code: str | None = None) -> dict[str, Any]:
    """Defaults, then the tier's overrides, then the city's."""
    p = _merge(policy["defaults"], (policy.get("tiers") or {}).get(tier or "", {}) or {})
    return _merge(p, (policy.get("cities") or {}).get(city_code or "", {}) or {})
