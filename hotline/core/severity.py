"""Severity, one encoding for every stage: yellow < orange < red (detectors/base.py SEVERITY_RULE
says which is which). Unknown names rank below yellow."""
from __future__ import annotations

from enum import IntEnum


class Severity(IntEnum):
    YELLOW = 1
    ORANGE = 2
    RED = 3

    @property
    def label(self) -> str:
        """The name stored in rows and shown in messages: ``red``, ``orange``, ``yellow``."""
        return self.name.lower()


SEVERITY_RANK: dict[str, int] = {s.label: int(s) for s in Severity}  # for pandas .map and dict lookups
NAMES: tuple[str, ...] = tuple(s.label for s in sorted(Severity, reverse=True))  # red, orange, yellow


def rank(name: str | None) -> int:
    """3 for red, 2 orange, 1 yellow, 0 for anything else (a missing or unknown severity)."""
    return SEVERITY_RANK.get(str(name), 0) if name is not None else 0


def worst_first(name: str | None) -> int:
    """A sort key that puts red first, then orange, yellow and unknown."""
    return -rank(name)
