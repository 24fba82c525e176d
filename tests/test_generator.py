"""The generator: realistic patterns, labelled anomalies, deterministic under a seed."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from generator.province import SOURCE_COLUMNS, ProvinceGenerator


def _daily_totals(gen, start, end):
    _, days, lam = gen.expected(start, end)
    return pd.Series(lam.sum(axis=0), index=days)


def test_same_seed_same_tickets_whatever_the_window(small_generator):
    as_of = pd.Timestamp("2024-03-20", tz="Asia/Shanghai")  # the same view of the system
    a = pd.concat(small_generator.tickets(dt.date(2024, 3, 1), dt.date(2024, 3, 10), as_of=as_of))
    b = pd.concat(small_generator.tickets(dt.date(2024, 3, 5), dt.date(2024, 3, 6), as_of=as_of))
    day = a[a["受理时间"].dt.date.isin([dt.date(2024, 3, 5), dt.date(2024, 3, 6)])].reset_index(drop=True)
    pd.testing.assert_frame_equal(day, b.reset_index(drop=True))


def test_another_seed_gives_other_tickets():
    a = pd.concat(ProvinceGenerator(seed=1, scale=0.002).tickets(dt.date(2024, 3, 1), dt.date(2024, 3, 1)))
    b = pd.concat(ProvinceGenerator(seed=2, scale=0.002).tickets(dt.date(2024, 3, 1), dt.date(2024, 3, 1)))
    assert len(a) != len(b) or not a["来电号码"].equals(b["来电号码"])


def test_export_format_has_the_documented_columns(small_generator):
    f = next(small_generator.tickets(dt.date(2024, 5, 6), dt.date(2024, 5, 6)))
    assert list(f.columns) == SOURCE_COLUMNS
    assert f["来电号码"].str.fullmatch(r"1[3-9]\d{9}").all()


def test_weekdays_busier_than_weekends(small_generator):
    tot = _daily_totals(small_generator, dt.date(2024, 3, 4), dt.date(2024, 4, 28))
    ordinary = tot[~tot.index.isin(pd.to_datetime(["2024-04-04", "2024-04-05", "2024-04-06", "2024-04-07"]))]
    wk = ordinary[ordinary.index.weekday < 5].mean()
    we = ordinary[ordinary.index.weekday >= 5].mean()
    assert wk > 1.25 * we


def test_makeup_saturday_is_as_busy_as_a_workday(small_generator):
    # Saturday 2024-10-12 was a 调休 workday; Saturday 2024-10-19 an ordinary weekend day.
    tot = _daily_totals(small_generator, dt.date(2024, 10, 12), dt.date(2024, 10, 19))
    assert tot.loc["2024-10-12"] > 1.2 * tot.loc["2024-10-19"]


def test_spring_festival_dip(small_generator):
    tot = _daily_totals(small_generator, dt.date(2024, 1, 15), dt.date(2024, 2, 25))
    assert tot.loc["2024-02-12"] < 0.6 * tot.loc["2024-01-22":"2024-01-26"].mean()


def test_heating_season_first_day_is_the_northern_peak():
    gen = ProvinceGenerator("370000", seed=3, scale=0.002, anomalies=False)
    s, days, lam = gen.expected(dt.date(2024, 10, 1), dt.date(2024, 12, 31))
    heat = pd.Series(lam[(s["category_l2"] == "utilities.heating").to_numpy()].sum(axis=0), index=days)
    total = pd.Series(lam.sum(axis=0), index=days)
    assert heat.idxmax() == pd.Timestamp("2024-11-15")
    assert heat.loc["2024-11-15"] > 0.4 * total.loc["2024-11-15"]  # Liaocheng: 55% of calls
    assert heat.loc["2024-10-15"] < 0.05 * heat.loc["2024-11-15"]


def test_no_heating_in_the_south(small_generator):
    assert "utilities.heating" not in set(small_generator.series["category_l2"])


def test_wage_arrears_rise_before_spring_festival(small_generator):
    s, days, lam = small_generator.expected(dt.date(2023, 11, 1), dt.date(2024, 2, 9))
    wage = pd.Series(lam[(s["category_l2"] == "labour.wage_arrears").to_numpy()].sum(axis=0), index=days)
    assert wage.loc["2024-01-22":"2024-02-02"].mean() > 2 * wage.loc["2023-11-06":"2023-11-17"].mean()


def test_school_enrolment_peaks_in_july_august(small_generator):
    s, days, lam = small_generator.expected(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    enrol = pd.Series(lam[(s["category_l2"] == "education.school_enrolment").to_numpy()].sum(axis=0), index=days)
    assert enrol.resample("MS").mean().idxmax().month in (7, 8)


def test_volume_per_resident_follows_city_tier(small_generator):
    s = small_generator.series
    per_city = s.groupby("city_code")["base"].sum()
    cities = {c.code: c for c in small_generator.province.cities}
    rate = {code: per_city[code] / cities[code].population for code in per_city.index}
    by_tier = pd.Series({cities[c].tier: r for c, r in rate.items()})
    assert by_tier["super_large"] > by_tier["large"] > by_tier["medium"] > by_tier["small"]


def test_full_scale_province_volume_matches_published_figures():
    gen = ProvinceGenerator(scale=1.0, anomalies=False)
    tot = _daily_totals(gen, dt.date(2025, 3, 3), dt.date(2025, 3, 7)).mean()
    guangzhou = gen.series[gen.series["city_code"] == "440100"]["base"].sum()
    assert 35_000 < guangzhou < 50_000  # 15.25M a year in 2020 = ~42,000 a day
    assert 80_000 < tot < 160_000  # Jiangsu: 100,000-110,000 a day


def test_labels_cover_every_anomaly_kind_with_the_specified_sizes():
    lab = ProvinceGenerator(scale=0.01, seed=5).labels(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert set(lab["type"]) == {"spike", "level_shift", "emerging", "surge"}
    spikes = lab[lab["type"] == "spike"]
    assert ((pd.to_datetime(spikes["end"]) - pd.to_datetime(spikes["start"])).dt.days <= 2).all()
    assert spikes["magnitude"].between(2.5, 3.5).all()
    shifts = lab[lab["type"] == "level_shift"]
    assert ((pd.to_datetime(shifts["end"]) - pd.to_datetime(shifts["start"])).dt.days >= 14).all()
    assert shifts["magnitude"].between(1.4, 1.65).all()
    assert (lab.loc[lab["type"] == "surge", "region_level"] == "city").all()


def test_spike_targets_expect_at_least_five_a_day():
    gen = ProvinceGenerator(scale=0.01, seed=11)
    s = gen.series
    for e in gen.events(dt.date(2024, 1, 1), dt.date(2024, 12, 31)):
        if e.kind != "spike":
            continue
        col = "category_l2" if e.category_level == "l2" else "category_l1"
        base = s[(s["district_code"] == e.region_code) & (s[col] == e.category_code)]["base"].sum()
        assert base >= 5


def test_injected_anomalies_show_in_the_expected_counts(small_generator):
    lab = small_generator.labels(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    e = lab[lab["type"] == "emerging"].iloc[0]
    s, days, lam = small_generator.expected(e["start"] - dt.timedelta(days=10), e["end"])
    rows = ((s["district_code"] == e["region"]) & (s["category_l2"] == e["category"])).to_numpy()
    series = lam[rows].sum(axis=0)
    assert series[:10].mean() < 1 and series[-14:].mean() >= 10


def test_an_ingested_window_as_of_its_end_leaves_recent_tickets_open(small_generator):
    day = dt.date(2024, 6, 3)
    f = pd.concat(small_generator.tickets(day, day))
    open_ = f["办结时间"].isna()
    assert open_.any() and (~open_).any()
    assert set(f.loc[open_, "工单状态"]) == {"办理中"}
    later = pd.concat(small_generator.tickets(day, day, as_of=pd.Timestamp("2024-08-01", tz="Asia/Shanghai")))
    assert later["办结时间"].notna().sum() > (~open_).sum()


@pytest.mark.parametrize("year", [2027, 2028])
def test_years_beyond_the_calendar_package_still_generate(year):
    gen = ProvinceGenerator(scale=0.001)
    f = pd.concat(gen.tickets(dt.date(year, 2, 1), dt.date(year, 2, 3)))
    assert len(f) > 0 and np.isfinite(_daily_totals(gen, dt.date(year, 1, 1), dt.date(year, 1, 31))).all()


def test_every_planted_deviation_has_a_label():
    """The generator's audit: the expected counts with anomalies differ from those without only on
    the series and days a label names (a district's category and its l1 parent's rows, or a city's
    category in every district), so a backtest scores every planted deviation and nothing else."""
    start, end = dt.date(2025, 1, 1), dt.date(2026, 6, 30)
    on, off = ProvinceGenerator(seed=77, scale=0.01), ProvinceGenerator(seed=77, scale=0.01, anomalies=False)
    s, days, lam = on.expected(start, end)
    _, _, base = off.expected(start, end)
    labelled = np.zeros(lam.shape, bool)
    labels = on.labels(start, end)
    assert len(labels) >= 15 and set(labels["type"]) == {"spike", "level_shift", "emerging", "surge"}
    changed = ~np.isclose(lam, base)
    for ev in labels.itertuples():
        col = "category_l2" if ev.category_level == "l2" else "category_l1"
        region = "district_code" if ev.region_level == "district" else "city_code"
        rows = (s[col] == ev.category).to_numpy() & (s[region] == ev.region).to_numpy()
        cols = (days >= pd.Timestamp(ev.start)) & (days <= pd.Timestamp(ev.end))
        labelled[np.ix_(rows, cols)] = True
        assert changed[np.ix_(rows, cols)].any(), ev  # and every label moved its series
    assert not (changed & ~labelled).any()  # nothing planted without a label
