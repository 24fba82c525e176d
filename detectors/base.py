"""The detector contract (after sktime and PyOD).

- ``__init__`` only stores parameters; nothing is checked or learnt there.
- ``fit(history)`` learns from the long series frame (``series_id, ds, y``) and returns self;
  fitted state lives in attributes ending in ``_``.
- ``score(frame)`` returns ``series_id, ds, score`` with the score in [0, 1], higher = more
  anomalous, for every row of ``frame`` (days after the fitted history).
- ``detect(frame)`` returns anomaly records (``ANOMALY_COLUMNS``) for the rows whose score
  reaches ``threshold``.

Public methods validate and convert inputs, then call the private ``_fit`` / ``_score``;
a detector subclass writes only those, declares ``_tags`` and offers ``get_test_params()`` so
that one contract test exercises every detector.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

ANOMALY_COLUMNS = ["series_id", "ds", "observed", "expected", "lower", "upper", "score", "severity", "kind",
                   "detector", "explanation"]
SEVERITY_RULE = ("with q = 1 - score (how often a day this extreme comes by chance) and q0 = 1 - the alert "
                 "threshold: q <= q0/100 red (红); q <= q0/10 orange (橙); otherwise yellow (黄)")


def severity(score: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Map scores to the levels offices use (the rule is SEVERITY_RULE): an alert a hundred times
    rarer than the threshold asks for is red, ten times rarer orange, the rest yellow."""
    q = 1 - np.asarray(score, dtype=float)
    q0 = 1 - np.asarray(threshold, dtype=float)
    return np.where(q <= q0 / 100, "red", np.where(q <= q0 / 10, "orange", "yellow"))


def _frame(df: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = {"series_id", "ds", "y"} - set(df.columns)
    if missing:
        raise ValueError(f"{name}: missing column(s) {sorted(missing)}; expected series_id, ds, y")
    out = df[["series_id", "ds", "y"]].copy()
    out["ds"] = pd.to_datetime(out["ds"])
    if out["y"].isna().any() or (out["y"] < 0).any():
        bad = out[out["y"].isna() | (out["y"] < 0)].iloc[0]
        raise ValueError(f"{name}: y must be a non-negative count (series {bad['series_id']}, {bad['ds']:%Y-%m-%d})")
    return out.sort_values(["series_id", "ds"]).reset_index(drop=True)


class BaseDetector:
    _tags: ClassVar[dict[str, Any]] = {"kind": "spike", "needs_history_days": 28}
    name: ClassVar[str] = "base"

    def __init__(self, threshold: float = 0.99):
        self.threshold = threshold

    def fit(self, history: pd.DataFrame) -> "BaseDetector":
        self._fit(_frame(history, "history"))
        self.is_fitted_ = True
        return self

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not getattr(self, "is_fitted_", False):
            raise RuntimeError(f"{type(self).__name__}: call fit() before score()")
        f = _frame(frame, "frame")
        out = self._score(f)
        out["score"] = np.clip(out["score"].to_numpy(dtype=float), 0.0, 1.0)
        return out

    def detect(self, frame: pd.DataFrame) -> pd.DataFrame:
        s = self.score(frame)
        hit = s[s["score"] >= self.threshold].copy()
        if hit.empty:
            return pd.DataFrame(columns=ANOMALY_COLUMNS)
        hit["severity"] = severity(hit["score"].to_numpy(), self.threshold)
        hit["detector"] = self.name
        if "kind" not in hit.columns:
            hit["kind"] = self._tags["kind"]
        if "explanation" not in hit.columns:
            hit["explanation"] = ""
        for c in ANOMALY_COLUMNS:
            if c not in hit.columns:
                hit[c] = np.nan
        return hit[ANOMALY_COLUMNS].reset_index(drop=True)

    # subclasses -------------------------------------------------------------
    def _fit(self, history: pd.DataFrame) -> None:
        raise NotImplementedError

    def _score(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{}]
