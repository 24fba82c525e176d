"""score_csv: causal online scoring of one series; spikes, shifts, low counts, and every bad input."""
import math

import numpy as np
import pandas as pd
import pytest

from detectors.online import ONLINE_DETECTORS, ScoreCsvError, make_demo_series, score_csv


def _run(tmp_path, data, name="in.csv", **kw):
    """Write ``data`` (a frame or raw CSV text), score it; the summary and the output frame."""
    src, dst = tmp_path / name, tmp_path / f"{name}.out.csv"
    if isinstance(data, str):
        src.write_text(data)
    else:
        data.to_csv(src, index=False)
    summary = score_csv(src, dst, **kw)
    return summary, pd.read_csv(dst)


def _error(tmp_path, text, **kw) -> str:
    with pytest.raises(ScoreCsvError) as e:
        _run(tmp_path, text, **kw)
    assert "in.csv" in str(e.value)
    return str(e.value)


def test_spike_in_seasonal_counts_is_red_ordinary_rows_are_not(tmp_path):
    df = make_demo_series()
    spike = 15000
    df.loc[spike, "value"] += 40
    s, out = _run(tmp_path, df)  # (its speed is measured by `make bench`, not asserted here)
    assert (s["rows"], s["frequency"], s["period"], s["counts"], s["gaps"], s["sorted"]) == (
        20000, "5min", 288, True, 0, False)
    assert s["n_scored"] == 20000 - 2 * 288 and s["max_score"] == out["anomaly_score"].max()
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "expected", "p_value", "surprise"]
    assert (out["value"] == df["value"]).all() and out["anomaly_score"].between(0, 1).all()
    assert out.loc[spike, "anomaly_score"] >= 0.999 and out.loc[spike, "surprise"] >= 3
    assert out.loc[spike, "expected"] < 15  # the day's cycle peaks near 11
    ordinary = out.drop(index=spike)["anomaly_score"]
    assert (ordinary >= 0.999).mean() < 0.002  # calibrated: about one step in a thousand at most
    assert (out["anomaly_score"].iloc[:2 * 288] == 0).all() and (out["p_value"].iloc[:2 * 288] == 1).all()
    np.testing.assert_allclose(out["surprise"], -np.log10(out["p_value"]), atol=0.01)


@pytest.mark.parametrize("detector", sorted(ONLINE_DETECTORS))
def test_scores_are_causal(tmp_path, detector):
    df = make_demo_series(n=6000, seed=1)
    cut = 4000
    _, full = _run(tmp_path, df, "full.csv", detector=detector)
    _, prefix = _run(tmp_path, df.iloc[:cut], "prefix.csv", detector=detector)
    changed = df.copy()
    changed.loc[cut:, "value"] = changed.loc[cut:, "value"] * 3 + 7
    _, other = _run(tmp_path, changed, "changed.csv", detector=detector)
    head = full["anomaly_score"].iloc[:cut].to_numpy()
    assert (head > 0).sum() > cut / 2  # something is compared
    np.testing.assert_array_equal(prefix["anomaly_score"].to_numpy(), head)
    np.testing.assert_array_equal(other["anomaly_score"].iloc[:cut].to_numpy(), head)
    assert not np.array_equal(other["anomaly_score"].iloc[cut:], full["anomaly_score"].iloc[cut:])


def test_cusum_catches_a_level_shift_within_a_few_rows(tmp_path):
    df = make_demo_series(n=6000, seed=2)
    shift = 5000
    df.loc[shift:, "value"] += np.random.default_rng(3).poisson(8, len(df) - shift)
    _, out = _run(tmp_path, df, detector="cusum")
    score = out["anomaly_score"].to_numpy()
    assert (score[shift:shift + 5] >= 0.99).any()
    assert (score[shift - 200:shift] < 0.99).mean() > 0.98


def test_low_counts_are_judged_as_counts(tmp_path):
    n = 3000
    y = np.random.default_rng(4).poisson(0.5, n)
    y[2500] = 12
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="h"), "value": y})
    s, out = _run(tmp_path, df)
    assert s["counts"] and s["period"] == 24
    threes = out["anomaly_score"].iloc[2 * 24:][out["value"] == 3]
    assert len(threes) > 20 and threes.max() < 0.999
    assert math.erf((3 - y.mean()) / math.sqrt(y.mean()) / math.sqrt(2)) >= 0.999  # as a raw Gaussian z would
    assert out.loc[2500, "anomaly_score"] >= 0.999


def test_negative_values_are_a_generic_series(tmp_path):
    n = 2000
    y = np.round(np.random.default_rng(5).normal(-3, 2, n), 2)
    y[1500] = 20.0
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="min"), "value": y})
    s, out = _run(tmp_path, df)
    assert not s["counts"] and s["frequency"] == "min" and s["period"] == 1
    assert out.loc[1500, "anomaly_score"] >= 0.999
    assert (out["anomaly_score"].drop(index=1500) >= 0.999).mean() < 0.01


def test_all_zeros_score_zero(tmp_path):
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=400, freq="D"), "value": 0})
    s, out = _run(tmp_path, df)
    assert s["frequency"] == "D" and s["period"] == 7 and s["n_scored"] > 300
    assert out["anomaly_score"].notna().all() and (out["anomaly_score"] == 0).all()


def test_single_row(tmp_path):
    s, out = _run(tmp_path, "timestamp,value\n2024-01-01 08:00,5\n")
    assert s["rows"] == 1 and s["frequency"] is None and s["max_score"] == 0
    assert out.to_dict("records") == [{"timestamp": "2024-01-01 08:00", "value": 5, "anomaly_score": 0.0,
                                       "expected": 5, "p_value": 1, "surprise": 0.0}]


def test_columns_are_taken_by_name(tmp_path):
    s, out = _run(tmp_path, "value,timestamp\n3,2024-01-01\n4,2024-01-02\n")
    assert s["frequency"] == "D" and out["timestamp"].tolist() == ["2024-01-01", "2024-01-02"]
    assert out["value"].tolist() == [3, 4]


def test_gaps_are_counted_and_the_season_stays_aligned(tmp_path):
    t = pd.date_range("2024-01-01", periods=24 * 60, freq="h")
    office = np.where((t.hour >= 9) & (t.hour < 17), 30, 2)  # a sharp daily cycle
    df = pd.DataFrame({"timestamp": t, "value": np.random.default_rng(8).poisson(office)})
    s, out = _run(tmp_path, df.drop(index=range(960, 965)))
    assert s["gaps"] == 5 and s["rows"] == len(df) - 5 and s["period"] == 24
    after = out["anomaly_score"].iloc[960:960 + 240]  # ten days after the gap
    assert (after >= 0.99).mean() < 0.02  # slots follow the clock, not the row count


def test_unsorted_rows_are_sorted_or_refused_when_strict(tmp_path):
    text = "timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:10,3\n2024-01-01 00:05,2\n"
    s, out = _run(tmp_path, text)
    assert s["sorted"] and out["value"].tolist() == [1, 2, 3]
    msg = _error(tmp_path, text, strict=True)
    assert "line 4" in msg and "'timestamp'" in msg and "out of order" in msg


@pytest.mark.parametrize("bad", ["abc", "", "nan", "inf"])
def test_bad_value(tmp_path, bad):
    msg = _error(tmp_path, f"timestamp,value\n2024-01-01,1\n2024-01-02,2\n2024-01-03,{bad}\n")
    assert "line 4" in msg and "field 'value'" in msg and repr(bad) in msg


@pytest.mark.parametrize("bad", ["not a date", "", "2024-13-45"])
def test_bad_timestamp(tmp_path, bad):
    msg = _error(tmp_path, f"timestamp,value\n2024-01-01,1\n{bad},2\n2024-01-03,3\n")
    assert "line 3" in msg and "field 'timestamp'" in msg and repr(bad) in msg


def test_duplicate_stamps_are_combined_into_their_step_and_reported(tmp_path):
    text = "timestamp,value\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n2024-01-02,4\n"
    s, out = _run(tmp_path, text)
    assert (s["rows"], s["steps"], s["policy"], s["combine"], s["merged_rows"], s["duplicate_stamps"]) == (
        4, 3, "grid", "mean", 1, 1)
    assert out["timestamp"].tolist() == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert out["value"].tolist() == [1, 3, 3]  # 2 and 4 on 2024-01-02, averaged
    _, summed = _run(tmp_path, text, combine="sum")
    assert summed["value"].tolist() == [1, 6, 3]
    msg = _error(tmp_path, text.replace("2024-01-03,3\n2024-01-02,4", "2024-01-02,4\n2024-01-03,3"), strict=True)
    assert "lines 3 and 4" in msg and "duplicate" in msg and "'2024-01-02'" in msg


def test_a_clock_change_hour_is_one_step_and_the_day_stays_aligned(tmp_path):
    """Local wall-clock stamps repeat an hour when clocks go back (autumn, 01:00-02:00 twice): the
    two rows share the step and the series keeps its hourly grid."""
    t = pd.date_range("2024-10-20", periods=24 * 21, freq="h")
    office = np.where((t.hour >= 9) & (t.hour < 17), 30, 2)
    df = pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M"), "value": np.random.default_rng(12).poisson(office)})
    repeat = df.index[df["timestamp"] == "2024-10-27 01:00"][0]
    df = pd.concat([df.iloc[:repeat + 1], df.iloc[[repeat]], df.iloc[repeat + 1:]], ignore_index=True)
    s, out = _run(tmp_path, df)
    assert s["frequency"] == "h" and s["period"] == 24 and s["duplicate_stamps"] == 1 and s["steps"] == 24 * 21
    assert (out["anomaly_score"].iloc[24 * 8:] >= 0.999).mean() < 0.01


def test_rows_off_the_grid_are_snapped_or_refused_when_strict(tmp_path):
    text = ("timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:05,1\n2024-01-01 00:10,1\n"
            "2024-01-01 00:17,1\n2024-01-01 00:20,1\n2024-01-01 00:25,1\n")
    s, out = _run(tmp_path, text)
    assert s["off_grid_rows"] == 1 and s["frequency"] == "5min" and s["steps"] == 6 and s["gaps"] == 0
    assert out["timestamp"].tolist()[3] == "2024-01-01 00:17"  # the row's own text, in the 00:15 step
    msg = _error(tmp_path, text, strict=True)
    assert "line 5" in msg and "field 'timestamp'" in msg and "off the 5min grid" in msg


def test_irregular_spacing_is_read_as_steps_or_refused_when_strict(tmp_path):
    t = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(np.random.default_rng(7).integers(1, 10_000, 50)), "s")
    df = pd.DataFrame({"timestamp": t, "value": 1})
    s, out = _run(tmp_path, df, policy="steps")
    assert (s["policy"], s["steps"], s["period"]) == ("steps", 50, 1) and len(out) == 50
    msg = _error(tmp_path, df, strict=True)
    assert "field 'timestamp'" in msg and "no dominant step" in msg


def test_unknown_policy_or_combine(tmp_path):
    with pytest.raises(ScoreCsvError, match="unknown policy"):
        _run(tmp_path, "timestamp,value\n2024-01-01,1\n", policy="nope")
    with pytest.raises(ScoreCsvError, match="unknown combine"):
        _run(tmp_path, "timestamp,value\n2024-01-01,1\n", combine="median")


@pytest.mark.parametrize("text, words", [
    ("", ["empty file"]),
    ("\n\n", ["empty file"]),
    ("timestamp,value\n", ["no data rows"]),
    ("2024-01-01,1\n2024-01-02,2\n", ["line 1", "missing header"]),
    ("timestamp,value,extra\n2024-01-01,1,2\n", ["line 1", "2 columns", "header has 3"]),
    ("timestamp,value\n2024-01-01,1\n2024-01-02,2,9\n", ["line 3", "expected 2 fields, found 3"]),
])
def test_bad_file_shape(tmp_path, text, words):
    msg = _error(tmp_path, text)
    assert all(w in msg for w in words), msg


def test_unknown_detector(tmp_path):
    with pytest.raises(ScoreCsvError, match="unknown detector"):
        _run(tmp_path, "timestamp,value\n2024-01-01,1\n", detector="nope")


@pytest.mark.parametrize("name", sorted(ONLINE_DETECTORS))
def test_init_only_stores_parameters(name):
    det = ONLINE_DETECTORS[name](period=2, warmup=5)
    assert {"period": 2, "warmup": 5}.items() <= vars(det).items()
    assert not any(k.endswith("_") for k in vars(det))
    scores = [det.update(v) for v in [3, 4, 2, 5, 3, 4] * 10 + [40] * 3]
    assert scores[:5] == [0.0] * 5 and min(scores[5:]) >= 0 and 0 < max(scores[5:]) <= 1


def test_a_spike_neither_drags_the_baseline_nor_masks_the_next_one():
    y = np.random.default_rng(9).normal(10, 1, 600)
    y[500] += 1000
    y[505] += 8
    det = ONLINE_DETECTORS["robust"]()
    scored = [det.observe(v) for v in y]
    score, expected = 1 - np.array([p for p, _ in scored]), np.array([e for _, e in scored])
    assert score[500] >= 0.999999 and np.abs(expected[501:520] - 10).max() < 1  # the baseline stays
    # the second spike still stands out, though a far larger one has now been seen in this series
    assert score[505] >= 0.99 and (np.delete(score[501:520], 4) < score[505]).all()


def test_a_first_non_count_value_restarts_on_raw_values(tmp_path):
    y = np.r_[np.random.default_rng(10).poisson(5, 100), -1.5, np.random.default_rng(11).normal(5, 2, 99)]
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=200, freq="min"), "value": y})
    s, out = _run(tmp_path, df)
    _, head = _run(tmp_path, df.iloc[:100], "head.csv")
    assert not s["counts"] and head["anomaly_score"].equals(out["anomaly_score"].iloc[:100])
    assert (out["anomaly_score"].iloc[100:110] == 0).all()  # warm-up again on the raw scale
    assert out["anomaly_score"].iloc[110] > 0 and s["n_scored"] == 2 * (100 - 10)


def test_scores_keep_their_order_deep_in_the_tail(tmp_path):
    """A spike far beyond anything seen gets a score below 1 and a tail below one in a million, and
    a bigger one, on the same history, a smaller tail: the score does not saturate at 1.000000."""
    y = np.random.default_rng(13).poisson(20, 800).astype(float)
    tails = []
    for size in (400, 900):
        y[700] = size
        df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=800, freq="h"), "value": y})
        _, out = _run(tmp_path, df, f"s{size}.csv")
        tails.append(out.loc[700])
        assert (out["anomaly_score"] == out["anomaly_score"].max()).sum() == 1  # no ties at the top
    big, bigger = tails
    assert big["p_value"] < 1e-6 and bigger["p_value"] < big["p_value"]
    assert bigger["surprise"] > big["surprise"] and 1 > bigger["anomaly_score"] > big["anomaly_score"]


def test_the_stated_rate_holds_on_a_heavy_tailed_series(tmp_path):
    """Counts with bursts (1% of days up to several times the level) and a slow drift: the days
    scored above 0.99 come about 1% of the time, not the several per cent a Gaussian tail claims."""
    rng = np.random.default_rng(14)
    n = 3000
    lam = 8 * np.exp(np.cumsum(rng.normal(0, 0.02, n))) * np.where(rng.random(n) < 0.01, rng.lognormal(1, 0.8, n), 1)
    df = pd.DataFrame({"timestamp": pd.date_range("2016-01-01", periods=n, freq="D"),
                       "value": rng.negative_binomial(10, 10 / (10 + lam))})
    _, out = _run(tmp_path, df)
    scored = out["anomaly_score"].iloc[60:]
    rate = (scored > 0.99).mean()
    assert 0.004 < rate < 0.02, rate
    z = np.abs(np.log(np.maximum(df["value"].iloc[60:], 0.5) / lam[60:]))
    assert rate < 0.5 * (z > 2.576 * z.std()).mean() + 0.02  # (a sanity bound, not the claim)


def test_with_the_chinese_calendar_a_holiday_is_its_own_season_not_a_drop(tmp_path):
    """Daily counts that halve on public holidays and work on 调休 Saturdays: with --calendar CN the
    Golden Week days are no drops and the make-up Saturday no spike; without it, they are."""
    from hotline.core.calendar import calendar_frame

    cal = calendar_frame(pd.Timestamp("2023-01-01").date(), pd.Timestamp("2025-12-31").date())
    lam = np.where(cal["is_holiday"], 15.0, np.where(cal["is_makeup_workday"], 40.0,
                                                    np.where(cal["weekday"] >= 5, 20.0, 40.0)))
    df = pd.DataFrame({"timestamp": cal["ds"], "value": np.random.default_rng(15).poisson(lam)})
    s, out = _run(tmp_path, df, calendar="CN")
    assert s["calendar"] == "CN" and s["period"] == 9
    golden = out["timestamp"].between("2025-10-01", "2025-10-08")
    makeup = out["timestamp"] == "2025-09-28"  # a Sunday worked before Golden Week 2025
    assert out.loc[golden, "anomaly_score"].max() < 0.999 and out.loc[makeup, "anomaly_score"].max() < 0.999
    _, plain = _run(tmp_path, df, "plain.csv")
    assert plain.loc[golden, "anomaly_score"].max() > out.loc[golden, "anomaly_score"].max()
    with pytest.raises(ScoreCsvError, match="calendar 'XX'"):
        _run(tmp_path, df, "bad.csv", calendar="XX")


@pytest.mark.parametrize("two_sided", [True, False])
def test_the_inlined_stream_step_is_pvalue_then_learn(two_sided):
    """OnlineTail.judge (score-csv's once-a-row step, inlined for speed) states the same p and
    learns the same counts as pvalue followed by learn, in the body, between the grid's thresholds
    and beyond its last one, on both sides."""
    from detectors.online import _cusum_prior
    from detectors.tails import OnlineTail

    rng = np.random.default_rng(3)
    z = np.concatenate([rng.standard_t(2, 6000), rng.standard_normal(2000) * 8, [0.0, 0.5, -0.5, 1e3, -1e3, 1e6]])
    make = (lambda: OnlineTail()) if two_sided else (lambda: OnlineTail(two_sided=False, prior=_cusum_prior))
    fast, slow = make(), make()
    for v in z.tolist():
        p = slow.pvalue(v)
        slow.learn(v)
        assert fast.judge(v) == pytest.approx(p, rel=1e-12, abs=0)
    for a, b in ((fast.up_, slow.up_), (fast.down_, slow.down_)):
        assert a.count == b.count and a.last == b.last and a.logsum == pytest.approx(b.logsum)
    assert fast.up_.last > 5 and fast.n_ == slow.n_ == len(z)
