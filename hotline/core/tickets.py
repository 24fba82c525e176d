"""The canonical ticket's vocabulary: its columns and the values of its coded fields
(docs/SCHEMA.md). Ingestion maps sources onto it, the warehouse stores it, data quality checks
it; each reads it from here."""
from __future__ import annotations

from typing import Any

from hotline.core.pii import mask_text

CANONICAL_COLUMNS = [
    "ticket_id", "source", "received_at", "received_date", "channel", "request_type",
    "province_code", "city_code", "district_code", "street_code",
    "category_l1", "category_l2", "category_raw", "content", "caller_key", "department", "urgency",
    "deadline_at", "closed_at", "status", "is_repeat", "satisfaction", "resolved", "updated_at",
]
CHANNELS = ("phone", "app", "wechat", "web", "sms", "email", "other")
STATUSES = ("received", "dispatched", "processing", "closed", "returned")
SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")
REQUEST_TYPES = ("consult", "help", "suggest", "complain", "report", "thanks")
URGENCY = ("normal", "urgent")
ENUMS = {"channel": CHANNELS, "status": STATUSES, "satisfaction": SATISFACTION,
         "request_type": REQUEST_TYPES, "urgency": URGENCY}


def mask_reason(reason: str | None, ticket_id: Any = None) -> str | None:
    """A quarantine reason with its PII masked but its ticket id kept (a long numeric id is not a
    card number, and the operator needs it to find the row)."""
    if reason is None:
        return None
    if not isinstance(ticket_id, str) or not ticket_id or ticket_id not in reason:
        return mask_text(reason)
    return ticket_id.join(mask_text(part) for part in reason.split(ticket_id))
