"""The served warning site: each office signs in and sees its own region's alerts, lists and
tickets (masked), acknowledges an alert with its verdict, silences after a preview, and downloads
its lists; the notices' signed links open one alert's page read-only.

A FastAPI app of its own (``hotline serve``; the ``web`` service in docker-compose), not an
Airflow plugin: the offices are not Airflow users, a plugin's endpoints get no protection from
Airflow's auth anyway, and the site must stay up while the scheduler and api-server restart.

Security: sessions are random tokens in HttpOnly, Secure, SameSite=Lax cookies (kept server-side
as hashes, ended on sign-out or when the account is disabled); every POST carries a CSRF token
bound to the session (the sign-in form: to a pre-session cookie); sign-in is rate limited; every
sign-in and action is audited; an alert outside the office's scope is a 404, like one that does
not exist; pages carry a Content-Security-Policy with no script at all.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import re
import secrets as pysecrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select, text

from hotline.app import accounts
from hotline.app.runtime import Runtime
from hotline.web import views

SESSION_COOKIE = "hl_session"
PRE_COOKIE = "hl_pre"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
_FP = re.compile(r"[0-9a-f]{32}")
LIST_ROWS = 200
ACTIONS_SLOT = "<!--hotline:actions-->"  # where an alert page's forms (with the session's CSRF token) go
SILENCE_HOURS = (24, 72, 168)


class NotFound(Exception):
    pass


class SignInFirst(Exception):
    """No live session: the answer is the sign-in page, then back."""


class Fragments:
    """Parts of pages drawn from the daily data (a chart, a red and yellow list), kept until the
    warehouse's next pipeline run (the count and latest stamps of pipeline_runs, read at most every
    ``check_every`` seconds) and at most ``ttl`` seconds, least recently used first out. What an
    office changes (acknowledgements, silences) is never kept: alerts and histories are read fresh."""

    def __init__(self, engine, size: int = 512, ttl: float = 600.0, check_every: float = 5.0):
        self.engine, self.size, self.ttl, self.check_every = engine, size, ttl, check_every
        self.items: collections.OrderedDict = collections.OrderedDict()
        self.lock = threading.Lock()
        self.making: dict[tuple, threading.Lock] = {}
        self._version: tuple = ()
        self._checked = -1e9

    def version(self) -> tuple:
        from warehouse.schema import pipeline_runs

        t = time.monotonic()
        if t - self._checked > self.check_every:
            p = pipeline_runs.c
            with self.engine.connect() as conn:
                self._version = tuple(conn.execute(select(func.count(), func.max(p.started_at),
                                                          func.max(p.finished_at))).one())
            self._checked = t
        return self._version

    def _fresh(self, key: tuple, version: tuple, t: float) -> Any:
        with self.lock:
            hit = self.items.get(key)
            if hit and hit[0] == version and t - hit[1] < self.ttl:
                self.items.move_to_end(key)
                return hit[2]
        return None

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The kept value, else ``make()``: made once, however many requests miss it at once (the
        others wait for it rather than all drawing the same page together)."""
        version, t = self.version(), time.monotonic()
        value = self._fresh(key, version, t)
        if value is not None:
            return value
        with self.lock:
            making = self.making.setdefault(key, threading.Lock())
        with making:
            value = self._fresh(key, version, t)
            if value is None:
                value = make()
                with self.lock:
                    self.items[key] = (version, t, value)
                    self.items.move_to_end(key)
                    while len(self.items) > self.size:
                        self.items.popitem(last=False)
        with self.lock:
            self.making.pop(key, None)
        return value


class SecurityHeaders:
    """Every response's security headers (a plain ASGI middleware: no per-request task)."""

    HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in self.HEADERS if h[0] not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(rt: Runtime, secret: str, secure_cookies: bool = True) -> FastAPI:
    """The site over the runtime's warehouse; ``secret`` (at least 32 characters) keys the CSRF
    tokens and the signed links."""
    if not secret or len(secret) < 32:
        raise ValueError("the site's secret (HOTLINE_WEB_SECRET) needs at least 32 characters")
    from alerts.acks import acknowledge
    from alerts.config import matches_all, parse_matchers
    from alerts.pages import alert_body, alert_chart
    from alerts.render import alert_view, office_name
    from alerts.silences import add_silence, expire_silence, silences_list
    from hotline.core.links import check_alert_link
    from proposals.panel import last_day
    from reports.board import alert_table, day_tickets, kpis, open_alerts
    from warehouse.schema import alert_events, alerts, audit_log

    app = FastAPI(title="12345 hotline early warning", docs_url=None, redoc_url=None, openapi_url=None)
    engine, ref, province = rt.engine, rt.ref, rt.province
    kept = Fragments(engine)

    def mac(purpose: str, value: str) -> str:
        return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def now() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def ip_of(request: Request) -> str | None:
        return request.client.host if request.client else None

    def current(request: Request) -> tuple[dict[str, Any], accounts.Office, str] | None:
        token = request.cookies.get(SESSION_COOKIE)
        user = accounts.session_user(engine, token)
        if not user:
            return None
        try:
            office = accounts.parse_office(user["office"], ref, province)
        except accounts.AccountError:  # its region left the reference data: no scope, so no access
            return None
        return user, office, mac("csrf", user["token_hash"])

    def office_label(office: accounts.Office) -> str:
        return "运维 operators" if office.kind == "operator" else office_name(office.id, ref, rt.alerts_config, "zh")

    def html(title: str, body: str, who=None, status: int = 200) -> HTMLResponse:
        user, office, csrf = who or (None, None, None)
        return HTMLResponse(views.site_page(title, body, user, office_label(office) if office else "", csrf),
                            status_code=status)

    def check_csrf(who, token: str | None) -> None:
        if not token or not hmac.compare_digest(str(token).encode(), who[2].encode()):
            raise PermissionError("csrf")

    def the_day() -> dt.date:
        return dt.date.fromisoformat(kept.get(("day",), lambda: str(last_day(engine, province) or dt.date.today())))

    def seen_alert(office: accounts.Office, fp: str) -> dict[str, Any]:
        if not _FP.fullmatch(fp or ""):
            raise NotFound
        with engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.fingerprint == fp)).mappings().first()
        if row is None or not office.sees(row):
            raise NotFound  # the same answer whether it does not exist or is not the office's
        return dict(row)

    def page_day(a: dict[str, Any]) -> dt.date:
        return min(the_day(), a["ends_on"] or a["last_seen"]) if a["state"] == "resolved" else the_day()

    def chart(a: dict[str, Any]) -> str:
        day = page_day(a)
        title = alert_view(a, rt.alerts_config.language, day, None).title
        return kept.get(("chart", a["fingerprint"], day, title), lambda: alert_chart(engine, a, day, title))

    def signed(request: Request) -> tuple[dict[str, Any], accounts.Office, str]:
        """The request's account, office and CSRF token; without a live session the page answers
        with the sign-in page (SignInFirst)."""
        who = current(request)
        if not who:
            raise SignInFirst
        return who

    @app.exception_handler(SignInFirst)
    def sign_in_first(request: Request, exc: SignInFirst):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound):
        return HTMLResponse(views.site_page("未找到 Not found", "<h1>未找到 Not found</h1>", None, "", None),
                            status_code=404)

    @app.exception_handler(PermissionError)
    def forbidden(request: Request, exc: PermissionError):
        return HTMLResponse(views.site_page("请求无效 Forbidden", "<h1>请求无效 Forbidden</h1><p>表单已过期，"
                                            "请返回刷新后重试。The form expired: go back, reload and retry.</p>",
                                            None, "", None), status_code=403)

    app.add_middleware(SecurityHeaders)

    def set_cookie(resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, secure=secure_cookies, samesite="lax", path="/")

    # ------------------------------------------------------------------ health, sign-in
    @app.get("/healthz")
    def healthz():
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - the answer is the health, not the error's text
            return JSONResponse({"status": "warehouse unreachable"}, status_code=503)
        return {"status": "ok"}

    def safe_next(value: str | None) -> str:
        v = value or "/"
        return v if v.startswith("/") and not v.startswith("//") and "\\" not in v else "/"

    @app.get("/login")
    def login_page(request: Request, next: str = "/"):
        pre = request.cookies.get(PRE_COOKIE) or pysecrets.token_urlsafe(24)
        resp = html("登录 Sign in", views.login_body(mac("login", pre), safe_next(next), None))
        set_cookie(resp, PRE_COOKIE, pre, 3600)
        return resp

    @app.post("/login")
    def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""),
              next: str = Form("/")):
        pre = request.cookies.get(PRE_COOKIE)
        if not pre or not hmac.compare_digest(mac("login", pre).encode(), csrf.encode()):
            raise PermissionError("csrf")
        res = accounts.sign_in(engine, username, password, ip_of(request))
        if res.outcome == "signin_limited":
            return html("登录 Sign in", views.login_body(csrf, safe_next(next),
                        "尝试次数过多，请 15 分钟后再试。Too many tries: wait 15 minutes."), status=429)
        if res.outcome != "signin":
            return html("登录 Sign in", views.login_body(csrf, safe_next(next),
                        "用户名或密码错误。Wrong username or password."), status=401)
        resp = RedirectResponse(safe_next(next), status_code=303)
        set_cookie(resp, SESSION_COOKIE, res.token, accounts.SESSION_HOURS * 3600)
        set_cookie(resp, PRE_COOKIE, "", 0)
        return resp

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")):
        who = current(request)
        if who:
            check_csrf(who, csrf)
            accounts.end_session(engine, request.cookies[SESSION_COOKIE])
            accounts.audit(engine, who[0]["username"], "signout", office=who[1].id, ip=ip_of(request))
        resp = RedirectResponse("/login", status_code=303)
        set_cookie(resp, SESSION_COOKIE, "", 0)
        return resp

    # ------------------------------------------------------------------ the workbench
    def tickets_of(day: dt.date, office: accounts.Office) -> int | None:
        if office.kind == "department":
            return None
        return day_tickets(engine, day, "province" if office.kind == "operator" else office.kind, office.code)

    def lights(day: dt.date, office: accounts.Office) -> str:

        if office.kind in ("province", "operator"):
            return ""
        return kept.get(("lights", office.region, office.department, day), lambda: lights_html(day, office))

    def lights_html(day: dt.date, office: accounts.Office) -> str:
        from reports.exports import lights_table

        t = lights_table(engine, day, ref, rt.sla_config, province, office.region, department=office.department)
        return (f"<h2>红黄灯 Red and yellow tickets ({len(t.rows)})</h2>"
                '<p><a href="/export/lights.xlsx">导出 Excel</a> · <a href="/export/lights.csv">CSV</a></p>'
                + views.list_table(t.headers, t.rows, LIST_ROWS))

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        who = signed(request)
        user, office, csrf = who
        day = the_day()
        title = f"{office_label(office)} · {day}"
        with engine.connect() as conn:  # what an acknowledgement or a run changes: the alerts' count and stamp
            changed = tuple(conn.execute(select(func.count(), func.max(alerts.c.updated_at))).one())
        body = kept.get(("workbench", office.id, day, changed), lambda: workbench(office, day, title))
        return html(title, body + lights(day, office), who)

    def workbench(office: accounts.Office, day: dt.date, title: str) -> str:
        items = [a for a in open_alerts(engine, day, city_of(office)) if office.sees(a)]
        if office.kind == "district":
            tiles, place = "", "district"
        else:
            cities = ([c.code for c in ref.regions.province(province).cities]
                      if office.kind in ("province", "operator") else [office.code])
            tiles = "<h2>区县方格图 District map</h2>" + views.tile_map(ref, cities, items)
            place = "city" if office.kind in ("province", "operator") else "district"
        return (f"<h1>{views.esc(title)}</h1>" + kpis(items, tickets_of(day, office)) + tiles
                + f"<h2>今日预警 Alerts ({len(items)})</h2>"
                + alert_table(items, ref, day, "fa", place, href=lambda fp: f"/alerts/{fp}"))

    # ------------------------------------------------------------------ one alert
    def actions(a: dict[str, Any], csrf: str, message: str | None = None) -> str:
        note = str(Markup('<p class="notice">{0}</p>').format(message)) if message else ""
        return note + views.ack_form(a["fingerprint"], csrf, a) + views.silence_form(a["fingerprint"], csrf)

    @app.get("/alerts/{fp}", response_class=HTMLResponse)
    def alert_page(request: Request, fp: str, done: str | None = None):
        who = signed(request)
        a = seen_alert(who[1], fp)
        msg = {"ack": "已确认，谢谢反馈。Acknowledged, thank you.", "silence": "已静默。Silenced."}.get(done or "")
        title, body = alert_page_body(a)
        return html(title, body.replace(ACTIONS_SLOT, actions(a, who[2], msg)), who)

    def alert_page_body(a: dict[str, Any]) -> tuple[str, str]:
        """The alert's page with a slot for the session's forms, kept until the alert or its
        history changes (or the next pipeline run)."""
        e = alert_events.c
        with engine.connect() as conn:
            events = tuple(conn.execute(select(func.count(), func.max(e.id)).where(
                e.fingerprint == a["fingerprint"])).one())
        day = page_day(a)
        key = ("alert", a["fingerprint"], day, a["updated_at"], a["status"], events)
        return kept.get(key, lambda: alert_body(engine, a, day, rt.alerts_config, ACTIONS_SLOT, chart(a)))

    @app.get("/a/{fp}", response_class=HTMLResponse)
    def signed_link(request: Request, fp: str, e: str = "", s: str = ""):
        why = check_alert_link(secret, fp, e, s, now())
        if why:
            accounts.audit(engine, "(link)", "link_refused", target=fp[:32], ip=ip_of(request), detail={"why": why})
            text_ = ("链接已过期，请登录后查看。This link has expired: sign in to see the alert."
                     if why == "expired" else "链接无效。This link is not valid.")
            return html("链接无效 Link refused", str(Markup('<h1>{0}</h1><p><a href="/login?next=/alerts/{1}">登录 '
                                                           'sign in</a></p>').format(text_, fp if _FP.fullmatch(fp)
                                                                                     else "")), status=403)
        who = current(request)
        if who:
            return RedirectResponse(f"/alerts/{fp}", status_code=303)
        with engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.fingerprint == fp)).mappings().first()
        if row is None:
            raise NotFound
        a = dict(row)
        accounts.audit(engine, "(link)", "link_view", target=fp, ip=ip_of(request))
        until = dt.datetime.fromtimestamp(int(e), dt.timezone(dt.timedelta(hours=8)))
        note = str(Markup('<p class="notice">通过通知中的签名链接查看（只读，有效至 {0}）。'
                          '<a href="/login?next=/alerts/{1}">登录</a>后可确认、反馈、静默。'
                          'Opened from a notice\'s signed link (read-only until then): sign in to act.</p>').format(
            f"{until:%Y-%m-%d %H:%M}", fp))
        title, body = alert_body(engine, a, page_day(a), rt.alerts_config, note, chart(a), history=False)
        return html(title, body)

    @app.post("/alerts/{fp}/ack")
    def ack(request: Request, fp: str, verdict: str = Form(""), comment: str = Form(""), csrf: str = Form("")):
        who = signed(request)
        check_csrf(who, csrf)
        a = seen_alert(who[1], fp)
        if verdict not in ("useful", "not_useful"):
            return html("确认 Acknowledge", "<h1>请选择有用或无用 Choose useful or not useful</h1>", who, 400)
        acknowledge(engine, a["fingerprint"], who[0]["username"], verdict, comment.strip()[:500] or None)
        accounts.audit(engine, who[0]["username"], "ack", office=who[1].id, target=fp, ip=ip_of(request),
                       detail={"verdict": verdict})
        return RedirectResponse(f"/alerts/{fp}?done=ack", status_code=303)

    def silence_matchers(a: dict[str, Any], what: str) -> list[str]:
        if what == "category":
            return [f'region_code="{a["region_code"]}"', f'category_code="{a["category_code"]}"']
        return [f'series_id="{a["series_id"]}"']

    def silence_args(what: str, hours: str, reason: str) -> tuple[str, int, str]:
        try:
            h = int(hours)
        except ValueError:
            h = 0
        if what not in ("series", "category") or h not in SILENCE_HOURS or not reason.strip():
            raise ValueError("bad silence")
        return what, h, reason.strip()[:300]

    def silence_form_in(request: Request, fp: str, what: str, hours: str, reason: str, csrf: str):
        """The silence form, checked (session, CSRF, scope, fields): a response to send back, or
        (who, alert, what, hours, reason)."""
        who = signed(request)
        check_csrf(who, csrf)
        a = seen_alert(who[1], fp)
        try:
            return (who, a, *silence_args(what, hours, reason))
        except ValueError:
            return html("静默 Silence", "<h1>请填写原因并选择时长 Give a reason and a duration</h1>", who, 400)

    @app.post("/alerts/{fp}/silence/preview", response_class=HTMLResponse)
    def silence_preview(request: Request, fp: str, what: str = Form(""), hours: str = Form(""),
                        reason: str = Form(""), csrf: str = Form("")):
        got = silence_form_in(request, fp, what, hours, reason, csrf)
        if isinstance(got, Response):
            return got
        who, a, what, h, reason = got
        ms = silence_matchers(a, what)
        parsed = parse_matchers(ms, "silence")
        with engine.connect() as conn:
            live = [dict(r) for r in conn.execute(select(alerts).where(alerts.c.state == "firing")).mappings()]
        hits = [x for x in live if who[1].sees(x) and matches_all(parsed, x["labels"] or {})]
        return html("静默预览 Silence preview", views.silence_preview(fp, who[2], ms, h, reason, what, hits,
                                                                   now() + dt.timedelta(hours=h)), who)

    @app.post("/alerts/{fp}/silence")
    def silence(request: Request, fp: str, what: str = Form(""), hours: str = Form(""), reason: str = Form(""),
                csrf: str = Form("")):
        got = silence_form_in(request, fp, what, hours, reason, csrf)
        if isinstance(got, Response):
            return got
        who, a, what, h, reason = got
        sid = add_silence(engine, silence_matchers(a, what), who[0]["username"], reason,
                          now() + dt.timedelta(hours=h))
        accounts.audit(engine, who[0]["username"], "silence", office=who[1].id, target=f"silence:{sid}",
                       ip=ip_of(request), detail={"alert": fp, "hours": h, "what": what})
        return RedirectResponse(f"/alerts/{fp}?done=silence", status_code=303)

    def creators() -> dict[int, str]:
        """Silence id -> the office that set it on the site (its audit row); a silence set from
        the command line has none."""
        a = audit_log.c
        with engine.connect() as conn:
            rows = conn.execute(select(a.target, a.office).where(a.action == "silence")).all()
        return {int(t.split(":", 1)[1]): o for t, o in rows if t and t.startswith("silence:") and o}

    def may_end(office: accounts.Office, row: dict[str, Any], offices: dict[int, str]) -> bool:
        if office.kind in ("province", "operator"):
            return True
        by = offices.get(int(row["id"]))
        if by is None:
            return False  # set from the command line: the operators end it
        try:
            other = accounts.parse_office(by, ref, province)
        except accounts.AccountError:
            return False
        return other.id == office.id or (office.kind == "city" and other.kind == "district"
                                         and office.sees_region(other.code, ref))

    @app.get("/silences", response_class=HTMLResponse)
    def silences_page(request: Request):
        who = signed(request)
        offices = creators()
        rows = [r for r in silences_list(engine) if may_end(who[1], r, offices)]
        return html("静默 Silences", views.silences_body(rows, who[2], [r["state"] != "ended" for r in rows]), who)

    @app.post("/silences/{sid}/end")
    def unsilence(request: Request, sid: int, csrf: str = Form("")):
        who = signed(request)
        check_csrf(who, csrf)
        row = next((r for r in silences_list(engine, include_ended=True) if r["id"] == sid), None)
        if row is None or not may_end(who[1], row, creators()):
            raise NotFound
        try:
            expire_silence(engine, sid, who[0]["username"], "ended from the site")
        except ValueError:
            pass  # already ended: nothing to do
        accounts.audit(engine, who[0]["username"], "unsilence", office=who[1].id, target=f"silence:{sid}",
                       ip=ip_of(request))
        return RedirectResponse("/silences", status_code=303)

    # ------------------------------------------------------------------ the board, proposals, rankings
    def city_of(office: accounts.Office) -> str | None:
        if office.kind in ("city", "department"):
            return office.code
        return ref.regions.parent_of(office.code) if office.kind == "district" else None

    def may_read(office: accounts.Office, rel: str) -> bool:
        """The static board's pages (var/site) and reports (var/reports) an office may open:
        the province and the operators everything; a city its own board page; every office the
        horse race and its city's (the province's: the province's) issue of the month."""
        if office.kind in ("province", "operator"):
            return True
        parts = rel.split("/")
        city = city_of(office)
        if rel == f"city-{city}.html":
            return office.kind == "city"  # a department sees its categories only: not the city's board
        if parts[0] == "ranking" and len(parts) == 3:
            return True
        if parts[0] == "proposals" and len(parts) == 3:
            return parts[2].split(".")[0] == city
        return False

    def static_file(root_dir, rel: str, office: accounts.Office) -> Response:
        if "\x00" in rel or "\\" in rel:
            raise NotFound
        root_dir = root_dir.resolve()
        path = (root_dir / rel).resolve()
        if (not rel or ".." in rel.split("/") or not path.is_relative_to(root_dir) or not path.is_file()
                or path.suffix != ".html" or not may_read(office, path.relative_to(root_dir).as_posix())):
            raise NotFound
        return HTMLResponse(path.read_text(encoding="utf-8"))

    @app.get("/board/{rel:path}")
    def board(request: Request, rel: str = ""):
        who = signed(request)
        office = who[1]
        if rel in ("", "index.html") and office.kind not in ("province", "operator"):
            city = city_of(office)
            if office.kind != "city":
                raise NotFound
            return RedirectResponse(f"/board/city-{city}.html", status_code=303)
        return static_file(rt.settings.var_dir / "site", rel or "index.html", office)

    @app.get("/reports/{rel:path}")
    def report(request: Request, rel: str):
        who = signed(request)
        if rel.split("/")[0] not in ("proposals", "ranking"):
            raise NotFound
        return static_file(rt.settings.var_dir / "reports", rel, who[1])

    @app.get("/proposal")
    def proposal(request: Request, lang: str = "zh"):
        from pathlib import Path

        from proposals.job import latest

        who = signed(request)
        office = who[1]
        scope = office.code if office.kind in ("province", "operator") else city_of(office)
        rec = latest(engine, scope)
        src = Path(((rec or {}).get("reports") or {}).get("zh" if lang != "en" else "en", {}).get("html") or "")
        if not rec or not src.is_file():
            return html("每月一题 Issue of the month", "<h1>每月一题 Issue of the month</h1><p>尚无建议：每月初由 "
                        "hotline_monthly 生成。No proposal yet: the monthly DAG makes one each month.</p>", who)
        return RedirectResponse(f"/reports/proposals/{src.parent.name}/{src.name}", status_code=303)

    @app.get("/ranking")
    def ranking(request: Request):
        from sla.race import latest_month

        who = signed(request)
        month = latest_month(engine, province, the_day() + dt.timedelta(days=1))
        rel = f"ranking/{month}/province-{province}.zh.html" if month else ""
        if not month or not (rt.settings.var_dir / "reports" / rel).is_file():
            return html("赛马 Horse race", "<h1>赛马 Horse race</h1><p>尚无排名。No ranking yet.</p>", who)
        return RedirectResponse(f"/{'reports/' + rel}", status_code=303)

    # ------------------------------------------------------------------ exports
    @app.get("/export/{name}.{fmt}")
    def export(request: Request, name: str, fmt: str):
        from reports.exports import alerts_table, lights_table, ranking_table, to_csv, to_xlsx, watchlist_table

        who = signed(request)
        office = who[1]
        if fmt not in ("csv", "xlsx") or name not in ("lights", "alerts", "ranking", "watchlist"):
            raise NotFound
        day = the_day()
        if name == "ranking":  # the province's league table: the province and the operators
            from sla.race import latest_month

            month = latest_month(engine, province, day + dt.timedelta(days=1))
            if office.kind not in ("province", "operator") or month is None:
                raise NotFound
            t = ranking_table(engine, month, ref, province)
        elif name == "watchlist":  # a city's own 每月一题 and watch list; the province's all
            from proposals.job import latest
            from warehouse.schema import proposals

            if office.kind in ("province", "operator"):
                scope = None
                with engine.connect() as conn:
                    month = conn.execute(select(func.max(proposals.c.month)).where(
                        proposals.c.complete.is_(True))).scalar()
            else:
                scope = city_of(office)
                month = (latest(engine, scope) or {}).get("month")
            if month is None:
                raise NotFound
            t = watchlist_table(engine, pd.Timestamp(month).to_period("M"), ref, province, scope=scope)
        elif name == "lights":
            if office.kind in ("province", "operator"):
                raise NotFound  # the province's list is each city's: export it there
            t = lights_table(engine, day, ref, rt.sla_config, province, office.region, department=office.department)
        else:
            with engine.connect() as conn:
                rows = conn.execute(select(alerts)).mappings().all()
            t = alerts_table(engine, day, ref, province, fingerprints={r["fingerprint"] for r in rows
                                                                       if office.sees(r)})
        data = to_csv(t) if fmt == "csv" else to_xlsx(t)
        accounts.audit(engine, who[0]["username"], "export", office=office.id, target=f"{name}.{fmt}",
                       ip=ip_of(request), detail={"rows": len(t.rows), "day": str(day)})
        media = ("text/csv; charset=utf-8" if fmt == "csv"
                 else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        filename = f"{name}-{office.code}-{day}.{fmt}"
        return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return app


def app_from_env() -> FastAPI:
    """The site as ``uvicorn hotline.web.app:app_from_env --factory`` serves it: the settings and
    HOTLINE_WEB_SECRET from the environment (a missing secret is an error, not a default)."""
    import os

    rt = Runtime.from_env()
    secret = accounts.web_secret(os.environ, rt.settings.var_dir)
    if not secret:
        raise SystemExit("HOTLINE_WEB_SECRET is not set (at least 32 characters): the site will not start without it")
    insecure = os.environ.get("HOTLINE_WEB_INSECURE_COOKIES", "").lower() in ("1", "true", "yes")
    return create_app(rt, secret, secure_cookies=not insecure)
