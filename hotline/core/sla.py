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
        from hotline.core.config import SlaFile, validate

        doc = validate(SlaFile, yaml.safe_load(path.read_text(encoding="utf-8")), path)  # keys and kinds
        return cls(float(doc.yellow_share), tuple(doc.levels), float(doc.escalate_again_hours), str(doc.urgent_class),
                   int(doc.repeat_window_days))

