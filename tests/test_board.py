"""The warning board opened by headless Chromium (Debian's package, installed by `make browser`):
the alert rows and charts are there, Chinese is drawn with a CJK font in the page and in the SVG
charts, nothing is fetched from the network, and a screenshot is kept as a test artifact
(var/test-artifacts/, or $HOTLINE_TEST_ARTIFACTS).

The warehouse is test_proposals' (Shenzhen, with a city-wide 供水 surge on 9-22 March 2026); the
board is built for 20 March with two alerts from the alerts stage, the city's forecast from that
day and the February proposal.
"""
import datetime as dt
import re

import pandas as pd
import pytest
from sqlalchemy import insert

from tests.browser import Chromium, artifact_dir, cjk_fonts
from tests.test_proposals import CITY, cfg, warehouse  # noqa: F401 - the shared module fixtures

DAY = dt.date(2026, 3, 20)


def _anomaly(region_level, region_code, category_code, severity, kind, observed, expected):
    return {"ds": DAY, "series_id": f"{region_level}:{region_code}|l2:{category_code}", "detector": "consensus",
            "kind": kind, "region_level": region_level, "region_code": region_code, "category_level": "l2",
            "category_code": category_code, "observed": observed, "expected": expected, "lower": expected * 0.6,
            "upper": expected * 1.4, "score": 0.9999999, "severity": severity,
            "explanation": f"当日 {observed} 件，预期 {expected} 件", "run_id": "test"}


@pytest.fixture(scope="module")
def board(warehouse, cfg, ref, tmp_path_factory):  # noqa: F811
    from alerts.channels import Secrets
    from alerts.config import AlertsConfig
    from alerts.notify import notify_day
    from forecasting.job import ForecastSettings, forecast_scope, province_from_cities
    from proposals.job import propose
    from reports.board import build_board
    from warehouse.schema import alerts, anomalies, forecasts, notifications, proposals

    eng, _ = warehouse
    var = tmp_path_factory.mktemp("board")
    with eng.begin() as conn:
        for t in (proposals, notifications, anomalies, alerts, forecasts):
            conn.execute(t.delete())
        conn.execute(insert(anomalies), [
            _anomaly("city", CITY, "utilities.water_supply", "red", "spread", 120.0, 60.0),
            _anomaly("district", "440307", "housing.rental", "yellow", "spike", 30.0, 12.0)])
    notify_day(eng, DAY, ref, AlertsConfig.load("config"), var, Secrets({}),
               now=dt.datetime(2026, 3, 21, 1, tzinfo=dt.timezone.utc))
    forecast_scope(eng, DAY, CITY, ForecastSettings(model="fast", history_days=400))
    province_from_cities(eng, DAY, "440000")
    propose(eng, pd.Period("2026-02", freq="M"), ref, cfg, "440000", var)  # the province and every city
    index = build_board(eng, DAY, ref, "440000", var / "site")
    yield index
    with eng.begin() as conn:
        for t in (proposals, notifications, anomalies, alerts, forecasts):
            conn.execute(t.delete())


def test_board_files_are_self_contained(board):
    site = board.parent
    assert (site / f"city-{CITY}.html").is_file()
    for page in site.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html), page  # no request to the internet
        assert "<script" not in html
        for href in re.findall(r'href="([^"#]+)"', html):  # every link opens from disk
            assert (site / href).is_file(), (page.name, href)


@pytest.mark.browser
def test_board_opens_in_chromium_with_alerts_charts_and_chinese(board):
    city = board.parent / f"city-{CITY}.html"
    with Chromium(width=1200, height=900) as browser:
        browser.open(board.as_uri())
        rows = browser.evaluate("[...document.querySelectorAll('#alerts tbody tr')].map(r => r.innerText)")
        assert len(rows) == 2 and "深圳市" in rows[0] and "供水" in rows[0] and "红" in rows[0]  # the worst first
        assert "龙岗区" in rows[1] and "黄" in rows[1]
        assert browser.evaluate("document.querySelectorAll('#alert-charts svg.chart').length") == 2
        assert browser.evaluate("document.querySelectorAll('#alert-charts svg.chart g.alert').length") >= 2
        assert browser.evaluate("document.querySelectorAll('#forecast svg.chart polygon.band').length") >= 1
        # the province's issue is a province-wide problem (每月一题 scope rules), not one city's
        assert "广东省·" in browser.evaluate("document.querySelector('#proposal').innerText")
        resources = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert all(r.startswith(("file:", "data:")) for r in resources), resources
        # Chinese glyphs are drawn with a CJK font: the heading, the table and the chart texts
        for sel in ("h1", "#alerts tbody tr", "#alert-charts svg text.title", "#forecast svg .legend-item text"):
            fonts = browser.platform_fonts(sel)
            assert cjk_fonts(fonts), f"{sel}: not drawn with a CJK font (tofu?): {fonts}"
        width = browser.evaluate("document.documentElement.scrollWidth")
        assert width <= 1200  # nothing overflows sideways
        shot = browser.screenshot(artifact_dir() / "board-index.png")
        browser.open(city.as_uri())
        assert browser.evaluate("document.querySelectorAll('#forecast svg.chart').length") == 6  # city + top 5
        assert cjk_fonts(browser.platform_fonts("#forecast svg text.title"))
        shot_city = browser.screenshot(artifact_dir() / "board-city-440300.png")
    from PIL import Image

    for s in (shot, shot_city):
        with Image.open(s) as im:
            assert im.width == 1200 and im.height > 900  # the whole page, not just the window
            assert len(im.convert("L").getcolors(maxcolors=1 << 16) or []) > 20  # a rendered page, not a blank


@pytest.mark.browser
def test_proposal_page_renders_in_chromium(board):
    site = board.parent
    page = next(site.glob("proposals/2026-02/440300.zh.html"))
    with Chromium(width=1100, height=900) as browser:
        browser.open(page.as_uri())
        assert browser.evaluate("document.querySelectorAll('svg.chart').length") == 3
        assert cjk_fonts(browser.platform_fonts("h1"))
        assert cjk_fonts(browser.platform_fonts("svg text.title"))
        browser.screenshot(artifact_dir() / "proposal-440300-2026-02.png")


VISIBLE_ROWS = ("[...document.querySelectorAll('#alerts tbody tr')].filter(r => r.offsetParent !== null)"
                ".map(r => r.innerText)")


def _choose(browser, label: str) -> None:
    """Click the filter chip whose text is ``label`` (the way an office user would)."""
    assert browser.evaluate(f"(() => {{ const l = [...document.querySelectorAll('#alerts .filter label')]"
                            f".find(x => x.innerText.trim() === {label!r}); if (!l) return false; l.click(); "
                            f"return true; }})()"), f"no filter {label!r}"


@pytest.mark.browser
def test_the_board_filters_alerts_by_severity_place_and_category_without_a_script(board):
    html = board.read_text(encoding="utf-8")
    assert "<script" not in html  # pure CSS: it opens from disk anywhere
    assert "10000000" not in html and "少于每 1000 天一次" in html  # no unchecked precision (no record)
    city = board.parent / f"city-{CITY}.html"
    with Chromium(width=1200, height=900) as browser:
        browser.open(board.as_uri())
        assert len(browser.evaluate(VISIBLE_ROWS)) == 2
        _choose(browser, "红 red")
        [row] = browser.evaluate(VISIBLE_ROWS)
        assert "供水" in row and "红" in row
        _choose(browser, "住房与物业")  # the category of the yellow one: with 红 still chosen, none
        assert browser.evaluate(VISIBLE_ROWS) == []
        _choose(browser, "全部 all")  # the first group's "all": severity released
        [row] = browser.evaluate(VISIBLE_ROWS)
        assert "龙岗区" in row and "黄" in row
        browser.screenshot(artifact_dir() / "board-filtered.png")
        browser.open(city.as_uri())
        _choose(browser, "龙岗区")
        [row] = browser.evaluate(VISIBLE_ROWS)
        assert "龙岗区" in row
