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
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
    assert (out["value"] == df["value"]).all() and out["anomaly_score"].between(0, 1).all()
    assert out.loc[spike, "anomaly_score"] >= 0.999
    ordinary = out.drop(index=spike)["anomaly_score"]
    assert (ordinary >= 0.999).mean() < 0.01
    assert (out["anomaly_score"].iloc[:2 * 288] == 0).all()  # warm-up


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
    assert out.to_dict("records") == [{"timestamp": "2024-01-01 08:00", "value": 5, "anomaly_score": 0.0}]


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


def test_duplicate_timestamps_name_both_lines(tmp_path):
    msg = _error(tmp_path, "timestamp,value\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n2024-01-02,4\n")
    assert "lines 3 and 5" in msg and "duplicate" in msg and "'2024-01-02'" in msg


def test_irregular_spacing_is_refused(tmp_path):
    t = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(np.random.default_rng(7).integers(1, 10_000, 50)), "s")
    msg = _error(tmp_path, pd.DataFrame({"timestamp": t, "value": 1}))
    assert "field 'timestamp'" in msg and "no dominant step" in msg


def test_a_row_off_the_grid_is_refused(tmp_path):
    msg = _error(tmp_path, "timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:05,1\n2024-01-01 00:10,1\n"
                           "2024-01-01 00:17,1\n2024-01-01 00:20,1\n2024-01-01 00:25,1\n")
    assert "line 5" in msg and "field 'timestamp'" in msg and "off the 5min grid" in msg


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
    score = np.array([det.update(v) for v in y])
    assert score[500] >= 0.999 and score[505] >= 0.999
    assert (np.delete(score[501:520], 4) < 0.99).all()


def test_a_first_non_count_value_restarts_on_raw_values(tmp_path):
    y = np.r_[np.random.default_rng(10).poisson(5, 100), -1.5, np.random.default_rng(11).normal(5, 2, 99)]
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=200, freq="min"), "value": y})
    s, out = _run(tmp_path, df)
    _, head = _run(tmp_path, df.iloc[:100], "head.csv")
    assert not s["counts"] and head["anomaly_score"].equals(out["anomaly_score"].iloc[:100])
    assert (out["anomaly_score"].iloc[100:110] == 0).all()  # warm-up again on the raw scale
    assert out["anomaly_score"].iloc[110] > 0 and s["n_scored"] == 2 * (100 - 10)
