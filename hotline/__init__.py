"""12345 hotline early-warning pipeline: shared core (settings, reference data, calendar, PII, CLI).

The stages live in their own top-level packages (ingestion, data_quality, warehouse, forecasting,
detectors, alerts, ...); see docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
