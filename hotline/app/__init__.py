"""The one wiring point: the use cases that the DAGs and the CLI both call (the day's ingest from
the configured source, the run-day policy, operations settings)."""
