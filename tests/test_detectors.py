"""One contract test for every detector, then each detector's own behaviour."""
import numpy as np
import pandas as pd
import pytest

from detectors import ANOMALY_COLUMNS, DETECTORS


def _weekly(n, level, seed, sid, start="2024-03-04"):
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, periods=n)
    wk = np.array([1.2, 1.1, 1.05, 1.0, 1.0, 0.7, 0.6])[days.weekday]
    return pd.DataFrame({"series_id": sid, "ds": days, "y": rng.poisson(level * wk).astype(float)})


def _data():
    h = pd.concat([_weekly(120, 30, 1, "busy"), _weekly(120, 2, 2, "quiet"), _weekly(120, 0.1, 3, "rare")])
    cut = h["ds"].max() - pd.Timedelta(days=4)
    return h[h["ds"] <= cut], h[h["ds"] > cut]


CASES = [(name, params) for name, cls in DETECTORS.items() for params in cls.get_test_params()]


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_detector_contract(name, params):
    cls = DETECTORS[name]
    det = cls(**params)
    assert vars(det) == params | {k: v for k, v in vars(cls()).items() if k not in params}  # __init__ only stores
    history, frame = _data()
    with pytest.raises(RuntimeError):
        cls(**params).score(frame)
    assert det.fit(history) is det and det.is_fitted_
    before = frame.copy()
    s = det.score(frame)
    pd.testing.assert_frame_equal(frame, before)  # inputs are never mutated
    assert len(s) == len(frame) and s["score"].between(0, 1).all() and s["p"].between(0, 1).all()
    np.testing.assert_allclose(s["score"], 1 - s["p"])
    np.testing.assert_allclose(s["surprise"], -np.log10(s["p"]))
    anomalies = det.detect(frame)
    assert list(anomalies.columns) == ANOMALY_COLUMNS
    assert (anomalies["p_value"] <= det.alpha).all() and anomalies["detector"].eq(name).all()
    assert set(anomalies["severity"]) <= {"red", "orange", "yellow"}
    with pytest.raises(ValueError, match="non-negative"):
        det.score(frame.assign(y=-1.0))


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_the_daily_path_runs_the_contract_that_is_tested(name):
    """What the daily job runs (engine.score_all: each detector's score_day on the panel) gives,
    day by day, the tail probabilities the contract's score() gives for the same days."""
    from detectors.engine import score_all
    from detectors.panel import Expectations, Panel

    history, frame = _data()
    contract = DETECTORS[name]().fit(history).score(frame)
    panel = Panel.from_long(pd.concat([history, frame], ignore_index=True))
    exp, pos = Expectations(panel), pd.Series(np.arange(len(panel)), index=panel.ids)
    for day, rows in contract.groupby("ds"):
        res = score_all(panel, exp, panel.index(day), {name: DETECTORS[name]()})[name]
        daily = np.clip(res["p"][pos.reindex(rows["series_id"]).to_numpy()], 1e-300, 1.0)
        np.testing.assert_allclose(daily, rows["p"].to_numpy(), rtol=1e-12, err_msg=f"{name} {day:%Y-%m-%d}")


def test_tags_are_read_through_the_class_hierarchy():
    from detectors.base import BaseDetector

    assert BaseDetector.get_tag("kind") == "spike"
    for name, cls in DETECTORS.items():
        tags = cls.get_tags()
        assert set(tags) >= {"kind", "needs_history_days"} and cls.get_tag("kind") == tags["kind"]
    assert DETECTORS["level_shift"].get_tag("kind") == "level_shift"
    assert DETECTORS["emerging"].get_tag("needs_history_days") == 56
    with pytest.raises(KeyError, match="no tag 'colour'"):
        DETECTORS["spread"].get_tag("colour")


def test_spike_of_three_times_is_flagged_and_a_normal_day_is_not():
    history, frame = _data()
    frame = frame.copy()
    busy_last = (frame["series_id"] == "busy") & (frame["ds"] == frame["ds"].max())
    frame.loc[busy_last, "y"] = frame.loc[busy_last, "y"] * 3 + 10
    # three series make a small pool: its claims stop near one in ten thousand, so alert at 1e-3
    a = DETECTORS["spike_drop"](alpha=1e-3).fit(history).detect(frame)
    assert ((a["series_id"] == "busy") & (a["ds"] == frame["ds"].max()) & (a["kind"] == "spike")).any()
    assert not ((a["series_id"] == "busy") & (a["ds"] < frame["ds"].max())).any()


def test_a_quiet_series_is_judged_by_count_tails_not_z_scores():
    history, frame = _data()
    frame = frame.copy()
    quiet = frame["series_id"] == "quiet"
    frame.loc[quiet, "y"] = [5.0, 0.0, 4.0, 3.0][: int(quiet.sum())]  # ordinary for a mean of ~2
    a = DETECTORS["spike_drop"]().fit(history).detect(frame)
    assert not (a["series_id"] == "quiet").any()


def _panel(n_series, days, level, seed, prefix):
    return pd.concat([_weekly(days, level, seed + k, f"{prefix}{k}") for k in range(n_series)])


def test_a_sustained_rise_is_a_level_shift_and_ranks_first():
    """30 series like one another; one rises by half for two weeks: it is the scope's most
    surprising series and alerts at 1%; the calibrated tails of the calm ones are honest."""
    h = _panel(30, 200, 20, 100, "s")
    last = h["ds"].max()
    shifted = (h["series_id"] == "s0") & (h["ds"] > last - pd.Timedelta(days=14))
    h.loc[shifted, "y"] = h.loc[shifted, "y"] * 1.5
    history, frame = h[h["ds"] < last], h[h["ds"] == last]
    s = DETECTORS["level_shift"](alpha=0.01).fit(history).score(frame).set_index("series_id")
    assert s["surprise"].idxmax() == "s0" and s.loc["s0", "p"] <= 0.01 and s.loc["s0", "kind"] == "level_shift"
    assert (s.drop(index="s0")["p"] > 0.001).all()
    a = DETECTORS["level_shift"](alpha=0.01).fit(history).detect(frame)
    assert "s0" in set(a["series_id"])


def test_an_issue_emerging_from_nothing_is_flagged():
    h = _panel(30, 200, 0.05, 200, "e")
    last = h["ds"].max()
    ramp = np.clip(np.arange(28) / 27, 0, 1) * 12
    new = (h["series_id"] == "e0") & (h["ds"] > last - pd.Timedelta(days=28))
    h.loc[new, "y"] = np.random.default_rng(8).poisson(ramp).astype(float)
    history, frame = h[h["ds"] <= last - pd.Timedelta(days=7)], h[h["ds"] > last - pd.Timedelta(days=7)]
    a = DETECTORS["emerging"](alpha=0.01).fit(history).detect(frame)
    assert (a["kind"] == "emerging").any() and set(a["series_id"]) == {"e0"}
    s = DETECTORS["emerging"]().fit(history).score(frame)
    assert s.loc[s["surprise"].idxmax(), "series_id"] == "e0"  # the most surprising of the scope


def test_the_spring_festival_dip_is_not_a_drop():
    import datetime as dt

    from generator.province import ProvinceGenerator

    gen = ProvinceGenerator(scale=0.01, seed=4, anomalies=False)
    s, days, lam = gen.expected(dt.date(2023, 1, 1), dt.date(2024, 2, 20))
    y = np.random.default_rng(2).poisson(lam.sum(axis=0))
    df = pd.DataFrame({"series_id": "province", "ds": days, "y": y.astype(float)})
    history, frame = df[df["ds"] < "2024-02-10"], df[(df["ds"] >= "2024-02-10") & (df["ds"] <= "2024-02-14")]
    a = DETECTORS["spike_drop"]().fit(history).detect(frame)
    assert a.empty, a


def test_severity_is_relative_to_the_alert_threshold():
    from detectors.base import severity

    assert list(severity(np.array([9e-4, 9e-5, 9e-6]), 1e-3)) == ["yellow", "orange", "red"]
    assert list(severity(np.array([9e-5, 9e-7]), 1e-4)) == ["yellow", "red"]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_gaps_all_zeros_and_a_single_day_of_history_score_without_error(name):
    days = pd.date_range("2024-03-04", periods=120)
    gappy = _weekly(120, 20, 3, "gappy")
    gappy = gappy[~gappy["ds"].isin(days[40:55])]  # two weeks missing: read as zero tickets
    zeros = pd.DataFrame({"series_id": "zeros", "ds": days, "y": 0.0})
    h = pd.concat([gappy, zeros])
    history, frame = h[h["ds"] < days[-3]], h[h["ds"] >= days[-3]]
    s = DETECTORS[name]().fit(history).score(frame)
    assert len(s) == len(frame) and s["score"].between(0, 1).all() and s["score"].notna().all()
    assert (s.loc[s["series_id"] == "zeros", "score"] == 0).all()  # nothing happens on a silent series
    one = pd.DataFrame({"series_id": "new", "ds": [days[0]], "y": [3.0]})
    s1 = DETECTORS[name]().fit(one).score(pd.DataFrame({"series_id": "new", "ds": [days[1]], "y": [4.0]}))
    assert list(s1["score"]) == [0.0]  # a single day of history: no basis to judge, no alert
