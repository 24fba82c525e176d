"""Ingestion: read a source (SQL table, CSV export, generator), map it to canonical tickets,
mask personal data, quarantine bad rows, upsert, and re-aggregate the days it touched."""
