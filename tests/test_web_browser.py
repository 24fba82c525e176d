"""The served site in real headless Chromium (make browser): a district office signs in, sees its
alerts and not another district's, acknowledges one with a verdict, previews and creates a
silence, downloads its Excel list (checked with openpyxl); a city sees its districts; five wrong
passwords are rate limited. Hostile ticket text, category names and district names stay inert on
every page: no dialog, no injected element, no script run. Screenshots go to var/test-artifacts."""
from __future__ import annotations

import time

import pytest

from hotline.core.reference import load_reference
from hotline.web.app import create_app
from tests.browser import Chromium, artifact_dir, cjk_fonts
from tests.web_site import EVIL_NAME, PASSWORD, SECRET, Server, add_accounts, build, hostile_config, runtime

pytestmark = pytest.mark.browser


def _site(tmp_path, config_dir=None):
    from warehouse.db import connect, migrate

    url = f"sqlite:///{tmp_path / 'web.db'}"
    eng = connect(url)
    migrate(eng)
    fps = build(eng, load_reference(config_dir) if config_dir else load_reference(), tmp_path)
    eng.dispose()
    rt = runtime(url, tmp_path, config_dir)
    add_accounts(rt)
    return rt, fps


def act(b: Chromium, js: str) -> None:
    """Run ``js`` (which submits a form) and wait for the next page."""
    b._events.clear()
    b.evaluate(js)
    b.wait_event("Page.loadEventFired")


def sign_in(b: Chromium, url: str, user: str, password: str = PASSWORD) -> None:
    b.open(f"{url}/login")
    act(b, f"document.getElementById('u').value = {user!r}; document.getElementById('p').value = {password!r};"
           "document.querySelector('form.act').submit()")


def sign_out(b: Chromium) -> None:
    act(b, "document.querySelector('form[action=\"/logout\"]').submit()")


def _wait_for_file(folder, suffix: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done and done[0].stat().st_size > 0:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {[p.name for p in folder.iterdir()]}")


def links(b: Chromium) -> set[str]:
    return set(b.evaluate("[...document.querySelectorAll('a[href^=\"/alerts/\"]')].map(a => a.getAttribute('href')"
                          ".slice(8))"))


def test_a_district_office_acts_on_its_alert_and_a_city_sees_its_districts(tmp_path):
    rt, fps = _site(tmp_path)
    shots = artifact_dir()
    with Server(create_app(rt, SECRET)) as srv, Chromium(width=1280, height=900) as b:
        sign_in(b, srv.url, "baoan")
        assert b.evaluate("location.pathname") == "/"  # signed in: the Secure cookie is kept on localhost
        assert links(b) == {fps["baoan"]}  # its own alert, not 龙岗's, not the city's
        assert cjk_fonts(b.platform_fonts("h1")), "the heading is not drawn in a CJK font"
        b.screenshot(shots / "web-district-signed-in.png")

        b.open(f"{srv.url}/alerts/{fps['baoan']}")
        assert b.evaluate("!!document.querySelector('form#ack') && !!document.querySelector('form#silence')")
        b.screenshot(shots / "web-alert-ack-form.png")
        act(b, "document.querySelector('input[value=not_useful]').checked = true;"
               "document.getElementById('c').value = '已核实，系计划停水';"
               "document.querySelector('form#ack').submit()")
        text = b.evaluate("document.body.innerText")
        assert "已确认" in text and "已核实，系计划停水" in text and "acknowledged" in text

        act(b, "document.getElementById('r').value = '已派专班处置';"
               "document.querySelector('form#silence').submit()")
        assert "当前匹配的预警" in b.evaluate("document.body.innerText")
        assert b.evaluate("document.querySelectorAll('table tbody tr').length") == 1
        b.screenshot(shots / "web-silence-preview.png")
        act(b, "document.querySelector('form#confirm').submit()")
        assert "已静默" in b.evaluate("document.body.innerText")

        downloads = tmp_path / "downloads"  # a real download, as the office's browser saves it
        downloads.mkdir()
        b.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        b.evaluate("document.querySelector('nav a[href=\"/\"]').click()")
        b.wait_event("Page.loadEventFired")
        b.evaluate("document.querySelector('a[href=\"/export/lights.xlsx\"]').click()")
        saved = _wait_for_file(downloads, ".xlsx")
        import openpyxl

        ws = openpyxl.load_workbook(saved).active
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0][:3] == ("承办单位", "灯", "工单编号")
        assert {r[2] for r in rows[1:]} == {"T0", "T1", "T2"} and {r[1] for r in rows[1:]} == {"红"}

        sign_out(b)
        assert b.evaluate("location.pathname") == "/login"
        b.open(f"{srv.url}/")
        assert b.evaluate("location.pathname") == "/login"  # the session ended

        sign_in(b, srv.url, "shenzhen")
        assert links(b) == {fps["baoan"], fps["longgang"], fps["shenzhen"]}
        tiles = b.evaluate("[...document.querySelectorAll('.tile[data-region]')].filter(t => "
                           "t.classList.contains('red') || t.classList.contains('orange')).map(t => t.dataset.region)")
        assert sorted(tiles) == ["440306", "440307"]
        b.screenshot(shots / "web-city-map.png")
        sign_out(b)

        for i in range(5):
            sign_in(b, srv.url, "tianhe", f"wrong password {i}")
            assert "用户名或密码错误" in b.evaluate("document.body.innerText")
        sign_in(b, srv.url, "tianhe")
        assert "尝试次数过多" in b.evaluate("document.body.innerText")
        assert b.evaluate("location.pathname") == "/login"


def test_hostile_text_and_names_are_inert_on_every_page(tmp_path):
    cfg = hostile_config(tmp_path / "config")
    rt, fps = _site(tmp_path, cfg)
    with Server(create_app(rt, SECRET)) as srv, Chromium() as b:
        b.send("Page.enable")
        pages = []
        for user in ("province", "baoan"):
            sign_in(b, srv.url, user)
            pages += [(user, "/"), (user, f"/alerts/{fps['baoan']}"), (user, "/silences")]
            for _, path in pages[-3:]:
                b.open(f"{srv.url}{path}")
                assert b.evaluate("window.__xss === undefined"), path
                assert b.evaluate("document.querySelectorAll('script, img, iframe, object, embed').length") == 0, path
                text = b.evaluate("document.body.innerText")
                assert "13812345678" not in text
                if path.startswith("/alerts/"):
                    assert "<script>alert(1)</script>" in text  # the citizen's words, shown as text
                    assert EVIL_NAME.split("{{")[0] in text  # the district's hostile name, as text
                    assert "{{7*7}}" in text  # no template ran over it
            b.open(f"{srv.url}/alerts/{fps['baoan']}")
            act(b, "document.getElementById('r').value = '<b>x</b>'; document.querySelector('form#silence').submit()")
            assert b.evaluate("document.querySelectorAll('b').length") >= 1  # our own bold count
            assert "<b>x</b>" in b.evaluate("document.body.innerText")
            assert b.evaluate("window.__xss === undefined")
            sign_out(b)
        dialogs = [e for e in b._events if e.get("method") == "Page.javascriptDialogOpening"]
        assert not dialogs
