"""Forecasting of daily volumes at every level. Not built yet: see the forecasting issue.
Its input contract already exists: warehouse.aggregate.read_series returns the series frame."""
