"""config/proposals.yaml: the principles and their components, scoring parameters, balance,
cooperating departments, action templates and measures."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotline.core.reference import ConfigError

# Beijing's published principles for 每月一题 (REALISM.md), each a named group of components, and
# the outlook (未诉先办), which counts only as far as frequency or hardness carries it.
PRINCIPLES: dict[str, tuple[str, ...]] = {
    "frequency": ("share_year", "share_month", "breadth"),
    "continuity": ("months_high", "quarters_high", "returned"),
    "hard": ("repeat", "unresolved", "unsatisfied", "overdue", "long_handling"),
    "outlook": ("growth", "forecast"),
}
# the outlook is the larger of its (weighted) components: a rise now, or a seasonal peak ahead
MAX_OF = {"outlook"}
COMPONENTS: tuple[str, ...] = tuple(c for group in PRINCIPLES.values() for c in group)
PRINCIPLE_OF: dict[str, str] = {c: p for p, group in PRINCIPLES.items() for c in group}

DEFAULT_PRINCIPLES = {"frequency": 0.30, "continuity": 0.15, "hard": 0.25, "outlook": 0.30}
DEFAULT_COMPONENTS = {
    "frequency": {"share_year": 0.5, "share_month": 0.2, "breadth": 0.3},
    "continuity": {"months_high": 0.5, "quarters_high": 0.3, "returned": 0.2},
    "hard": {"repeat": 1.0, "unresolved": 1.0, "unsatisfied": 1.0, "overdue": 1.0, "long_handling": 1.0},
    "outlook": {"growth": 1.0, "forecast": 1.0},
}
DEFAULT_BALANCE = {"last_choices": 6, "same_department": 0.08, "same_family": 0.04}
DEFAULT_SCORING: dict[str, Any] = {
    "history_months": 25, "candidate_levels": ["l2"], "min_tickets": 30, "min_share_of_scope": 0.001,
    "frequency_range": 25.0, "high_top": 0.15, "high_top_min": 3, "min_breadth": 2, "breadth_share": 0.5,
    "breadth_min_tickets": 12, "max_focus_share": 0.8, "outlook_gate": 0.5, "returned_within_months": 36,
    "growth_full": 2.0, "month_noise": 0.05, "forecast_full": 4.0, "outlook_discount": [1.0, 0.8, 0.6],
    "spread_z": 2.0, "rate_full": 2.0, "rate_prior_tickets": 50, "handling_full": 2.0,
    "anomaly_weights": {"red": 3, "orange": 2, "yellow": 1},
    "exclude_categories": ["other", "*.other", "other.*"], "cooldown_months": 6, "worsened_ratio": 1.2,
    "watch_list": 5, "sprouts": 8, "sprout_growth": 1.5, "sprout_outlook": 1.5, "stored_candidates": 30,
    "weak_score": 0.25,
}


class ProposalsConfigError(ConfigError):
    pass


def _only_known(doc: Any, path: str, where: str, known: Any, what: str = "a mapping", hint: str = "") -> None:
    """``doc`` is a mapping whose keys are all in ``known``; else a ConfigError naming the file,
    the place and the keys it knows."""
    at = f"{path}: {where}: " if where else f"{path}: "
    if not isinstance(doc, dict):
        raise ProposalsConfigError(f"{at}expected {what}, got {doc!r}")
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ProposalsConfigError(f"{at}unknown key(s) {unknown}{hint}; known: {sorted(known)}")


def _weights(doc: Any, path: str, where: str, known: tuple[str, ...] | list[str]) -> dict[str, float]:
    _only_known(doc, path, where, known, "a mapping of name: weight")
    out = {}
    for k, v in doc.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise ProposalsConfigError(f"{path}: {where}.{k}: {v!r} is not a number") from None
        if not out[k] >= 0:
            raise ProposalsConfigError(f"{path}: {where}.{k}: must be >= 0")
    return out


@dataclass
class ProposalsConfig:
    principles: dict[str, float]                  # weight of each principle in the score
    components: dict[str, dict[str, float]]       # weight of each component inside its principle
    balance: dict[str, float]
    scoring: dict[str, Any]
    language: str = "zh"
    cooperating: dict[str, list[str]] = field(default_factory=dict)
    actions: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    measures: list[dict[str, Any]] = field(default_factory=list)
    path: str = "proposals.yaml"

    @property
    def weights(self) -> dict[str, Any]:
        """What is stored with each proposal: the principles' weights, their components' and balance."""
        return {"principles": self.principles, "components": self.components, "balance": self.balance}

    @classmethod
    def load(cls, config_dir: str | Path) -> "ProposalsConfig":
        path = Path(config_dir) / "proposals.yaml"
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh) or {}, str(path))

    @classmethod
    def from_dict(cls, doc: dict[str, Any], path: str = "proposals.yaml") -> "ProposalsConfig":
        known = {"language", "principles", "components", "balance", "scoring", "cooperating", "actions", "measures"}
        hint = (" (`weights` became `principles` and `components`: see docs/PROPOSALS.md)"
                if isinstance(doc, dict) and "weights" in doc else "")
        _only_known(doc, path, "", known, hint=hint)
        principles = {**DEFAULT_PRINCIPLES, **_weights(doc.get("principles") or {}, path, "principles",
                                                        tuple(PRINCIPLES))}
        if sum(principles.values()) <= 0:
            raise ProposalsConfigError(f"{path}: principles: not all zero")
        comp_doc = doc.get("components") or {}
        _only_known(comp_doc, path, "components", PRINCIPLES, "a mapping by principle")
        components = {}
        for p, names in PRINCIPLES.items():
            given = _weights(comp_doc.get(p) or {}, path, f"components.{p}", names)
            w = {**DEFAULT_COMPONENTS[p], **given} if p not in comp_doc else {n: given.get(n, 0.0) for n in names}
            if principles[p] > 0 and sum(w.values()) <= 0:
                raise ProposalsConfigError(f"{path}: components.{p}: all zero while principles.{p} > 0")
            components[p] = w
        balance = {**DEFAULT_BALANCE, **_weights(doc.get("balance") or {}, path, "balance", tuple(DEFAULT_BALANCE))}
        scoring_doc = doc.get("scoring") or {}
        _only_known(scoring_doc, path, "scoring", DEFAULT_SCORING)
        scoring = {**DEFAULT_SCORING, **scoring_doc}
        levels = scoring["candidate_levels"]
        if not isinstance(levels, list) or not levels or set(levels) - {"l1", "l2"}:
            raise ProposalsConfigError(f"{path}: scoring.candidate_levels: a list of l1 and/or l2, got {levels!r}")
        lang = str(doc.get("language", "zh"))
        if lang not in ("zh", "en"):
            raise ProposalsConfigError(f"{path}: language: {lang!r} is not zh or en")
        return cls(principles, components, balance, scoring, lang, dict(doc.get("cooperating") or {}),
                   dict(doc.get("actions") or {}), list(doc.get("measures") or []), path)

    def excluded(self, category_code: str) -> bool:
        return any(fnmatch.fnmatchcase(category_code, p) for p in self.scoring["exclude_categories"])

    def by_category(self, table: dict[str, Any], code: str, default: Any = None) -> Any:
        """The entry for a level-2 code, else its level-1 parent, else ``default``."""
        if code in table:
            return table[code]
        parent = code.split(".")[0]
        return table.get(parent, default)
