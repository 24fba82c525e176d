"""Rolling-origin evaluation for analysts: MASE, sMAPE, 80% and 95% coverage (at every horizon, at
h = 1 and at the last horizon), seconds, per model. Each model is run as ``forecast`` runs it in
production, calibrated intervals included, on the history before each evaluation origin."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from forecasting.api import Matrix, forecast, mase_scale, to_matrix


def evaluate(history: pd.DataFrame, horizon: int = 14, folds: int = 4,
             models: tuple[str, ...] = ("fast", "seasonal_naive", "ets", "prophet", "auto"),
             progress: Callable[[str], None] | None = None, score_ids=None, calendar: str = "CN",
             step: int | None = None) -> pd.DataFrame:
    """One row per model: mase, smape, coverage_80, coverage_95, coverage_80_h1, coverage_80_last
    (and the same at 95), seconds, series, points.

    Evaluation origins are ``step`` days apart (default: ``horizon``), the last one ``horizon`` days
    before the end; ``auto`` picks per series on the folds *before* each origin (no peeking).
    ``score_ids``: fit on every series, score only these (to compare with a model run on a sample)."""
    step = step or horizon
    m = to_matrix(history, horizon, calendar)
    S, T = m.Y.shape
    keep = np.isin(m.ids, list(score_ids)) if score_ids is not None else np.ones(S, dtype=bool)
    rows = []
    for alias in models:
        t0 = time.perf_counter()
        err, sm, c80, c95, n = [], [], [], [], 0
        edge = {k: [] for k in ("c80_h1", "c95_h1", "c80_last", "c95_last")}
        for f in range(folds, 0, -1):
            cut = T - horizon - (f - 1) * step
            if cut < 28:
                continue
            train, test = m.Y[:, :cut], m.Y[:, cut:cut + horizon]
            if progress:
                progress(f"{alias}: origin {f} of {folds}")
            sub = _history_until(history, m, cut)
            # Prophet is a baseline here, not a model the daily run ships: its intervals are taken as
            # it states them (calibrating them would fit it four times more per origin)
            fc = forecast(sub, horizon, levels=(80, 95), model=alias, calendar=calendar, calibrate=alias != "prophet")
            cols = {k: fc.pivot(index="series_id", columns="ds", values=k).reindex(m.ids).to_numpy()
                    for k in ("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95")}
            scale = mase_scale(train)
            cols = {k: v[keep] for k, v in cols.items()}
            train, test, scale = train[keep], test[keep], scale[keep]
            ok = np.isfinite(test)
            with np.errstate(all="ignore"):
                err.append(np.nanmean(np.abs(cols["yhat"] - test), axis=1) / scale)
                denom = np.abs(cols["yhat"]) + np.abs(test)
                sm.append(np.where(denom > 0, 2 * np.abs(cols["yhat"] - test) / np.where(denom > 0, denom, 1), 0.0)[ok])
            in80 = (test >= cols["yhat_lo_80"]) & (test <= cols["yhat_hi_80"])
            in95 = (test >= cols["yhat_lo_95"]) & (test <= cols["yhat_hi_95"])
            c80.append(in80[ok])
            c95.append(in95[ok])
            for key, inside, h in (("c80_h1", in80, 0), ("c95_h1", in95, 0), ("c80_last", in80, -1),
                                   ("c95_last", in95, -1)):
                edge[key].append(inside[:, h][ok[:, h]])
            n += int(ok.sum())
        secs = time.perf_counter() - t0
        if not err:
            continue
        e = np.concatenate(err)
        rows.append({"model": alias, "mase": float(np.nanmean(e[np.isfinite(e)])),
                     "smape": float(np.mean(np.concatenate(sm))), "coverage_80": float(np.mean(np.concatenate(c80))),
                     "coverage_95": float(np.mean(np.concatenate(c95))),
                     "coverage_80_h1": float(np.mean(np.concatenate(edge["c80_h1"]))),
                     "coverage_95_h1": float(np.mean(np.concatenate(edge["c95_h1"]))),
                     f"coverage_80_h{horizon}": float(np.mean(np.concatenate(edge["c80_last"]))),
                     f"coverage_95_h{horizon}": float(np.mean(np.concatenate(edge["c95_last"]))),
                     "seconds": round(secs, 2),
                     "series": int(keep.sum()), "points": n})
    return pd.DataFrame(rows)


def _history_until(history: pd.DataFrame, m: Matrix, cut: int) -> pd.DataFrame:
    last = m.start + pd.Timedelta(days=cut - 1)
    h = history.assign(ds=pd.to_datetime(history["ds"]))
    return h[h["ds"] <= last]

