"""The day's detection as the DAG and the backtest run it: spread across districts, explanations
naming the drivers, calendar awareness, the budget's thresholds, materiality, cool-down, profiles;
the backtest's scoring, labels file, sweep and CLI; the daily job's storage on SQLite and
PostgreSQL."""
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detectors.engine import Cooldown, decide, score_all
from detectors.panel import Expectations, Panel
from detectors.profiles import DetectionConfig
from forecasting.calendar_features import day_kinds
from hotline.core.reference import ConfigError

CITY = "440100"
DISTRICTS = ["440103", "440104", "440105", "440106"]  # 荔湾 越秀 海珠 天河
CATS = {"housing.property_service": 6.0, "environment.living_noise": 4.0, "transport.taxi": 3.0}
WEEK = np.array([1.15, 1.1, 1.05, 1.0, 1.0, 0.75, 0.7])


def _lam(days: pd.DatetimeIndex) -> np.ndarray:
    """Expected daily factor with the real calendar: weekdays, 调休 make-up days, holidays."""
    cal = day_kinds(days[0].date(), days[-1].date())
    f = WEEK[cal["weekday"].to_numpy()]
    f = np.where(cal["is_makeup_workday"], 1.05, f)
    sf = np.abs(cal["days_from_spring_festival"].to_numpy()) <= 8
    return np.where(cal["is_holiday"], np.where(sf, 0.35, 0.55), f)


def _district_counts(end: str, days: int = 460, seed: int = 0, boost=None) -> tuple[pd.DataFrame, pd.DatetimeIndex,
                                                                                     np.ndarray]:
    """District x level-2 counts of one city, the generator's layout (load_counts' input)."""
    idx = pd.date_range(end=end, periods=days)
    rows = [(CITY, d, c, c.split(".")[0], base) for d in DISTRICTS for c, base in CATS.items()]
    series = pd.DataFrame(rows, columns=["city_code", "district_code", "category_l2", "category_l1", "base"])
    series.insert(0, "province_code", "440000")
    lam = series["base"].to_numpy()[:, None] * _lam(idx)[None, :]
    if boost:
        boost(series, idx, lam)
    counts = np.random.default_rng(seed).poisson(lam)
    return series, idx, counts


def _panel(series, idx, counts) -> Panel:
    """The city scope's panel built as the daily job builds it (city and district, all/l1/l2)."""
    rows = []
    for rl, rcol in (("city", "city_code"), ("district", "district_code")):
        for cl, ccol in (("all", None), ("l1", "category_l1"), ("l2", "category_l2")):
            keys = series[rcol] + "|" + (series[ccol] if ccol else "*")
            g = pd.DataFrame(counts, columns=idx).groupby(keys.to_numpy()).sum()
            for k, vals in g.iterrows():
                code, cat = k.split("|")
                rows.append(pd.DataFrame({"series_id": f"{rl}:{code}|{cl}:{cat}", "ds": idx, "y": vals.to_numpy()}))
    return Panel.from_long(pd.concat(rows, ignore_index=True))


def _detect(panel: Panel, day: str, cfg=None, ref=None, cool=None) -> pd.DataFrame:
    cfg = cfg or DetectionConfig.load("config")
    prof = cfg.arrays(panel)
    dets = {d: cfg.detector(d) for d in prof.detectors}
    t = panel.index(day)
    return decide(panel, t, score_all(panel, Expectations(panel), t, dets), dets, prof, cool or Cooldown(), ref)


def _rise(districts, cat, start, factor):
    def boost(series, idx, lam):
        rows = np.flatnonzero(series["district_code"].isin(districts) & (series["category_l2"] == cat))
        lam[np.ix_(rows, np.flatnonzero(idx >= pd.Timestamp(start)))] *= factor
    return boost


def test_a_category_rising_in_several_districts_is_one_city_anomaly_naming_them(ref):
    """Three of four districts rise together: the spread detector raises it on the city's series,
    naming them (a city of four districts is a small pool: its calibrated tails stop near 1e-3, so
    the office's budget here is 5 alerts a month)."""
    generous = DetectionConfig.load("config").with_overrides({"budget": 5})
    boost = _rise(DISTRICTS[:3], "housing.property_service", "2025-06-24", 2.2)
    panel = _panel(*_district_counts("2025-06-30", boost=boost))
    found = _detect(panel, "2025-06-30", cfg=generous, ref=ref)
    spread = found[found["detector"] == "spread"]
    assert "city:440100|l2:housing.property_service" in set(spread["series_id"])
    # raised on the city's series of the category or its parents (the category is half the volume),
    # never on a district
    assert set(spread["series_id"]) <= {"city:440100|l2:housing.property_service", "city:440100|l1:housing",
                                        "city:440100|all:*"}
    text = spread[spread["series_id"].str.endswith("property_service")].iloc[0]["explanation"]
    assert "多区同步上升" in text and all(ref.regions.name(d) in text for d in DISTRICTS[:3])
    assert ref.regions.name(DISTRICTS[3]) not in text.split("主要来源")[1]  # the quiet one is no driver

    one = _rise(DISTRICTS[:1], "housing.property_service", "2025-06-24", 2.2)
    alone = _detect(_panel(*_district_counts("2025-06-30", boost=one)), "2025-06-30", cfg=generous, ref=ref)
    assert not (alone["detector"] == "spread").any()


def test_a_city_spike_names_the_district_and_sub_category_that_drove_it(ref):
    def boost(series, idx, lam):
        row = np.flatnonzero((series["district_code"] == "440106") & (series["category_l2"] == "transport.taxi"))
        lam[row, -1] *= 8
    panel = _panel(*_district_counts("2025-06-30", seed=3, boost=boost))
    found = _detect(panel, "2025-06-30", ref=ref)
    city = found[(found["series_id"] == "city:440100|l1:transport") & (found["kind"] == "spike")]
    assert len(city) == 1, found[["series_id", "detector", "kind", "score"]]
    text = city.iloc[0]["explanation"]
    share = int(text.split("天河区 ")[1].split("%")[0])
    assert share >= 80 and "出租车" in text or "taxi" in text


def test_holidays_and_make_up_days_are_not_anomalies():
    """Spring Festival 2025 (holiday Jan 28 - Feb 4, make-up workdays Sun Jan 26 and Sat Feb 8): the
    totals fall to a third over the holiday and a Sunday works like a Monday; none of the city's or
    the districts' totals is judged rarer than one day in ten thousand on those days (a missed
    holiday would put them several times off their expectation)."""
    from detectors.count_detectors import SpikeDropDetector

    panel = _panel(*_district_counts("2025-02-12", days=500, seed=5))
    exp = Expectations(panel)
    totals = np.flatnonzero(panel.keys["category_level"] == "all")
    assert len(totals) == 5
    days = [*pd.date_range("2025-01-28", "2025-02-04"), pd.Timestamp("2025-01-26"), pd.Timestamp("2025-02-08")]
    for day in days:
        res = SpikeDropDetector().score_day(panel, exp, panel.index(day))
        assert (res["p"][totals] > 1e-4).all(), (day, res["p"][totals], res["obs"][totals], res["exp"][totals])


def test_the_budget_sets_each_offices_threshold_from_its_tests():
    """An office's monthly budget shared over its one-sided tests of the day: twice the tests, half
    the threshold; a district with budget 1 and 100 tests alerts at p <= 1 / (30.44 * 100)."""
    from detectors.engine import thresholds
    from detectors.profiles import ProfileArrays

    ids = ["district:440103|l2:a", "district:440103|l2:b", "district:440104|l2:a", "city:440100|l2:a"]
    panel = Panel.from_long(pd.DataFrame({"series_id": np.repeat(ids, 30), "ds": np.tile(pd.date_range("2025-01-01",
                                                                                                   periods=30), 4),
                                          "y": 1.0}))
    n = len(panel)
    on = {"spike_drop": np.ones(n, bool)}
    budget = np.where(panel.keys["region_level"] == "city", 2.0, 1.0)
    prof = ProfileArrays(on, budget, np.ones(n), *(np.zeros(n) for _ in range(4)))
    res = {"spike_drop": {"tests": np.array([50.0, 50.0, 50.0, 50.0]), "exp": np.array([4.0, 4.0, 4.0, 4.0])}}
    a = dict(zip(panel.ids, thresholds(panel, res, prof)["spike_drop"]))
    assert a["district:440103|l2:a"] == a["district:440103|l2:b"] == pytest.approx(1 / (30.44 * 100))
    assert a["district:440104|l2:a"] == pytest.approx(1 / (30.44 * 50))
    assert a["city:440100|l2:a"] == pytest.approx(2 / (30.44 * 50))
    # a busy series gets the larger share of its office's budget (by the square root of its volume),
    # the office's total stays the budget
    busy = {**res["spike_drop"], "exp": np.array([4.0, 100.0, 4.0, 4.0])}  # panel order: city, 103:a, 103:b, 104:a
    b = dict(zip(panel.ids, thresholds(panel, {"spike_drop": busy}, prof)["spike_drop"]))
    assert b["district:440103|l2:a"] == pytest.approx(5 * b["district:440103|l2:b"])
    assert 50 * (b["district:440103|l2:a"] + b["district:440103|l2:b"]) == pytest.approx(1 / 30.44)
    # two detectors share the budget by their shares (0.5 and 0.25 of it, renormalised: 2/3 and 1/3)
    on2 = {"spike_drop": np.ones(n, bool), "level_shift": np.ones(n, bool)}
    prof2 = ProfileArrays(on2, budget, np.ones(n), *(np.zeros(n) for _ in range(4)))
    two = thresholds(panel, {"spike_drop": res["spike_drop"], "level_shift": res["spike_drop"]}, prof2)
    assert dict(zip(panel.ids, two["spike_drop"]))["district:440104|l2:a"] == pytest.approx(2 / 3 / (30.44 * 50))
    assert dict(zip(panel.ids, two["level_shift"]))["district:440104|l2:a"] == pytest.approx(1 / 3 / (30.44 * 50))


def test_an_alert_needs_a_material_excess_as_well_as_a_rare_day(ref):
    """The same tripled day on a quiet series (3 -> 9) and a busy one (30 -> 90): both rare, only the
    busy one's +60 is material for a city office that wants +15."""
    def boost(series, idx, lam):
        for d in ("440103", "440106"):
            row = np.flatnonzero((series["district_code"] == d) & (series["category_l2"] == "transport.taxi"))
            lam[row, -1] *= 3 if d == "440103" else 12
    panel = _panel(*_district_counts("2025-06-30", seed=31, boost=boost))
    found = _detect(panel, "2025-06-30", ref=ref)
    spikes = found[found["kind"] == "spike"].set_index("series_id")
    assert "district:440106|l2:transport.taxi" in spikes.index
    hit = spikes.loc["district:440106|l2:transport.taxi"]
    assert hit["excess"] >= 3 and hit["p_value"] <= hit["threshold"] and hit["surprise"] > 0
    cfg = DetectionConfig.load("config").with_overrides({"min_excess": 1000})
    assert _detect(panel, "2025-06-30", cfg=cfg, ref=ref).empty  # nothing is that material


def test_cool_down_keeps_a_series_quiet_unless_the_severity_rises():
    c = Cooldown()
    day = pd.Timestamp("2025-03-01")
    c.last[("s", "spike")] = (day, 2)
    assert not c.allows("s", "spike", day + pd.Timedelta(days=3), 3, 2)
    assert c.allows("s", "spike", day + pd.Timedelta(days=3), 3, 3)  # orange -> red gets through
    assert c.allows("s", "spike", day + pd.Timedelta(days=4), 3, 1)
    assert c.allows("s", "level_shift", day + pd.Timedelta(days=1), 3, 1)  # another kind is another alert


def test_cool_down_in_the_daily_decision():
    def boost(series, idx, lam):
        row = np.flatnonzero((series["district_code"] == "440104")
                             & (series["category_l2"] == "housing.property_service"))
        lam[row, -3:] *= 10
    panel = _panel(*_district_counts("2025-06-30", seed=8, boost=boost))
    cool = Cooldown()
    sid = "district:440104|l2:housing.property_service"
    hits = [_detect(panel, d, cool=cool) for d in ("2025-06-28", "2025-06-29")]
    first = hits[0][(hits[0]["series_id"] == sid) & (hits[0]["kind"] == "spike")]
    assert len(first) == 1
    again = hits[1][(hits[1]["series_id"] == sid) & (hits[1]["kind"] == "spike")]
    assert again.empty or again.iloc[0]["severity"] != first.iloc[0]["severity"]
    fresh = _detect(panel, "2025-06-29")
    assert ((fresh["series_id"] == sid) & (fresh["kind"] == "spike")).any()


def _cfg_doc():
    return {"detectors": {"level_shift": {"window": 14}},
            "tiers": {"small": {"budget": 1, "min_expected": 1, "cooldown_days": 7, "detectors": ["spike_drop"]},
                      "large": {"budget": {"district": 1, "city": 3, "province": 2}, "min_expected": 3,
                                "cooldown_days": 3, "min_excess": {"district": 4, "city": 10, "province": 30},
                                "detectors": ["spike_drop", "level_shift"]}},
            "profiles": {"strict": {"budget": 0.5}},
            "cities": {"440100": {"cooldown_days": 2, "categories": {"transport.taxi": {"min_expected": 9}}}},
            "categories": {"transport": {"budget": 2}, "transport.taxi": {"min_expected": 5}}}


def test_profiles_resolve_tier_then_city_then_category_then_city_and_category():
    cfg = DetectionConfig(_cfg_doc(), {"440100": "large", "441200": "small"})
    assert cfg.profile("441200")["min_expected"] == 1 and cfg.profile("441200")["cooldown_days"] == 7
    assert cfg.profile("440100")["cooldown_days"] == 2 and cfg.profile("440100")["min_expected"] == 3
    assert cfg.profile("441200", "transport.bus")["budget"] == 2  # a level-1 override reaches its l2
    assert cfg.profile("441200", "transport.taxi")["min_expected"] == 5
    assert cfg.profile("440100", "transport.taxi")["min_expected"] == 9
    assert cfg.profile("441200", name="strict")["budget"] == 0.5
    forced = cfg.with_overrides({"min_expected": 0.5, "budget": 4, "level_shift.window": 21})
    assert forced.profile("440100", "transport.taxi")["min_expected"] == 0.5
    assert forced.detector("level_shift").window == 21 and cfg.detector("level_shift").window == 14
    ids = ["city:440100|l2:housing.x", "district:440103|l2:housing.x"]
    panel = Panel.from_long(pd.DataFrame({"series_id": np.repeat(ids, 30),
                                          "ds": np.tile(pd.date_range("2025-01-01", periods=30), 2), "y": 1.0}))
    arr = cfg.arrays(panel)
    by = dict(zip(panel.ids, range(2)))
    city, district = by["city:440100|l2:housing.x"], by["district:440103|l2:housing.x"]
    assert (arr.budget[city], arr.budget[district]) == (3, 1)  # the office's level picks its value
    assert (arr.min_excess[city], arr.min_excess[district]) == (10, 4)
    assert arr.enabled["level_shift"][city] and not arr.enabled["emerging"][city]
    assert (forced.arrays(panel).budget == 4).all() and (forced.arrays(panel).min_expected == 0.5).all()


@pytest.mark.parametrize("change, message", [
    ({"tiers": {"small": {"budgte": 1}}}, "tiers.small: unknown key(s) ['budgte']"),
    ({"tiers": {"small": {"budget": 0}}}, "tiers.small.budget: an alert budget must be above zero"),
    ({"tiers": {"small": {"budget": -1}}}, "tiers.small.budget: an alert budget must be above zero"),
    ({"categories": {"x": {"budget": {"district": 1, "town": 2}}}}, "categories.x.budget.town: unknown level"),
    ({"categories": {"x": {"min_excess": "many"}}}, "categories.x.min_excess: expected a number"),
    ({"profiles": {"p": {"detectors": ["magic"]}}}, "profiles.p.detectors: unknown detector 'magic'"),
    ({"profiles": {"p": {"material_p": 0.001}}}, "profiles.p: unknown key(s) ['material_p']"),
])
def test_profile_config_errors_name_the_place(change, message):
    doc = _cfg_doc()
    for k, v in change.items():
        doc[k] = {**doc[k], **v}
    with pytest.raises(ConfigError) as e:
        DetectionConfig(doc, {}, "detection.yaml")
    assert message in str(e.value)
    with pytest.raises(ConfigError, match="no profile or tier named 'nope'"):
        DetectionConfig(_cfg_doc()).profile("440100", name="nope")


def test_a_top_level_typo_in_detection_yaml_is_refused_naming_the_key():
    """`categorie:` used to be ignored: every category kept its tier's settings."""
    doc = _cfg_doc()
    doc["categorie"] = {"public_safety": {"budget": 3}}
    with pytest.raises(ConfigError, match=r"detection.yaml: unknown key\(s\) categorie \(known: categories, "):
        DetectionConfig(doc, {}, "detection.yaml")


def test_a_budget_of_zero_on_the_command_line_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="override.budget: an alert budget must be above zero"):
        DetectionConfig(_cfg_doc()).with_overrides({"budget": 0})


# ---------------------------------------------------------------------------------- backtest
def _alert(ds, sid, kind="spike"):
    """An alert row as the engine records it (RECORD_COLUMNS), with its city from the reference."""
    from hotline.core.reference import load_reference

    (rl, rc), (cl, cc) = (p.split(":", 1) for p in sid.split("|"))
    city = rc if rl == "city" else load_reference().regions.parent_of(rc) if rl == "district" else None
    return {"series_id": sid, "ds": pd.Timestamp(ds), "kind": kind, "region_level": rl, "region_code": rc,
            "category_level": cl, "category_code": cc, "city_code": city}


def test_backtest_scores_alerts_against_events_with_hierarchy_and_grace(ref):
    from detectors.backtest import metrics

    labels = pd.DataFrame([
        {"type": "spike", "start": dt.date(2025, 3, 1), "end": dt.date(2025, 3, 2), "region_level": "district",
         "region": "440106", "city": "440100", "province": "440000", "category_level": "l2",
         "category": "transport.taxi"},
        {"type": "level_shift", "start": dt.date(2025, 4, 1), "end": dt.date(2025, 4, 20), "region_level": "district",
         "region": "440103", "city": "440100", "province": "440000", "category_level": "l2",
         "category": "housing.property_service"},
    ])
    alerts = pd.DataFrame([
        _alert("2025-03-02", "district:440106|l2:transport.taxi"),           # the event's series, day 1
        _alert("2025-03-02", "city:440100|l1:transport"),                    # its city and parent category
        _alert("2025-03-05", "district:440106|l2:transport.taxi"),           # after end + 2 days of grace
        _alert("2025-03-02", "district:440105|l2:transport.taxi"),           # another district
        _alert("2025-04-26", "district:440103|all:*", "level_shift"),        # shift found within 7 days' grace
    ])
    m = metrics(alerts, labels, n_districts=10, n_days=61)
    assert list(m["_matched"]) == [True, True, False, False, True]
    assert (m["detected"], m["true_alerts"], m["false_alerts"]) == (2, 3, 2)
    assert m["precision"] == 0.6 and m["recall"] == 1.0 and m["f1"] == 0.75
    assert m["median_delay_days"] == {"level_shift": 25.0, "spike": 1.0}
    assert m["false_alerts_per_district_month"] == round(2 / 10 / (61 / 30.4375), 3)


def test_labels_file_errors_name_file_line_and_field(tmp_path, ref):
    from detectors.backtest import LabelsError, read_labels

    p = tmp_path / "labels.csv"
    p.write_text("type,start,end,region,category\nspike,2025-03-01,2025-03-02,440106,transport.taxi\n"
                 "spike,2025-13-01,2025-03-02,440106,transport.taxi\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"labels.csv, line 3, field start: '2025-13-01' is not a date"):
        read_labels(p, ref)
    p.write_text("type,start,end,region,category\nspike,2025-03-01,2025-03-02,999999,transport.taxi\n",
                 encoding="utf-8")
    with pytest.raises(LabelsError, match=r"line 2, field region: '999999' is not a configured region"):
        read_labels(p, ref)
    p.write_text("type,start,region\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"missing column\(s\) \['end', 'category'\]"):
        read_labels(p, ref)
    p.write_text("type,start,end,region,category\nemerging,2025-03-01,,440100,\n", encoding="utf-8")
    row = read_labels(p, ref).iloc[0]
    assert (row["region_level"], row["category_level"], row["end"]) == ("city", "all", dt.date(2025, 3, 1))


def test_sweep_grid_and_best_setting_under_the_budget():
    from detectors.backtest import best, parse_sweep

    grid = parse_sweep(["min_change=0.5,1", "budget=0.5,2"])
    assert grid == [{"min_change": 0.5, "budget": 0.5}, {"min_change": 0.5, "budget": 2},
                    {"min_change": 1, "budget": 0.5}, {"min_change": 1, "budget": 2}]
    with pytest.raises(ConfigError, match="expected PARAM=V1,V2"):
        parse_sweep(["min_change"])
    points = [{"setting": "a", "f1": 0.9, "false_alerts_per_district_month": 2.0},
              {"setting": "b", "f1": 0.7, "false_alerts_per_district_month": 0.5},
              {"setting": "c", "f1": 0.6, "false_alerts_per_district_month": 0.1}]
    assert best(points, 1.0)["setting"] == "b" and best(points, 0.05) is None


@pytest.fixture(scope="module")
def small_warehouse(tmp_path_factory):
    """One city's counts in a SQLite warehouse: a spike, a level shift, a quiet rest; and labels."""
    from warehouse.aggregate import load_counts
    from warehouse.db import connect, migrate

    def boost(series, idx, lam):
        spike = np.flatnonzero((series["district_code"] == "440106")
                               & (series["category_l2"] == "housing.property_service"))
        lam[spike, idx.get_loc(pd.Timestamp("2025-06-10"))] *= 5
        shift = np.flatnonzero((series["district_code"] == "440104")
                               & (series["category_l2"] == "environment.living_noise"))
        lam[np.ix_(shift, np.flatnonzero(idx >= pd.Timestamp("2025-06-14")))] *= 3
    d = tmp_path_factory.mktemp("bt")
    engine = connect(f"sqlite:///{d}/hotline.db")
    migrate(engine)
    load_counts(engine, *_district_counts("2025-06-30", days=480, seed=11, boost=boost))
    (d / "labels.csv").write_text(
        "type,start,end,region,category\n"
        "spike,2025-06-10,2025-06-10,440106,housing.property_service\n"
        "level_shift,2025-06-14,2025-06-30,440104,environment.living_noise\n", encoding="utf-8")
    return d


def test_backtest_cli_replays_days_scores_events_and_writes_the_report(small_warehouse):
    from hotline.cli import main

    d = small_warehouse
    env = {"HOTLINE_VAR_DIR": str(d), "HOTLINE_DB_URL": f"sqlite:///{d}/hotline.db"}
    r = CliRunner().invoke(main, ["backtest", "--labels", str(d / "labels.csv"), "--start", "2025-06-01",
                                  "--end", "2025-06-30", "--sweep", "min_change=0.5,6", "--json"], env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["events"] == 2 and out["districts"] > 0 and len(out["grid"]) == 2
    lenient, strict = out["grid"]
    assert lenient["by_kind"]["spike"]["detected"] == 1 and lenient["median_delay_days"]["spike"] == 0
    assert lenient["by_kind"]["level_shift"]["detected"] == 1 and lenient["median_delay_days"]["level_shift"] <= 7
    assert strict["by_kind"]["spike"]["detected"] == 0  # a 5x day is not 7x its expectation
    html = (d / "backtest" / "backtest_2025-06-01_2025-06-30.html").read_text(encoding="utf-8")
    assert html.count("<section") == 2 and "<svg" in html and "精确率" in html
    assert 'src="http' not in html and 'href="http' not in html
    assert "best by F1" in r.output and "report:" in r.output


def test_backtest_cli_rejects_a_bad_labels_file(small_warehouse, tmp_path):
    from hotline.cli import main

    bad = tmp_path / "l.csv"
    bad.write_text("type,start,end,region,category\nspike,yesterday,,440106,x\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["backtest", "--labels", str(bad)],
                           env={"HOTLINE_DB_URL": f"sqlite:///{small_warehouse}/hotline.db"})
    assert r.exit_code == 2 and "line 2, field start" in r.output


def test_score_csv_cli(tmp_path):
    from detectors.online import make_demo_series
    from hotline.cli import main

    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    make_demo_series(n=2000, freq="h").to_csv(src, index=False)
    r = CliRunner().invoke(main, ["score-csv", str(src), str(dst), "--json"])
    assert r.exit_code == 0, r.output
    out = pd.read_csv(dst)
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "expected", "p_value", "surprise"]
    assert len(out) == 2000
    assert json.loads(r.output.strip().splitlines()[-1])["period"] == 24
    src.write_text("timestamp,value\n2025-01-01,1\n2025-01-02,-\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["score-csv", str(src), str(dst)])
    assert r.exit_code == 2 and "line 3, field 'value'" in r.output


def test_the_daily_detect_job_stores_anomalies_with_explanations_and_a_rerun_replaces_them(engine, ref):
    from sqlalchemy import select

    from detectors.job import detect_scope
    from warehouse.aggregate import load_counts
    from warehouse.schema import anomalies, pipeline_runs

    def boost(series, idx, lam):
        row = np.flatnonzero((series["district_code"] == "440106")
                             & (series["category_l2"] == "housing.property_service"))
        lam[row, -1] *= 10
    load_counts(engine, *_district_counts("2025-06-30", days=460, seed=21, boost=boost))
    day = dt.date(2025, 6, 30)
    first = detect_scope(engine, day, CITY)

    def stored():
        with engine.connect() as conn:
            return pd.DataFrame(conn.execute(select(anomalies).order_by(anomalies.c.series_id, anomalies.c.detector))
                                .mappings().all())
    a1 = stored()
    assert first.anomalies == len(a1) > 0 and first.scope == CITY
    hit = a1[a1["series_id"] == "district:440106|l2:housing.property_service"]
    assert len(hit) and hit.iloc[0]["kind"] == "spike" and hit.iloc[0]["severity"] in ("red", "orange", "yellow")
    city = a1[a1["series_id"] == "city:440100|l2:housing.property_service"]
    assert len(city) and "天河区" in city.iloc[0]["explanation"]
    detect_scope(engine, day, CITY)
    a2 = stored()
    cols = ["ds", "series_id", "detector", "kind", "observed", "score", "severity", "explanation"]
    pd.testing.assert_frame_equal(a1[cols], a2[cols])  # the same rows, not duplicates
    assert set(a1["run_id"]) != set(a2["run_id"])  # ... written by the run that found them
    with engine.connect() as conn:
        runs = conn.execute(select(pipeline_runs.c.status).where(pipeline_runs.c.stage == "detect")).scalars().all()
    assert runs == ["success", "success"]
    with pytest.raises(ValueError, match="not a configured city or province"):
        detect_scope(engine, day, "123456")


def test_matching_rules_for_aggregates_and_the_province():
    from detectors.backtest import related

    ev = pd.Series({"type": "spike", "region_level": "district", "region": "440106", "city": "440100",
                    "province": "440000", "category_level": "l2", "category": "transport.taxi"})
    ok = ["district:440106|l2:transport.taxi", "district:440106|l1:transport", "district:440106|all:*",
          "city:440100|l2:transport.taxi", "city:440100|all:*", "province:440000|l2:transport.taxi"]
    no = ["district:440105|l2:transport.taxi", "province:440000|all:*", "district:440106|l2:transport.bus",
          "city:440300|l2:transport.taxi"]
    assert all(related(pd.Series(_alert("2025-03-01", s)), ev) for s in ok)
    assert not any(related(pd.Series(_alert("2025-03-01", s)), ev) for s in no)


def test_holiday_factors_ignore_holidays_with_no_volume_around_them():
    from forecasting.models import holiday_factors

    days = pd.date_range("2024-01-01", "2025-06-30")
    cal = day_kinds(days[0].date(), days[-1].date())
    k = cal["kind"].to_numpy()
    base = np.where(k >= 7, 5.0, 10.0)  # holidays at half the ordinary volume
    late = np.where(np.arange(len(days)) >= len(days) // 2, base, 0.0)  # a category that starts half-way
    Y = np.vstack([base, base, late * 3, late * 3])
    pooled, per = holiday_factors(Y, k, np.array(["a", "a", "b", "b"]))
    assert abs(pooled[0] - 0.5) < 0.05 and np.allclose(per[:, 0], 0.5, atol=0.05)


def test_a_sustained_tripling_on_a_busy_series_is_a_level_shift():
    def boost(series, idx, lam):
        rows = np.flatnonzero(series["category_l2"] == "housing.property_service")
        lam[np.ix_(rows, np.arange(len(idx) - 10, len(idx)))] *= 3
    panel = _panel(*_district_counts("2025-06-30", seed=13, boost=boost))
    from detectors.count_detectors import LevelShiftDetector
    res = LevelShiftDetector().score_day(panel, Expectations(panel), panel.index("2025-06-30"))
    sid = "city:440100|l2:housing.property_service"
    i = list(panel.ids).index(sid)
    assert res["cusum"][i] > 0 and res["p"][i] < 0.01
    others = ~panel.keys["category_code"].str.startswith("housing").to_numpy() & (panel.keys["category_code"] != "*")
    assert res["surprise"][i] > res["surprise"][others].max()  # above every series the tripling did not touch
    found = _detect(panel, "2025-06-30")
    assert ((found["series_id"] == sid) & (found["kind"] == "level_shift")).any()


def test_backtest_cli_rejects_periods_and_settings_it_cannot_replay(small_warehouse):
    from hotline.cli import main

    env = {"HOTLINE_DB_URL": f"sqlite:///{small_warehouse}/hotline.db", "HOTLINE_VAR_DIR": str(small_warehouse)}
    labels = str(small_warehouse / "labels.csv")
    r = CliRunner().invoke(main, ["backtest", "--labels", labels, "--end", "2025-08-01"], env=env)
    assert r.exit_code == 2 and "replay a period inside it" in r.output
    r = CliRunner().invoke(main, ["backtest", "--labels", labels, "--sweep", "budget=0"], env=env)
    assert r.exit_code == 2 and "budget: an alert budget must be above zero" in r.output
    r = CliRunner().invoke(main, ["backtest", "--labels", labels, "--sweep", "level_shift.hh=3"], env=env)
    assert r.exit_code == 2 and "level_shift has no parameter 'hh'" in r.output


def test_load_counts_writes_every_level_alike_on_both_databases(engine):
    """The counts-only loader (COPY on PostgreSQL, executemany elsewhere) writes each level's
    sums with nulls where they belong, and a second load of the same days replaces them."""
    from sqlalchemy import func, select

    from warehouse.aggregate import load_counts, read_counts
    from warehouse.schema import daily_counts

    series, idx, counts = _district_counts("2025-03-31", days=40, seed=5)
    n = load_counts(engine, series, idx, counts, chunk_days=15)
    assert load_counts(engine, series, idx, counts, chunk_days=15) == n  # replaced, not doubled
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(daily_counts)).scalar_one() == n
        assert conn.execute(select(func.sum(daily_counts.c.n_tickets)).where(
            daily_counts.c.region_level == "province",
            daily_counts.c.category_level == "all")).scalar_one() == counts.sum()
        assert conn.execute(select(func.count()).select_from(daily_counts).where(
            daily_counts.c.region_level == "province", daily_counts.c.city_code.is_not(None))).scalar_one() == 0
    d = read_counts(engine, "district", "l2")
    one = (series["district_code"] == DISTRICTS[0]) & (series["category_l2"] == list(CATS)[0])
    got = d[(d["region_code"] == DISTRICTS[0]) & (d["category_code"] == list(CATS)[0])].set_index("ds")["y"]
    want = pd.Series(counts[one.to_numpy()][0], index=idx)
    assert got.reindex(idx, fill_value=0).astype(int).tolist() == want.tolist()
    assert (d["city_code"] == CITY).all()
