"""The data-quality gate between ingestion and everything downstream (write-audit-publish).

- tickets_batch: row-level Great Expectations suite on a run's staged batch; failing rows are
  quarantined, and a batch with too many bad rows halts.
- feed_health: batch-level suite against history after aggregation (volumes per city, district
  and channel from the same weekday in recent weeks, silent regions or channels, unmapped
  categories, days loaded twice, late arrivals, the hour-of-day profile).
- Policy per city tier in config/data_quality.yaml; verdicts in dq_verdicts; an HTML page per
  run under var/dq/.

Great Expectations is imported inside the functions that use it: it is slow to import and must
stay out of DAG parsing.
"""
