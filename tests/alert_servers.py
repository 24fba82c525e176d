"""Real local servers for the delivery tests: an HTTP server emulating the DingTalk, WeCom and
Feishu robots and a generic webhook (checking their signatures the way the real services do),
and an SMTP server (aiosmtpd) with authentication."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    answer: dict[str, Any]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class RobotServer:
    """POST /dingtalk?access_token=..., /wecom?key=..., /feishu/<hook>, /webhook: answers as each
    service does, verifies signatures with the secrets it was given, and can be told to fail."""

    dingtalk_secret: str = "SECdingtalk-test-secret"
    feishu_secret: str = "feishu-test-secret"
    webhook_secret: str = "webhook-test-secret"
    requests: list[Request] = field(default_factory=list)
    fail_next: dict[str, list[int]] = field(default_factory=dict)  # path prefix -> statuses to answer first

    def start(self) -> "RobotServer":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802
                u = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(u.query))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = outer.answer(u.path, query, dict(self.headers), body)
                outer.requests.append(Request(u.path, query, dict(self.headers), body, status, answer))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, dict]:
        for prefix, statuses in self.fail_next.items():
            if path.startswith(prefix) and statuses:
                return statuses.pop(0), {"error": "injected failure"}
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, {"error": "body is not UTF-8 JSON"}
        if path.startswith("/dingtalk"):
            if query.get("access_token") != "dt-token":
                return 200, {"errcode": 300001, "errmsg": "token is not exist"}
            ts = query.get("timestamp", "")
            want = base64.b64encode(hmac.new(self.dingtalk_secret.encode(), f"{ts}\n{self.dingtalk_secret}".encode(),
                                             hashlib.sha256).digest()).decode()
            if query.get("sign") != want:
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
            if doc.get("msgtype") == "actionCard":  # an ActionCard: title, text, and buttons that open a URL
                card = doc.get("actionCard") or {}
                btns = card.get("btns") or []
                if not card.get("title") or not card.get("text") or not btns or not all(
                        b.get("title") and str(b.get("actionURL", "")).startswith(("https://", "http://"))
                        for b in btns):
                    return 200, {"errcode": 40035, "errmsg": "missing actionCard"}
                return 200, {"errcode": 0, "errmsg": "ok"}
            if doc.get("msgtype") != "markdown" or not doc["markdown"].get("text"):
                return 200, {"errcode": 40035, "errmsg": "missing markdown"}
            return 200, {"errcode": 0, "errmsg": "ok"}
        if path.startswith("/wecom"):
            if query.get("key") != "wecom-key":
                return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
            if doc.get("msgtype") != "markdown" or len(doc["markdown"]["content"].encode()) > 4096:
                return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
            return 200, {"errcode": 0, "errmsg": "ok"}
        if path.startswith("/feishu"):
            ts = str(doc.get("timestamp", ""))
            want = base64.b64encode(hmac.new(f"{ts}\n{self.feishu_secret}".encode(), b"",
                                             hashlib.sha256).digest()).decode()
            if doc.get("sign") != want:
                return 200, {"code": 19021,
                             "msg": "sign match fail or timestamp is not within one hour from current time"}
            if doc.get("msg_type") != "interactive":
                return 200, {"code": 9499, "msg": "Bad Request"}
            return 200, {"code": 0, "msg": "success"}
        if path.startswith("/webhook"):
            ts = headers.get("X-Hotline-Timestamp", "")
            want = "sha256=" + hmac.new(self.webhook_secret.encode(), f"{ts}.".encode() + body,
                                        hashlib.sha256).hexdigest()
            if headers.get("X-Hotline-Signature") != want:
                return 401, {"error": "bad signature"}
            return 200, {"ok": True}
        return 404, {"error": "no such hook"}

    def delivered(self, prefix: str) -> list[Request]:
        """Requests to ``prefix`` that the service accepted."""
        return [r for r in self.requests if r.path.startswith(prefix) and r.status == 200
                and r.answer.get("errcode", r.answer.get("code", 0)) == 0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """aiosmtpd on loopback, with AUTH LOGIN/PLAIN checked against one user (no TLS on loopback)."""

    def __init__(self, user: str = "alerts@hotline.test", password: str = "s3cret-smtp-pw"):
        self.user, self.password = user, password
        self.messages: list[dict[str, Any]] = []

    def start(self) -> "SmtpServer":
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "authenticated": bool(session.authenticated),
                                       "message": message_from_bytes(envelope.content, policy=policy.default)})
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == outer.user
                  and auth_data.password.decode() == outer.password)
            return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     auth_require_tls=False, auth_required=True,
                                     auth_exclude_mechanism=["LOGIN"])
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class HangingRobotServer(RobotServer):
    """A RobotServer whose paths under ``hang`` answer only after ``delay`` seconds (or at
    stop()): a receiver slower than the client's timeout. ``arrivals`` records every request
    when it arrives, (path, X-Hotline-Dedup-Key), so a request the client gave up on counts."""

    hang: tuple[str, ...] = ("/webhook/slow",)
    delay: float = 5.0
    arrivals: list[tuple[str, str]] = field(default_factory=list)

    def start(self) -> "HangingRobotServer":
        self.released = threading.Event()
        return super().start()

    def stop(self) -> None:
        self.released.set()
        super().stop()

    def answer(self, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, dict]:
        self.arrivals.append((path, headers.get("X-Hotline-Dedup-Key", "")))
        if self.hang and path.startswith(self.hang):
            self.released.wait(self.delay)
        return super().answer(path, query, headers, body)
