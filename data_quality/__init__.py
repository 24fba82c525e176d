"""Data-quality gates (Great Expectations suites, feed health, policy per city tier).

Not built yet: see the data-quality issue. Ingestion already quarantines row-level errors
(ingestion/canonical.py); this stage adds batch-level checks and halting.
"""
