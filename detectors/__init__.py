"""Anomaly detectors: one small contract (detectors/base.py), count- and calendar-aware detectors
(detectors/count_detectors.py). Spread, consensus, profiles per tier, the DAG task and the
analyst's backtest are the detectors issue's remaining work."""
from detectors.base import ANOMALY_COLUMNS, SEVERITY_RULE, BaseDetector  # noqa: F401
from detectors.count_detectors import DETECTORS  # noqa: F401
