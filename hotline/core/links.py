"""Signed, expiring links to one alert's page on the served site (hotline.web), for the chat and
mail notices: ``<report_base_url>/a/<fingerprint>?e=<expiry>&s=<signature>``.

The signature is an HMAC-SHA256 over the fingerprint and the expiry, keyed by the site's secret
(HOTLINE_WEB_SECRET). A link opens that one alert's page, read-only, until it expires; acting on the
alert needs a sign-in. The expiry is a whole day (UTC midnight, ``LINK_DAYS`` after the notice's
day), so a notice rendered twice carries the same link.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

SECRET_ENV = "HOTLINE_WEB_SECRET"  # the served site's secret: signs its forms and the alert links in notices
LINK_DAYS = 7
MIN_SECRET = 32
_FP = re.compile(r"[0-9a-f]{32}")


def _sig(secret: str, fp: str, expires: int) -> str:
    msg = f"alert:{fp}:{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def link_expiry(day: dt.date, days: int = LINK_DAYS) -> int:
    """The Unix time a link sent for ``day`` expires: UTC midnight ``days + 1`` days later."""
    end = dt.datetime.combine(day + dt.timedelta(days=days + 1), dt.time(), dt.timezone.utc)
    return int(end.timestamp())


def signed_alert_path(secret: str, fp: str, expires: int) -> str:
    if len(secret) < MIN_SECRET:
        raise ValueError(f"the site's secret must have at least {MIN_SECRET} characters")
    return f"a/{fp}?e={expires}&s={_sig(secret, fp, expires)}"


def check_alert_link(secret: str, fp: str, expires: str | int, sig: str, now: dt.datetime) -> str | None:
    """None when the link is good; else why it is refused ("tampered", "expired")."""
    try:
        exp = int(expires)
    except (TypeError, ValueError):
        return "tampered"
    if not _FP.fullmatch(fp or "") or not hmac.compare_digest(_sig(secret, fp, exp).encode(), str(sig or "").encode()):
        return "tampered"
    if now.timestamp() >= exp:
        return "expired"
    return None
