"""config/sla.yaml: the light thresholds, escalation levels and repeat window, read once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class SlaConfig:
    yellow_share: float = 0.2
    levels: tuple[str, ...] = ("district", "city", "province")
    escalate_again_hours: float = 24.0
    urgent_class: str = "urgent"
    repeat_window_days: int = 30

    @classmethod
    def load(cls, config_dir: str | Path) -> "SlaConfig":
        path = Path(config_dir) / "sla.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        cfg = cls(float(doc.get("yellow_share", 0.2)), tuple(doc.get("levels", cls.levels)),
                  float(doc.get("escalate_again_hours", 24)), str(doc.get("urgent_class", "urgent")),
                  int(doc.get("repeat_window_days", 30)))
        if not 0 < cfg.yellow_share < 1:
            raise ValueError(f"{path}: yellow_share must be between 0 and 1, not {cfg.yellow_share}")
        if cfg.repeat_window_days < 1:
            raise ValueError(f"{path}: repeat_window_days must be at least 1")
        if len(cfg.levels) < 2 or cfg.escalate_again_hours <= 0:
            raise ValueError(f"{path}: levels needs at least two entries and escalate_again_hours > 0")
        return cfg
