"""config/sla.yaml's light thresholds, escalation levels and repeat window, as the lights use
them (the file's model, defaults and meaning: hotline.core.config.SlaFile, docs/CONFIG.md)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hotline.core.config import SlaFile, read_sla

_DEFAULTS = SlaFile()


@dataclass(frozen=True)
class SlaConfig:
    yellow_share: float = _DEFAULTS.yellow_share
    levels: tuple[str, ...] = _DEFAULTS.levels
    escalate_again_hours: float = _DEFAULTS.escalate_again_hours
    urgent_class: str = _DEFAULTS.urgent_class
    repeat_window_days: int = _DEFAULTS.repeat_window_days

    @classmethod
    def load(cls, config_dir: str | Path) -> "SlaConfig":
        doc = read_sla(config_dir)
        return cls(doc.yellow_share, tuple(doc.levels), doc.escalate_again_hours, doc.urgent_class,
                   doc.repeat_window_days)
