"""Anomaly detectors: one small contract (detectors/base.py); count- and calendar-aware detectors
over whole panels (detectors/count_detectors.py) whose tail probabilities are calibrated on their
own out-of-sample record (detectors/calibration.py); the day's decision with the alert budget,
materiality and cool-down (detectors/engine.py); profiles per tier (detectors/profiles.py); the
daily job (detectors/job.py); the replaying backtest (detectors/backtest.py); the online scorer
behind ``score-csv`` (detectors/online.py, detectors/tails.py)."""
from detectors.base import ANOMALY_COLUMNS, SEVERITY_RULE, BaseDetector  # noqa: F401
from detectors.count_detectors import DETECTORS  # noqa: F401
