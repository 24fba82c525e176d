"""Table definitions (SQLAlchemy Core). Alembic migrations in warehouse/migrations create them.

Timestamps are stored in UTC: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite. The
:class:`UTCDateTime` type makes both read back as timezone-aware UTC datetimes.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """Timezone-aware in Python, UTC in the database, on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if getattr(value, "tzinfo", None) is None:
            raise ValueError(f"naive datetime {value!r}: the warehouse stores tz-aware timestamps only")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


# The canonical ticket: the province's data standard (docs/SCHEMA.md).
tickets = Table(
    "tickets", metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("received_date", Date, nullable=False),  # local date in the province's time zone
    Column("channel", String(16), nullable=False),
    Column("request_type", String(16)),
    Column("province_code", String(6), nullable=False),
    Column("city_code", String(6), nullable=False),
    Column("district_code", String(6)),
    Column("street_code", String(32)),
    Column("category_l1", String(48), nullable=False),
    Column("category_l2", String(80), nullable=False),
    Column("category_raw", String(255)),
    Column("content", Text),
    Column("caller_key", String(32)),
    Column("department", String(64)),
    Column("urgency", String(16)),
    Column("deadline_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("is_repeat", Boolean, nullable=False),
    Column("satisfaction", String(24)),
    Column("resolved", Boolean),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("ingest_run_id", String(64)),
    Index("ix_tickets_received_date", "received_date"),
    Index("ix_tickets_city_date", "city_code", "received_date"),
    # the monthly horse race reads the tickets closed, and those due, in one month
    Index("ix_tickets_closed_at", "closed_at"),
    Index("ix_tickets_deadline_at", "deadline_at"),
)

# Write-audit-publish: a daily run's batch waits here until the data-quality gate lets it through
# (``warehouse.load.publish_run``). Same columns as tickets; one batch per ingest run.
staged_tickets = Table(
    "staged_tickets", metadata,
    *(Column(c.name, c.type, primary_key=c.name in ("ticket_id", "ingest_run_id"),
             nullable=c.nullable if c.name not in ("ticket_id", "ingest_run_id") else False)
      for c in tickets.columns),
)

# Every rejected source row, with where it came from and why; never silently dropped.
quarantine = Table(
    "quarantine", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("source_file", String(512)),
    Column("source_row", Integer),  # 1-based data row (CSV: line number minus the header)
    Column("ticket_id", String(64)),
    Column("field", String(64)),
    Column("reason_code", String(48), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text),  # the source row as JSON, PII masked
    Column("quarantined_at", UTCDateTime, nullable=False),
    Index("ix_quarantine_run", "run_id"),
    Index("ix_quarantine_reason", "reason_code"),
)

COUNT_COLUMNS = ("n_tickets", "n_closed", "n_overdue", "n_repeat", "n_rated", "n_unsatisfied", "n_resolved")

# Daily counts at every level of both hierarchies: region (province/city/district) x category
# (all/l1/l2). category_code is "*" at level "all".
daily_counts = Table(
    "daily_counts", metadata,
    Column("ds", Date, primary_key=True),
    Column("region_level", String(10), primary_key=True),
    Column("region_code", String(6), primary_key=True),
    Column("category_level", String(3), primary_key=True),
    Column("category_code", String(80), primary_key=True),
    Column("province_code", String(6), nullable=False),
    Column("city_code", String(6)),
    *(Column(c, Integer, nullable=False) for c in COUNT_COLUMNS),
    Column("aggregated_at", UTCDateTime, nullable=False),
    Index("ix_daily_counts_series", "region_level", "region_code", "category_level", "category_code", "ds"),
)

ingest_watermarks = Table(
    "ingest_watermarks", metadata,
    Column("source", String(64), primary_key=True),
    Column("last_logical_date", Date),
    Column("max_updated_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The data-quality gate's verdict for each run and suite (docs under var/dq/).
dq_verdicts = Table(
    "dq_verdicts", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("suite", String(32), primary_key=True),  # tickets_batch, feed_health
    Column("logical_date", Date, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("action", String(16), nullable=False),  # continue, warn, halt
    Column("quarantined", Integer, nullable=False),
    Column("failed", JSON),  # [{expectation, column, action, observed, threshold, key, message}]
    Column("metrics", JSON),  # rows checked, late share, ...
    Column("docs_path", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_dq_verdicts_date", "logical_date"),
)

# Days a feed-health check flagged for a region: forecasting and detection treat a halted day as
# missing rather than as a real drop or spike.
dq_day_flags = Table(
    "dq_day_flags", metadata,
    Column("ds", Date, primary_key=True),
    Column("region_code", String(6), primary_key=True),
    Column("check_name", String(48), primary_key=True),
    Column("action", String(16), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("detail", Text),
)

# Forecasts, keyed by the last day of history they were made from (a rerun replaces them).
forecasts = Table(
    "forecasts", metadata,
    Column("origin", Date, primary_key=True),
    Column("series_id", String(120), primary_key=True),
    Column("ds", Date, primary_key=True),
    Column("region_level", String(10), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("category_level", String(3), nullable=False),
    Column("category_code", String(80), nullable=False),
    Column("yhat", Float, nullable=False),
    Column("yhat_lo_80", Float, nullable=False),
    Column("yhat_hi_80", Float, nullable=False),
    Column("yhat_lo_95", Float, nullable=False),
    Column("yhat_hi_95", Float, nullable=False),
    Column("model", String(24), nullable=False),
    Column("run_id", String(64), nullable=False),
    Index("ix_forecasts_series", "series_id", "ds"),
)

# Anomalies found for a day (a rerun of the day replaces them).
anomalies = Table(
    "anomalies", metadata,
    Column("ds", Date, primary_key=True),
    Column("series_id", String(120), primary_key=True),
    Column("detector", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("region_level", String(10), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("category_level", String(3), nullable=False),
    Column("category_code", String(80), nullable=False),
    Column("observed", Float, nullable=False),
    Column("expected", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("score", Float, nullable=False),  # 1 - p_value
    Column("severity", String(8), nullable=False),
    Column("explanation", Text),
    Column("run_id", String(64), nullable=False),
    Column("p_value", Float),       # calibrated tail probability of the day (one-sided, the kind's way)
    Column("surprise", Float),      # -log10 p_value: keeps the order where the score runs out of digits
    Column("threshold", Float),     # the p the office's budget asked for that day (alpha)
    Column("excess", Float),        # tickets beyond the expectation, the alert's way
    Column("history_days", Integer),  # days of this series on record when judged
    Index("ix_anomalies_ds", "ds", "severity"),
)

pipeline_runs = Table(
    "pipeline_runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("stage", String(32), nullable=False),
    Column("logical_date", Date),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),  # running, success, failed, halted, abandoned
    Column("params", JSON),
    Column("metrics", JSON),
    Column("message", Text),
    Column("host", String(128)),  # where the run's process ran, and its pid: a run left "running"
    Column("pid", Integer),       # by a killed process is marked abandoned by the next run of its stage
    Index("ix_pipeline_runs_stage", "stage", "started_at"),
)

# Alerts (alerts/): one row per alert, keyed by its fingerprint (the series and the kind of
# anomaly), carrying its latest state; alert_events is its history and the audit trail.
alerts = Table(
    "alerts", metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("series_id", String(120), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("region_level", String(10), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("city_code", String(6)),
    Column("category_level", String(3), nullable=False),
    Column("category_code", String(80), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("state", String(10), nullable=False),  # firing, resolved
    Column("status", String(16), nullable=False),  # state, or what holds it back: silenced, inhibited, acknowledged
    Column("starts_on", Date, nullable=False),  # first day of the current firing episode
    Column("last_seen", Date, nullable=False),  # last day an anomaly raised it
    Column("ends_on", Date),  # the day it resolved
    Column("observed", Float, nullable=False),
    Column("expected", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("score", Float, nullable=False),
    Column("surprise", Float),
    Column("history_days", Integer),
    Column("detectors", String(160), nullable=False),
    Column("explanation", Text),
    Column("samples", JSON),  # a few masked ticket texts of the day, for the office
    Column("silenced_by", Integer),
    Column("inhibited_by", String(32)),
    Column("ack_by", String(64)),
    Column("ack_at", UTCDateTime),
    Column("ack_verdict", String(16)),  # useful, not_useful
    Column("ack_comment", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_alerts_state", "state", "last_seen"),
)

alert_events = Table(
    "alert_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("ds", Date),  # the logical day of the run that recorded it
    Column("fingerprint", String(32)),
    Column("silence_id", Integer),
    Column("action", String(24), nullable=False),  # fired, updated, resolved, silenced, inhibited, acknowledged, ...
    Column("actor", String(64), nullable=False),
    Column("detail", JSON),
    Index("ix_alert_events_fingerprint", "fingerprint", "ds"),
    Index("ix_alert_events_silence", "silence_id"),
)

silences = Table(
    "silences", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("matchers", JSON, nullable=False),  # ['region_code="440306"', 'category_code=~"environment.*"']
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("end_on_resolve", Boolean, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expired_at", UTCDateTime),
    Column("expired_by", String(64)),
    Column("expire_reason", Text),
)

# The outbox: one row per notice and channel. The dedup key (day, receiver, channel, group and the
# fingerprints it carries) is unique, so a rerun cannot queue a notice twice.
notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("ds", Date, nullable=False),
    Column("receiver", String(120), nullable=False),
    Column("receiver_name", String(120), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("channel_type", String(16), nullable=False),
    Column("group_key", String(255), nullable=False),
    Column("firing", JSON, nullable=False),  # fingerprints
    Column("resolved", JSON, nullable=False),
    Column("severities", JSON, nullable=False),  # fingerprint -> severity when sent (a rise is news)
    Column("lang", String(4), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),  # the message as the office reads it (markdown)
    Column("payload", JSON, nullable=False),  # what the channel sends, before signing
    Column("status", String(12), nullable=False),  # pending, sending, delivered, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("run_id", String(64)),
    Index("ix_notifications_status", "status", "next_attempt_at"),
    Index("ix_notifications_group", "receiver", "group_key", "ds"),
)

# 每月一题: one proposal per evidence month and scope (a city, or the province). The model's pick
# and the chosen issue (an analyst may override it) are candidate ids (series-id form); the ranked
# candidates are kept with every score component.
proposals = Table(
    "proposals", metadata,
    Column("month", Date, primary_key=True),  # first day of the evidence month
    Column("scope", String(6), primary_key=True),  # a city code or the province code
    Column("status", String(12), nullable=False),  # proposed, overridden
    Column("model_choice", String(120)),
    Column("chosen", String(120)),
    Column("title", Text),
    Column("score", Float),
    Column("candidates", JSON, nullable=False),
    Column("weights", JSON, nullable=False),
    Column("override_by", String(64)),
    Column("override_reason", Text),
    Column("overridden_at", UTCDateTime),
    Column("complete", Boolean, nullable=False),  # the warehouse held the whole month when it ran
    Column("reports", JSON),  # language -> {html, md}
    Column("run_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Every light change of a ticket (红黄灯), with the exact time it happened: yellow, red (escalated
# to level 1), escalated (each further level), closed (on_time or late). A rerun inserts nothing.
light_events = Table(
    "light_events", metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("event", String(12), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("ds", Date, nullable=False),  # the local day of ``at``
    Column("detail", String(16)),
    Column("city_code", String(6), nullable=False),
    Column("district_code", String(6)),
    Column("department", String(64)),
    Column("category_l2", String(80), nullable=False),
    Column("run_id", String(64), nullable=False),
    Index("ix_light_events_ds", "ds", "event"),
)

# Repeat complaints (同人同事) per month, place and category: a ticket is a repeat when the same
# caller (caller_key, never a phone number) asked about the same category in the same place
# within config/sla.yaml repeat_window_days before it.
repeat_rates = Table(
    "repeat_rates", metadata,
    Column("month", Date, primary_key=True),
    Column("region_level", String(10), primary_key=True),  # district, or city for tickets without one
    Column("region_code", String(6), primary_key=True),
    Column("category_code", String(80), primary_key=True),  # level-2 code, or * for all
    Column("city_code", String(6), nullable=False),
    Column("n_tickets", Integer, nullable=False),
    Column("n_with_caller", Integer, nullable=False),
    Column("n_repeat", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
)

# The monthly horse race (赛马): one row per month, level, scope and ranked unit (a city of the
# province, or a district of a city); a rerun of the month replaces its rows.
rankings = Table(
    "rankings", metadata,
    Column("month", Date, primary_key=True),
    Column("level", String(10), primary_key=True),      # city | district
    Column("scope", String(6), primary_key=True),       # the province (cities) or the city (districts)
    Column("unit_code", String(6), primary_key=True),
    Column("group_key", String(24), nullable=False),   # the size tier (cities), the city (districts)
    Column("rank", Integer),                           # within the group; null: too few tickets to rank
    Column("group_size", Integer, nullable=False),     # ranked units in the group
    Column("composite", Float),                        # T-score: 50 = the province's level for its mix
    Column("rank_prev", Integer),
    Column("flagged", Boolean, nullable=False),        # bottom of its group: follow-up
    Column("metrics", JSON, nullable=False),           # per metric: observed, expected, adjusted, score, rank, z, n
    Column("notes", JSON),
    Column("run_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# The served site (hotline.web): office accounts, their sessions, and the audit of every sign-in
# and action. Passwords are argon2 hashes; a session row keeps the SHA-256 of its cookie's token.
web_users = Table(
    "web_users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("office", String(80), nullable=False),       # district:440306, city:440300, province:440000, ...
    Column("display_name", String(64)),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("disabled_at", UTCDateTime),
    Column("disabled_by", String(64)),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Index("ix_web_sessions_user", "user_id"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("username", String(64), nullable=False),
    Column("office", String(80)),
    Column("action", String(32), nullable=False),   # signin, signin_failed, signin_limited, ack, silence, ...
    Column("target", String(120)),
    Column("ip", String(64)),
    Column("detail", JSON),
    Index("ix_audit_log_user", "username", "at"),
)
