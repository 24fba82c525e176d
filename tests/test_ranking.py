"""The horse race (赛马): a city with a harder category mix but the same handling is not ranked
below an easier one (pure and through the warehouse's SQL on SQLite and PostgreSQL), ranks within
tiers, the bottom flagged, small units not ranked, movement, a rerun gives the same ranking, the
trend view, the report and the CLI."""
import datetime as dt
import json

import pandas as pd
import pytest
from sqlalchemy import insert, select

from sla.ranking import METRICS, RankingConfig, rank_units

CN = dt.timezone(dt.timedelta(hours=8))
OCT = pd.Period("2026-10", freq="M")

# Per category, a block of 10 tickets handled one way: deadline hours, (hours, late?) per ticket,
# satisfied of 10 rated, resolved of 10. "worse" is uniformly worse: 10 points on every rate,
# 10 more hours on average, in both categories.
HARD = {"cat": "housing.property_certificate", "deadline": 100,
        "same": {"hours": [50] * 8 + [150] * 2, "satisfied": 6, "resolved": 7},
        "worse": {"hours": [50] * 7 + [150] * 3, "satisfied": 5, "resolved": 6}}
EASY = {"cat": "utilities.water_supply", "deadline": 24,
        "same": {"hours": [10] * 10, "satisfied": 9, "resolved": 10},
        "worse": {"hours": [170 / 9] * 9 + [30], "satisfied": 8, "resolved": 9}}
# large-tier cities: 佛山 (hard mix), 惠州 (easy mix), both handling the same way; 汕头 worse
PLAN = {"440600": [(HARD, "same", 9), (EASY, "same", 1)],
        "441300": [(HARD, "same", 1), (EASY, "same", 9)],
        "440500": [(HARD, "worse", 5), (EASY, "worse", 5)]}
TIERS = {"440600": "large", "441300": "large", "440500": "large"}


def _agg(plan=PLAN):
    rows = []
    for unit, blocks in plan.items():
        for spec, how, k in blocks:
            h = spec[how]
            late = sum(x > spec["deadline"] for x in h["hours"])
            hours = pd.Series(h["hours"], dtype=float)
            rows.append({"unit": unit, "category_l2": spec["cat"], "on_time_n": 10 * k, "on_time_x": (10 - late) * k,
                         "handling_hours_n": 10 * k, "handling_hours_x": hours.sum() * k,
                         "handling_hours_x2": (hours ** 2).sum() * k, "overdue_n": 10 * k, "overdue_x": late * k,
                         "repeat_n": 0, "repeat_x": 0, "satisfaction_n": 10 * k, "satisfaction_x": h["satisfied"] * k,
                         "resolution_n": 10 * k, "resolution_x": h["resolved"] * k})
    return pd.DataFrame(rows)


def test_a_harder_mix_with_the_same_handling_is_not_ranked_below_an_easier_one():
    agg = _agg()
    res = rank_units(agg, "unit", TIERS, RankingConfig()).set_index("unit")
    hard, easy, worse = res.loc["440600"], res.loc["441300"], res.loc["440500"]
    assert hard["composite"] == pytest.approx(easy["composite"], abs=1e-6)
    assert hard["rank"] == easy["rank"] == 1 and worse["rank"] == 3
    assert worse["flagged"] and not hard["flagged"] and not easy["flagged"]
    for m in ("on_time", "handling_hours", "overdue", "satisfaction", "resolution"):
        assert hard["metrics"][m]["adjusted"] == pytest.approx(easy["metrics"][m]["adjusted"], abs=1e-6), m
        assert hard["metrics"][m]["rank"] == easy["metrics"][m]["rank"] == 1, m
    # without the adjustment the hard-mix city looks far worse: the test can tell the difference
    assert hard["metrics"]["on_time"]["observed"] < easy["metrics"]["on_time"]["observed"] - 0.1
    assert hard["metrics"]["handling_hours"]["observed"] > 3 * easy["metrics"]["handling_hours"]["observed"]
    # no repeat data: that metric is left out of the composite, not counted as zero
    assert hard["metrics"]["repeat"]["score"] is None


def test_the_worse_city_is_flagged_with_the_metrics_significantly_worse_than_its_mix_predicts():
    big = _agg({u: [(s, how, k * 20) for s, how, k in b] for u, b in PLAN.items()})  # 20x the tickets
    res = rank_units(big, "unit", TIERS, RankingConfig()).set_index("unit")
    assert set(res.loc["440500", "significantly_worse"]) >= {"on_time", "overdue", "handling_hours"}
    assert res.loc["440600", "significantly_worse"] == []
    small = rank_units(_agg(), "unit", TIERS, RankingConfig()).set_index("unit")  # 100 tickets: not significant
    assert small.loc["440500", "significantly_worse"] == []


def test_ranks_are_within_the_tier_and_small_or_lonely_units_are_not_flagged():
    plan = dict(PLAN)
    plan["440100"] = [(HARD, "worse", 5), (EASY, "worse", 5)]  # alone in super_large: rank 1, not flagged
    plan["445100"] = [(EASY, "same", 2)]                      # 20 closed tickets: listed, not ranked
    tiers = {**TIERS, "440100": "super_large", "445100": "small"}
    res = rank_units(_agg(plan), "unit", tiers, RankingConfig(min_closed=30),
                     previous={"440600": ("large", 2), "440500": ("large", 3)}).set_index("unit")
    assert res.loc["440100", "rank"] == 1 and not res.loc["440100", "flagged"]
    assert pd.isna(res.loc["445100", "rank"]) and not res.loc["445100", "flagged"]
    assert res.loc["445100", "closed"] == 20 and pd.isna(res.loc["445100", "composite"])
    assert res.loc["440600", "rank_prev"] == 2 and pd.isna(res.loc["441300", "rank_prev"])
    assert res.loc["440500", "flagged"]


def test_ties_share_a_rank_and_the_bottom_is_flagged_ties_included_a_level_group_has_no_bottom():
    same = {"440600": [(HARD, "same", 5), (EASY, "same", 5)], "441300": [(HARD, "same", 5), (EASY, "same", 5)]}
    res = rank_units(_agg(same), "unit", {"440600": "large", "441300": "large"}, RankingConfig()).set_index("unit")
    assert list(res["rank"]) == [1, 1] and not res["flagged"].any()  # all tied: no bottom
    five = {u: [(HARD, "same", 5), (EASY, "same", 5)] for u in ("440600", "441300", "440500")}
    five.update({u: [(HARD, "worse", 5), (EASY, "worse", 5)] for u in ("440700", "441200")})
    tiers = {u: "large" for u in five}
    res = rank_units(_agg(five), "unit", tiers, RankingConfig()).set_index("unit")
    assert sorted(res["rank"]) == [1, 1, 1, 4, 4]
    assert set(res.index[res["flagged"]]) == {"440700", "441200"}  # tied at the bottom: both followed up


def test_last_months_rank_counts_only_in_the_same_group():
    prev = {"440600": ("super_large", 1), "441300": ("large", 2)}  # 佛山 was in another tier last month
    res = rank_units(_agg(), "unit", TIERS, RankingConfig(), previous=prev).set_index("unit")
    assert pd.isna(res.loc["440600", "rank_prev"]) and res.loc["441300", "rank_prev"] == 2


def test_a_metric_with_too_few_tickets_behind_it_is_not_scored():
    agg = _agg()
    agg.loc[agg["unit"] == "440500", ["satisfaction_n", "satisfaction_x"]] = [[3, 0], [2, 0]]  # 5 rated, all unhappy
    res = rank_units(agg, "unit", TIERS, RankingConfig(min_metric_n=20)).set_index("unit")
    assert res.loc["440500", "metrics"]["satisfaction"]["score"] is None
    assert res.loc["440600", "metrics"]["satisfaction"]["score"] is not None


def test_weights_decide_the_composite_and_bad_config_names_the_file(tmp_path):
    only_sat = RankingConfig(weights={"satisfaction": 1.0})
    res = rank_units(_agg(), "unit", TIERS, only_sat).set_index("unit")
    sat = {u: res.loc[u, "metrics"]["satisfaction"]["score"] for u in res.index}
    for u in res.index:
        assert res.loc[u, "composite"] - 50 == pytest.approx(10 * sat[u], abs=1e-4)
    assert res.loc["440500", "composite"] < 50 < res.loc["440600", "composite"]
    from sla.ranking import load_ranking_config

    (tmp_path / "sla.yaml").write_text("ranking:\n  weights: {speed: 1}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sla\.yaml: ranking\.weights: unknown metric\(s\) speed"):
        load_ranking_config(tmp_path)


def _tickets(plan=PLAN):
    """The plan as warehouse tickets received 1-10 October 2026 (Asia/Shanghai)."""
    rows, i = [], 0
    for city, blocks in plan.items():
        from hotline.core.reference import load_reference

        district = load_reference().regions.province("440000").city(city).districts[0].code
        for spec, how, k in blocks:
            h = spec[how]
            for b in range(k):
                for j, hours in enumerate(h["hours"]):
                    rec = dt.datetime(2026, 10, 1 + (i % 10), 9, tzinfo=CN)
                    i += 1
                    rows.append({"ticket_id": f"R{i:05d}", "source": "test", "received_at": rec,
                                 "received_date": rec.date(), "channel": "phone", "province_code": "440000",
                                 "city_code": city, "district_code": district, "category_l1": spec["cat"].split(".")[0],
                                 "category_l2": spec["cat"], "deadline_at": rec + dt.timedelta(hours=spec["deadline"]),
                                 "closed_at": rec + dt.timedelta(hours=hours), "status": "closed", "is_repeat": False,
                                 "satisfaction": "satisfied" if j < h["satisfied"] else "unsatisfied",
                                 "resolved": j < h["resolved"], "caller_key": f"c{i}", "updated_at": rec})
    return rows


def test_the_stage_ranks_the_warehouse_month_fairly_and_a_rerun_gives_the_same_ranking(engine, ref, tmp_path):
    from sla.lights import SlaConfig
    from sla.race import read_aggregates, run_ranking
    from warehouse.schema import rankings, tickets

    with engine.begin() as conn:
        conn.execute(insert(tickets), _tickets())
    agg = read_aggregates(engine, OCT, "440000", "Asia/Shanghai")
    fs = agg[agg["city_code"] == "440600"].set_index("category_l2")
    assert fs.loc[HARD["cat"], "on_time_n"] == 90 and fs.loc[HARD["cat"], "on_time_x"] == 72
    assert fs.loc[HARD["cat"], "handling_hours_x"] == pytest.approx(90 * 70, rel=1e-6)
    assert fs.loc[HARD["cat"], "overdue_x"] == 18 and fs.loc[EASY["cat"], "satisfaction_x"] == 9

    out = run_ranking(engine, OCT, ref, SlaConfig(), RankingConfig(), "440000")
    res = out["levels"]["city"]["result"].set_index("unit")
    assert res.loc["440600", "rank"] == res.loc["441300", "rank"] == 1 and res.loc["440500", "rank"] == 3
    assert res.loc["440500", "flagged"]
    assert out["levels"]["city"]["previous"] == "none"  # no September tickets, no ranking stored

    def stored():
        with engine.connect() as conn:
            rows = conn.execute(select(rankings).order_by(rankings.c.level, rankings.c.unit_code)).mappings().all()
        return [{k: v for k, v in r.items() if k not in ("run_id", "created_at")} for r in rows]

    first = stored()
    assert {r["unit_code"] for r in first if r["level"] == "city"} >= {"440600", "441300", "440500"}
    run_ranking(engine, OCT, ref, SlaConfig(), RankingConfig(), "440000")
    assert stored() == first  # rerun: the same ranking, rows replaced, not added


def test_districts_are_ranked_within_their_city_fairly_for_their_mix(engine, ref):
    from sla.lights import SlaConfig
    from sla.race import run_ranking
    from warehouse.schema import tickets

    foshan = [d.code for d in ref.regions.province("440000").city("440600").districts[:3]]
    rows = []
    for district, blocks in zip(foshan, PLAN.values()):  # hard mix, easy mix (same handling), worse
        rows += [dict(r, ticket_id=f"{district}-{r['ticket_id']}", district_code=district)
                 for r in _tickets({"440600": blocks})]
    with engine.begin() as conn:
        conn.execute(insert(tickets), rows)
    out = run_ranking(engine, OCT, ref, SlaConfig(), RankingConfig(), "440000", levels=("district",))
    res = out["levels"]["district"]["result"].set_index("unit")
    assert res.loc[foshan[0], "rank"] == res.loc[foshan[1], "rank"] == 1 and res.loc[foshan[2], "rank"] == 3
    assert res.loc[foshan[2], "flagged"] and (res.loc[foshan, "group"] == "440600").all()
    assert res.loc[foshan[0], "group_size"] == 3


def test_last_months_stored_ranks_give_the_movement(engine, ref):
    from sla.lights import SlaConfig
    from sla.race import run_ranking
    from warehouse.schema import tickets

    sep = [dict(r, ticket_id="S" + r["ticket_id"], received_at=r["received_at"] - dt.timedelta(days=30),
                received_date=(r["received_at"] - dt.timedelta(days=30)).date(),
                deadline_at=r["deadline_at"] - dt.timedelta(days=30), closed_at=r["closed_at"] - dt.timedelta(days=30))
           for r in _tickets({"440600": PLAN["440500"], "441300": PLAN["441300"], "440500": PLAN["440600"]})]
    with engine.begin() as conn:
        conn.execute(insert(tickets), sep + _tickets())
    first = run_ranking(engine, OCT, ref, SlaConfig(), RankingConfig(), "440000", levels=("city",))
    assert first["levels"]["city"]["previous"] == "computed"  # September was never ranked: from tickets
    run_ranking(engine, OCT - 1, ref, SlaConfig(), RankingConfig(), "440000", levels=("city",))
    out = run_ranking(engine, OCT, ref, SlaConfig(), RankingConfig(), "440000", levels=("city",))
    assert out["levels"]["city"]["previous"] == "stored"
    res = out["levels"]["city"]["result"].set_index("unit")
    assert res.loc["440600", "rank_prev"] == 3 and res.loc["440600", "rank"] == 1  # up two places
    assert res.loc["440500", "rank_prev"] == 1 and res.loc["440500", "rank"] == 3
    again = run_ranking(engine, OCT, ref, SlaConfig(), RankingConfig(), "440000", levels=("city",))
    cols = ["unit", "rank", "rank_prev", "composite", "flagged"]
    pd.testing.assert_frame_equal(again["levels"]["city"]["result"][cols], out["levels"]["city"]["result"][cols])


def test_hotspots_find_rising_categories_their_new_cities_and_cross_city_issues(engine, ref):
    from sla.trends import TrendConfig, hotspots
    from warehouse.schema import daily_counts

    now = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rows = []

    def month(city, cat, period, per_day):
        for d in pd.date_range(period.start_time, period.end_time.normalize(), freq="D"):
            rows.append({"ds": d.date(), "region_level": "city", "region_code": city, "category_level": "l2",
                         "category_code": cat, "province_code": "440000", "city_code": city, "n_tickets": per_day,
                         "n_closed": 0, "n_overdue": 0, "n_repeat": 0, "n_rated": 0, "n_unsatisfied": 0,
                         "n_resolved": 0, "aggregated_at": now})

    heat = "emergency.extreme_heat"
    for city in ("440600", "441300", "440500", "440700"):
        month(city, heat, OCT - 2, 10)
        month(city, heat, OCT - 1, 10 if city != "440600" else 25)   # September: rising in 佛山 only
        month(city, heat, OCT, {"440700": 10, "440600": 40}.get(city, 30))  # October: 佛山 still, 惠州, 汕头
        for m in (OCT - 2, OCT - 1, OCT):
            month(city, "housing.property_service", m, 20)             # flat everywhere
    month("441300", "public_services.parcel_delivery", OCT, 5)      # none before in 惠州: moved in
    with engine.begin() as conn:
        conn.execute(insert(daily_counts), rows)
    res = hotspots(engine, OCT, "440000", ref, TrendConfig(cross_city_min=3))
    top = res["categories"][0]
    assert top["category"] == heat
    assert top["rising"] == sorted(["440600", "441300", "440500"]) and top["new"] == sorted(["441300", "440500"])
    assert top["rising_last_month"] == ["440600"] and top["cooled"] == []
    assert top["cross_city"] and [c["category"] for c in res["cross_city"]] == [heat]
    assert all(c["category"] != "housing.property_service" for c in res["categories"])
    parcel = next(c for c in res["categories"] if c["category"] == "public_services.parcel_delivery")
    assert parcel["rising"] == parcel["new"] == ["441300"] and parcel["tickets_prev"] == 0
    # the province's October (40 + 30 + 30 + 10 a day) against September's (25 + 3 x 10), per day
    assert top["change"] == pytest.approx((40 + 30 + 30 + 10) / (25 + 3 * 10) - 1, abs=1e-4)


def test_cli_ranking_json_report_and_brief(tmp_path, ref, monkeypatch):
    from click.testing import CliRunner

    from hotline.cli import main
    from warehouse.db import connect, migrate
    from warehouse.schema import tickets

    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = connect(url)
    migrate(eng)
    with eng.begin() as conn:
        conn.execute(insert(tickets), _tickets())
    eng.dispose()
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path / "var"))
    r = CliRunner().invoke(main, ["ranking", "--month", "2026-10", "--level", "city", "--db", url, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    large = next(g for g in doc["levels"]["city"]["groups"] if g["group"] == "large")
    assert large["name"] == "大城市" and large["ranked"] == 3
    by = {u["code"]: u for u in large["units"]}
    assert by["440600"]["rank"] == by["441300"]["rank"] == 1 and by["440500"]["flagged"]
    assert by["440500"]["name"] == "汕头市" and set(by["440500"]["metrics"]) == set(METRICS)
    assert any("大城市：第一" in x and "末位 汕头市" in x for x in doc["brief"])
    page = (tmp_path / "var" / "reports" / "ranking" / "2026-10" / "province-440000.zh.html").read_text("utf-8")
    assert "赛马排名与趋势" in page and "末位·需跟进" in page and page.count("<svg") >= 7
    assert (tmp_path / "var" / "reports" / "ranking" / "2026-10" / "province-440000.en.html").exists()
    bad = CliRunner().invoke(main, ["ranking", "--month", "October", "--db", url])
    assert bad.exit_code != 0 and "expected YYYY-MM" in bad.output


def test_the_ranking_report_opens_in_a_browser_with_chinese_and_charts(tmp_path, ref):
    """The report as an office opens it: headless Chromium draws the Chinese headings, tables and
    chart texts with a CJK font (no empty boxes) and every chart; a screenshot is kept."""
    from sla.monthly import horse_race
    from tests.browser import Chromium, artifact_dir, cjk_fonts
    from warehouse.db import connect, migrate
    from warehouse.schema import tickets

    eng = connect(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(eng)
    plan = {**PLAN, "440100": [(HARD, "same", 5), (EASY, "worse", 5)], "440300": [(HARD, "same", 3), (EASY, "same", 7)]}
    with eng.begin() as conn:
        conn.execute(insert(tickets), _tickets(plan))
    res = horse_race(eng, OCT, ref, ref.config_dir, tmp_path / "var", "440000")
    page = res["reports"]["zh"]
    with Chromium(width=1200, height=900) as browser:
        browser.open(f"file://{page}")
        assert browser.evaluate("document.querySelectorAll('svg.chart').length") >= 2 + len(METRICS) + 1
        assert browser.evaluate("document.querySelectorAll('svg.chart g.bar').length") > 10
        rows = browser.evaluate("[...document.querySelectorAll('#cities tbody tr')].map(r => r.innerText)")
        assert any("汕头市" in r and "末位·需跟进" in r for r in rows)
        assert "大城市：第一" in browser.evaluate("document.querySelector('#brief').innerText")
        for sel in ("h1", "#brief li", "#cities tbody tr", "svg text.title", "svg g.bar text"):
            assert cjk_fonts(browser.platform_fonts(sel)), sel
        browser.screenshot(artifact_dir() / "ranking-440000-2026-10.png")
    eng.dispose()
