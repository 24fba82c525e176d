"""Anomaly detectors (spikes, shifts, emerging issues, spread). Not built yet: see the detectors issue."""
