"""每月一题: ranking on generated data with planted events, the choice rules, the reports in both
languages, the CLI, delivery and the monthly DAG.

The warehouse (SQLite, built once for the module) holds Shenzhen's daily counts from the
generator for 2024-06 .. 2026-07 at 5% of the published volumes, with the generator's own
seasons and four planted events:
- a city-wide surge of 供水 (x1.4 in every district, 9-22 March 2026),
- an emerging issue, 电动自行车充电 in 宝安区 (from almost nothing to 12 a day, from 1 April 2026),
- a seasonal issue, 餐饮油烟 x3 across the city every July (2024, 2025, 2026).
"""
import datetime as dt
import json
import re

import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from proposals.config import COMPONENTS, ProposalsConfig, ProposalsConfigError
from proposals.job import ProposalError, month_complete, propose, rank_one, read_month, scopes_of, stored, stored_month
from proposals.rank import choose, overlaps
from proposals.report import evidence_lines, label

CITY = "440300"
SURGE = "city:440300|l2:utilities.water_supply"
EMERGING = "district:440306|l2:public_safety.ebike_charging"
SEASONAL = "city:440300|l2:urban_management.restaurant_fumes"
START, END = dt.date(2024, 6, 1), dt.date(2026, 7, 31)


def _events():
    from generator.province import Event

    ev = [Event("surge", dt.date(2026, 3, 9), dt.date(2026, 3, 22), "city", CITY, CITY, "l2",
                "utilities.water_supply", 1.4, "全市供水诉求两周约1.4倍"),
          Event("emerging", dt.date(2026, 4, 1), dt.date(2026, 5, 12), "district", "440306", CITY, "l2",
                "public_safety.ebike_charging", 12.0, "宝安区电动自行车充电新问题")]
    ev += [Event("seasonal", dt.date(y, 7, 1), dt.date(y, 7, 31), "city", CITY, CITY, "l2",
                 "urban_management.restaurant_fumes", 3.0, "每年七月餐饮油烟约3倍") for y in (2024, 2025, 2026)]
    return tuple(ev)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from generator.province import ProvinceGenerator
    from warehouse.aggregate import load_counts
    from warehouse.db import connect, migrate

    none = {"spike": 0, "level_shift": 0, "emerging": 0, "surge": 0}  # only the planted events
    gen = ProvinceGenerator("440000", seed=7, scale=0.05, events_per_year=none, planted=_events())
    s, days, counts = gen.counts(START, END)
    mine = (s["city_code"] == CITY).to_numpy()
    path = tmp_path_factory.mktemp("proposals")
    eng = connect(f"sqlite:///{path / 'w.db'}")
    migrate(eng)
    load_counts(eng, s[mine].reset_index(drop=True), days, counts[mine])
    yield eng, path
    eng.dispose()


@pytest.fixture(scope="module")
def cfg():
    return ProposalsConfig.load("config")


@pytest.fixture(scope="module")
def top(warehouse, ref, cfg):
    """The model's choice for March (the stage's mechanics below are tested on whatever it chose)."""
    from types import SimpleNamespace

    from proposals.rank import parse_id
    from proposals.report import label

    eng, _ = warehouse
    cid = ranked(eng, ref, cfg, "2026-03").choice["chosen"]
    cc = parse_id(cid)[3]
    return SimpleNamespace(cid=cid, cc=cc, l1=cc.split(".")[0], zh=label(cid, ref, "zh"),
                           name_zh=ref.taxonomy.name(cc, "zh"), name_en=ref.taxonomy.name(cc, "en"),
                           dept=ref.taxonomy.categories[cc].department)


@pytest.fixture
def fresh(warehouse):
    """The module's warehouse with no proposal, notice or run left by another test."""
    from warehouse.schema import notifications, pipeline_runs, proposals

    eng, path = warehouse
    with eng.begin() as conn:
        for t in (proposals, notifications, pipeline_runs):
            conn.execute(t.delete())
    return eng, path


def ranked(eng, ref, cfg, month):
    data = read_month(eng, pd.Period(month, freq="M"), ref, "440000", cfg, province_scope=False)
    return rank_one(data, scopes_of(ref, "440000", [CITY], False)[0], cfg, ref, eng)


def rank_of(res, cid):
    hits = res.ranked.index[res.ranked["candidate"] == cid]
    return int(hits[0]) + 1 if len(hits) else None


def test_a_city_wide_surge_rises_in_the_ranking_for_its_breadth_without_outranking_chronic_problems(fresh, ref, cfg):
    eng, _ = fresh
    res = ranked(eng, ref, cfg, "2026-03")
    row = res.ranked.set_index("candidate").loc[SURGE]
    assert row["regions_up"] >= 3 and row["rise_broad"]  # it rose in several districts, not one
    assert row["growth_ratio"] > 1.15 and row["c_growth"] > 0.15  # beyond noise
    assert row["p_outlook"] == row["c_growth"]  # the rise now is its outlook
    before = ranked(eng, ref, cfg, "2026-02")
    assert before.ranked.set_index("candidate").loc[SURGE, "c_growth"] == 0.0  # nothing special the month before
    assert rank_of(res, SURGE) < rank_of(before, SURGE) and rank_of(res, SURGE) <= 3


def test_an_emerging_issue_in_one_district_goes_to_the_watch_list_not_to_the_city(fresh, ref, cfg):
    eng, _ = fresh
    res = ranked(eng, ref, cfg, "2026-04")
    spr = res.sprouts.set_index("candidate")
    assert EMERGING in spr.index and spr.loc[EMERGING, "sprout_kind"] in ("surge", "emerging")
    assert spr.loc[EMERGING, "growth_ratio"] > 1.5
    # the city-wide candidate of the same category knows where its rise comes from, and gets no
    # credit for a rise in one district
    city = res.ranked.set_index("candidate").loc["city:440300|l2:public_safety.ebike_charging"]
    assert city["focus"] == "440306" and city["focus_share"] > 0.8
    assert not city["rise_broad"] and city["c_growth"] == 0.0
    assert res.choice["chosen"] != "city:440300|l2:public_safety.ebike_charging"
    assert "city:440300|l2:public_safety.ebike_charging" not in set(spr.index)  # listed once, under 宝安区
    before = ranked(eng, ref, cfg, "2026-03")
    assert EMERGING not in set(before.sprouts.get("candidate", []))


def test_seasonal_issue_is_proposed_the_months_before_its_peak(fresh, ref, cfg):
    eng, _ = fresh
    june = ranked(eng, ref, cfg, "2026-06")
    row = june.ranked.set_index("candidate").loc[SEASONAL]
    assert row["c_growth"] == 0.0 and row["p_outlook"] == row["c_forecast"] > 0.6  # the forward look carries it
    assert row["outlook_1"] > 2.5 and int(row["outlook_month"]) == 1
    assert rank_of(june, SEASONAL) <= 3
    assert june.sprouts.set_index("candidate").loc[SEASONAL, "sprout_kind"] == "peak_ahead"
    july = ranked(eng, ref, cfg, "2026-07")  # at its peak it is no news: same as every July
    assert rank_of(july, SEASONAL) > 10


def test_every_component_is_in_range_and_the_score_is_the_principles_weighted_mean(fresh, ref, cfg):
    eng, _ = fresh
    r = ranked(eng, ref, cfg, "2026-03").ranked
    comps = r[[f"c_{c}" for c in COMPONENTS]]
    assert ((comps.fillna(0) >= 0) & (comps.fillna(0) <= 1)).all().all()
    # counts-only history: the hard principle is unknown and left out of the weighting
    assert r["p_hard"].isna().all() and r["contrib_hard"].isna().all()
    known = {p: w for p, w in cfg.principles.items() if p != "hard"}
    parts = sum(r[f"p_{p}"] * (r["gate"] if p == "outlook" else 1) * w for p, w in known.items())
    assert ((parts / sum(known.values()) - r["score_base"]).abs() < 1e-9).all()
    assert r["score"].is_monotonic_decreasing
    assert not r["category_code"].str.endswith(".other").any()  # 其他… is not a governable issue
    assert (r["tickets"] >= cfg.scoring["min_tickets"]).all()
    assert (r["region_level"] == "city").all() and (r["breadth_n"] >= 2).all()


def test_weights_come_from_config_and_change_the_ranking(fresh, ref):
    eng, _ = fresh
    only_month = ProposalsConfig.from_dict({"principles": {"frequency": 1, "continuity": 0, "hard": 0, "outlook": 0},
                                            "components": {"frequency": {"share_month": 1}}})
    r = ranked(eng, ref, only_month, "2026-03").ranked
    assert r.iloc[0]["tickets"] == r["tickets"].max()
    with pytest.raises(ProposalsConfigError, match=r"components.frequency: unknown key\(s\) \['volume'\]"):
        ProposalsConfig.from_dict({"components": {"frequency": {"volume": 1.0}}}, "config/proposals.yaml")
    with pytest.raises(ProposalsConfigError, match="config/proposals.yaml: unknown key.*weights.*became"):
        ProposalsConfig.from_dict({"weights": {"volume": 1.0}}, "config/proposals.yaml")
    with pytest.raises(ProposalsConfigError, match="principles: unknown key.*balanse"):
        ProposalsConfig.from_dict({"principles": {"balanse": 1.0}}, "config/proposals.yaml")
    with pytest.raises(ProposalsConfigError,
                       match=r"scoring: unknown key\(s\) \['min_ticket'\]; known: .*'min_tickets'"):
        ProposalsConfig.from_dict({"scoring": {"min_ticket": 5}}, "config/proposals.yaml")


def test_overlap_rules():
    parent = {"440306": "440300", "440300": "440000"}
    assert overlaps(SURGE, "district:440306|l2:utilities.water_supply", parent)
    assert overlaps(SURGE, "city:440300|l1:utilities", parent)
    assert not overlaps(SURGE, "city:440300|l2:utilities.power_supply", parent)
    assert not overlaps(SURGE, "city:440100|l2:utilities.water_supply", parent)


def test_an_issue_chosen_recently_is_not_proposed_again_unless_it_worsened(fresh, ref, cfg, tmp_path):
    from warehouse.schema import proposals

    eng, _ = fresh
    march = ranked(eng, ref, cfg, "2026-03")
    now_avg = float(march.ranked.set_index("candidate").loc[SURGE, "daily_avg"])

    def chose_in_february(daily_avg):
        with eng.begin() as conn:
            conn.execute(proposals.delete())
            conn.execute(insert(proposals).values(
                month=dt.date(2026, 2, 1), scope=CITY, status="proposed", model_choice=SURGE, chosen=SURGE,
                candidates=[{"candidate": SURGE, "daily_avg": daily_avg}], weights={}, run_id="t", complete=True,
                created_at=dt.datetime.now(dt.timezone.utc), updated_at=dt.datetime.now(dt.timezone.utc)))

    chose_in_february(now_avg / 1.1)  # March is only 10% above February's choice: held back
    res = ranked(eng, ref, cfg, "2026-03")
    assert res.choice["chosen"] != SURGE and res.choice["blocked"][SURGE] == "2026-02"
    assert not overlaps(res.choice["chosen"], SURGE, {"440306": "440300"})  # nor a part of it
    chose_in_february(now_avg / 1.5)  # 50% worse than when it was chosen: proposed again
    res = ranked(eng, ref, cfg, "2026-03")
    assert SURGE not in res.choice["blocked"] and SURGE in set(res.ranked["candidate"])
    # balance: the same lead department and family as February's issue lower it, and say so
    row = res.ranked.set_index("candidate").loc[SURGE]
    assert row["balance_reason"] == "dept:1|family:1"
    assert row["balance_penalty"] == pytest.approx(cfg.balance["same_department"] + cfg.balance["same_family"])
    assert row["score"] == pytest.approx(row["score_base"] - row["balance_penalty"])


def test_choose_skips_overlapping_runner_ups_in_the_watch_list(cfg):
    r = pd.DataFrame({"candidate": [SURGE, "district:440306|l2:utilities.water_supply", "city:440300|l1:utilities",
                                    "city:440300|l2:housing.rental"], "daily_avg": [10.0, 5.0, 30.0, 3.0]})
    out = choose(r, cfg, [], {}, {"440306": "440300"})
    assert out["chosen"] == SURGE and out["watch"] == ["city:440300|l2:housing.rental"]


def test_propose_stores_writes_both_languages_and_masks_ticket_texts(fresh, ref, cfg, tmp_path, top):
    from warehouse.schema import tickets

    eng, _ = fresh
    now = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
    texts = ["小区停水三天了，我叫王小明，电话13812345678，身份证440301199001011234",
             "供水压力不足，高层住户无水可用"]
    with eng.begin() as conn:
        conn.execute(insert(tickets), [
            {"ticket_id": f"T{i}", "source": "test",
             "received_at": dt.datetime(2026, 3, 10 + i, 2, tzinfo=dt.timezone.utc),
             "received_date": dt.date(2026, 3, 10 + i), "channel": "phone", "province_code": "440000",
             "city_code": CITY,
             "district_code": "440306", "street_code": "新安街道", "category_l1": top.l1,
             "category_l2": top.cc, "content": t, "status": "closed", "is_repeat": False,
             "updated_at": now} for i, t in enumerate(texts)])
    try:
        out = propose(eng, pd.Period("2026-03", freq="M"), ref, cfg, "440000", tmp_path, cities=[CITY], now=now)
    finally:
        with eng.begin() as conn:
            conn.execute(tickets.delete())
    assert len(out) == 1 and out[0].choice["chosen"] == top.cid
    row = stored(eng, pd.Period("2026-03", freq="M"), CITY)
    assert row["chosen"] == top.cid and row["status"] == "proposed" and row["title"] == top.zh
    cands = [c for c in row["candidates"] if c["role"] != "sprout"]
    assert len(cands) == min(cfg.scoring["stored_candidates"], len(out[0].ranked))
    assert all(set(f"c_{c}" for c in COMPONENTS) <= set(c) for c in row["candidates"])
    sprouts = [c["candidate"] for c in row["candidates"] if c["role"] == "sprout"]
    assert sprouts == list(out[0].sprouts["candidate"])  # the 苗头 list is stored with the proposal
    watch = [c["candidate"] for c in row["candidates"] if c["role"] == "watch"]
    assert len(watch) == cfg.scoring["watch_list"]
    assert not any(overlaps(w, top.cid, {"440306": "440300"}) for w in watch)  # runner-ups are other issues
    zh = (tmp_path / "reports/proposals/2026-03/440300.zh.html").read_text(encoding="utf-8")
    en = (tmp_path / "reports/proposals/2026-03/440300.en.html").read_text(encoding="utf-8")
    md_zh = (tmp_path / "reports/proposals/2026-03/440300.zh.md").read_text(encoding="utf-8")
    md_en = (tmp_path / "reports/proposals/2026-03/440300.en.md").read_text(encoding="utf-8")
    for text in ("每月一题建议", "为什么选它：四项原则", "【高频】", "【持续】", "【难点】", "牵头部门", top.dept,
                 "配合部门", "建议举措", "跟踪指标", "备选问题", "苗头", "评分构成", "选题原则", "高频", "持续", "难点",
                 "均衡", "宝安区", "新安街道"):
        assert text in zh and text in md_zh, text
    for text in ("Issue of the month proposal", "the four principles", "Lead department", "Suggested actions",
                 "Measures to track", "Runner-ups", "Sprouts to watch", "Score components", "high frequency",
                 top.name_en):
        assert text in en and text in md_en, text
    assert zh.count("<svg") == 3 and en.count("<svg") == 3  # trend with outlook band, districts, sub-categories
    assert 'class="band"' in zh  # the outlook band is drawn
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', zh)  # nothing fetched from the network
    for doc in (zh, en, md_zh, md_en):
        assert "13812345678" not in doc and "440301199001011234" not in doc and "王小明" not in doc
    assert "[手机号]" in zh and "供水压力不足" in zh  # the sample titles are there, masked
    # the water-supply surge of 9-22 March is in the 苗头 list only if beyond the sprout threshold; the
    # peaks ahead are (summer); each listed sprout is on the page with its kind
    for rec in out[0].sprouts.to_dict("records"):
        assert label(rec["candidate"], ref, "zh") in zh


def test_an_analyst_override_is_kept_and_shown(fresh, ref, cfg, tmp_path, top):
    eng, _ = fresh
    month = pd.Period("2026-03", freq="M")
    alt = ranked(eng, ref, cfg, "2026-03").ranked.iloc[3]["candidate"]
    with pytest.raises(ProposalError, match="--by"):
        propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY], override=alt)
    with pytest.raises(ProposalError, match="not a candidate"):
        propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY], override="city:440300|l2:nope",
                override_by="李分析", override_reason="x")
    propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY], override=alt, override_by="李分析",
            override_reason="区里已列入年度重点")
    row = stored(eng, month, CITY)
    assert (row["status"], row["chosen"], row["model_choice"], row["override_by"]) == (
        "overridden", alt, top.cid, "李分析")
    propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY])  # a rerun keeps the analyst's choice
    row = stored(eng, month, CITY)
    assert row["chosen"] == alt and row["override_reason"] == "区里已列入年度重点"
    zh = (tmp_path / "reports/proposals/2026-03/440300.zh.html").read_text(encoding="utf-8")
    assert "分析员改选" in zh and "李分析" in zh and "模型推荐" in zh


def test_an_override_whose_candidate_is_gone_stays_on_record(fresh, ref, cfg, tmp_path, top):
    from warehouse.schema import proposals

    eng, _ = fresh
    month = pd.Period("2026-03", freq="M")
    propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY])
    gone = "district:440306|l2:utilities.heating"  # not a candidate here (no heating in the south)
    with eng.begin() as conn:  # as if the analyst had chosen it on data that has since changed
        conn.execute(proposals.update().where(proposals.c.scope == CITY).values(
            status="overridden", chosen=gone, override_by="李分析", override_reason="年度重点"))
    res = propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY])[0]
    row = stored(eng, month, CITY)
    assert res.choice["chosen"] == top.cid and row["chosen"] == top.cid
    assert (row["status"], row["override_by"], row["override_reason"]) == ("override_lost", "李分析", "年度重点")
    assert row["reports"]["override"]["candidate"] == gone
    zh = (tmp_path / "reports/proposals/2026-03/440300.zh.html").read_text(encoding="utf-8")
    assert "李分析" in zh and "已不在本月候选中" in zh
    propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY])  # and stays on record on the next rerun
    assert stored(eng, month, CITY)["status"] == "override_lost"


def test_the_province_alone_can_be_proposed_and_overridden(fresh, ref, cfg, tmp_path):
    eng, _ = fresh
    month = pd.Period("2026-03", freq="M")
    res = propose(eng, month, ref, cfg, "440000", tmp_path, province_only=True)
    assert [r.scope.code for r in res] == ["440000"]
    alt = res[0].ranked.iloc[2]["candidate"]
    propose(eng, month, ref, cfg, "440000", tmp_path, province_only=True, override=alt, override_by="省督办处",
            override_reason="全省统筹")
    row = stored(eng, month, "440000")
    assert row["status"] == "overridden" and row["chosen"] == alt


def test_anomalies_count_rising_days_once_at_their_worst_severity(fresh, ref, cfg):
    from warehouse.schema import anomalies

    eng, _ = fresh

    def an(ds, rl, rc, cl, cc, kind, sev, detector="consensus", observed=50.0, expected=10.0):
        return {"ds": ds, "series_id": f"{rl}:{rc}|{cl}:{cc}", "detector": detector, "kind": kind, "region_level": rl,
                "region_code": rc, "category_level": cl, "category_code": cc, "observed": observed,
                "expected": expected, "lower": 1.0, "upper": 20.0, "score": 0.9999, "severity": sev,
                "explanation": "", "run_id": "t"}

    d1, d2, d3 = dt.date(2026, 3, 10), dt.date(2026, 3, 11), dt.date(2026, 3, 12)
    rows = [an(d1, "city", CITY, "l2", "utilities.water_supply", "spike", "yellow", "spike_drop"),
            an(d1, "city", CITY, "l2", "utilities.water_supply", "spike", "red"),  # two detectors: red counts
            an(d1, "district", "440306", "l2", "utilities.water_supply", "spike", "orange"),  # same day, inside
            an(d1, "city", CITY, "l1", "utilities", "spread", "orange"),  # the category above: not inside
            an(d2, "city", CITY, "l2", "utilities.water_supply", "drop", "red", observed=2.0),  # a drop: no evidence
            an(d3, "district", "440307", "l2", "utilities.water_supply", "level_shift", "yellow")]
    with eng.begin() as conn:
        conn.execute(anomalies.delete())
        conn.execute(insert(anomalies), rows)
    both = ProposalsConfig.from_dict({"scoring": {"candidate_levels": ["l1", "l2"]}})
    try:
        r = ranked(eng, ref, both, "2026-03").ranked.set_index("candidate")
    finally:
        with eng.begin() as conn:
            conn.execute(anomalies.delete())
    assert (r.loc[SURGE, "anomalies"], r.loc[SURGE, "anomaly_points"]) == (2, 3 + 1)  # day 1 red, day 3 yellow
    assert (r.loc["city:440300|l1:utilities", "anomalies"],
            r.loc["city:440300|l1:utilities", "anomaly_points"]) == (2, 4)
    lines = evidence_lines(r.loc[SURGE].to_dict(), "深圳市", ref, "zh", pd.Period("2026-03", freq="M"))
    assert "本月有 2 天检测到上升异常。" in lines  # evidence the proposal shows


def test_follow_up_compares_the_chosen_issue_later(fresh, ref, cfg, tmp_path):
    eng, _ = fresh
    propose(eng, pd.Period("2026-03", freq="M"), ref, cfg, "440000", tmp_path, cities=[CITY], override=SURGE,
            override_by="李分析", override_reason="三月全市停水投诉集中")
    propose(eng, pd.Period("2026-04", freq="M"), ref, cfg, "440000", tmp_path, cities=[CITY])
    zh = (tmp_path / "reports/proposals/2026-04/440300.zh.md").read_text(encoding="utf-8")
    section = zh.split("## 往期选题跟踪", 1)[1]
    line = next(x for x in section.splitlines() if "2026-03 深圳市·供水" in x)
    nums = [float(x.replace(",", "")) for x in re.findall(r"([\d.,]+)/d", line)]
    assert nums[0] > nums[1]  # the surge is over: April's daily volume is below March's
    expect = "达到目标" if nums[1] / nums[0] - 1 <= -0.2 else "有所下降，未达目标"  # the volume target is -20%
    assert line.rstrip().endswith(f"{expect} |"), line


def test_cli_propose_prints_ranked_candidates_with_components(fresh, tmp_path, monkeypatch, top):
    from click.testing import CliRunner

    from hotline.cli import main

    eng, path = fresh
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    db = str(eng.url)
    r = CliRunner().invoke(main, ["propose", "--db", db, "--month", "2026-03", "--city", CITY, "--json"])
    assert r.exit_code == 0, r.output
    payload = json.loads(r.output.strip().splitlines()[-1])
    scope = payload["scopes"][0]
    assert scope["scope"] == CITY and scope["chosen"] == top.cid and len(scope["candidates"]) == 10
    first = scope["candidates"][0]
    assert first["rank"] == 1 and first["candidate"] == top.cid and set(first["components"]) == set(COMPONENTS)
    assert set(first["principles"]) == {"frequency", "continuity", "hard", "outlook"}
    assert first["principles"]["hard"] is None  # counts only: unknown, not zero
    total = sum(v for v in first["principles"].values() if v is not None) - first["balance_penalty"]
    assert abs(total - first["score"]) < 0.01
    assert {s["kind"] for s in scope["sprouts"]} <= {"surge", "emerging", "peak_ahead"}
    text = CliRunner().invoke(main, ["propose", "--db", db, "--month", "2026-03", "--city", CITY])
    assert f"深圳市 (440300) 2026-03: {top.zh}" in text.output and "growth=" in text.output
    explain = CliRunner().invoke(main, ["propose", "--db", db, "--month", "2026-03", "--city", CITY, "--explain"])
    assert explain.exit_code == 0, explain.output
    assert "高频(frequency) +" in explain.output and "难点(hard) —" in explain.output
    assert "均衡扣分(balance)" in explain.output and "【持续】近 12 个月中有" in explain.output
    assert scope["reports"]["zh"]["html"].endswith("440300.zh.html")
    bad = CliRunner().invoke(main, ["propose", "--db", db, "--month", "2026-13"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    late = CliRunner().invoke(main, ["propose", "--db", db, "--month", "2026-09", "--city", CITY])
    assert late.exit_code == 2 and "ends on 2026-07-31" in late.output
    unknown = CliRunner().invoke(main, ["propose", "--db", db, "--month", "2026-03", "--city", "110100"])
    assert unknown.exit_code == 2 and "not a city" in unknown.output


def test_delivery_goes_through_the_outbox_once(fresh, ref, cfg, tmp_path, top):
    from alerts.config import AlertsConfig
    from proposals.deliver import deliver_proposals
    from warehouse.schema import notifications

    eng, _ = fresh
    month = pd.Period("2026-03", freq="M")
    propose(eng, month, ref, cfg, "440000", tmp_path, cities=[CITY])
    acfg = AlertsConfig.load("config")
    first = deliver_proposals(eng, stored_month(eng, month), acfg, ref, tmp_path)
    assert first["queued"] == 1 and first["delivered"] == 1
    again = deliver_proposals(eng, stored_month(eng, month), acfg, ref, tmp_path)
    assert again == {"queued": 0, "offices_without_channel": 0}
    with eng.connect() as conn:
        row = conn.execute(select(notifications)).mappings().one()
    assert row["receiver"] == "city:440300" and row["subject"].startswith(
        f"【每月一题建议】深圳市12345热线中心：{top.zh}")
    notice = (tmp_path / "notices" / "2026-03-31.md").read_text(encoding="utf-8")
    assert "每月一题建议" in notice and "440300.zh.html" in notice
    # the 苗头 ride along with the proposal, by kind
    sprouts = [c for c in stored_month(eng, month)[0]["candidates"] if c.get("role") == "sprout"]
    assert sprouts, "the planted March surge of 供水 is a 苗头"
    assert f"苗头：{label(sprouts[0]['candidate'], ref, 'zh')}（" in notice


def test_month_complete_waits_for_the_last_daily_run(fresh):
    from warehouse.runs import finish_run, start_run

    eng, _ = fresh
    month = pd.Period("2026-03", freq="M")
    assert not month_complete(eng, month)
    start_run(eng, "n1", "notify", dt.date(2026, 3, 30), {})
    finish_run(eng, "n1", "success", {})
    assert not month_complete(eng, month)  # the day before the last is not enough
    start_run(eng, "n2", "notify", dt.date(2026, 3, 31), {})
    assert not month_complete(eng, month)  # still running
    finish_run(eng, "n2", "success", {})
    assert month_complete(eng, month)


def test_monthly_reads_agree_on_sqlite_and_postgresql(engine, ref, cfg):
    """The monthly sums, days covered and the month's days read the same on both dialects, and
    add up to the generator's counts."""
    from generator.province import ProvinceGenerator
    from proposals.panel import coverage, read_days, read_monthly
    from warehouse.aggregate import load_counts

    gen = ProvinceGenerator("440000", seed=3, scale=0.01, anomalies=False)
    s, days, counts = gen.counts(dt.date(2026, 1, 20), dt.date(2026, 3, 10))
    mine = (s["city_code"] == "440400").to_numpy()
    load_counts(engine, s[mine].reset_index(drop=True), days, counts[mine])
    m = read_monthly(engine, pd.Period("2026-01", "M"), pd.Period("2026-03", "M"), "440000",
                     [("city", "all"), ("district", "l2")])
    month_of = pd.PeriodIndex(days, freq="M")
    for p in ("2026-01", "2026-02", "2026-03"):
        expect = counts[mine][:, month_of == pd.Period(p, "M")].sum()
        got = m[(m["series_id"] == "city:440400|all:*") & (m["month"] == pd.Period(p, "M"))]["n_tickets"].sum()
        assert got == expect
        assert m[(m["region_level"] == "district") & (m["month"] == pd.Period(p, "M"))]["n_tickets"].sum() == expect
    cov = coverage(engine, pd.Period("2026-01", "M"), pd.Period("2026-03", "M"), "440000")
    assert cov.to_dict() == {pd.Period("2026-01", "M"): 12, pd.Period("2026-02", "M"): 28,
                             pd.Period("2026-03", "M"): 10}
    d = read_days(engine, pd.Period("2026-02", "M"), "440000", [("district", "l2")])
    assert d["ds"].min() == pd.Timestamp("2026-02-01") and d["ds"].max() == pd.Timestamp("2026-02-28")
    assert d["y"].sum() == counts[mine][:, month_of == pd.Period("2026-02", "M")].sum()


def test_propose_stores_and_reads_back_on_both_dialects(engine, ref, cfg, tmp_path):
    from generator.province import ProvinceGenerator
    from proposals.panel import anomaly_counts, handling
    from warehouse.aggregate import load_counts
    from warehouse.schema import anomalies, tickets

    gen = ProvinceGenerator("440000", seed=3, scale=0.05, anomalies=False)
    s, days, counts = gen.counts(dt.date(2025, 12, 1), dt.date(2026, 2, 28))
    mine = (s["city_code"] == "440400").to_numpy()
    load_counts(engine, s[mine].reset_index(drop=True), days, counts[mine])
    sid = "city:440400|l2:housing.property_service"
    with engine.begin() as conn:
        conn.execute(insert(anomalies), [
            {"ds": dt.date(2026, 2, 3), "series_id": sid, "detector": det, "kind": "spike", "region_level": "city",
             "region_code": "440400", "category_level": "l2", "category_code": "housing.property_service",
             "observed": 90.0, "expected": 30.0, "lower": 10.0, "upper": 50.0, "score": 0.999, "severity": sev,
             "explanation": "", "run_id": "t"} for det, sev in (("consensus", "red"), ("spike_drop", "yellow"))])
    # handling times are read from the tickets with the dialect's own date arithmetic
    utc = dt.timezone.utc
    t0 = dt.datetime(2026, 2, 10, 1, 30, tzinfo=utc)
    with engine.begin() as conn:
        conn.execute(insert(tickets), [
            {"ticket_id": f"H{i}", "source": "test", "received_at": t0, "received_date": t0.date(), "channel": "phone",
             "province_code": "440000", "city_code": "440400", "district_code": "440402",
             "category_l1": cat.split(".")[0],
             "category_l2": cat, "status": "closed", "is_repeat": False, "updated_at": t0,
             "closed_at": t0 + dt.timedelta(days=days)}
            for i, (cat, days) in enumerate([("housing.property_service", 2), ("housing.property_service", 4),
                                             ("housing.property_service", 6.5), ("transport.parking", 1),
                                             ("transport.parking", 1)])])
        # as the office saw it at the end of February (Beijing time, 2026-02-28 16:00 UTC): a ticket
        # closed in March and one still open count their days open so far (2 and 8)
        end = dt.datetime(2026, 2, 28, 16, 0, tzinfo=utc)
        conn.execute(insert(tickets), [
            {"ticket_id": f"W{i}", "source": "test", "received_at": end - dt.timedelta(days=d),
             "received_date": (end - dt.timedelta(days=d)).date(), "channel": "phone", "province_code": "440000",
             "city_code": "440400", "district_code": "440402", "category_l1": "utilities",
             "category_l2": "utilities.water_supply", "status": st, "is_repeat": False, "updated_at": end,
             "closed_at": closed} for i, (d, st, closed) in enumerate([(2, "closed", end + dt.timedelta(days=20)),
                                                                     (8, "processing", None)])])
    h = handling(engine, pd.Period("2026-02", "M"), pd.Period("2026-02", "M"), "440000").set_index("series_id")
    assert h.loc[sid, "n_handled"] == 3 and h.loc[sid, "handling_days"] == pytest.approx(12.5)
    water = h.loc["city:440400|l2:utilities.water_supply"]
    assert water["n_handled"] == 2 and water["handling_days"] == pytest.approx(10.0)
    assert (h.loc["city:440400|all:*", "n_handled"] == 7
            and h.loc["city:440400|all:*", "handling_days"] == pytest.approx(24.5))
    assert h.loc["province:440000|l1:housing", "handling_days"] == pytest.approx(12.5)
    an = anomaly_counts(engine, pd.Period("2026-02", "M"), "440000")
    assert an[["region_code", "category_code", "severity"]].values.tolist() == [
        ["440400", "housing.property_service", "red"]]
    month = pd.Period("2026-02", freq="M")
    res = propose(engine, month, ref, cfg, "440000", tmp_path, cities=["440400"],
                  now=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    assert res[0].choice["chosen"] is not None
    row = stored(engine, month, "440400")
    assert row["chosen"] == res[0].choice["chosen"] and row["complete"] is True
    assert row["candidates"][0]["candidate"] == res[0].ranked.iloc[0]["candidate"]
    housing = res[0].ranked.set_index("candidate").loc[sid]  # one day, red (the worst of the two detectors)
    assert (housing["anomalies"], housing["anomaly_points"]) == (1, 3)
    assert housing["handling_days"] == pytest.approx(12.5 / 3) and housing["handling_scope_days"] == pytest.approx(3.5)
    assert housing["c_long_handling"] > 0  # slower than the city's requests: a hard problem
    propose(engine, month, ref, cfg, "440000", tmp_path, cities=["440400"])  # a rerun updates the row
    assert len(stored_month(engine, month)) == 1


@pytest.mark.slow
def test_monthly_dag_proposes_delivers_and_rebuilds_the_board(fresh, airflow_db, ref, tmp_path, monkeypatch, top):
    from airflow.dag_processing.dagbag import DagBag

    from warehouse.runs import finish_run, start_run
    from warehouse.schema import notifications

    eng, _ = fresh
    monkeypatch.setenv("HOTLINE_DB_URL", str(eng.url))
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    start_run(eng, "n-last", "notify", dt.date(2026, 3, 31), {})
    finish_run(eng, "n-last", "success", {})
    dag = DagBag(dag_folder="dags").dags["hotline_monthly"]
    dr = dag.test(logical_date=dt.datetime(2026, 3, 31, 22, tzinfo=dt.timezone.utc), run_conf={"month": "2026-03"})
    assert dr.state == "success"
    rows = stored_month(eng, pd.Period("2026-03", freq="M"))
    by_scope = {r["scope"]: r for r in rows}
    assert by_scope[CITY]["chosen"] == top.cid
    assert len(rows) == 1 + len(ref.regions.province("440000").cities)  # the province and each city
    assert (tmp_path / "reports/proposals/2026-03/440300.zh.html").is_file()
    with eng.connect() as conn:
        sent = conn.execute(select(notifications.c.receiver, notifications.c.status)).all()
    assert ("city:440300", "delivered") in sent
    city = (tmp_path / "site" / "city-440300.html").read_text(encoding="utf-8")
    assert top.zh in city and "proposals/2026-03/440300.zh.html" in city  # the board shows it
    again = dag.test(logical_date=dt.datetime(2026, 3, 31, 22, tzinfo=dt.timezone.utc), run_conf={"month": "2026-03"})
    assert again.state == "success"  # a rerun replaces the proposals and sends nothing twice
    with eng.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notifications)).scalar_one() == len(sent)
    assert stored_month(eng, pd.Period("2026-03", freq="M"))[0]["chosen"] == rows[0]["chosen"]
