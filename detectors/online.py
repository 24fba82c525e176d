"""Causal online anomaly scoring of one regular time series from a CSV (``score_csv``).

A CSV of ``timestamp,value`` rows at any regular frequency is scored row by row, as if streaming:
each row's score comes from a small state updated once per row (O(1) work, O(period) memory),
so it depends only on that row and the rows before it, and a later row never changes it.

``robust`` (default), an online additive Holt-Winters baseline with a robust scale:

- Scale: while every value so far is a non-negative integer (a count), values are taken on the
  Anscombe scale ``2*sqrt(x + 3/8)``, where count noise has sd ~1 whatever the mean, so a series
  averaging 0.5 is not alarmed by an ordinary 3. A negative or fractional value (a generic series,
  e.g. a temperature) switches to the raw values for good and restarts the state (warm-up again);
  deciding online keeps the scores causal.
- Prediction ``level + season[slot]``; slot = the row's step index since the first timestamp
  modulo the period (5-minute data 288 slots a day, hourly 24, daily 7 weekdays, any other
  frequency 1, no seasonality). A slot's first value sets its seasonal offset.
- Residual ``r``, scale ``s = max(1.2533 * EW mean |r|, floor)`` (floor 1 on the Anscombe scale,
  i.e. Poisson noise; ``1e-6 * max(|level|, 1)`` on raw values, so a constant series scores 0),
  ``z = r / s``, score ``2*Phi(|z|) - 1`` (two-sided: spikes and drops).
- After scoring, level, season and scale learn from ``r`` winsorised at ``clip * s``, so a spike
  neither drags the baseline nor inflates the scale; a lasting shift is absorbed gradually.
  Learning rates start at 1/n (running means) and decay to ``alpha``, ``gamma``, ``beta``.
- The first ``warmup`` rows (default two periods, at least 10) score 0.

``cusum``: a two-sided CUSUM (``k``, ``h``) on the robust baseline's ``z``, for level shifts;
score ``1 - 0.01**(S/h)`` (0.99 at ``S = h``), both sums reset once ``S`` exceeds ``h``.

Detectors (``ONLINE_DETECTORS``): ``__init__`` only stores parameters; ``update(value, slot=None)``
learns from one row and returns its score in [0, 1]; ``slot`` is the row's step index since the
first timestamp (``score_csv`` passes it so that gaps keep the season aligned), by default a row
counter.

Input rules: a header is required, two columns (named ``timestamp,value`` in any order, else taken
by position); values must be finite numbers; timestamps must parse (offsets are taken in UTC) and be
unique; out-of-order rows are sorted (stable; the summary says ``"sorted": true``) unless
``strict``. The frequency is the most common step between consecutive timestamps; it must cover at
least half the steps and every timestamp must lie on its grid. Missing steps (``gaps`` in the
summary) are not filled: rows are scored as they come, the state carries over the gap and slots stay
aligned to the clock. The step (hence the period) is read off the whole file; given it, every score
is causal. Bad input raises ``ScoreCsvError`` naming the file, the CSV line and the field.
"""
from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_SQRT2 = math.sqrt(2.0)
_PERIODS = {pd.Timedelta("5min"): 288, pd.Timedelta("1h"): 24, pd.Timedelta("1D"): 7}


class ScoreCsvError(ValueError):
    """Bad input for ``score_csv``; the message names the file, the CSV line and the field."""


class RobustOnlineDetector:
    """Seasonal online baseline with a winsorised update and a robust scale (see the module doc)."""

    def __init__(self, period: int = 1, warmup: int | None = None, alpha: float = 0.05, gamma: float = 0.1,
                 beta: float = 0.02, clip: float = 3.0):
        self.period = period
        self.warmup = warmup
        self.alpha = alpha
        self.gamma = gamma
        self.beta = beta
        self.clip = clip

    def _start(self, counts: bool) -> None:
        self.warmup_ = self.warmup if self.warmup is not None else max(2 * self.period, 10)
        self.counts_ = counts
        self.n_ = 0  # rows since the (re)start
        self.step_ = -1  # slot counter when update() gets no slot
        self.level_ = 0.0
        self.mad_ = 0.0
        self.m_ = 0  # residuals learnt from since the (re)start
        self.season_ = [0.0] * self.period
        self.visits_ = [0] * self.period

    def standardise(self, value: float, slot: int | None = None) -> float | None:
        """Update the state with ``value``; its ``z`` against the state before it, None in warm-up."""
        is_count = value >= 0 and float(value).is_integer()
        if not hasattr(self, "n_"):
            self.n_scored_ = 0
            self._start(is_count)
        elif self.counts_ and not is_count:
            self._start(False)
        self.step_ += 1
        slot = (self.step_ if slot is None else slot) % self.period
        y = 2.0 * math.sqrt(value + 0.375) if self.counts_ else float(value)
        self.n_ += 1
        if self.n_ == 1:
            self.level_ = y
        if self.visits_[slot] == 0:  # a slot's first value sets its offset
            self.visits_[slot] = 1
            self.season_[slot] = y - self.level_
            return None
        r = y - self.level_ - self.season_[slot]
        floor = 1.0 if self.counts_ else 1e-6 * max(abs(self.level_), 1.0)
        s = max(1.2533 * self.mad_, floor)
        warm = self.n_ <= self.warmup_
        c = math.inf if warm else self.clip * s  # learn freely in warm-up
        rc = min(max(r, -c), c)
        self.m_ += 1
        a = max(self.alpha, 1.0 / (self.m_ + 1))
        self.level_ += a * rc
        self.visits_[slot] += 1
        if self.period > 1:
            self.season_[slot] += max(self.gamma, 1.0 / self.visits_[slot]) * (1.0 - a) * rc
        self.mad_ += max(self.beta, 1.0 / self.m_) * (min(abs(r), c) - self.mad_)
        if warm:
            return None
        self.n_scored_ += 1
        return r / s

    def update(self, value: float, slot: int | None = None) -> float:
        """Score in [0, 1] of ``value`` (0 in warm-up), then learn from it."""
        z = self.standardise(value, slot)
        return 0.0 if z is None else math.erf(abs(z) / _SQRT2)


class CusumOnlineDetector:
    """Two-sided CUSUM on the robust baseline's standardised residuals, for level shifts."""

    def __init__(self, period: int = 1, warmup: int | None = None, k: float = 0.5, h: float = 5.0):
        self.period = period
        self.warmup = warmup
        self.k = k
        self.h = h

    def update(self, value: float, slot: int | None = None) -> float:
        """Score in [0, 1] of ``value`` (0 in warm-up), then learn from it."""
        if not hasattr(self, "base_"):
            self.base_ = RobustOnlineDetector(period=self.period, warmup=self.warmup)
        z = self.base_.standardise(value, slot)
        if z is None:
            self.pos_ = self.neg_ = 0.0
            return 0.0
        self.pos_ = max(0.0, self.pos_ + z - self.k)
        self.neg_ = max(0.0, self.neg_ - z - self.k)
        s = max(self.pos_, self.neg_)
        if s > self.h:
            self.pos_ = self.neg_ = 0.0
        return min(1.0, 1.0 - 0.01 ** (s / self.h))

    @property
    def n_scored_(self) -> int:
        return self.base_.n_scored_

    @property
    def counts_(self) -> bool:
        return self.base_.counts_


ONLINE_DETECTORS: dict[str, type] = {"robust": RobustOnlineDetector, "cusum": CusumOnlineDetector}


def _read(path: Path) -> tuple[list[int], list[str], list[str]]:
    """CSV lines, timestamp strings and value strings of the data rows (header checked)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:  # bad bytes fail as fields
        reader = csv.reader(f)
        header = next((row for row in reader if row), None)
        if header is None:
            raise ScoreCsvError(f"{path}: empty file, expected a header 'timestamp,value'")
        names = [h.strip().lower() for h in header]
        if len(names) != 2:
            raise ScoreCsvError(f"{path}: line {reader.line_num}: expected 2 columns 'timestamp,value', "
                                f"header has {len(names)}: {','.join(header)}")
        if _is_number(names[1]):
            raise ScoreCsvError(f"{path}: line {reader.line_num}: missing header, expected 'timestamp,value', "
                                f"found data: {','.join(header)}")
        order = (1, 0) if names == ["value", "timestamp"] else (0, 1)
        lines, ts, vals = [], [], []
        for row in reader:
            if not row:
                continue
            if len(row) != 2:
                raise ScoreCsvError(f"{path}: line {reader.line_num}: expected 2 fields, found {len(row)}")
            lines.append(reader.line_num)
            ts.append(row[order[0]].strip())
            vals.append(row[order[1]].strip())
    if not lines:
        raise ScoreCsvError(f"{path}: no data rows after the header")
    return lines, ts, vals


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _values(path: Path, lines: list[int], vals: list[str]) -> np.ndarray:
    out = np.empty(len(vals))
    for i, s in enumerate(vals):
        if not _is_number(s):
            raise ScoreCsvError(f"{path}: line {lines[i]}, field 'value': not a finite number: {s!r}")
        out[i] = float(s)
    return out


def _timestamps(path: Path, lines: list[int], ts: list[str]) -> pd.DatetimeIndex:
    try:
        with warnings.catch_warnings():  # a bad first row leaves pandas to parse each row alone
            warnings.simplefilter("ignore", UserWarning)
            t = pd.DatetimeIndex(pd.to_datetime(pd.Series(ts), errors="coerce", utc=True)).as_unit("ns")
    except (ValueError, TypeError) as e:
        raise ScoreCsvError(f"{path}: field 'timestamp': cannot parse the timestamps: {e}") from e
    bad = np.flatnonzero(t.isna())
    if bad.size:
        i = bad[0]
        raise ScoreCsvError(f"{path}: line {lines[i]}, field 'timestamp': cannot parse {ts[i]!r} "
                            "(timestamps must share one format)")
    dup = np.flatnonzero(t.duplicated())
    if dup.size:
        i = dup[0]
        j = int(np.flatnonzero(t[:i] == t[i])[0])
        raise ScoreCsvError(f"{path}: lines {lines[j]} and {lines[i]}, field 'timestamp': "
                            f"duplicate timestamp {ts[i]!r}")
    return t


def _grid(path: Path, lines: list[int], ts: list[str], t: pd.DatetimeIndex) -> tuple[pd.Timedelta | None, int]:
    """The step (most common difference) and the number of missing steps; sorted, unique ``t``."""
    if len(t) < 2:
        return None, 0
    d = np.diff(t.asi8)
    steps, counts = np.unique(d, return_counts=True)
    step = int(steps[np.argmax(counts)])
    share = counts.max() / d.size
    if share < 0.5:
        raise ScoreCsvError(f"{path}: field 'timestamp': irregular spacing, no dominant step (the most common, "
                            f"{_freqstr(pd.Timedelta(step))}, is {share:.0%} of {d.size} steps)")
    off = np.flatnonzero(d % step)
    if off.size:
        i = off[0] + 1
        raise ScoreCsvError(f"{path}: line {lines[i]}, field 'timestamp': {ts[i]!r} is off the "
                            f"{_freqstr(pd.Timedelta(step))} grid (irregular spacing)")
    return pd.Timedelta(step), int((d // step - 1).sum())


def _freqstr(step: pd.Timedelta) -> str:
    days, rest = divmod(step, pd.Timedelta("1D"))
    if rest:
        return pd.tseries.frequencies.to_offset(step).freqstr
    return "D" if days == 1 else f"{days}D"


def score_csv(input_path: str | Path, output_path: str | Path, detector: str = "robust",
              strict: bool = False) -> dict[str, Any]:
    """Score every row of a ``timestamp,value`` CSV causally; write ``timestamp,value,anomaly_score``.

    Rows are written in time order with their original text. ``strict`` makes out-of-order rows an
    error instead of sorting them. Returns a summary (rows, frequency, period, detector, n_scored,
    max_score, path, sorted, gaps, counts).
    """
    if detector not in ONLINE_DETECTORS:
        raise ScoreCsvError(f"unknown detector {detector!r}; choose from {sorted(ONLINE_DETECTORS)}")
    path = Path(input_path)
    lines, ts, vals = _read(path)
    y = _values(path, lines, vals)
    t = _timestamps(path, lines, ts)
    back = np.flatnonzero(np.diff(t.asi8) < 0)
    if back.size and strict:
        i = back[0] + 1
        raise ScoreCsvError(f"{path}: line {lines[i]}, field 'timestamp': out of order, {ts[i]!r} is "
                            f"earlier than {ts[i - 1]!r} on line {lines[i - 1]}")
    order = np.argsort(t.asi8, kind="stable")
    lines, ts, vals = [lines[i] for i in order], [ts[i] for i in order], [vals[i] for i in order]
    t, y = t[order], y[order]
    step, gaps = _grid(path, lines, ts, t)
    period = _PERIODS.get(step, 1)
    slots = ((t.asi8 - t.asi8[0]) // (step.value if step is not None else 1)).tolist()
    det = ONLINE_DETECTORS[detector](period=period)
    scores = [det.update(v, s) for v, s in zip(y.tolist(), slots)]
    out = Path(output_path)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score"])
        w.writerows(zip(ts, vals, (f"{s:.6f}" for s in scores)))
    return {"rows": len(ts), "frequency": None if step is None else _freqstr(step),
            "period": period, "detector": detector, "n_scored": det.n_scored_,
            "max_score": round(max(scores), 6), "path": str(out), "sorted": bool(back.size), "gaps": gaps,
            "counts": det.counts_}


def make_demo_series(n: int = 20000, freq: str = "5min", seed: int = 0) -> pd.DataFrame:
    """A Poisson count series (``timestamp, value``) with a daily cycle (peak mid-afternoon, ~1 at
    night, ~11 at the peak) and quieter weekends, from 2024-01-01 at ``freq``."""
    t = pd.date_range("2024-01-01", periods=n, freq=freq)
    hour = (t.hour + t.minute / 60).to_numpy()
    lam = 6.0 * (1 + 0.8 * np.sin(2 * np.pi * (hour - 9) / 24)) * np.where(t.weekday >= 5, 0.7, 1.0)
    return pd.DataFrame({"timestamp": t, "value": np.random.default_rng(seed).poisson(lam)})
