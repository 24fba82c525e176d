"""The detector contract (after sktime and PyOD).

- ``__init__`` only stores parameters; nothing is checked or learnt there.
- ``fit(history)`` learns from the long series frame (``series_id, ds, y``) and returns self;
  fitted state lives in attributes ending in ``_``.
- ``score(frame)`` returns ``series_id, ds, p, score, surprise`` for every row of ``frame`` (days
  after the fitted history): ``p`` the calibrated tail probability of a day this far out (one-sided,
  in the direction of the row's ``kind``), ``score = 1 - p`` in [0, 1] (higher = more anomalous) and
  ``surprise = -log10 p`` (keeps the order where the score runs out of digits).
- ``detect(frame)`` returns anomaly records (``ANOMALY_COLUMNS``) for the rows with ``p <= alpha``.

Public methods validate and convert inputs, then call the private ``_fit`` / ``_score``;
a detector subclass writes only those, declares ``_tags`` and offers ``get_test_params()`` so
that one contract test exercises every detector.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

ANOMALY_COLUMNS = ["series_id", "ds", "observed", "expected", "lower", "upper", "score", "p_value", "surprise",
                   "severity", "kind", "detector", "explanation"]
SEVERITY_RULE = ("with p the calibrated tail probability of the day (how often a day this far out has come) and "
                 "alpha the alert threshold the budget sets: p <= alpha/100 red (红); p <= alpha/10 orange (橙); "
                 "otherwise yellow (黄)")


def severity(p: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Map tail probabilities to the levels offices use (the rule is SEVERITY_RULE): an alert a
    hundred times rarer than the threshold asks for is red, ten times rarer orange, the rest yellow."""
    q = np.asarray(p, dtype=float)
    q0 = np.asarray(alpha, dtype=float)
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

    def __init__(self, alpha: float = 1e-2):
        self.alpha = alpha

    @classmethod
    def get_tags(cls) -> dict[str, Any]:
        """The class's tags, each subclass's overriding its parents' (sktime's rule)."""
        tags: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            tags.update(vars(klass).get("_tags", {}))
        return tags

    @classmethod
    def get_tag(cls, name: str) -> Any:
        tags = cls.get_tags()
        if name not in tags:
            raise KeyError(f"{cls.__name__} has no tag {name!r} (it has {sorted(tags)})")
        return tags[name]

    def fit(self, history: pd.DataFrame) -> "BaseDetector":
        self._fit(_frame(history, "history"))
        self.is_fitted_ = True
        return self

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not getattr(self, "is_fitted_", False):
            raise RuntimeError(f"{type(self).__name__}: call fit() before score()")
        f = _frame(frame, "frame")
        out = self._score(f)
        out["p"] = np.clip(out["p"].to_numpy(dtype=float), 1e-300, 1.0)
        out["score"] = 1.0 - out["p"]
        out["surprise"] = -np.log10(out["p"])
        return out

    def detect(self, frame: pd.DataFrame) -> pd.DataFrame:
        s = self.score(frame)
        hit = s[s["p"] <= self.alpha].copy().rename(columns={"p": "p_value"})
        if hit.empty:
            return pd.DataFrame(columns=ANOMALY_COLUMNS)
        hit["severity"] = severity(hit["p_value"].to_numpy(), self.alpha)
        hit["detector"] = self.name
        if "kind" not in hit.columns:
            hit["kind"] = self.get_tag("kind")
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
