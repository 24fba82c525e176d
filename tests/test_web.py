"""The served site (hotline.web) over HTTP, on SQLite and the real PostgreSQL: each office sees its
own region only (a property test over random pairs of offices and every endpoint that returns or
changes an alert, a list or a ticket), every POST needs its CSRF token, cookies are HttpOnly,
Secure and SameSite, sign-in is rate limited and audited, signed links expire and refuse
tampering, and the actions (acknowledge, silence after a preview, unsilence, export) are the CLI's
own, audited and in the alert's history."""
from __future__ import annotations

import datetime as dt
import html
import io
import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from alerts.acks import history
from alerts.outbox import alert_link
from alerts.silences import silences_list
from hotline.app import accounts
from hotline.core.links import check_alert_link, link_expiry, signed_alert_path
from hotline.web.app import SESSION_COOKIE, create_app
from tests.test_alerts import DAY, config
from tests.web_site import OFFICES, PASSWORD, SECRET, add_accounts, build, runtime
from warehouse.schema import alerts, audit_log, silences

# which of the warehouse's alerts each office may see (the scope rule, written out by hand)
ALL = {"baoan", "longgang", "shenzhen", "tianhe", "foshan"}
SEES = {"baoan": {"baoan"}, "longgang": {"longgang"}, "shenzhen": {"baoan", "longgang", "shenzhen"},
        "tianhe": {"tianhe"}, "guangzhou": {"tianhe"}, "province": ALL, "water_sz": {"baoan"}, "ops": ALL}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory, ref):
    from tests.conftest import _clean
    from warehouse.db import connect, migrate

    var = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{var / 'web.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database_url")
    eng = connect(url)
    migrate(eng)
    _clean(eng)
    fps = build(eng, ref, var)
    eng.dispose()
    rt = runtime(url, var)
    add_accounts(rt)
    app = create_app(rt, SECRET)
    yield rt, app, fps
    rt.engine.dispose()


def client(app) -> TestClient:
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{32})"', html)[1]


def signed_in(app, name: str) -> tuple[TestClient, str]:
    """A client signed in as ``name``, and its CSRF token."""
    c = client(app)
    page = c.get("/login")
    r = c.post("/login", data={"username": name, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"})
    assert r.status_code == 303, r.text
    home = c.get("/")
    assert home.status_code == 200
    return c, csrf_of(home.text)


_SESSIONS: dict = {}


def session(app, name):
    key = (id(app), name)
    if key not in _SESSIONS:
        _SESSIONS[key] = signed_in(app, name)
    return _SESSIONS[key]


def test_each_office_sees_its_own_alerts_on_its_workbench(site):
    rt, app, fps = site
    for name, seen in SEES.items():
        c, _ = session(app, name)
        home = c.get("/").text
        shown = {k for k, fp in fps.items() if f"/alerts/{fp}" in home}
        assert shown == seen, name
        for k in seen:
            assert c.get(f"/alerts/{fps[k]}").status_code == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(viewer=st.sampled_from(sorted(OFFICES)), owner=st.sampled_from(["baoan", "longgang", "shenzhen", "tianhe",
                                                                        "foshan"]),
       endpoint=st.sampled_from(["page", "ack", "preview", "silence", "export_alerts", "export_lights"]))
def test_an_office_outside_the_scope_gets_nothing(site, viewer, owner, endpoint):
    rt, app, fps = site
    c, csrf = session(app, viewer)
    fp = fps[owner]
    visible = owner in SEES[viewer]
    if endpoint == "page":
        r = c.get(f"/alerts/{fp}")
        assert r.status_code == (200 if visible else 404)
        assert (fp[:8] in r.text) == visible
    elif endpoint in ("ack", "preview", "silence") and not visible:
        path = {"ack": "ack", "preview": "silence/preview", "silence": "silence"}[endpoint]
        before = _state(rt, fp)
        r = c.post(f"/alerts/{fp}/{path}", data={"csrf": csrf, "verdict": "not_useful", "what": "series",
                                                 "hours": "24", "reason": "x"})
        assert r.status_code == 404 and fp[:8] not in r.text
        assert _state(rt, fp) == before  # nothing changed
    elif endpoint == "export_alerts":
        import openpyxl

        wb = openpyxl.load_workbook(io.BytesIO(c.get("/export/alerts.xlsx").content))
        ids = {row[0] for row in wb.active.iter_rows(min_row=2, values_only=True)}
        assert (fp[:8] in ids) == visible
    elif endpoint == "export_lights":
        r = c.get("/export/lights.csv")
        if viewer in ("province", "ops"):
            assert r.status_code == 404
        else:
            body = r.content.decode("utf-8-sig")
            # the tickets are 宝安区's: only 宝安, Shenzhen and Shenzhen's water bureau may list them
            assert ("T0" in body) == (viewer in ("baoan", "shenzhen", "water_sz")), (viewer, body[:300])


def _state(rt, fp):
    with rt.engine.connect() as conn:
        a = conn.execute(select(alerts.c.status, alerts.c.ack_by)).all()
        s = conn.execute(select(silences.c.id)).all()
    return a, s, len(history(rt.engine, fp))


@pytest.mark.parametrize("guess", ["0" * 32, "f" * 32, "../../etc/passwd", "1", "%00", "A" * 32])
def test_guessed_or_incremented_ids_give_nothing(site, guess):
    rt, app, fps = site
    c, csrf = session(app, "province")
    assert c.get(f"/alerts/{guess}").status_code == 404
    assert c.post(f"/alerts/{guess}/ack", data={"csrf": csrf, "verdict": "useful"}).status_code == 404
    near = format(int(fps["baoan"], 16) + 1, "032x")  # the next id
    assert c.get(f"/alerts/{near}").status_code == 404
    b, _ = session(app, "longgang")
    assert b.post("/silences/1/end", data={"csrf": session(app, "longgang")[1]}).status_code == 404


def test_every_post_needs_its_csrf_token(site):
    rt, app, fps = site
    c, csrf = session(app, "baoan")
    _, other = session(app, "longgang")  # another session's token is no token
    fp = fps["baoan"]
    posts = [f"/alerts/{fp}/ack", f"/alerts/{fp}/silence/preview", f"/alerts/{fp}/silence", "/silences/1/end",
             "/logout"]
    for path in posts:
        for bad in ({}, {"csrf": ""}, {"csrf": other}, {"csrf": "0" * 32}):
            before = _state(rt, fp)
            r = c.post(path, data={**bad, "verdict": "useful", "what": "series", "hours": "24", "reason": "x"})
            assert r.status_code == 403, (path, bad, r.status_code)
            assert _state(rt, fp) == before
    assert c.get("/").status_code == 200  # the refused logout did not end the session
    fresh = client(app)  # the sign-in form too: no pre-session cookie, no sign-in
    r = fresh.post("/login", data={"username": "baoan", "password": PASSWORD, "csrf": "0" * 32})
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies


def test_cookies_are_httponly_secure_and_samesite(site):
    rt, app, _ = site
    c = client(app)
    page = c.get("/login")
    r = c.post("/login", data={"username": "baoan", "password": PASSWORD, "csrf": csrf_of(page.text)})
    cookies = page.headers.get_list("set-cookie") + r.headers.get_list("set-cookie")
    assert len(cookies) == 3  # the pre-session cookie, the session, the pre-session one ended
    for cookie in cookies:
        flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")}
        assert {"httponly", "secure", "samesite"} <= flags, cookie
        assert "samesite=lax" in cookie.lower()
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src" not in r.headers["content-security-policy"]  # no script runs on the site


def test_pages_need_a_sign_in_and_a_disabled_account_loses_its_session(site):
    rt, app, fps = site
    anon = client(app)
    for path in ["/", f"/alerts/{fps['baoan']}", "/silences", "/export/alerts.xlsx", "/export/lights.csv"]:
        r = anon.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    accounts.add_user(rt.engine, "temp", OFFICES["baoan"], PASSWORD, "test", rt.ref, rt.province)
    c, _ = signed_in(app, "temp")
    accounts.disable_user(rt.engine, "temp", "test")
    assert c.get("/").status_code == 303
    page = client(app).get("/login")
    r = client(app).post("/login", data={"username": "temp", "password": PASSWORD, "csrf": csrf_of(page.text)},
                         cookies=page.cookies)
    assert r.status_code == 401


def test_five_wrong_passwords_then_the_account_is_rate_limited_and_every_try_audited(site):
    rt, app, _ = site
    accounts.add_user(rt.engine, "victim", OFFICES["tianhe"], PASSWORD, "test", rt.ref, rt.province)
    c = client(app)
    token = csrf_of(c.get("/login").text)
    codes = [c.post("/login", data={"username": "victim", "password": f"wrong {i}", "csrf": token}).status_code
             for i in range(5)]
    right = c.post("/login", data={"username": "victim", "password": PASSWORD, "csrf": token})
    assert codes == [401] * 5 and right.status_code == 429 and SESSION_COOKIE not in right.cookies
    assert "15" in right.text
    other = signed_in(app, "tianhe")[0]  # another account of the same office still signs in
    assert other.get("/").status_code == 200
    with rt.engine.connect() as conn:
        acts = [r.action for r in conn.execute(select(audit_log.c.action).where(audit_log.c.username == "victim")
                                               .order_by(audit_log.c.id))]
    assert acts == ["user_added"] * 0 + ["signin_failed"] * 5 + ["signin_limited"]
    # a good sign-in later than the window: allowed again
    later = dt.datetime.now(dt.timezone.utc) + accounts.LIMIT_WINDOW + dt.timedelta(seconds=1)
    assert accounts.sign_in(rt.engine, "victim", PASSWORD, "10.0.0.9", now=later).outcome == "signin"


def test_acknowledge_silence_and_unsilence_from_the_page_audited_and_in_the_history(site):
    rt, app, fps = site
    c, csrf = session(app, "longgang")
    fp = fps["longgang"]
    r = c.post(f"/alerts/{fp}/ack", data={"csrf": csrf, "verdict": "not_useful", "comment": "节日正常波动"})
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    assert "已确认" in page and "节日正常波动" in page
    with rt.engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.fingerprint == fp)).mappings().one()
    assert (row["ack_by"], row["ack_verdict"], row["status"]) == ("longgang", "not_useful", "acknowledged")
    prev = c.post(f"/alerts/{fp}/silence/preview", data={"csrf": csrf, "what": "category", "hours": "72",
                                                         "reason": "已派专班处置"})
    assert prev.status_code == 200 and "当前匹配的预警" in prev.text
    assert 'region_code="440307" category_code="housing.property_service"' in html.unescape(prev.text)
    assert "<b>1</b>" in prev.text  # this alert, nothing of another district
    assert not silences_list(rt.engine)  # a preview creates nothing
    made = c.post(f"/alerts/{fp}/silence", data={"csrf": csrf, "what": "category", "hours": "72",
                                                 "reason": "已派专班处置"})
    assert made.status_code == 303
    (sil,) = silences_list(rt.engine)
    assert sil["created_by"] == "longgang" and sil["reason"] == "已派专班处置"
    assert sil["matchers"] == ['region_code="440307"', 'category_code="housing.property_service"']
    assert dt.timedelta(hours=71) < sil["ends_at"] - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(hours=72)
    # 宝安 may not end 龙岗's silence; 深圳 (the city above it) and 龙岗 may
    b, bcsrf = session(app, "baoan")
    assert b.post(f"/silences/{sil['id']}/end", data={"csrf": bcsrf}).status_code == 404
    assert f"/silences/{sil['id']}/end" not in b.get("/silences").text
    assert f"/silences/{sil['id']}/end" in session(app, "shenzhen")[0].get("/silences").text
    assert c.post(f"/silences/{sil['id']}/end", data={"csrf": csrf}).status_code == 303
    assert not silences_list(rt.engine)
    actions = [h["action"] for h in history(rt.engine, fp)]
    assert "acknowledged" in actions
    with rt.engine.connect() as conn:
        audited = [(r.action, r.username) for r in conn.execute(
            select(audit_log.c.action, audit_log.c.username).where(audit_log.c.action.in_(["ack", "silence",
                                                                                            "unsilence"])))]
    assert {("ack", "longgang"), ("silence", "longgang"), ("unsilence", "longgang")} <= set(audited)


def test_signed_links_open_one_alert_read_only_and_refuse_expired_or_tampered(site):
    rt, app, fps = site
    fp = fps["baoan"]
    exp = link_expiry(dt.date.today())
    path = signed_alert_path(SECRET, fp, exp)
    anon = client(app)
    r = anon.get(f"/{path}")
    assert r.status_code == 200 and "只读" in r.text and 'id="ack"' not in r.text
    assert "13812345678" not in r.text and "&lt;script&gt;" in r.text  # masked, inert
    sig = path.split("s=")[1]
    tampered = [f"/a/{fps['tianhe']}?e={exp}&s={sig}",                   # another alert, this signature
                f"/a/{fp}?e={exp + 86400}&s={sig}",                       # a later expiry
                f"/a/{fp}?e={exp}&s={sig[:-1]}{'0' if sig[-1] != '0' else '1'}",  # one character changed
                f"/a/{fp}?e={exp}", f"/a/{fp}?e=x&s={sig}"]
    for url in tampered:
        assert anon.get(url).status_code == 403, url
    old = signed_alert_path(SECRET, fp, link_expiry(dt.date.today() - dt.timedelta(days=30)))
    gone = anon.get(f"/{old}")
    assert gone.status_code == 403 and "过期" in gone.text
    other_secret = signed_alert_path("another-secret-" + "y" * 40, fp, exp)
    assert anon.get(f"/{other_secret}").status_code == 403
    now = dt.datetime.now(dt.timezone.utc)
    assert check_alert_link(SECRET, fp, exp, sig, now) is None
    assert check_alert_link(SECRET, fp, exp, sig, dt.datetime.fromtimestamp(exp, dt.timezone.utc)) == "expired"
    c, _ = session(app, "baoan")  # signed in: the full page, with its forms
    r = c.get(f"/{path}")
    assert r.status_code == 303 and r.headers["location"] == f"/alerts/{fp}"


def test_notices_carry_signed_links_when_the_site_is_served(site, tmp_path):
    rt, app, fps = site
    cfg = config(report_base_url="https://12345.example.gov.cn/site")
    link = alert_link(cfg, tmp_path, DAY, fps["baoan"], SECRET)
    base, query = link.split("?")
    assert base == f"https://12345.example.gov.cn/site/a/{fps['baoan']}"
    e, s = (kv.split("=")[1] for kv in query.split("&"))
    assert int(e) == link_expiry(DAY) and check_alert_link(SECRET, fps["baoan"], e, s, dt.datetime(
        2026, 3, 12, tzinfo=dt.timezone.utc)) is None
    assert alert_link(cfg, tmp_path, DAY, fps["baoan"]) == f"https://12345.example.gov.cn/site/alerts/{fps['baoan']}"


def test_hostile_ticket_text_is_masked_and_inert_on_every_page(site):
    rt, app, fps = site
    c, _ = session(app, "province")
    for path in ["/", f"/alerts/{fps['baoan']}", "/silences"]:
        page = c.get(path).text
        assert "<script" not in page.lower() and "<img" not in page.lower()
        assert "13812345678" not in page
    assert "&lt;script&gt;" in c.get(f"/alerts/{fps['baoan']}").text


def test_the_health_check_answers_without_a_sign_in(site):
    _, app, _ = site
    r = client(app).get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_accounts_refuse_bad_offices_usernames_and_short_passwords(site):
    rt, _, _ = site
    bad = [("x", OFFICES["baoan"], PASSWORD), ("newuser", "district:440300", PASSWORD),
           ("newuser", "district:999999", PASSWORD), ("newuser", "city:440306", PASSWORD),
           ("newuser", "county:440306", PASSWORD), ("newuser", OFFICES["baoan"], "short"),
           ("newuser", "department:440300: ", PASSWORD), ("newuser", "department:440300:不存在的局", PASSWORD),
           ("baoan", OFFICES["baoan"], PASSWORD)]
    for username, office, pw in bad:
        with pytest.raises(accounts.AccountError):
            accounts.add_user(rt.engine, username, office, pw, "test", rt.ref, rt.province)
    from warehouse.schema import web_users
    with rt.engine.connect() as conn:
        h = conn.execute(select(web_users.c.password_hash).where(web_users.c.username == "baoan")).scalar()
    assert h.startswith("$argon2id$") and PASSWORD not in h


def test_hotline_serve_runs_the_site_on_postgresql_with_two_processes(pg_database_url, tmp_path):
    """`hotline serve` as the compose service runs it: two processes over PostgreSQL, the secret
    made on first use (mode 600), the health check, a sign-in through real HTTP."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.alert_servers import free_port

    env = {**os.environ, "HOTLINE_DB_URL": pg_database_url, "HOTLINE_VAR_DIR": str(tmp_path / "var"),
           "HOTLINE_CALLER_SALT": "serve-salt", "PW": PASSWORD}
    env.pop("HOTLINE_WEB_SECRET", None)
    hotline = [sys.executable, "-m", "hotline.cli"]
    made = subprocess.run([*hotline, "users", "add", "serve-test", "--office", "city:440300", "--password-env", "PW"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 or "is taken" in made.stderr, made.stderr
    port = free_port()
    proc = subprocess.Popen([*hotline, "serve", "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.2)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        secret = tmp_path / "var" / "web-secret"
        assert secret.is_file() and (secret.stat().st_mode & 0o777) == 0o600
        with httpx.Client(base_url=base) as c:
            page = c.get("/login")
            r = c.post("/login", data={"username": "serve-test", "password": PASSWORD, "csrf": csrf_of(page.text)},
                       cookies={"hl_pre": page.cookies["hl_pre"]})
        assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
        assert secret.read_text().strip() not in r.text + str(r.headers)
    finally:
        proc.terminate()
        proc.wait(20)


BOARD_FILES = ["site/index.html", "site/city-440300.html", "site/city-440100.html", "site/dq/2026-03-10/feed.html",
               "reports/proposals/2026-02/440300.zh.html", "reports/proposals/2026-02/440100.zh.html",
               "reports/proposals/2026-02/440000.zh.html", "reports/ranking/2026-02/province-440000.zh.html"]
# who may open which (by the rule: the province and operators all; a city its board page and its
# proposal; everyone the horse race and their city's proposal; a department not the city's board,
# which shows every category)
READS = {"baoan": {4, 7}, "longgang": {4, 7}, "shenzhen": {1, 4, 7}, "water_sz": {4, 7}, "tianhe": {5, 7},
         "guangzhou": {2, 5, 7}, "province": set(range(8)), "ops": set(range(8))}


def test_the_board_proposals_and_rankings_are_served_to_the_offices_they_concern(site):
    rt, app, _ = site
    var = rt.settings.var_dir
    for rel in BOARD_FILES:
        (var / rel).parent.mkdir(parents=True, exist_ok=True)
        (var / rel).write_text(f"<html><body>{rel}</body></html>", encoding="utf-8")
    (var / "site" / "secret.txt").write_text("not a page", encoding="utf-8")
    for name, allowed in READS.items():
        c, _ = session(app, name)
        for i, rel in enumerate(BOARD_FILES):
            root, _, rest = rel.partition("/")
            url = f"/board/{rest}" if root == "site" else f"/reports/{rest}"
            r = c.get(url)
            assert (r.status_code == 200) == (i in allowed), (name, url, r.status_code)
            assert (rel in r.text) == (i in allowed)
        for url in ["/board/secret.txt", "/board/%2e%2e/web.db", "/reports/..%2fweb.db", "/reports/alerts/x.html",
                    "/board/%00.html", "/board/city-440300.html%00", "/reports/proposals/2026-02/..%5c..%5cweb.db"]:
            assert c.get(url).status_code == 404, (name, url)
    anon = client(app)
    assert anon.get("/board/index.html").status_code == 303
    assert anon.get("/reports/" + BOARD_FILES[7][8:]).status_code == 303


def test_the_watch_list_and_ranking_exports_follow_the_scope(site):
    import openpyxl
    from sqlalchemy import delete, insert

    from tests.test_alerts import NOW
    from warehouse.schema import proposals

    rt, app, _ = site
    cand = lambda code, role: {"candidate": f"city:{code}|l2:utilities.water_supply", "role": role,  # noqa: E731
                               "score": 0.5}
    rows = [{"month": dt.date(2026, 2, 1), "scope": code, "status": "proposed", "candidates":
             [cand(code, "chosen"), cand(code, "watch")], "weights": {}, "complete": True, "run_id": "t",
             "created_at": NOW, "updated_at": NOW} for code in ("440300", "440100")]
    with rt.engine.begin() as conn:
        conn.execute(delete(proposals))
        conn.execute(insert(proposals), rows)
    try:
        def scopes(name):
            r = session(app, name)[0].get("/export/watchlist.xlsx")
            if r.status_code != 200:
                return r.status_code
            ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
            return {row[0] for row in ws.iter_rows(min_row=2, values_only=True)}
        assert scopes("shenzhen") == {"深圳市"} and scopes("baoan") == {"深圳市"}  # its city's, not 广州's
        assert scopes("guangzhou") == {"广州市"} and scopes("province") == {"深圳市", "广州市"}
        # the horse race: the province's league table, for the province and the operators only
        assert session(app, "shenzhen")[0].get("/export/ranking.xlsx").status_code == 404
        assert session(app, "baoan")[0].get("/export/ranking.csv").status_code == 404
    finally:
        with rt.engine.begin() as conn:
            conn.execute(delete(proposals))


def test_odd_tokens_are_refused_not_errors(site):
    rt, app, fps = site
    c, csrf = session(app, "baoan")
    r = c.post(f"/alerts/{fps['baoan']}/ack", data={"csrf": "令牌" * 16, "verdict": "useful"})
    assert r.status_code == 403
    fresh = client(app)
    fresh.get("/login")
    assert fresh.post("/login", data={"username": "baoan", "password": PASSWORD, "csrf": "口令"}).status_code == 403
    exp = link_expiry(dt.date.today())
    assert client(app).get(f"/a/{fps['baoan']}?e={exp}&s=签名").status_code == 403


def test_a_signed_link_shows_no_history_of_who_acted(site):
    rt, app, fps = site
    fp = fps["tianhe"]
    c, csrf = session(app, "tianhe")
    c.post(f"/alerts/{fp}/ack", data={"csrf": csrf, "verdict": "useful", "comment": "内部备注：已报分管领导"})
    r = client(app).get(f"/{signed_alert_path(SECRET, fp, link_expiry(dt.date.today()))}")
    assert r.status_code == 200 and "只读" in r.text
    assert "内部备注" not in r.text and "tianhe" not in r.text and "历史 History" not in r.text
    assert "内部备注" in c.get(f"/alerts/{fp}").text  # the office's own page has it


def test_a_silence_set_from_the_command_line_is_not_ended_by_an_office_named_like_its_author(site):
    from alerts.silences import add_silence

    rt, app, fps = site
    sid = add_silence(rt.engine, ['region_code="440306"'], "baoan", "operators' maintenance window",
                      dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    try:
        c, csrf = session(app, "baoan")  # an account named like the silence's author
        assert c.post(f"/silences/{sid}/end", data={"csrf": csrf}).status_code == 404
        assert f"/silences/{sid}/end" in session(app, "ops")[0].get("/silences").text
    finally:
        from alerts.silences import expire_silence

        expire_silence(rt.engine, sid, "test", "cleanup")


def test_parallel_wrong_passwords_do_not_get_past_the_limit(site):
    from concurrent.futures import ThreadPoolExecutor

    rt, _, _ = site
    accounts.add_user(rt.engine, "racer", OFFICES["longgang"], PASSWORD, "test", rt.ref, rt.province)
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(lambda i: accounts.sign_in(rt.engine, "racer", f"guess {i}", "10.1.1.1").outcome,
                                 range(12)))
    assert outcomes.count("signin_failed") == accounts.LIMIT_PER_USER
    assert outcomes.count("signin_limited") == 12 - accounts.LIMIT_PER_USER


def test_a_short_site_secret_signs_no_link_and_stops_no_notice(tmp_path):
    from alerts.channels import LINK_SECRET_ENV

    rt = runtime(f"sqlite:///{tmp_path / 'w.db'}", tmp_path)
    rt.env = {**rt.env, "HOTLINE_WEB_SECRET": "short"}
    assert LINK_SECRET_ENV not in rt.secrets().env  # unsigned links (the doctor says why), not a failed notify
    rt.env = {**rt.env, "HOTLINE_WEB_SECRET": SECRET}
    assert rt.secrets().env[LINK_SECRET_ENV] == SECRET
