"""Offline reports: SVG charts parse, show every layer and escape input; HTML pages load nothing
from the network and render Chinese; the backtest report has one charted section per event."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hotline.core.html import page, table
from hotline.core.svg import series_chart
from reports.backtest import write_backtest_report

NS = {"s": "http://www.w3.org/2000/svg"}
D0 = dt.date(2025, 3, 1)
NETWORK_REF = re.compile(r"""(?:\b(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//)"""
                         r"""|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


def _days(n: int) -> list[dt.date]:
    return [D0 + dt.timedelta(days=i) for i in range(n)]


def _chart(n: int = 30, **kw) -> str:
    exp = 10 + 3 * np.sin(np.arange(n))
    obs = exp.round() + (np.arange(n) == 20) * 25
    return series_chart(_days(n), obs, expected=exp, lower=exp - 4, upper=exp + 4, **kw)


def _texts(root: ET.Element, cls: str | None = None) -> list[str]:
    path = ".//s:text" if cls is None else f".//s:text[@class='{cls}']"
    return ["".join(t.itertext()) for t in root.iterfind(path, NS)]


def test_chart_parses_and_has_every_layer():
    days = _days(30)
    svg = _chart(alert_days=[days[20], days[21], days[20], D0 - dt.timedelta(days=5)],
                 event_span=(days[19], days[22]), title="天河区 · 噪音扰民")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    band = root.findall(".//s:polygon[@class='band']", NS)
    assert len(band) == 1 and len(band[0].get("points").split()) == 60  # upper then lower, 30 points each
    assert len(root.findall(".//s:polyline[@class='observed']", NS)) == 1
    assert len(root.findall(".//s:polyline[@class='expected']", NS)) == 1
    assert len(root.findall(".//s:circle[@class='point']", NS)) == 30
    # one marker per distinct alert day inside the series (duplicate and out-of-range ignored)
    alerts = root.findall(".//s:g[@class='alert']", NS)
    assert [a.find("s:title", NS).text for a in alerts] == ["告警 alert 2025-03-21", "告警 alert 2025-03-22"]
    assert all(a.find("s:circle", NS).get("fill") == "#d62728" for a in alerts)
    assert len(root.findall(".//s:rect[@class='event']", NS)) == 1
    # legend and title are real text nodes in Chinese, drawn with a CJK font stack
    legend = ["".join(g.itertext()) for g in root.iterfind(".//s:g[@class='legend-item']", NS)]
    assert legend == ["观测 observed", "预期 expected", "预测区间 band", "告警 alert", "事件 event"]
    assert _texts(root, "title") == ["天河区 · 噪音扰民"]
    assert "Noto Sans CJK SC" in root.get("font-family") and "Microsoft YaHei" in root.get("font-family")
    x_ticks = _texts(root, "x-tick")
    assert x_ticks[0] == "2025-03-01" and all(re.fullmatch(r"\d\d-\d\d", t) for t in x_ticks[1:])
    assert 3 <= len(_texts(root, "y-tick")) <= 5


def test_chart_is_deterministic_and_labels_override():
    assert _chart(alert_days=[_days(30)[3]]) == _chart(alert_days=[_days(30)[3]])
    root = ET.fromstring(_chart(labels={"observed": "受理量 tickets"}))
    legend = ["".join(g.itertext()) for g in root.iterfind(".//s:g[@class='legend-item']", NS)]
    assert legend == ["受理量 tickets", "预期 expected", "预测区间 band"]  # no alerts or event: not listed


def test_title_and_labels_are_escaped():
    svg = series_chart(_days(3), [1, 2, 3], title="<script>alert(1)</script>",
                       labels={"observed": 'a & "b" <i>'})
    assert "<script>" not in svg and "<i>" not in svg
    root = ET.fromstring(svg)
    assert _texts(root, "title") == ["<script>alert(1)</script>"]
    assert root.get("aria-label") == "<script>alert(1)</script>"
    assert 'a & "b" <i>' in ["".join(g.itertext()) for g in root.iterfind(".//s:g[@class='legend-item']", NS)]


def test_nan_leaves_gaps_not_nan_text():
    n = 20
    exp = np.full(n, 8.0)
    exp[5:8] = np.nan
    lower, upper = exp - 3, exp + 3
    upper[15] = np.nan
    obs = [float(v) for v in range(n)]
    obs[10] = None
    root_svg = series_chart(_days(n), obs, expected=exp, lower=lower, upper=upper)
    assert "nan" not in root_svg.lower() and "inf" not in root_svg.lower()
    root = ET.fromstring(root_svg)
    assert len(root.findall(".//s:polyline[@class='expected']", NS)) == 2
    assert len(root.findall(".//s:polygon[@class='band']", NS)) == 3  # 0-4, 8-14, 16-19
    assert len(root.findall(".//s:polyline[@class='observed']", NS)) == 2
    assert len(root.findall(".//s:circle[@class='point']", NS)) == n - 1


@pytest.mark.parametrize("observed", [[0.0] * 14, [0.3, 0.0], [7.0], [1234.0, 5.0, 980.0]])
def test_edge_series_render(observed):
    n = len(observed)
    svg = series_chart(_days(n), observed, expected=[1.0] * n, lower=[0.0] * n, upper=[2.0] * n,
                       alert_days=_days(n)[:1])
    root = ET.fromstring(svg)
    assert "nan" not in svg.lower()
    ticks = [float(t) for t in _texts(root, "y-tick")]
    assert 3 <= len(ticks) <= 5 and ticks[0] == 0 and ticks[-1] >= max(max(observed), 2.0)
    assert len(root.findall(".//s:polygon[@class='band']", NS)) == 1
    assert len(root.findall(".//s:g[@class='alert']", NS)) == 1
    assert len(_texts(root, "x-tick")) >= 1


def test_empty_series_says_no_data():
    root = ET.fromstring(series_chart([], [], title="空"))
    assert _texts(root, "no-data") == ["无数据 no data"]
    assert root.find(".//s:polyline", NS) is None


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="expected: 2 values for 3 dates"):
        series_chart(_days(3), [1, 2, 3], expected=[1, 2])


def test_page_is_offline_utf8_chinese():
    body = "<h1>告警 alerts</h1>" + table(
        [{"district": "天河区 <b>", "severity": "red", "score": 0.99931},
         {"district": "越秀区", "severity": "yellow", "score": None}],
        [("district", "区 district"), ("severity", "级别 severity"), ("score", "分数 score")]) + _chart()
    html = page("预警 <日报>", body)
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html and '<html lang="zh-CN">' in html
    assert "<title>预警 &lt;日报&gt;</title>" in html
    assert not NETWORK_REF.search(html) and "<link" not in html and "<script" not in html
    assert "天河区 &lt;b&gt;" in html
    assert '<span class="sev red">红 red</span>' in html and '<span class="sev yellow">黄 yellow</span>' in html
    assert '<td class="num">0.9993</td>' in html and "<td>—</td>" in html
    assert all(f".{c} {{" in html for c in ("red", "orange", "yellow")) and "@media print" in html


def test_network_check_catches_remote_resources():
    assert NETWORK_REF.search('<script src="https://cdn.example/x.js">')
    assert NETWORK_REF.search("<link href=//fonts.example/css>")
    assert NETWORK_REF.search("body { background: url('http://x/y.png') }")
    assert not NETWORK_REF.search('<svg xmlns="http://www.w3.org/2000/svg"><a href="#event-1">')


def test_empty_table_says_no_data():
    assert "无数据 no data" in table([], [("a", "A")])


def _event(kind, name, detected, delay, n=40):
    days = _days(n)
    exp = np.full(n, 12.0)
    obs = exp.copy()
    obs[25:28] = 40
    return dict(type=kind, start=days[25], end=days[27], region="440106", region_name=name, category="noise",
                category_name="噪音扰民", detected=detected, delay_days=delay,
                first_alert=days[25 + delay] if detected else None,
                chart=dict(ds=days, observed=obs, expected=exp, lower=exp - 5, upper=exp + 5,
                           alert_days=[days[25 + delay]] if detected else []))


def test_backtest_report(tmp_path):
    events = [_event("spike", "天河区", True, 0), _event("level_shift", "越秀<区>", True, 2),
              _event("drop", "白云区", False, None)]
    false_alerts = [{"ds": D0, "series": "440106/noise", "kind": "spike", "severity": "orange", "score": 0.995,
                     "explanation": "观测 40 > 上限 17 <script>"}]
    summary = {"profile": "guangzhou", "period": (D0, D0 + dt.timedelta(days=39)), "precision": 0.5,
               "recall": 2 / 3, "f1": 0.5714, "median_delay_days": {"spike": 0, "level_shift": 2},
               "false_alerts_per_district_month": 0.25, "events": 3, "alerts": 4}
    path = write_backtest_report(tmp_path / "out" / "backtest.html", summary, events, false_alerts)
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "backtest.html"
    assert '<meta charset="utf-8">' in html and not NETWORK_REF.search(html) and "<script" not in html
    for label in ("精确率 precision", "召回率 recall", "<td>F1</td>", "每区每月误报 false_alerts_per_district_month",
                  "中位检出延迟(天) median_delay_days", "事件数 events", "告警数 alerts",
                  "突增 spike: 0 · 持续上升 level_shift: 2", "2025-03-01 至 2025-04-09", "0.6667"):
        assert label in html, label

    sections = re.findall(r'<section class="event" id="event-(\d+)">(.*?)</section>', html, re.S)
    assert [i for i, _ in sections] == ["1", "2", "3"]
    headings = [re.sub(r"<[^>]+>", "", re.search(r"<h2>(.*?)</h2>", s, re.S).group(1)) for _, s in sections]
    assert headings == ["突增 spike · 天河区 · 噪音扰民 · 2025-03-26 至 2025-03-28 · 已检出(延迟 0 天)",
                        "持续上升 level_shift · 越秀&lt;区&gt; · 噪音扰民 · 2025-03-26 至 2025-03-28 · "
                        "已检出(延迟 2 天)",
                        "骤降 drop · 白云区 · 噪音扰民 · 2025-03-26 至 2025-03-28 · 未检出 missed"]
    for (_, body), n_alerts in zip(sections, (1, 1, 0)):
        root = ET.fromstring(re.search(r"<svg.*?</svg>", body, re.S).group(0))
        assert len(root.findall(".//s:g[@class='alert']", NS)) == n_alerts
        assert len(root.findall(".//s:rect[@class='event']", NS)) == 1
        assert len(root.findall(".//s:polygon[@class='band']", NS)) == 1

    false_table = html.split("误报 False alerts (1)")[1]
    assert '<span class="sev orange">橙 orange</span>' in false_table
    assert "观测 40 &gt; 上限 17 &lt;script&gt;" in false_table and "突增 spike" in false_table
