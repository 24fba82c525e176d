"""`hotline calibrate` and the calibration behind it: claimed against observed on a panel, the
report, and every bad input (short series, all zeros, one burst, NaN and negative counts)."""
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detectors.count_detectors import SpikeDropDetector
from detectors.panel import Expectations, Panel
from forecasting.series_csv import SeriesCsvError, read_series_csv
from hotline.cli import main

WEEK = np.array([1.15, 1.1, 1.05, 1.0, 1.0, 0.7, 0.6])


def _panel_csv(path, n_series=40, days=420, seed=0, bursts=0.0):
    """Negative binomial series of several volumes with a weekly rhythm and, with ``bursts``, that
    share of days several times higher (unlabelled: real series have them)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=days)
    rows = []
    for k in range(n_series):
        lam = [0.5, 2, 6, 20][k % 4] * WEEK[idx.weekday] * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        lam = lam * np.where(rng.random(days) < bursts, rng.lognormal(1.0, 0.5, days), 1.0)
        rows.append(pd.DataFrame({"series_id": f"s{k:02d}", "ds": idx.strftime("%Y-%m-%d"),
                                  "y": rng.negative_binomial(10, 10 / (10 + lam))}))
    pd.concat(rows).to_csv(path, index=False)
    return path


def _calibrate(tmp_path, *args):
    r = CliRunner().invoke(main, ["calibrate", *args, "--json"], env={"HOTLINE_VAR_DIR": str(tmp_path)})
    return r


@pytest.mark.parametrize("bursts", [0.0, 0.02])
def test_claimed_rates_hold_on_a_panel_with_and_without_bursts(tmp_path, bursts):
    src = _panel_csv(tmp_path / "panel.csv", bursts=bursts)
    r = _calibrate(tmp_path, "--csv", str(src), "--calendar", "none")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])  # stdout is one JSON document
    assert out["series"] == 40 and out["days"] == 420 - (7 * 26 + 14)
    levels = {lv["claimed"]: lv for lv in out["exceedance"]["levels"]}
    assert levels[0.01]["expected"] > 200
    assert 0.4 <= levels[0.01]["ratio"] <= 2.0 and levels[0.001]["ratio"] <= 2.5
    for c, v in out["coverage"].items():  # the central intervals hold what they claim, within 5 points
        assert abs(v - int(c) / 100) <= 0.05, (c, v)
    assert abs(sum(out["pit"]["shares"]) - 1) < 1e-3 and out["pit"]["worst_bin_ratio"] < 1.6
    assert out["short_series"] == 0  # every series has its own 26 weeks of residuals
    assert set(out["by_band"]) <= {"<0.3", "0.3-1", "1-3", "3-10", "10-30", "30-100", ">=100"}
    html = open(out["report"], encoding="utf-8").read()
    assert "校准报告" in html and "<svg" in html and "PIT" in html and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", "")


def test_a_gaussian_tail_would_claim_far_too_much_on_bursty_series(tmp_path):
    """The same bursty panel judged by the raw negative binomial tail: a day called 1 in 1,000 comes
    several times as often; the calibrated tail keeps its word (the test above)."""
    src = _panel_csv(tmp_path / "panel.csv", bursts=0.02)
    panel = Panel.from_long(read_series_csv(src), country="none")
    exp = Expectations(panel)
    raw, n = 0, 0
    from forecasting.counts import CountDist
    for t in range(250, 420):
        mu, r = (x[:, 0] for x in exp.at(t - 1))
        raw += int((CountDist(np.maximum(mu, 1e-6), r).sf(panel.y(t) - 1) <= 1e-3).sum())
        n += len(panel)
    assert raw / (n * 1e-3) > 3


@pytest.mark.parametrize("text, words", [
    ("series_id,ds,y\na,2024-01-01,1\na,2024-01-02,\n", ["line 3", "field 'y'", "not a count"]),
    ("series_id,ds,y\na,2024-01-01,1\na,2024-01-02,nan\n", ["line 3", "field 'y'", "'nan'"]),
    ("series_id,ds,y\na,2024-01-01,1\na,2024-01-02,-3\n", ["line 3", "field 'y'", "'-3'"]),
    ("series_id,ds,y\na,2024-01-01,1\na,yesterday,3\n", ["line 3", "field 'ds'", "'yesterday'"]),
    ("series_id,ds,y\na,2024-01-01,1\na,2024-01-01,3\n", ["lines 2 and 3", "given twice"]),
    ("day,count\n2024-01-01,1\n", ["missing column(s) ['ds', 'y']"]),
    ("ds,y\n", ["no data rows"]),
])
def test_bad_counts_are_errors_naming_file_line_and_field(tmp_path, text, words):
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(SeriesCsvError) as e:
        read_series_csv(p)
    assert "bad.csv" in str(e.value) and all(w in str(e.value) for w in words), str(e.value)
    for cmd in (["calibrate", "--csv", str(p)], ["forecast-backtest", "--csv", str(p)]):
        r = CliRunner().invoke(main, cmd, env={"HOTLINE_VAR_DIR": str(tmp_path)})
        assert r.exit_code == 2 and words[0] in r.output and "Traceback" not in r.output, r.output


def test_a_series_too_short_to_calibrate_is_judged_on_its_pool_and_says_so(tmp_path):
    """A series that started six weeks ago has few residuals of its own: its scale stays the
    model's (phi near 1) and its tail is its volume band's; the calibration reports how many
    of its residuals it has."""
    rng = np.random.default_rng(5)
    idx = pd.date_range("2024-01-01", periods=300)
    old = [pd.DataFrame({"series_id": f"o{k}", "ds": idx, "y": rng.poisson(6 * WEEK[idx.weekday])}) for k in range(20)]
    young = pd.DataFrame({"series_id": "young", "ds": idx[-42:], "y": rng.poisson(6 * WEEK[idx[-42:].weekday])})
    panel = Panel.from_long(pd.concat([*old, young]))
    exp = Expectations(panel)
    t = len(panel.days) - 1
    cal = exp.day_calibration(t)
    i = list(panel.ids).index("young")
    assert cal.n_own[i] <= 42 and cal.n_own[np.arange(len(panel)) != i].min() >= 7 * 26
    assert cal.scale[i] >= 0.9  # never more confident than the model on little evidence
    assert cal.band[i] in cal.tails  # judged on its volume band's pooled tail
    res = SpikeDropDetector().score_day(panel, exp, t)
    assert 0 < res["p"][i] <= 1 and np.isfinite(res["surprise"][i])
    frame = pd.concat([*old, young]).assign(ds=lambda d: d["ds"].dt.strftime("%Y-%m-%d"))
    frame.to_csv(tmp_path / "p.csv", index=False)
    r = _calibrate(tmp_path, "--csv", str(tmp_path / "p.csv"), "--start", str(idx[-20].date()))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["short_series"] == 1  # the young one, judged with fewer than 4 weeks of its own
    assert "short series" in CliRunner().invoke(main, ["calibrate", "--csv", str(tmp_path / "p.csv"), "--start",
                                                        str(idx[-20].date())],
                                                env={"HOTLINE_VAR_DIR": str(tmp_path)}).output


def test_a_series_whose_whole_history_is_one_burst_does_not_set_its_level(tmp_path):
    """Two weeks of 60 a day, then months of ones and twos: the burst is history, not the level,
    and the quiet days after it are not drops."""
    idx = pd.date_range("2024-01-01", periods=240)
    rng = np.random.default_rng(6)
    y = rng.poisson(1.5, 240).astype(float)
    y[:14] = 60
    others = [pd.DataFrame({"series_id": f"o{k}", "ds": idx, "y": rng.poisson(1.5, 240)}) for k in range(15)]
    panel = Panel.from_long(pd.concat([pd.DataFrame({"series_id": "burst", "ds": idx, "y": y}), *others]))
    exp = Expectations(panel)
    i = list(panel.ids).index("burst")
    for t in (120, 180, 239):
        res = SpikeDropDetector().score_day(panel, exp, t)
        assert res["exp"][i] < 4 and res["kind"][i] != "drop" or res["p"][i] > 1e-2


def test_an_all_zero_series_is_never_rare(tmp_path):
    idx = pd.date_range("2024-01-01", periods=300)
    rng = np.random.default_rng(7)
    frames = [pd.DataFrame({"series_id": "zero", "ds": idx, "y": 0.0})]
    frames += [pd.DataFrame({"series_id": f"o{k}", "ds": idx, "y": rng.poisson(3, 300)}) for k in range(10)]
    panel = Panel.from_long(pd.concat(frames))
    exp = Expectations(panel)
    i = list(panel.ids).index("zero")
    for t in (200, 299):
        res = SpikeDropDetector().score_day(panel, exp, t)
        assert res["p"][i] == 1 or res["p"][i] > 0.1


def test_a_one_day_batch_does_not_make_the_next_month_look_normal():
    """A series of 5 a day gets one batch of 50; twenty days later a day of 20 is as surprising
    (within a factor of ten) as it is without the batch: the batch is not the series' spread."""
    def surprise_of_the_later_day(with_batch: bool) -> float:
        rng = np.random.default_rng(1)
        idx = pd.date_range("2024-01-01", periods=400)
        frames = [pd.DataFrame({"series_id": f"o{k}", "ds": idx, "y": rng.poisson(5, 400)}) for k in range(30)]
        y = rng.poisson(5, 400).astype(float)
        y[380] = 20
        if with_batch:
            y[360] = 50
        frames.append(pd.DataFrame({"series_id": "s", "ds": idx, "y": y}))
        panel = Panel.from_long(pd.concat(frames), country="none")
        res = SpikeDropDetector().score_day(panel, Expectations(panel), 380)
        return float(res["surprise"][list(panel.ids).index("s")])

    base = surprise_of_the_later_day(False)
    assert base > 3  # a day of 20 in a series of 5 is rare
    assert surprise_of_the_later_day(True) >= base - 1
