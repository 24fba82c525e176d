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
    assert len(s) == len(frame) and s["score"].between(0, 1).all()
    anomalies = det.detect(frame)
    assert list(anomalies.columns) == ANOMALY_COLUMNS
    assert (anomalies["score"] >= det.threshold).all() and anomalies["detector"].eq(name).all()
    assert set(anomalies["severity"]) <= {"red", "orange", "yellow"}
    with pytest.raises(ValueError, match="non-negative"):
        det.score(frame.assign(y=-1.0))


def test_spike_of_three_times_is_flagged_and_a_normal_day_is_not():
    history, frame = _data()
    frame = frame.copy()
    busy_last = (frame["series_id"] == "busy") & (frame["ds"] == frame["ds"].max())
    frame.loc[busy_last, "y"] = frame.loc[busy_last, "y"] * 3 + 10
    a = DETECTORS["spike_drop"]().fit(history).detect(frame)
    assert ((a["series_id"] == "busy") & (a["ds"] == frame["ds"].max()) & (a["kind"] == "spike")).any()
    assert not ((a["series_id"] == "busy") & (a["ds"] < frame["ds"].max())).any()


def test_a_quiet_series_is_judged_by_count_tails_not_z_scores():
    history, frame = _data()
    frame = frame.copy()
    quiet = frame["series_id"] == "quiet"
    frame.loc[quiet, "y"] = [5.0, 0.0, 4.0, 3.0][: int(quiet.sum())]  # ordinary for a mean of ~2
    a = DETECTORS["spike_drop"]().fit(history).detect(frame)
    assert not (a["series_id"] == "quiet").any()


def test_a_sustained_rise_is_a_level_shift():
    h = _weekly(140, 20, 5, "s")
    h.loc[h.index[-14:], "y"] = h.loc[h.index[-14:], "y"] * 1.5
    history, frame = h.iloc[:-1], h.iloc[-1:]
    a = DETECTORS["level_shift"]().fit(history).detect(frame)
    assert len(a) == 1 and a.iloc[0]["kind"] == "level_shift"
    calm = DETECTORS["level_shift"]().fit(_weekly(140, 20, 6, "s").iloc[:-1]).detect(_weekly(140, 20, 6, "s").iloc[-1:])
    assert calm.empty


def test_an_issue_emerging_from_nothing_is_flagged():
    h = _weekly(120, 0.05, 7, "new")
    ramp = np.clip(np.arange(28) / 27, 0, 1) * 12
    h.loc[h.index[-28:], "y"] = np.random.default_rng(8).poisson(ramp).astype(float)
    history, frame = h.iloc[:-7], h.iloc[-7:]
    a = DETECTORS["emerging"]().fit(history).detect(frame)
    assert (a["kind"] == "emerging").any() and a["ds"].min() <= frame["ds"].max()


def test_the_spring_festival_dip_is_not_a_drop():
    from generator.province import ProvinceGenerator
    import datetime as dt

    gen = ProvinceGenerator(scale=0.01, seed=4, anomalies=False)
    s, days, lam = gen.expected(dt.date(2023, 1, 1), dt.date(2024, 2, 20))
    y = np.random.default_rng(2).poisson(lam.sum(axis=0))
    df = pd.DataFrame({"series_id": "province", "ds": days, "y": y.astype(float)})
    history, frame = df[df["ds"] < "2024-02-10"], df[(df["ds"] >= "2024-02-10") & (df["ds"] <= "2024-02-14")]
    a = DETECTORS["spike_drop"]().fit(history).detect(frame)
    assert a.empty, a


def test_severity_is_relative_to_the_alert_threshold():
    from detectors.base import severity

    assert list(severity(np.array([0.9991, 0.99991, 0.999991]), 0.999)) == ["yellow", "orange", "red"]
    assert list(severity(np.array([0.99991, 0.9999991]), 0.9999)) == ["yellow", "red"]


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
