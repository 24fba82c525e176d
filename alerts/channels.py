"""Delivery channels: a local file, email over SMTP, DingTalk / WeCom (企业微信) / Feishu robot
webhooks and a generic JSON webhook.

Secrets (SMTP passwords, robot tokens and signing secrets) never live in config or code: a
channel names an Airflow connection (``conn_id``, read from ``AIRFLOW_CONN_<ID>`` as a URI or
JSON, or from Airflow's own store inside a task) or environment variables (``url_env``,
``secret_env``, ``password_env``). Whatever is stored or printed about a delivery (errors,
receipts) goes through :func:`redact`: every query value, user:password@ and token-like path
segments as ***.

A delivery ends one of four ways: delivered; refused (:class:`DeliveryError`: the receiver
answered no, or the message could not be built); :class:`Unreachable` (no connection: nothing
was sent); :class:`OutcomeUnknown` (the request went out and no answer came in time: the
receiver may well have it, so it is not sent again in the same run).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import smtplib
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx

from hotline.core.links import SECRET_ENV


class DeliveryError(Exception):
    """A notice could not be delivered this time; the message is safe to log (no secrets)."""


class Unreachable(DeliveryError):
    """No connection to the receiver (refused, no route, connect timeout): nothing was sent."""


class OutcomeUnknown(DeliveryError):
    """The request was sent and no answer came in time (read timeout, connection dropped): the
    receiver may have the notice; the next attempt waits for the next run."""


# Every query value (?password=, &sig=, ...), and secret-named values wherever they stand.
# A value runs to the next & # or space (or a ": " our messages put after a URL).
_VALUE = r"[^&#\s]+?(?=[&#\s]|:\s|$)"
_QUERY_VALUE = re.compile(r"([?&][^=&#\s/]+=)" + _VALUE)
_SECRET_VALUE = re.compile(
    r"(\b(?:access_token|token|key|sign|sig|signature|secret|password|passwd|pwd|timestamp)=)" + _VALUE, re.I)
_USERINFO = re.compile(r"(//)[^/@\s]+@")
_PATH_TOKEN = re.compile(r"(?<=/)[A-Za-z0-9_\-]{16,}(?![A-Za-z0-9_\-])")  # Feishu's hook id, Slack-style paths


def redact(text: object) -> str:
    """Text safe to store, log or print: every URL query value, user:password@ and token-like
    path segments as *** (``https://u:p@h/send?password=x&sig=y`` -> ``https://***@h/send?password=***&sig=***``)."""
    text = _SECRET_VALUE.sub(r"\1***", _QUERY_VALUE.sub(r"\1***", str(text)))
    return _PATH_TOKEN.sub("***", _USERINFO.sub(r"\1***@", text))


@dataclass(frozen=True)
class Connection:
    conn_type: str = ""
    host: str = ""
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str = ""
    extra: Mapping[str, Any] | None = None


def parse_connection(value: str, conn_id: str) -> Connection:
    """An Airflow connection from its environment form: JSON or URI."""
    value = value.strip()
    if value.startswith("{"):
        try:
            d = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DeliveryError(f"connection {conn_id}: not valid JSON ({exc.msg})") from None
        extra = d.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra or "{}")
        return Connection(d.get("conn_type", ""), d.get("host") or "", d.get("port"), d.get("login"),
                          d.get("password"), d.get("schema") or "", extra)
    u = urllib.parse.urlsplit(value)
    extra = dict(urllib.parse.parse_qsl(u.query))
    return Connection(u.scheme, u.hostname or "", u.port, urllib.parse.unquote(u.username) if u.username else None,
                      urllib.parse.unquote(u.password) if u.password else None, u.path.lstrip("/"), extra)


LINK_SECRET_ENV = SECRET_ENV  # the served site's secret: signs the alert links in notices


class Secrets:
    """Where channels find their secrets: the environment given (resolved at the edge), then
    Airflow's connection store when running inside Airflow."""

    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)

    def connection(self, conn_id: str) -> Connection:
        raw = self.env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if raw:
            return parse_connection(raw, conn_id)
        try:  # inside an Airflow task: the metadata database or a secrets backend
            # importing Airflow points its log handler at the stdout of the moment; a command's
            # stdout carries its --json document, so Airflow's logs go to stderr
            with contextlib.redirect_stdout(sys.stderr):
                from airflow.sdk import Connection as AirflowConnection

            c = AirflowConnection.get(conn_id)
            return Connection(c.conn_type or "", c.host or "", c.port, c.login, c.password, c.schema or "",
                              c.extra_dejson)
        except Exception:  # noqa: BLE001 - not in Airflow, or no such connection
            raise DeliveryError(f"connection {conn_id!r} not found (set AIRFLOW_CONN_{conn_id.upper()} "
                                f"or add it in Airflow)") from None

    def value(self, name: str, what: str) -> str:
        v = self.env.get(name)
        if not v:
            raise DeliveryError(f"{what}: environment variable {name} is not set")
        return v


def webhook_target(spec: Mapping[str, Any], secrets: Secrets, name: str) -> tuple[str, str | None]:
    """(url, signing secret or None) of a webhook channel."""
    secret = None
    if spec.get("conn_id"):
        c = secrets.connection(str(spec["conn_id"]))
        extra = dict(c.extra or {})
        if extra.get("url"):
            url = str(extra.pop("url"))
        elif c.host.startswith(("http://", "https://")):
            url = c.host
        else:
            scheme = c.conn_type if c.conn_type in ("http", "https") else "https"
            url = f"{scheme}://{c.host}{f':{c.port}' if c.port else ''}/{c.schema}"
            query = {k: v for k, v in extra.items() if k not in ("secret",)}
            if query:
                url += "?" + urllib.parse.urlencode(query)
        secret = c.password or extra.get("secret")
    elif spec.get("url_env"):
        url = secrets.value(str(spec["url_env"]), f"channel {name}")
    elif spec.get("url"):
        url = str(spec["url"])
    else:
        raise DeliveryError(f"channel {name}: no conn_id, url_env or url")
    if spec.get("secret_env"):
        secret = secrets.value(str(spec["secret_env"]), f"channel {name}")
    return url, secret


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk robot signature: base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu robot signature: base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=""))."""
    return base64.b64encode(hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """The generic webhook's X-Hotline-Signature: sha256=hex(HMAC-SHA256(secret, "{ts}." + body))."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
    try:
        return httpx.post(url, content=body, headers={"Content-Type": "application/json; charset=utf-8", **headers},
                          timeout=timeout)
    except httpx.HTTPError as exc:
        cls = Unreachable if isinstance(exc, _NOT_SENT) else OutcomeUnknown if isinstance(exc, _MAYBE_SENT) \
            else DeliveryError
        what = f" (no answer within {timeout:g} s: outcome unknown)" if isinstance(exc, httpx.ReadTimeout) else ""
        raise cls(f"{type(exc).__name__} posting to {redact(url)}{what}: {redact(exc)}") from None


def _check(resp: httpx.Response, url: str, code_key: str | None) -> None:
    if resp.status_code // 100 != 2:
        raise DeliveryError(f"HTTP {resp.status_code} from {redact(url)}: {redact(resp.text[:200])}")
    if code_key:
        try:
            doc = resp.json()
        except ValueError:
            raise DeliveryError(f"{redact(url)} answered 200 with a body that is not JSON") from None
        code = doc.get(code_key, doc.get("StatusCode", 0))
        if code not in (0, "0"):
            raise DeliveryError(f"{redact(url)} refused the message: {code_key} {code}, "
                                f"{redact(str(doc.get('errmsg') or doc.get('msg')))}")


def _with_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params)


def send(spec: Mapping[str, Any], name: str, notice: Mapping[str, Any], secrets: Secrets, var_dir: Path,
         timeout: float = 10.0, clock: Callable[[], float] = time.time) -> str:
    """Deliver one outbox row through the channel ``spec``; returns a short receipt.
    Raises :class:`DeliveryError` (safe to log) when it did not go through."""
    kind = spec["type"]
    payload = notice["payload"]
    if kind == "file":
        folder = Path(str(spec.get("path", "notices")))
        folder = folder if folder.is_absolute() else var_dir / folder
        folder.mkdir(parents=True, exist_ok=True)
        day = str(notice["ds"])
        record = {"id": notice["id"], "dedup_key": notice["dedup_key"], "receiver": notice["receiver"],
                  "receiver_name": notice["receiver_name"], "channel": name, "subject": notice["subject"],
                  "body": notice["body"], "payload": payload}
        with open(folder / f"{day}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        with open(folder / f"{day}.md", "a", encoding="utf-8") as fh:
            fh.write(f"<!-- {notice['receiver']} · {name} · {notice['dedup_key']} -->\n{notice['body']}\n\n---\n\n")
        return f"appended to {folder / f'{day}.jsonl'}"
    if kind == "email":
        return _send_email(spec, name, notice, secrets, timeout)
    url, secret = webhook_target(spec, secrets, name)
    body_doc = dict(payload)
    headers = {"X-Hotline-Dedup-Key": str(notice["dedup_key"])}
    code_key = None
    if kind == "dingtalk":
        code_key = "errcode"
        if secret:
            ts = int(clock() * 1000)
            url = _with_query(url, timestamp=str(ts), sign=dingtalk_sign(secret, ts))
    elif kind == "wecom":
        code_key = "errcode"
    elif kind == "feishu":
        code_key = "code"
        if secret:
            ts = int(clock())
            body_doc = {"timestamp": str(ts), "sign": feishu_sign(secret, ts), **body_doc}
    body = json.dumps(body_doc, ensure_ascii=False, default=str).encode()
    if kind == "webhook" and secret:
        ts = int(clock())
        headers.update({"X-Hotline-Timestamp": str(ts), "X-Hotline-Signature": webhook_signature(secret, ts, body)})
    resp = _post(url, body, headers, timeout)
    _check(resp, url, code_key)
    return f"HTTP {resp.status_code} from {redact(url)}"


def _send_email(spec: Mapping[str, Any], name: str, notice: Mapping[str, Any], secrets: Secrets,
                timeout: float) -> str:
    host, port, user, password, extra = spec.get("host", "localhost"), spec.get("port"), spec.get("user"), None, {}
    if spec.get("conn_id"):
        c = secrets.connection(str(spec["conn_id"]))
        host, port, user, password, extra = (c.host or host, c.port or port, c.login or user, c.password,
                                             dict(c.extra or {}))
    if spec.get("password_env"):
        password = secrets.value(str(spec["password_env"]), f"channel {name}")
    ssl = str(extra.get("ssl", spec.get("ssl", False))).lower() in ("1", "true", "yes") or port == 465
    starttls = str(extra.get("starttls", spec.get("starttls", "auto"))).lower()
    sender = (spec.get("from") or extra.get("from_email")
              or (user if user and "@" in str(user) else "12345-alerts@localhost"))
    payload = notice["payload"]
    msg = EmailMessage()
    msg["Subject"] = payload["subject"]
    msg["From"] = sender
    msg["To"] = ", ".join(spec["to"])
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{notice['dedup_key']}@hotline-early-warning>"
    msg.set_content(payload["text"])
    msg.add_alternative(payload["html"], subtype="html")
    cls = smtplib.SMTP_SSL if ssl else smtplib.SMTP
    try:
        smtp = cls(host, int(port or (465 if ssl else 25)), timeout=timeout)
    except OSError as exc:  # refused, no route, connect timeout, a refusing greeting: nothing sent
        raise Unreachable(f"SMTP {host}:{port}: {type(exc).__name__}: {redact(exc)}") from None
    try:
        with smtp:
            smtp.ehlo()
            if not ssl and starttls != "false" and (starttls == "true" or smtp.has_extn("starttls")):
                smtp.starttls()
                smtp.ehlo()
            if user and password:
                smtp.login(str(user), password)
            refused = smtp.send_message(msg)
    except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:  # the message may have gone
        raise OutcomeUnknown(f"SMTP {host}:{port}: {type(exc).__name__}: {redact(exc)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {host}:{port}: {type(exc).__name__}: {redact(exc)}") from None
    # Some recipients refused, others accepted: sending again would reach the others twice.
    note = f"; refused {sorted(refused)}" if refused else ""
    return f"SMTP {host}:{port} accepted for {len(spec['to']) - len(refused)} recipient(s){note}"

