"""Causal online anomaly scoring of one time series from a CSV (``score_csv``).

A CSV of ``timestamp,value`` rows is scored step by step, as if streaming: each step's score comes
from a small state updated once per step (O(1) work, O(period) memory), so it depends only on that
step and the steps before it, and a later row never changes it.

``robust`` (default), an online additive Holt-Winters baseline with a robust scale:

- Scale: while every value so far is a non-negative integer (a count), values are taken on the
  Anscombe scale ``2*sqrt(x + 3/8)``, where count noise has sd ~1 whatever the mean, so a series
  averaging 0.5 is not alarmed by an ordinary 3. A negative or fractional value (a generic series,
  e.g. a temperature) switches to the raw values for good and restarts the state (warm-up again);
  deciding online keeps the scores causal.
- Prediction ``level + season[slot]``; slot = the step's index since the first timestamp modulo the
  period (5-minute data 288 slots a day, 15-minute 96, 30-minute 48, hourly 24, daily 7 weekdays,
  any other frequency 1, no seasonality). A slot's first value sets its seasonal offset.
- Residual ``r``, scale ``s = max(1.2533 * EW mean |r|, floor)`` (floor 1 on the Anscombe scale,
  i.e. Poisson noise; ``1e-6 * max(|level|, 1)`` on raw values, so a constant series scores 0),
  ``z = r / s``.
- **Calibrated probability**: ``p`` is how often a residual this far out (either way) has really
  come in this series: ``z`` against the series' own earlier residuals, each computed before its
  step was learnt (``detectors.tails.OnlineTail``: counts on a grid, a power-law tail beyond the
  largest, a Gaussian-to-power-law prior worth 30 steps while the past is short). Real complaint
  series have bursts no Gaussian describes; their tails are learnt, not assumed.
- After scoring, level, season and scale learn from ``r`` winsorised at ``clip * s``, so a spike
  neither drags the baseline nor inflates the scale; a lasting shift is absorbed gradually.
  Learning rates start at 1/n (running means) and decay to ``alpha``, ``gamma``, ``beta``.
- The first ``warmup`` steps (default two periods, at least 10) score 0 (``p`` = 1).

``cusum``: a two-sided CUSUM (``k``, ``h``) on the robust baseline's ``z``, for level shifts; ``p``
is the CUSUM sum's calibrated one-sided tail against its own past values; both sums reset once the
larger exceeds ``h``.

Scores: ``anomaly_score = 1 - p`` in [0, 1], written with enough digits to keep the order down to
p ~ 1e-15; ``p_value`` and ``surprise = -log10(p)`` beside it keep the order beyond (a day scored
0.999 is a one-in-a-thousand step for this series: about three a year of daily data).

Detectors (``ONLINE_DETECTORS``): ``__init__`` only stores parameters; ``observe(value, slot=None,
is_count=None)`` learns from one step and returns ``(p, expected)``; ``update(value, slot=None)``
returns the score ``1 - p``. ``slot`` is the step's index since the first timestamp (``score_csv``
passes it so that gaps keep the season aligned), by default a step counter.

Input rules: a header is required, two columns (named ``timestamp,value`` in any order, else taken
by position); values must be finite numbers (an empty or NaN value is an error naming its line);
timestamps must parse (offsets are taken in UTC). Real files are not regular, so the policy is
stated and reported in the summary:

- out-of-order rows are sorted (stable; ``"sorted": true``);
- ``policy="grid"`` (default): the step is the most common difference between consecutive
  distinct timestamps; each row belongs to the step of the grid (anchored at the first
  timestamp) it falls in, so a row off the grid is snapped back (``off_grid_rows``); rows sharing
  a step (duplicate stamps from a clock change, a double export) are combined by ``combine``:
  ``mean`` (default: a per-step value keeps its scale), ``sum``, ``max`` or ``last``
  (``merged_rows``, ``duplicate_stamps``). Missing steps (``gaps``) are not filled: the state
  carries over the gap and slots stay aligned to the clock;
- ``policy="steps"``: every row is one step, in time order, whatever its spacing (slots count
  rows; the dominant step's period applies only if it covers at least half the steps);
- ``strict``: refuse out-of-order rows, duplicate stamps and rows off the grid instead.

The step (hence the period) is read off the whole file; given it, every score is causal. Bad input
raises ``ScoreCsvError`` naming the file, the CSV line and the field.
"""
from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.tails import OnlineTail

_PERIODS = {pd.Timedelta("5min"): 288, pd.Timedelta("15min"): 96, pd.Timedelta("30min"): 48,
            pd.Timedelta("1h"): 24, pd.Timedelta("1D"): 7}
POLICIES = ("grid", "steps")
COMBINE = ("mean", "sum", "max", "last")


class ScoreCsvError(ValueError):
    """Bad input for ``score_csv``; the message names the file, the CSV line and the field."""


def _cusum_prior(s: float) -> float:
    """P(S >= s) for a CUSUM (k = 0.5) on unit-variance noise, roughly: an exponential tail."""
    return 0.5 * math.exp(-s)


class RobustOnlineDetector:
    """Seasonal online baseline with a winsorised update, a robust scale and a calibrated tail
    (see the module doc)."""

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
        self.n_ = 0  # steps since the (re)start
        self.step_ = -1  # slot counter when no slot is given
        self.level_ = 0.0
        self.mad_ = 0.0
        self.m_ = 0  # residuals learnt from since the (re)start
        self.season_ = [0.0] * self.period
        self.visits_ = [0] * self.period
        self.tail_ = OnlineTail()

    def standardise(self, value: float, slot: int | None = None,
                    is_count: bool | None = None) -> tuple[float | None, float]:
        """Update the state with ``value``; its ``z`` against the state before it (None in warm-up)
        and the value the state expected."""
        if is_count is None:
            is_count = value >= 0 and float(value).is_integer()
        if not hasattr(self, "n_"):
            self.n_scored_ = 0
            self._start(is_count)
        elif self.counts_ and not is_count:
            self._start(False)
        self.step_ += 1
        slot = (self.step_ if slot is None else slot) % self.period
        counts = self.counts_
        y = 2.0 * math.sqrt(value + 0.375) if counts else float(value)
        self.n_ += 1
        if self.n_ == 1:
            self.level_ = y
        visits = self.visits_
        if visits[slot] == 0:  # a slot's first value sets its offset
            visits[slot] = 1
            self.season_[slot] = y - self.level_
            return None, value
        level = self.level_
        pred = level + self.season_[slot]
        if counts:
            expected = (pred * 0.5) ** 2 - 0.375
            expected = expected if expected > 0.0 else 0.0
            floor = 1.0
        else:
            expected = pred
            floor = 1e-6 * (abs(level) if abs(level) > 1.0 else 1.0)
        r = y - pred
        s = 1.2533 * self.mad_
        if s < floor:
            s = floor
        warm = self.n_ <= self.warmup_
        ar = r if r >= 0 else -r
        if warm:  # learn freely in warm-up
            rc, arc = r, ar
        else:
            c = self.clip * s
            rc = r if ar <= c else (c if r > 0 else -c)
            arc = ar if ar <= c else c
        m = self.m_ = self.m_ + 1
        a = 1.0 / (m + 1)
        if a < self.alpha:
            a = self.alpha
        self.level_ = level + a * rc
        v = visits[slot] = visits[slot] + 1
        if self.period > 1:
            g = 1.0 / v
            self.season_[slot] += (g if g > self.gamma else self.gamma) * (1.0 - a) * rc
        b = 1.0 / m
        self.mad_ += (b if b > self.beta else self.beta) * (arc - self.mad_)
        if warm:
            return None, expected
        self.n_scored_ += 1
        return r / s, expected

    def observe(self, value: float, slot: int | None = None, is_count: bool | None = None) -> tuple[float, float]:
        """``(p, expected)`` for ``value`` (p = 1 in warm-up), then learn from it."""
        z, expected = self.standardise(value, slot, is_count)
        return (1.0, expected) if z is None else (self.tail_.judge(z), expected)

    def update(self, value: float, slot: int | None = None) -> float:
        """Score ``1 - p`` in [0, 1] of ``value`` (0 in warm-up), then learn from it."""
        return 1.0 - self.observe(value, slot)[0]

    def observe_all(self, values: list[float], slots: list[int], is_count: list[bool]) -> tuple[list, list]:
        """``observe`` over a whole stream: its p-values and expected values, as two lists."""
        p, expected = [], []
        standardise, add_p, add_e = self.standardise, p.append, expected.append
        for v, s, c in zip(values, slots, is_count):
            z, e = standardise(v, s, c)
            add_p(1.0 if z is None else self.tail_.judge(z))
            add_e(e)
        return p, expected


class CusumOnlineDetector:
    """Two-sided CUSUM on the robust baseline's standardised residuals, for level shifts; the sum's
    tail calibrated against its own past values."""

    def __init__(self, period: int = 1, warmup: int | None = None, k: float = 0.5, h: float = 5.0):
        self.period = period
        self.warmup = warmup
        self.k = k
        self.h = h

    def observe(self, value: float, slot: int | None = None, is_count: bool | None = None) -> tuple[float, float]:
        if not hasattr(self, "base_"):
            self.base_ = RobustOnlineDetector(period=self.period, warmup=self.warmup)
            self.tail_ = OnlineTail(two_sided=False, prior=_cusum_prior)
        restarts = getattr(self.base_, "counts_", None)
        z, expected = self.base_.standardise(value, slot, is_count)
        if restarts is not None and restarts != self.base_.counts_:  # the baseline restarted: so does the tail
            self.tail_ = OnlineTail(two_sided=False, prior=_cusum_prior)
        if z is None:
            self.pos_ = self.neg_ = 0.0
            return 1.0, expected
        self.pos_ = max(0.0, self.pos_ + z - self.k)
        self.neg_ = max(0.0, self.neg_ - z - self.k)
        s = max(self.pos_, self.neg_)
        p = self.tail_.judge(s)
        if s > self.h:
            self.pos_ = self.neg_ = 0.0
        return p, expected

    def update(self, value: float, slot: int | None = None) -> float:
        return 1.0 - self.observe(value, slot)[0]

    def observe_all(self, values: list[float], slots: list[int], is_count: list[bool]) -> tuple[list, list]:
        scored = list(map(self.observe, values, slots, is_count))
        return ([x[0] for x in scored], [x[1] for x in scored])

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
    try:  # the common case in one C pass; any doubt goes row by row for the error's line
        out = np.array(vals, dtype=float)
        if np.isfinite(out).all():
            return out
    except ValueError:
        pass
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
    return t


def _freqstr(step: pd.Timedelta) -> str:
    days, rest = divmod(step, pd.Timedelta("1D"))
    if rest:
        return pd.tseries.frequencies.to_offset(step).freqstr
    return "D" if days == 1 else f"{days}D"


def _dominant_step(t: np.ndarray) -> tuple[int | None, float]:
    """The most common positive difference between consecutive distinct stamps (ns) and its share."""
    d = np.diff(t)
    if d.size and d.min() > 0 and d.min() == d.max():  # a regular, sorted file
        return int(d[0]), 1.0
    d = np.diff(np.unique(t))
    if d.size == 0:
        return None, 1.0
    steps, counts = np.unique(d, return_counts=True)
    return int(steps[np.argmax(counts)]), float(counts.max() / d.size)


def _write(out: Path, ts: list[str], vals: list[str], p: list[float], expected: list[float],
           surprise: list[float]) -> None:
    header = "timestamp,value,anomaly_score,expected,p_value,surprise\n"
    if any(("," in x or '"' in x or "\n" in x) for x in ts):  # rare: let the csv module quote
        with open(out, "w", newline="", encoding="utf-8") as f:
            f.write(header)
            csv.writer(f, lineterminator="\n").writerows(
                (a, b, format_score(c), f"{d:.4g}", f"{c:.3g}", f"{e:.3f}") for a, b, c, d, e in
                zip(ts, vals, p, expected, surprise))
        return
    body = ["%s,%s,%.6f,%.4g,%.3g,%.3f\n" % (a, b, 1.0 - c, d, c, e) if c >= 1e-6 else
            "%s,%s,%s,%.4g,%.3g,%.3f\n" % (a, b, format_score(c), d, c, e)
            for a, b, c, d, e in zip(ts, vals, p, expected, surprise)]
    with open(out, "w", encoding="utf-8") as f:
        f.write(header)
        f.write("".join(body))


def format_score(p: float) -> str:
    """``1 - p`` with enough decimals to keep p's order down to 1e-15 (six at least)."""
    if p >= 1e-6:
        return f"{1.0 - p:.6f}"
    return f"{1.0 - p:.{min(15, int(-math.log10(max(p, 1e-300))) + 3)}f}"


def score_csv(input_path: str | Path, output_path: str | Path, detector: str = "robust",
              strict: bool = False, policy: str = "grid", combine: str = "mean",
              calendar: str = "none") -> dict[str, Any]:
    """Score every step of a ``timestamp,value`` CSV causally; write
    ``timestamp,value,anomaly_score,expected,p_value,surprise`` (one row per step, in time order;
    a step's timestamp and value are its row's own text unless rows were combined into it).

    ``policy`` and ``combine`` say how irregular files are read (module doc); ``strict`` refuses
    them instead. ``calendar`` (CN with 调休, US or another country code, none): for daily steps,
    a holiday and a Spring Festival holiday are seasons of their own and a 调休 make-up workday
    is a midweek day, instead of the weekday they fall on (other frequencies ignore it). Returns a
    summary: rows, steps, frequency, period, detector, n_scored, max_score, max_surprise, path,
    sorted, gaps, policy (with combine, merged_rows, duplicate_stamps, off_grid_rows, step_share),
    calendar, counts, calibration.
    """
    if detector not in ONLINE_DETECTORS:
        raise ScoreCsvError(f"unknown detector {detector!r}; choose from {sorted(ONLINE_DETECTORS)}")
    if policy not in POLICIES:
        raise ScoreCsvError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    if combine not in COMBINE:
        raise ScoreCsvError(f"unknown combine {combine!r}; choose from {', '.join(COMBINE)}")
    path = Path(input_path)
    lines, ts, vals = _read(path)
    y = _values(path, lines, vals)
    t = _timestamps(path, lines, ts)
    ns = t.asi8
    back = np.flatnonzero(np.diff(ns) < 0)
    if back.size and strict:
        i = back[0] + 1
        raise ScoreCsvError(f"{path}: line {lines[i]}, field 'timestamp': out of order, {ts[i]!r} is "
                            f"earlier than {ts[i - 1]!r} on line {lines[i - 1]}")
    if back.size:
        order = np.argsort(ns, kind="stable")
        lines, ts, vals = [lines[i] for i in order], [ts[i] for i in order], [vals[i] for i in order]
        ns, y = ns[order], y[order]
    step, share = _dominant_step(ns)
    if strict:
        dup = np.flatnonzero(np.diff(ns) == 0)
        if dup.size:
            i = dup[0] + 1
            raise ScoreCsvError(f"{path}: lines {lines[i - 1]} and {lines[i]}, field 'timestamp': "
                                f"duplicate timestamp {ts[i]!r}")
        if step is not None and share < 0.5:
            raise ScoreCsvError(f"{path}: field 'timestamp': irregular spacing, no dominant step (the most common, "
                                f"{_freqstr(pd.Timedelta(step))}, is {share:.0%} of {len(ns) - 1} steps)")
        off = np.flatnonzero((ns - ns[0]) % step) if step else np.array([], int)
        if off.size:
            i = off[0]
            raise ScoreCsvError(f"{path}: line {lines[i]}, field 'timestamp': {ts[i]!r} is off the "
                                f"{_freqstr(pd.Timedelta(step))} grid (irregular spacing)")
    counts_in = (y >= 0) & (y == np.floor(y))
    info: dict[str, Any] = {"policy": policy}
    if policy == "steps":
        slot_of = np.arange(len(ns))
        keep = np.arange(len(ns))
        values, is_count = y, counts_in
        out_ts, out_vals = ts, vals
        gaps = 0
        period = _PERIODS.get(pd.Timedelta(step), 1) if step is not None and share >= 0.5 else 1
        steps_n = len(ns)
    else:
        cell = (ns - ns[0]) // step if step else np.zeros(len(ns), np.int64)
        info["off_grid_rows"] = int(np.count_nonzero((ns - ns[0]) % step)) if step else 0
        first = np.flatnonzero(np.r_[True, np.diff(cell) > 0])
        size = np.diff(np.r_[first, len(cell)])
        keep = first
        slot_of = cell[first]
        merged = size > 1
        if merged.any():
            grp = np.repeat(np.arange(len(first)), size)
            if combine == "mean":
                values = np.bincount(grp, weights=y) / size
            elif combine == "sum":
                values = np.bincount(grp, weights=y)
            elif combine == "max":
                values = np.maximum.reduceat(y, first)
            else:
                values = y[np.r_[first[1:], len(y)] - 1]
            is_count = np.logical_and.reduceat(counts_in, first)
        else:
            values, is_count = y, counts_in
        if len(first) == len(ts):
            out_ts, out_vals = ts, vals
        else:
            out_ts = [ts[i] for i in first]
            out_vals = [vals[i] if not m else f"{v:.10g}" for i, m, v in zip(first, merged, values)]
        info.update(combine=combine, merged_rows=int(len(ns) - len(first)),
                    duplicate_stamps=int(np.count_nonzero(np.diff(ns) == 0)), step_share=round(share, 4))
        gaps = int((np.diff(cell[first]) - 1).sum()) if len(first) > 1 else 0
        period = _PERIODS.get(pd.Timedelta(step), 1) if step is not None else 1
        steps_n = len(first)
    info["calendar"] = "none"
    if calendar.lower() != "none" and step is not None and pd.Timedelta(step) == pd.Timedelta("1D") and steps_n:
        from forecasting.calendar_features import day_kinds

        day = pd.DatetimeIndex(ns[keep]).tz_localize(None).normalize()
        try:
            kinds = day_kinds(day.min().date(), day.max().date(), calendar)
        except ValueError as exc:
            raise ScoreCsvError(f"calendar {calendar!r}: {exc}") from None
        slot_of = kinds["kind"].to_numpy()[(day - day.min()).days.to_numpy()]  # weekday 0-6, holiday 7, 8
        period = 9
        info["calendar"] = calendar
    det = ONLINE_DETECTORS[detector](period=period)
    p_list, expected = det.observe_all(values.tolist(), slot_of.tolist(), is_count.tolist())
    p = np.array(p_list, dtype=float)
    surprise = np.maximum(-np.log10(np.maximum(p, 1e-300)), 0.0)
    out = Path(output_path)
    _write(out, out_ts, out_vals, p.tolist(), expected, surprise.tolist())
    top = int(np.argmin(p))
    return {"rows": len(ts), "steps": steps_n, "frequency": None if step is None else _freqstr(pd.Timedelta(step)),
            "period": period, "detector": detector, "n_scored": det.n_scored_,
            "max_score": float(format_score(float(p[top]))), "max_surprise": round(float(surprise[top]), 3),
            "path": str(out), "sorted": bool(back.size), "gaps": gaps, **info, "counts": det.counts_,
            "calibration": "each step's residual against the series' own earlier residuals (out of sample), "
                           "prior worth 30 steps, power-law tail beyond the largest"}


def make_demo_series(n: int = 20000, freq: str = "5min", seed: int = 0) -> pd.DataFrame:
    """A Poisson count series (``timestamp, value``) with a daily cycle (peak mid-afternoon, ~1 at
    night, ~11 at the peak) and quieter weekends, from 2024-01-01 at ``freq``."""
    t = pd.date_range("2024-01-01", periods=n, freq=freq)
    hour = (t.hour + t.minute / 60).to_numpy()
    lam = 6.0 * (1 + 0.8 * np.sin(2 * np.pi * (hour - 9) / 24)) * np.where(t.weekday >= 5, 0.7, 1.0)
    return pd.DataFrame({"timestamp": t, "value": np.random.default_rng(seed).poisson(lam)})
