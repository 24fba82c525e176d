"""Stated probabilities against what really happened, on real data (NYC Council complaints in
../shared/data): the days `score-csv` calls rarer than 1 in 100, 1 in 1,000 and 1 in 10,000 come
about that often, bursts and the COVID-19 collapse included."""
import collections
import csv
import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from detectors.online import score_csv

pytestmark = pytest.mark.slow
NYC_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyc_council_complaints" / "nycomplaints.csv.gz"


@pytest.fixture(scope="module")
def nyc_busiest(tmp_path_factory):
    """The 20 busiest borough x complaint-type daily series, 2016-01-01 .. 2023-06-30, as
    timestamp,value files (the series ../shared/tools/nyc_exceedance.sh measures)."""
    assert NYC_CSV.exists(), f"{NYC_CSV} missing: ../shared/data is part of the checkout's surroundings"
    count, total = collections.Counter(), collections.Counter()
    with gzip.open(NYC_CSV, "rt", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            day = r["opendate"]
            if day and "2016-01-01" <= day <= "2023-06-30":
                key = (r["borough"] or "NA", r["complaint_type"])
                count[(key, day)] += 1
                total[key] += 1
    first = dt.date(2016, 1, 1)
    days = [(first + dt.timedelta(i)).isoformat() for i in range((dt.date(2023, 6, 30) - first).days + 1)]
    out = tmp_path_factory.mktemp("nyc20")
    paths = []
    for i, (key, _) in enumerate(total.most_common(20)):
        p = out / f"s{i:02d}.csv"
        p.write_text("timestamp,value\n" + "".join(f"{d} 00:00:00,{count[(key, d)]}\n" for d in days))
        paths.append(p)
    return paths


@pytest.mark.parametrize("detector", ["robust", "cusum"])
def test_score_csv_rates_hold_on_real_complaint_series(nyc_busiest, tmp_path, detector):
    scores = []
    for p in nyc_busiest:
        score_csv(p, tmp_path / p.name, detector)
        with open(tmp_path / p.name, encoding="utf-8") as f:
            scores.append(np.array([float(r["anomaly_score"]) for r in csv.DictReader(f)])[60:])
    s = np.concatenate(scores)
    assert len(s) == 53_560
    for threshold, most in ((0.99, 2.0), (0.999, 2.0), (0.9999, 5.0)):
        ratio = (s > threshold).mean() / (1 - threshold)
        assert 0.25 < ratio <= most, (threshold, ratio)
    for one in scores:  # ties at the top only for equal evidence
        assert (one == one.max()).mean() <= 0.01
