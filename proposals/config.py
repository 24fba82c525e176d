"""config/proposals.yaml: weights, scoring parameters, cooperating departments, action templates."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COMPONENTS = ("volume", "growth", "persistence", "spread", "repeat", "unresolved", "unsatisfied", "overdue",
              "anomalies", "forecast")
DEFAULT_SCORING: dict[str, Any] = {
    "history_months": 25, "min_tickets": 30, "min_share_of_scope": 0.001, "growth_full": 2.0, "month_noise": 0.05,
    "forecast_full": 4.0, "outlook_discount": [1.0, 0.8, 0.6], "persistence_months": 6, "persistence_level": 1.1, "spread_z": 2.0, "rate_full": 2.0,
    "rate_prior_tickets": 50, "anomaly_weights": {"red": 3, "orange": 2, "yellow": 1},
    "exclude_categories": ["other", "*.other", "other.*"], "cooldown_months": 6, "worsened_ratio": 1.2,
    "watch_list": 5, "stored_candidates": 30, "weak_score": 0.25,
}


class ProposalsConfigError(ValueError):
    pass


@dataclass
class ProposalsConfig:
    weights: dict[str, float]
    scoring: dict[str, Any]
    language: str = "zh"
    cooperating: dict[str, list[str]] = field(default_factory=dict)
    actions: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    measures: list[dict[str, Any]] = field(default_factory=list)
    path: str = "proposals.yaml"

    @classmethod
    def load(cls, config_dir: str | Path) -> "ProposalsConfig":
        path = Path(config_dir) / "proposals.yaml"
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh) or {}, str(path))

    @classmethod
    def from_dict(cls, doc: dict[str, Any], path: str = "proposals.yaml") -> "ProposalsConfig":
        weights = {k: float(v) for k, v in (doc.get("weights") or {}).items()}
        unknown = sorted(set(weights) - set(COMPONENTS))
        if unknown:
            raise ProposalsConfigError(f"{path}: weights: unknown component(s) {unknown}; known: {list(COMPONENTS)}")
        if any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
            raise ProposalsConfigError(f"{path}: weights: must be >= 0 and not all zero")
        weights = {k: weights.get(k, 0.0) for k in COMPONENTS}
        scoring = {**DEFAULT_SCORING, **(doc.get("scoring") or {})}
        unknown = sorted(set(scoring) - set(DEFAULT_SCORING))
        if unknown:
            raise ProposalsConfigError(f"{path}: scoring: unknown key(s) {unknown}")
        lang = str(doc.get("language", "zh"))
        if lang not in ("zh", "en"):
            raise ProposalsConfigError(f"{path}: language: {lang!r} is not zh or en")
        return cls(weights, scoring, lang, dict(doc.get("cooperating") or {}), dict(doc.get("actions") or {}),
                   list(doc.get("measures") or []), path)

    def excluded(self, category_code: str) -> bool:
        return any(fnmatch.fnmatchcase(category_code, p) for p in self.scoring["exclude_categories"])

    def by_category(self, table: dict[str, Any], code: str, default: Any = None) -> Any:
        """The entry for a level-2 code, else its level-1 parent, else ``default``."""
        if code in table:
            return table[code]
        parent = code.split(".")[0]
        return table.get(parent, default)
