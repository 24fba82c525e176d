"""Office accounts of the served site: who may sign in, what each office may see, sessions, the
sign-in rate limit, and the audit log of every sign-in and action.

An account belongs to one office of the routing tree (config/alerts.yaml's receivers):

- ``district:<code>`` sees its district's alerts and lists;
- ``city:<code>`` its city's and its districts';
- ``department:<city>:<name>`` its city's alerts of the categories it leads (taxonomy.yaml);
- ``province:<code>`` the whole province;
- ``operator`` the whole province too (the people who run the pipeline).

Passwords are argon2id hashes (argon2-cffi); a session is a random token in an HttpOnly cookie,
kept here only as its SHA-256, ended on sign-out and when the account is disabled. Five failed
sign-ins of one account within 15 minutes (since its last good one), or 20 from one address, stop
further tries for that window: every try, good, failed or refused, is a row of the audit log.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, insert, select, update

from hotline.core.links import SECRET_ENV
from hotline.core.reference import Reference
from warehouse.schema import audit_log, web_sessions, web_users

SESSION_HOURS = 12
LIMIT_WINDOW = dt.timedelta(minutes=15)
LIMIT_PER_USER = 5
LIMIT_PER_IP = 20
MIN_PASSWORD = 10
SECRET_FILE = "web-secret"
_USER = re.compile(r"[a-z0-9][a-z0-9_.-]{1,31}")
_OFFICE = re.compile(r"(?P<kind>district|city|province):(?P<code>\d{6})|department:(?P<city>\d{6}):(?P<dept>[^:]{1,40})"
                     r"|(?P<op>operator)")
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, 3 passes)
# a hash to verify against when the account does not exist, so that the time taken does not tell
_DUMMY = _HASHER.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A bad username, office or password, or an unknown account."""


@dataclass(frozen=True)
class Office:
    """An office of the routing tree; ``sees`` decides what of the warehouse is its business."""

    kind: str  # district, city, department, province, operator
    code: str  # the region code (the city for a department; the province for an operator)
    department: str | None = None

    @property
    def id(self) -> str:
        if self.kind == "operator":
            return "operator"
        if self.kind == "department":
            return f"department:{self.code}:{self.department}"
        return f"{self.kind}:{self.code}"

    @property
    def region(self) -> str:
        """The region whose lists (红黄灯) and proposals the office reads."""
        return self.code

    def sees(self, alert: Mapping[str, Any]) -> bool:
        """Is this alert (a row of the alerts table, with its labels) this office's business?"""
        labels = alert.get("labels") or {}
        region, city = str(alert.get("region_code") or ""), str(alert.get("city_code") or "")
        if self.kind in ("province", "operator"):
            return str(labels.get("province_code") or "") == self.code
        if self.kind == "city":
            return city == self.code or region == self.code
        if self.kind == "district":
            return region == self.code
        if self.kind == "department":
            return city == self.code and labels.get("department") == self.department
        return False

    def sees_region(self, code: str, ref: Reference) -> bool:
        """May the office read this region's lists and tickets (a department: its city's)?"""
        if self.kind in ("province", "operator"):
            return ref.regions.province_of(code) == self.code
        if self.kind in ("city", "department"):
            return code == self.code or ref.regions.parent_of(code) == self.code
        return code == self.code


def parse_office(text: str, ref: Reference, province: str) -> Office:
    """An office id as the routing tree writes it; the region must be in the reference data and of
    the office's level."""
    m = _OFFICE.fullmatch((text or "").strip())
    if not m:
        raise AccountError(f"office {text!r}: district:<code>, city:<code>, department:<city code>:<name>, "
                           "province:<code> or operator")
    if m["op"]:
        return Office("operator", province)
    if m["dept"]:
        if ref.regions.level_of(m["city"]) != "city":
            raise AccountError(f"office {text!r}: {m['city']} is not a city of the reference data")
        known = {c.department for c in ref.taxonomy.categories.values() if c.department}
        if m["dept"].strip() not in known:
            raise AccountError(f"office {text!r}: {m['dept'].strip()!r} leads no category of taxonomy.yaml "
                               f"(known: {', '.join(sorted(known))})")
        return Office("department", m["city"], m["dept"].strip())
    kind, code = m["kind"], m["code"]
    if ref.regions.level_of(code) != kind:
        raise AccountError(f"office {text!r}: {code} is not a {kind} of the reference data")
    return Office(kind, code)


def office_of(row: Mapping[str, Any], ref: Reference, province: str) -> Office:
    return parse_office(row["office"], ref, province)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(engine: Engine, username: str, office: str, password: str, created_by: str, ref: Reference,
             province: str, display_name: str | None = None, now: dt.datetime | None = None) -> int:
    username = username.strip().lower()
    if not _USER.fullmatch(username):
        raise AccountError(f"username {username!r}: 2-32 of a-z 0-9 _ . - , starting with a letter or digit")
    off = parse_office(office, ref, province)
    check_password(password)
    now = _now(now)
    with engine.begin() as conn:
        if conn.execute(select(web_users.c.id).where(web_users.c.username == username)).first():
            raise AccountError(f"username {username!r} is taken")
        uid = conn.execute(insert(web_users).values(
            username=username, office=off.id, display_name=(display_name or "")[:64] or None,
            password_hash=_HASHER.hash(password), created_at=now, created_by=created_by[:64])).inserted_primary_key[0]
        conn.execute(insert(audit_log).values(at=now, username=created_by[:64], action="user_added",
                                              target=username, detail={"office": off.id}))
    return int(uid)


def list_users(engine: Engine) -> list[dict[str, Any]]:
    u = web_users.c
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(u.id, u.username, u.office, u.display_name, u.created_at,
                                                     u.created_by, u.disabled_at, u.disabled_by)
                                              .order_by(u.office, u.username)).mappings()]


def disable_user(engine: Engine, username: str, by: str, now: dt.datetime | None = None) -> None:
    """Disable an account and end its sessions now."""
    now = _now(now)
    with engine.begin() as conn:
        row = conn.execute(select(web_users).where(web_users.c.username == username.strip().lower())).mappings().first()
        if row is None:
            raise AccountError(f"no account {username!r}")
        if row["disabled_at"] is not None:
            raise AccountError(f"account {username!r} is already disabled")
        conn.execute(update(web_users).where(web_users.c.id == row["id"]).values(disabled_at=now, disabled_by=by[:64]))
        conn.execute(update(web_sessions).where(web_sessions.c.user_id == row["id"], web_sessions.c.ended_at.is_(None))
                     .values(ended_at=now))
        conn.execute(insert(audit_log).values(at=now, username=by[:64], action="user_disabled", target=row["username"],
                                              detail={"office": row["office"]}))


def audit(engine: Engine, username: str, action: str, office: str | None = None, target: str | None = None,
          ip: str | None = None, detail: Mapping[str, Any] | None = None, now: dt.datetime | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(audit_log).values(at=_now(now), username=username[:64], office=office, action=action[:32],
                                              target=(target or "")[:120] or None, ip=(ip or "")[:64] or None,
                                              detail=dict(detail) if detail else None))


def audit_rows(engine: Engine, username: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    a = audit_log.c
    q = select(audit_log).order_by(a.id.desc()).limit(limit)
    if username:
        q = q.where(a.username == username)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _limited(conn, username: str, ip: str | None, now: dt.datetime) -> bool:
    a = audit_log.c
    since = now - LIMIT_WINDOW
    last_ok = conn.execute(select(func.max(a.at)).where(a.username == username, a.action == "signin")).scalar()
    if last_ok is not None and last_ok > since:
        since = last_ok
    fails = conn.execute(select(func.count()).where(a.username == username, a.action == "signin_failed",
                                                    a.at > since)).scalar()
    if fails >= LIMIT_PER_USER:
        return True
    if ip:
        by_ip = conn.execute(select(func.count()).where(a.ip == ip, a.action == "signin_failed",
                                                        a.at > now - LIMIT_WINDOW)).scalar()
        return by_ip >= LIMIT_PER_IP
    return False


@dataclass(frozen=True)
class SignIn:
    outcome: str  # signin, signin_failed, signin_limited
    user: dict[str, Any] | None = None
    token: str | None = None


_USER_LOCKS = [threading.Lock() for _ in range(64)]  # by the username's hash: bounded, whatever names come
_HASHING = threading.BoundedSemaphore(4)  # argon2 takes 64 MiB a check: at most four at once per process


def sign_in(engine: Engine, username: str, password: str, ip: str | None, now: dt.datetime | None = None) -> SignIn:
    """Check a password (within the rate limit) and start a session; every try is audited. The
    tries of one account are taken one at a time in this process (the check, the hash, the audit
    row), so parallel requests cannot all pass the limit before the first failure is written."""
    username = (username or "").strip().lower()[:64]
    lock = _USER_LOCKS[int(hashlib.sha256(username.encode()).hexdigest()[:8], 16) % len(_USER_LOCKS)]
    with lock, _HASHING:
        return _sign_in(engine, username, password, ip, _now(now))


def _sign_in(engine: Engine, username: str, password: str, ip: str | None, now: dt.datetime) -> SignIn:
    with engine.connect() as conn:
        limited = _limited(conn, username, ip, now)
        row = conn.execute(select(web_users).where(web_users.c.username == username)).mappings().first()
    if limited:
        audit(engine, username, "signin_limited", ip=ip, now=now)
        return SignIn("signin_limited")
    ok = False
    try:
        ok = _HASHER.verify(row["password_hash"] if row else _DUMMY, password or "") and row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row["disabled_at"] is not None:
        audit(engine, username, "signin_failed", office=row["office"] if row else None, ip=ip, now=now,
              detail={"why": "disabled" if ok else "bad username or password"})
        return SignIn("signin_failed")
    token = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(web_sessions).values(token_hash=token_hash(token), user_id=row["id"], created_at=now,
                                                 expires_at=now + dt.timedelta(hours=SESSION_HOURS)))
        conn.execute(insert(audit_log).values(at=now, username=username, office=row["office"], action="signin",
                                              ip=(ip or "")[:64] or None))
    return SignIn("signin", dict(row), token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_user(engine: Engine, token: str | None, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The account of a live session (not ended, not expired, the account not disabled)."""
    if not token or len(token) > 100:
        return None
    now = _now(now)
    s, u = web_sessions.c, web_users.c
    with engine.connect() as conn:
        row = conn.execute(select(u.id, u.username, u.office, u.display_name, s.token_hash).select_from(
            web_sessions.join(web_users, s.user_id == u.id)).where(
            s.token_hash == token_hash(token), s.ended_at.is_(None), s.expires_at > now,
            u.disabled_at.is_(None))).mappings().first()
    return dict(row) if row else None


def end_session(engine: Engine, token: str, now: dt.datetime | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(web_sessions).where(web_sessions.c.token_hash == token_hash(token))
                     .values(ended_at=_now(now)))


def web_secret(env: Mapping[str, str], var_dir: Path, create: bool = False) -> str | None:
    """The site's secret (signs links and CSRF tokens): HOTLINE_WEB_SECRET, else the file
    var/web-secret (mode 600), made on first use when ``create`` (the embedded demo)."""
    value = env.get(SECRET_ENV)
    if value:
        return value
    path = Path(var_dir) / SECRET_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value
