"""How unusual a day is, in words an office can check: "约每 N 天一次" for this series.

A detector's calibrated tail probability ``p`` says how often a day this far out has come for
series like this one. Its reciprocal, ``1/p`` days, is the claim an office can check against its
own series, so it is stated only as far as the series' record reaches: a day rarer than the record
can show is "近 H 天内从未出现" (never in the H days on record), not "约1300万分之一". N is rounded
to two significant figures (one below ten); a year or more is also given in years.
"""
from __future__ import annotations

import math


def _round(n: float) -> float:
    if n < 10:
        return round(n)
    digits = 2 - int(math.floor(math.log10(n))) - 1
    return round(n, digits)


def _years(days: float, lang: str) -> str:
    years = days / 365.25
    text = f"{years:.0f}" if years >= 10 else f"{years:.1f}".rstrip("0").rstrip(".")
    return f"约 {text} 年" if lang == "zh" else f"about {text} years"


# The rarest rate shown without a series record: claims of 1 in 1,000 hold on real data (NYC, 20
# series: 1.0x at > 0.999, 1.7x at > 0.9999; docs/DETECTORS.md), finer ones are not checked.
UNCHECKED_BEYOND = 1000


def frequency(p: float | None, history_days: int | float | None = None, lang: str = "zh") -> str:
    """'约每 1300 天一次（约 3.6 年）', or '近 560 天的记录中从未出现' past the record; '' without ``p``."""
    if p is None or not math.isfinite(float(p)) or p <= 0:
        return ""
    n = 1.0 / min(float(p), 1.0)
    h = int(history_days) if history_days else None
    if h is None and n > UNCHECKED_BEYOND:  # no record to hold the claim against (an alert stored before
        # history_days was kept): say no more than the detectors' tails are checked to on real data
        if lang == "zh":
            return f"少于每 {UNCHECKED_BEYOND} 天一次（本序列记录长度未知，更细的频率无法核对）"
        return f"rarer than once in {UNCHECKED_BEYOND:,} days (this series' record is unknown: no finer figure)"
    if h is not None and n > h:
        if lang == "zh":
            return f"近 {h} 天的记录中从未出现" + (f"（{_years(h, 'zh')}）" if h >= 365 else "")
        return f"never in the {h:,} days on record" + (f" ({_years(h, 'en')})" if h >= 365 else "")
    n = max(_round(n), 1)
    shown = f"{n:,.0f}" if lang == "en" else f"{n:.0f}"
    if lang == "zh":
        return f"约每 {shown} 天一次" + (f"（{_years(n, 'zh')}）" if n >= 365 else "")
    return f"about once every {shown} days" + (f" ({_years(n, 'en')})" if n >= 365 else "")


def p_of(surprise: float | None, score: float | None = None) -> float | None:
    """The tail probability from a stored surprise (-log10 p), else from a score (1 - p)."""
    if surprise is not None and math.isfinite(float(surprise)):
        return 10.0 ** -float(surprise)
    if score is not None:
        return max(1.0 - float(score), 1e-300)
    return None
