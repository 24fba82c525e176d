"""Inline SVG time-series charts: observed, expected, forecast band, alert days and an event span.

Pure string building and deterministic (the same input gives the same string). Text is real
SVG ``<text>`` drawn by the browser with ``FONT_STACK``, so Chinese renders wherever a CJK font is
installed and nothing is fetched. Missing values (NaN/None) leave gaps; the y axis starts at 0
(counts), values below it are drawn at 0.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd

FONT_STACK = ("'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', "
              "'WenQuanYi Micro Hei', sans-serif")
LABELS = {"observed": "观测 observed", "expected": "预期 expected", "band": "预测区间 band",
          "alert": "告警 alert", "event": "事件 event"}
NO_DATA = "无数据 no data"
COLORS = {"observed": "#1f4e79", "expected": "#6b6b6b", "band": "#c6dbef", "alert": "#d62728",
          "event": "#fde3b8", "axis": "#555", "grid": "#e8e8e8"}
LEFT, RIGHT, TOP, BOTTOM = 44, 14, 44, 26  # plot margins (px)


def _f(v: float) -> str:
    return f"{v:.1f}"


def _num(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")


def _text_width(s: str, size: float) -> float:
    """Rough rendered width: CJK glyphs are square, Latin ones about 0.6 em."""
    return sum(size if ord(c) > 0x2E7F else 0.6 * size for c in s)


def _dates(values: Iterable[Any]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(values))).normalize()


def _floats(values: Sequence[float] | None, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    a = np.asarray(values, dtype=float)
    if a.shape != (n,):
        raise ValueError(f"{name}: {a.size} values for {n} dates")
    return a


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where ``ok`` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _run_x(xs: np.ndarray, a: int, b: int) -> list[float]:
    """x of a run; a lone point becomes a short 6 px segment so it stays visible."""
    return [xs[a] - 3, xs[a] + 3] if b - a == 1 else xs[a:b].tolist()


def _run_y(ys: np.ndarray, a: int, b: int) -> list[float]:
    return [ys[a], ys[a]] if b - a == 1 else ys[a:b].tolist()


def _points(xs: Iterable[float], ys: Iterable[float]) -> str:
    return " ".join(f"{_f(x)},{_f(y)}" for x, y in zip(xs, ys))


def _y_ticks(top: float) -> list[float]:
    """3-5 round ticks (1, 2 or 5 x 10^k apart) from 0 to at least ``top`` (> 0)."""
    mag = 10 ** math.floor(math.log10(top / 4))
    step = next(m * mag for m in (1, 2, 5, 10) if top / (m * mag) <= 4)
    return [round(i * step, 10) for i in range(math.ceil(top / step - 1e-9) + 1)]


def _x_ticks(ds: pd.DatetimeIndex, span: int, k: int, monthly: bool = False) -> list[tuple[int, str]]:
    """(day offset, label) for up to ``k`` evenly spaced dates; the year shows where it changes.
    ``monthly``: the points are months, labelled YYYY-MM at the points themselves."""
    if monthly:
        step = max(1, math.ceil(len(ds) / k))
        return [(int((day - ds[0]).days), f"{day:%Y-%m}") for day in ds[::step]]
    step = max(1, math.ceil(span / (k - 1)))
    out, year = [], None
    for d in range(0, span + 1, step):
        day = ds[0] + pd.Timedelta(days=d)
        out.append((d, f"{day:%m-%d}" if day.year == year else f"{day:%Y-%m-%d}"))
        year = day.year
    return out


def _legend(keys: list[str], labels: Mapping[str, str], y: float) -> list[str]:
    out, x = [], float(LEFT)
    swatch = {
        "observed": f'<line x1="0" y1="0" x2="16" y2="0" stroke="{COLORS["observed"]}" stroke-width="2"/>'
                    f'<circle cx="8" cy="0" r="2.5" fill="{COLORS["observed"]}"/>',
        "expected": f'<line x1="0" y1="0" x2="16" y2="0" stroke="{COLORS["expected"]}" stroke-width="1.5" '
                    f'stroke-dasharray="4 3"/>',
        "band": f'<rect x="0" y="-5" width="16" height="10" fill="{COLORS["band"]}"/>',
        "alert": f'<circle cx="8" cy="0" r="4" fill="{COLORS["alert"]}" stroke="#fff"/>',
        "event": f'<rect x="0" y="-5" width="16" height="10" fill="{COLORS["event"]}"/>',
    }
    for key in keys:
        text = labels[key]
        out.append(f'<g class="legend-item" transform="translate({_f(x)},{_f(y)})">{swatch[key]}'
                   f'<text x="20" y="4" font-size="11">{escape(text)}</text></g>')
        x += 20 + _text_width(text, 11) + 14
    return out


def _frame(body: list[str], title: str, width: int, height: int) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "chart")}" '
            f'font-family="{FONT_STACK}" font-size="10" fill="#222">')
    parts = [head, f"<title>{escape(title)}</title>" if title else "",
             f'<rect class="background" width="{width}" height="{height}" fill="#fff"/>']
    if title:
        parts.append(f'<text class="title" x="8" y="17" font-size="13" font-weight="bold">{escape(title)}</text>')
    return "".join(parts + body + ["</svg>"])


def series_chart(ds: Sequence[Any], observed: Sequence[float], expected: Sequence[float] | None = None,
                 lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
                 alert_days: Iterable[Any] = (), event_span: tuple[Any, Any] | None = None, title: str = "",
                 width: int = 640, height: int = 220, labels: Mapping[str, str] | None = None,
                 monthly: bool = False) -> str:
    """One daily series as an inline ``<svg>`` string.

    ``ds`` are dates (date, datetime, Timestamp or ISO string); ``observed``, ``expected``,
    ``lower`` and ``upper`` are numbers aligned with ``ds`` (NaN/None = gap). ``alert_days`` that
    are among ``ds`` get one red ``<g class="alert">`` marker each; ``event_span`` (start, end)
    is shaded. ``labels`` overrides legend texts by key (observed, expected, band, alert, event).
    ``monthly``: one point per month (axis labels YYYY-MM).
    An empty series gives a chart saying 无数据 no data.
    """
    labels = {**LABELS, **(labels or {})}
    n = len(ds)
    if n == 0:
        return _frame([f'<text class="no-data" x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
                       f'font-size="14" fill="#888">{escape(NO_DATA)}</text>'], title, width, height)

    days = _dates(ds)
    order = np.argsort(days.values, kind="stable")
    days = days[order]
    obs, exp, lo, up = (_floats(v, n, name)[order] for v, name in
                        ((observed, "observed"), (expected, "expected"), (lower, "lower"), (upper, "upper")))

    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    bottom = TOP + plot_h
    offsets = np.asarray((days - days[0]).days, dtype=float)
    span = int(offsets[-1])
    slot = plot_w / (span + 1)  # one day's width; points sit mid-slot
    xs = LEFT + (offsets + 0.5) * slot

    finite = np.concatenate([a[np.isfinite(a)] for a in (obs, exp, up)])
    ticks = _y_ticks(max(float(finite.max(initial=0.0)), 1.0))
    top = ticks[-1]

    y_obs, y_exp, y_lo, y_up = (bottom - np.clip(a, 0, None) / top * plot_h for a in (obs, exp, lo, up))

    body: list[str] = []
    shown = {"observed"}

    if event_span is not None:
        start, end = _dates(event_span)
        x0 = max(LEFT, LEFT + (start - days[0]).days * slot)
        x1 = min(LEFT + plot_w, LEFT + ((end - days[0]).days + 1) * slot)
        if x1 > x0:
            body.append(f'<rect class="event" x="{_f(x0)}" y="{TOP}" width="{_f(x1 - x0)}" height="{plot_h}" '
                        f'fill="{COLORS["event"]}"><title>{escape(labels["event"])} {start:%Y-%m-%d} – '
                        f'{end:%Y-%m-%d}</title></rect>')
            shown.add("event")

    for t in ticks:
        ty = _f(bottom - t / top * plot_h)
        body.append(f'<line class="grid" x1="{LEFT}" y1="{ty}" x2="{LEFT + plot_w}" y2="{ty}" '
                    f'stroke="{COLORS["grid"]}"/>'
                    f'<text class="y-tick" x="{LEFT - 6}" y="{ty}" dy="3.5" text-anchor="end">{t:g}</text>')

    band_ok = np.isfinite(lo) & np.isfinite(up)
    for a, b in _runs(band_ok):
        px, py = _run_x(xs, a, b), _run_y(y_up, a, b) + _run_y(y_lo, a, b)[::-1]
        body.append(f'<polygon class="band" points="{_points(px + px[::-1], py)}" fill="{COLORS["band"]}" '
                    f'fill-opacity="0.8"/>')
    if band_ok.any():
        shown.add("band")

    for a, b in _runs(np.isfinite(exp)):
        body.append(f'<polyline class="expected" points="{_points(_run_x(xs, a, b), _run_y(y_exp, a, b))}" '
                    f'fill="none" stroke="{COLORS["expected"]}" stroke-width="1.5" stroke-dasharray="4 3"/>')
    if np.isfinite(exp).any():
        shown.add("expected")

    for a, b in _runs(np.isfinite(obs)):
        if b - a > 1:
            body.append(f'<polyline class="observed" points="{_points(xs[a:b], y_obs[a:b])}" fill="none" '
                        f'stroke="{COLORS["observed"]}" stroke-width="1.8" stroke-linejoin="round"/>')
    r = _f(min(2.5, max(1.0, slot / 3)))
    for x_, v, yv, e, day in zip(xs, obs, y_obs, exp, days):
        if np.isfinite(v):
            tip = f"{day:%Y-%m-%d} {labels['observed']} {_num(v)}"
            tip += f" · {labels['expected']} {_num(e)}" if np.isfinite(e) else ""
            body.append(f'<circle class="point" cx="{_f(x_)}" cy="{_f(yv)}" r="{r}" fill="{COLORS["observed"]}">'
                        f'<title>{escape(tip)}</title></circle>')

    where = {day: i for i, day in enumerate(days)}
    hits = sorted({where[d] for d in _dates(alert_days) if d in where})
    for i in hits:
        x_ = _f(xs[i])
        mark = (f'<circle cx="{x_}" cy="{_f(y_obs[i])}" r="4.5" fill="{COLORS["alert"]}" stroke="#fff"/>'
                if np.isfinite(obs[i]) else "")
        body.append(f'<g class="alert"><title>{escape(labels["alert"])} {days[i]:%Y-%m-%d}</title>'
                    f'<line x1="{x_}" y1="{TOP}" x2="{x_}" y2="{bottom}" stroke="{COLORS["alert"]}" '
                    f'stroke-opacity="0.45"/>{mark}</g>')
    if hits:
        shown.add("alert")

    body.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{LEFT + plot_w}" y2="{bottom}" '
                f'stroke="{COLORS["axis"]}"/>')
    for d, label in _x_ticks(days, span, max(2, min(6, plot_w // 100)), monthly):
        tx = LEFT + (d + 0.5) * slot
        anchor = "end" if tx + _text_width(label, 10) / 2 > width - 2 else "middle"
        body.append(f'<line x1="{_f(tx)}" y1="{bottom}" x2="{_f(tx)}" y2="{bottom + 4}" stroke="{COLORS["axis"]}"/>'
                    f'<text class="x-tick" x="{_f(tx)}" y="{bottom + 15}" text-anchor="{anchor}">{label}</text>')

    body += _legend([k for k in LABELS if k in shown], labels, TOP - 12)
    return _frame(body, title, width, height)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str = "", highlight: Iterable[str] = (),
              notes: Sequence[str] | None = None, width: int = 640, bar_height: int = 18,
              signed: bool = False) -> str:
    """Horizontal bars, one per label (in the given order), the value at the bar's end and an
    optional note after it; labels in ``highlight`` are drawn in the alert colour. ``signed``:
    bars grow left (negative) or right (positive) from a zero line in the middle."""
    if not labels:
        return _frame([f'<text class="no-data" x="{width / 2:.1f}" y="60" text-anchor="middle" font-size="14" '
                       f'fill="#888">{escape(NO_DATA)}</text>'], title, width, 100)
    marked = set(highlight)
    vals = np.asarray(values, dtype=float)
    label_w = min(220.0, max(_text_width(str(x), 11) for x in labels) + 10)
    note_w = max((_text_width(str(n), 10) for n in notes or () if n), default=0.0)
    x0, top = 8 + label_w, 30.0
    plot_w = max(width - x0 - 60 - note_w, 80)
    finite = vals[np.isfinite(vals)]
    vmax = max(float(np.abs(finite).max()) if len(finite) else 0.0, 1e-9)
    zero = x0 + plot_w / 2 if signed else x0
    scale = (plot_w / 2 - 30) / vmax if signed else plot_w / vmax
    body = []
    for i, (lab, v) in enumerate(zip(labels, vals)):
        y = top + i * (bar_height + 6)
        w = 0.0 if not np.isfinite(v) else (abs(v) if signed else max(v, 0.0)) * scale
        left = zero - w if signed and np.isfinite(v) and v < 0 else zero
        end = left if left < zero else zero + w
        anchor = "end" if left < zero else "start"
        tx = end - 4 if anchor == "end" else end + 4
        color = COLORS["alert"] if lab in marked else COLORS["observed"]
        note = f" {notes[i]}" if notes and notes[i] else ""
        shown = (f"{v:+.3g}" if signed else _num(v)) if np.isfinite(v) else "—"
        body.append(f'<g class="bar"><text x="{_f(x0 - 6)}" y="{_f(y + bar_height * 0.72)}" text-anchor="end" '
                    f'font-size="11">{escape(str(lab))}</text><rect x="{_f(left)}" y="{_f(y)}" width="{_f(w)}" '
                    f'height="{bar_height}" fill="{color}" fill-opacity="0.85"/><text x="{_f(tx)}" '
                    f'y="{_f(y + bar_height * 0.72)}" text-anchor="{anchor}" font-size="10">{shown}'
                    f'{escape(note)}</text></g>')
    height = int(top + len(labels) * (bar_height + 6) + 8)
    if signed:
        body.append(f'<line class="zero" x1="{_f(zero)}" y1="{_f(top - 4)}" x2="{_f(zero)}" y2="{_f(height - 4)}" '
                    f'stroke="{COLORS["axis"]}" stroke-width="1"/>')
    return _frame(body, title, width, height)
