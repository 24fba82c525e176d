"""Forecasting daily ticket volumes at every level: one entry point, count-aware intervals.

    from forecasting import forecast
    fc = forecast(history, horizon=30, levels=(80, 95), model="auto")

Pure library code (no Airflow import); see forecasting/api.py and forecasting/models.py.
"""
from forecasting.api import FORECAST_COLUMNS, ForecastInputError, forecast  # noqa: F401
