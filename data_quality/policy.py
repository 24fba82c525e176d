"""The data-quality policy: per check, thresholds and the action a failure takes, per city tier."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hotline.core.config import merge, validate_data_quality
from hotline.core.reference import read_yaml

ORDER = {"continue": 0, "warn": 1, "halt": 2}


def worst(actions) -> str:
    """The most severe action of several (continue < warn < halt)."""
    return max(actions, key=lambda a: ORDER[a], default="continue")


def load_policy(config_dir: Path) -> dict[str, Any]:
    """config/data_quality.yaml, checked (hotline.core.config.DataQualityFile): a typo or a wrong
    value is an error naming the file and the key, never a check silently left at its default."""
    path = Path(config_dir) / "data_quality.yaml"
    doc = read_yaml(path)
    validate_data_quality(doc, path)
    return doc


def policy_for(policy: dict[str, Any], tier: str | None = None, city_code: str | None = None) -> dict[str, Any]:
    """Defaults, then the tier's overrides, then the city's."""
    p = merge(policy["defaults"], (policy.get("tiers") or {}).get(tier or "", {}) or {})
    return merge(p, (policy.get("cities") or {}).get(city_code or "", {}) or {})
