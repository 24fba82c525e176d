"""Time two hot paths of this checkout against another one (an earlier commit), in the same run.

    git worktree add /tmp/base 945a194
    .venv/bin/python -m bench.compare /tmp/base . --reps 5

Each measurement runs in its own process with that checkout first on ``sys.path``, the two
checkouts alternating, so the machine's noise falls on both alike: the forecast of the bench's
5,092 generated district x level-2 series (1,096 days, h = 30, 80/95% intervals, auto over fast
and seasonal naive) and score-csv on a 5-minute series (20,000 and 200,000 rows). Prints each
time and the medians.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r'''
import sys, time, tempfile, datetime as dt
from pathlib import Path
root, what, reps, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, root)
import numpy as np, pandas as pd
import forecasting
assert forecasting.__file__.startswith(root), forecasting.__file__
if what == "forecast":
    from forecasting import forecast
    from generator.province import ProvinceGenerator
    s, days, lam = ProvinceGenerator(scale=0.01, seed=3).expected(dt.date(2023, 11, 1), dt.date(2026, 10, 31))
    y = np.random.default_rng(3).negative_binomial(25.0, 25.0 / (25.0 + lam))
    sid = (s["district_code"] + "|" + s["category_l2"]).to_numpy()
    hist = pd.DataFrame({"series_id": np.repeat(sid, len(days)), "ds": np.tile(days, len(sid)), "y": y.reshape(-1)})
    for _ in range(reps):
        t = time.perf_counter()
        forecast(hist, 30, levels=(80, 95), model="auto", candidates=("fast", "seasonal_naive"))
        print(time.perf_counter() - t, flush=True)
else:
    from detectors.online import make_demo_series, score_csv
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.csv"
        make_demo_series(n=rows, freq="5min").to_csv(src, index=False)
        for _ in range(reps):
            t = time.perf_counter()
            score_csv(src, Path(d) / "out.csv")
            print(time.perf_counter() - t, flush=True)
'''


def _times(root: Path, what: str, reps: int, rows: int) -> list[float]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(root), what, str(reps), str(rows)],
                         capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", type=Path, help="the other checkout (e.g. a git worktree of the baseline)")
    ap.add_argument("head", type=Path, nargs="?", default=Path("."), help="this checkout")
    ap.add_argument("--reps", type=int, default=3, help="runs per process (default 3)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    args = ap.parse_args(argv)
    cases = [("forecast", "forecast 5,092 series", 0), ("score", "score-csv 20,000 rows", 20_000),
             ("score", "score-csv 200,000 rows", 200_000)]
    for what, name, rows in cases:
        got: dict[str, list[float]] = {"base": [], "head": []}
        for _ in range(args.rounds):
            for key in ("base", "head"):
                got[key] += _times(getattr(args, key).resolve(), what, args.reps, rows)
        b, h = statistics.median(got["base"]), statistics.median(got["head"])
        print(f"{name}: head median {h:.3f} s, base median {b:.3f} s, change {h / b - 1:+.0%}  "
              f"(head {' '.join(f'{x:.3f}' for x in got['head'])}; base {' '.join(f'{x:.3f}' for x in got['base'])})")


if __name__ == "__main__":
    main()
